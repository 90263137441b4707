"""The gtk and appindicator menus, driven: both ends of `python tests/tray_driver.py --drive-menu`.

Finding each item of a popped-up menu by position with the keyboard would make the test depend on layout, so
this file doubles as a driver. Under a private session bus (what `dbus-run-session` sets up) with dunst,
``drive_menu`` runs pixlift's real `Tray` on its main thread (real daemon loop, real pystray Icon, real Gtk.Menu)
and, on command from the test over stdin, reads the labels and sensitivity of the Gtk.Menu that pystray built
and activates its Gtk.MenuItems on the GTK main thread (`Gtk.MenuItem.activate()` emits the "activate" signal a
click emits). ``MenuDriver`` is the test's end: it starts this file as a process and speaks JSON lines to it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # run as a script (even under PYTHONSAFEPATH): conftest is here

from conftest import Daemon, Home, wait_until
from tray_harness import Desktop


# -- the test's end ---------------------------------------------------------------------------------------------------
class MenuDriver:
    """The test's end of `python tests/tray_driver.py --drive-menu`."""

    def __init__(self, home: Home, desktop: Desktop, backend: str, tmp: Path) -> None:
        self.browser_log = tmp / "browser.log"
        browser = tmp / "browser.sh"
        browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{self.browser_log}"\n')
        browser.chmod(0o755)
        env = {**desktop.env, "PIXLIFT_HOME": str(home.root), "PYSTRAY_BACKEND": backend, "BROWSER": str(browser),
               "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith(("OSS_", "AWS_"))}
        self.log_path = tmp / "driver.log"
        self.proc = subprocess.Popen([sys.executable, __file__, "--drive-menu"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log_path.open("wb"))
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        hello = self.next(40)
        assert hello.get("ready"), f"{hello} {self.log()}"
        self.backend = hello["backend"]
        info = json.loads((home.root / "daemon.json").read_text())
        self.daemon = Daemon(home, self.proc, int(info["port"]), self.log_path)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def next(self, timeout: float = 15) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the driver said nothing for {timeout}s: {self.log()}") from None

    def send(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        reply = self.next()
        assert reply.get("ok"), f"{cmd} -> {reply}"
        return reply.get("result")

    def menu(self) -> list[dict[str, Any]]:
        return [i for i in self.send(op="menu") if i["label"]]  # separators have no label

    def item(self, *path: str) -> dict[str, Any]:
        items = self.menu()
        for label in path:
            found = next((i for i in items if i["label"] == label), None)
            assert found is not None, f"{label!r} not in {[i['label'] for i in items]}"
            items = found["children"] or []
        return found

    def click(self, *path: str) -> None:
        wait_until(lambda: self.item(*path)["sensitive"], 10, interval=0.2, message=f"{path} to be clickable")
        self.send(op="activate", path=list(path))


# -- the driver (runs in its own process) ----------------------------------------------------------------------------
def drive_menu() -> int:
    import logging

    import gi

    gi.require_version("Gtk", "3.0")
    from gi.repository import GLib, Gtk
    from pixlift.core.config import SettingsBox
    from pixlift.settings.config_file import load_settings
    from pixlift.settings.home import Home as PixliftHome
    from pixlift.tray import Tray

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out_lock = threading.Lock()

    def say(obj: Any) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    home = PixliftHome.locate()
    tray = Tray.create(home, SettingsBox(load_settings(home.config, home.root)), 0)
    if tray is None:
        say({"ready": False})
        return 2

    def on_main(fn: Callable[[], Any]) -> tuple[bool, Any]:
        done: queue.Queue[tuple[bool, Any]] = queue.Queue()

        def run() -> bool:
            try:
                done.put((True, fn()))
            except Exception as exc:
                done.put((False, repr(exc)))
            return False

        GLib.idle_add(run)
        return done.get(timeout=10)

    def text(item: Any) -> str | None:
        """What the item shows (the default item's label is bold markup: read the label widget's text)."""
        label = item.get_child()
        return label.get_text() if isinstance(label, Gtk.Label) else None

    def describe(menu: Any) -> list[dict[str, Any]]:
        items = []
        for child in menu.get_children():
            label = None if isinstance(child, Gtk.SeparatorMenuItem) else text(child)
            sub = child.get_submenu()
            items.append({"label": label, "sensitive": child.get_sensitive(),
                          "children": describe(sub) if sub is not None else None})
        return items

    def find(menu: Any, path: list[str]) -> Any:
        for child in menu.get_children():
            if not isinstance(child, Gtk.SeparatorMenuItem) and text(child) == path[0]:
                return child if len(path) == 1 else find(child.get_submenu(), path[1:])
        raise LookupError(f"no menu item {path[0]!r}")

    def click(path: list[str]) -> None:
        item = find(tray.icon._menu_handle, path)
        if not item.get_sensitive():
            raise RuntimeError(f"{path} is greyed out")
        item.activate()  # the "activate" signal, as a click on the item emits it

    def commands() -> None:
        if not tray.started.wait(30):
            say({"ready": False})
            return
        say({"ready": True, "backend": tray.backend})
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "menu":
                ok, result = on_main(lambda: describe(tray.icon._menu_handle))
            elif cmd["op"] == "title":  # the title, and what a hover shows (gtk: the status icon's tooltip)
                def title() -> dict[str, Any]:
                    status_icon = getattr(tray.icon, "_status_icon", None)
                    return {"title": tray.icon.title,
                            "tooltip": status_icon.get_tooltip_text() if status_icon is not None else None}

                ok, result = on_main(title)
            elif cmd["op"] == "activate":
                path = list(cmd["path"])
                ok, result = on_main(lambda: click(path))  # noqa: B023 (runs before the next line is read)
            else:
                ok, result = False, f"unknown op {cmd['op']!r}"
            say({"ok": ok, "result": result})

    threading.Thread(target=commands, name="driver", daemon=True).start()
    code = tray.run()
    say({"exit": code})
    return code


if __name__ == "__main__" and sys.argv[1:] == ["--drive-menu"]:
    raise SystemExit(drive_menu())
