"""The tray, for real: an X server (Xvfb), a tray manager (trayer), a session bus and a notification daemon
(dunst), the real pystray backends, the real daemon.

What CI needs for this file (the lead copies these into .ci/run):
    apt: xvfb trayer xdotool x11-utils imagemagick xclip dbus dbus-x11 dunst
         libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1
    pip: 'PyGObject<3.51'   (builds against the -dev packages; newer needs a GLib that Debian 12 lacks)
    pystray, Pillow and python-xlib come with pixlift itself. x11-utils gives xwininfo and xprop; imagemagick
    gives `import` (screenshots); xdotool finds the icon's window and clicks it (XTEST, built into Xvfb).

How each part is observed:
- xorg backend (`pixlift serve` as a subprocess, PYSTRAY_BACKEND=xorg): the icon is a window of class
  "pixlift" that trayer has reparented and mapped (xwininfo), its pixels are on a screenshot of the root
  window (import), its title is the window's WM_NAME (xprop), and SIGTERM ends the process with 0.
  A real left click (xdotool, XTEST) on the docked icon opens the uploader.
- gtk backend, real input: `pixlift serve` docked in trayer; a left click opens the uploader, a right click pops
  the real menu up and the keyboard picks Quit; the process exits 0.
- gtk and appindicator backends, every menu item: finding each item of a popped-up menu by position with the
  keyboard would make the test depend on layout, so this file doubles as a driver
  (`python tests/test_tray.py --drive-menu`). Under a private session bus (what `dbus-run-session` sets up)
  with dunst, it runs pixlift's real `Tray` on its main thread (real daemon loop, real pystray Icon, real
  Gtk.Menu) and, on command from the test over stdin, reads the labels and sensitivity of the Gtk.Menu that
  pystray built and activates its Gtk.MenuItems on the GTK main thread (`Gtk.MenuItem.activate()` emits the
  "activate" signal a click emits). Every effect is checked from outside: the URL the browser got (BROWSER is
  a script that records its argument) and that it logs in, the clipboard (xclip -o), the engine state
  (JSON-RPC), the notifications (dunstctl history), the exit code.
- No display, a dead display, an unknown backend: the daemon serves and logs one line saying why.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from conftest import Daemon, Home, make_image, oss_profile, pixlift_env, start_daemon, wait_until
from ossserver import OssServerThread
from pixlift import clipboard
from pixlift.errors import DaemonGone
from pixlift.tray import Crossing, TrayState, icon_key, latin1_safe, missing_session, render_icon, title_for

MENU = ["Open uploader", "Upload image from clipboard", "Pause all", "Resume all", "Recent links", "Copy last link",
        "Quit"]


# -- the desktop: X server, tray manager, session bus, notification daemon ----------------------------------------
class Desktop:
    def __init__(self, display: str) -> None:
        self.display = display
        self.bus: str | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
        env["DISPLAY"] = self.display
        if self.bus:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.bus
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 15) -> str:
        done = subprocess.run(cmd, env=self.env, capture_output=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{cmd} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    # -- the clipboard, as another application sees it
    def clip_set(self, data: bytes, mime: str | None = None) -> None:
        cmd = ["xclip", "-selection", "clipboard", "-in", *(["-t", mime] if mime else [])]
        subprocess.run(cmd, input=data, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10, check=True)

    def clip_text(self) -> str:
        done = subprocess.run(["xclip", "-selection", "clipboard", "-o"], env=self.env, capture_output=True,
                              timeout=10, check=False)
        return done.stdout.decode(errors="replace") if done.returncode == 0 else ""

    # -- the notification daemon
    def notifications(self) -> list[tuple[str, str]]:
        """(summary, body) of every notification dunst has shown; closes the open ones to get them into history."""
        self.run("dunstctl", "close-all")
        data = json.loads(self.run("dunstctl", "history"))["data"][0]
        return [(n["summary"]["data"], n["body"]["data"]) for n in data]

    def wait_notification(self, pattern: str, timeout: float = 20) -> tuple[str, str]:
        rx = re.compile(pattern, re.S)
        return wait_until(lambda: next((n for n in self.notifications() if rx.search(f"{n[0]}\n{n[1]}")), None),
                          timeout, interval=0.2, message=f"a notification matching {pattern!r}")

    # -- windows
    def icon_window(self) -> str | None:
        """The id of pystray's xorg icon window (class "pixlift")."""
        done = subprocess.run(["xdotool", "search", "--class", "^pixlift$"], env=self.env, capture_output=True,
                              timeout=10, check=False)
        ids = done.stdout.decode().split()
        return ids[0] if ids else None

    def window_info(self, wid: str) -> dict[str, str]:
        out = self.run("xwininfo", "-id", wid)
        info = dict(re.findall(r"^\s*([A-Za-z][\w -]*?):\s+(.*)$", out, re.M))
        parent = re.search(r"Parent window id: (0x[0-9a-f]+)", self.run("xwininfo", "-children", "-id", wid))
        info["parent"] = parent.group(1) if parent else ""
        return info

    def root_id(self) -> str:
        return re.search(r"Window id: (0x[0-9a-f]+)", self.run("xwininfo", "-root")).group(1)  # type: ignore[union-attr]

    def title(self, wid: str) -> str:
        out = self.run("xprop", "-id", wid, "WM_NAME")
        m = re.search(r'WM_NAME\(\w+\) = "(.*)"', out)
        return m.group(1) if m else ""

    def icon_pixels(self, wid: str, tmp: Path) -> Image.Image:
        """What is on the screen where the icon's window is: a crop of a screenshot of the whole root window."""
        shot = tmp / f"screen-{time.monotonic_ns()}.png"
        self.run("import", "-window", "root", str(shot))
        info = self.window_info(wid)
        x, y = int(info["Absolute upper-left X"]), int(info["Absolute upper-left Y"])
        w, h = int(info["Width"]), int(info["Height"])
        with Image.open(shot) as screen:
            return screen.convert("RGB").crop((x, y, x + w, y + h))


def count(image: Image.Image, test: Callable[[tuple[int, int, int]], bool]) -> int:
    return sum(1 for px in image.getdata() if test(px))


def bluish(px: tuple[int, int, int]) -> bool:
    return px[2] > 170 and px[0] < 90 and px[1] < 140


def greenish(px: tuple[int, int, int]) -> bool:
    return px[1] > 120 and px[0] < 90 and px[2] < 120


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    """Xvfb on a free display number (it says which through -displayfd)."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    yield Desktop(f":{number}")
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def tray_manager(desktop: Desktop) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height",
                             "32", "--transparent", "false"], env=desktop.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    from Xlib import X
    from Xlib.display import Display

    display = Display(desktop.display)
    try:
        atom = display.intern_atom("_NET_SYSTEM_TRAY_S0")
        wait_until(lambda: display.get_selection_owner(atom) != X.NONE, 15, message="trayer to own the tray")
    finally:
        display.close()
    yield proc
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def notifications(desktop: Desktop, tray_manager: Any) -> Iterator[Desktop]:
    """A private session bus (what dbus-run-session sets up) with dunst on it."""
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert bus.stdout is not None
    desktop.bus = bus.stdout.readline().decode().strip()
    assert desktop.bus.startswith("unix:"), desktop.bus
    dunst = subprocess.Popen(["dunst"], env=desktop.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: subprocess.run(["dunstctl", "count"], env=desktop.env, capture_output=True,
                                      check=False).returncode == 0, 15, message="dunst on the session bus")
    yield desktop
    dunst.terminate()
    dunst.wait(10)
    bus.terminate()
    bus.wait(10)


def tray_env(home: Home, desktop: Desktop, backend: str) -> dict[str, str]:
    """The environment of `pixlift serve` on this desktop (pixlift_env drops DISPLAY: put it back)."""
    env = pixlift_env(home, PYSTRAY_BACKEND=backend)
    env.pop("WAYLAND_DISPLAY", None)
    env["DISPLAY"] = desktop.display
    if desktop.bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = desktop.bus
    return env


def slow_oss(home: Home, oss_server: OssServerThread, delay: float) -> None:
    oss_server.server.put_delay_s = delay
    home.write_config(profiles={"local": {"provider": "local"}, "slow": oss_profile(oss_server),
                                "broken": oss_profile(oss_server, bucket="no-such-bucket")},
                      default="local", transfers={"attempts": 1, "multipart_threshold_mb": 5, "part_size_mb": 5,
                                                  "part_concurrency": 1})


# -- xorg: the icon docks, shows progress, and SIGTERM stops everything ---------------------------------------------
def test_xorg_icon_docks_shows_progress_and_exits_on_sigterm(home: Home, desktop: Desktop, tray_manager: Any,
                                                             oss_server: OssServerThread, tmp_path: Path) -> None:
    # 20 MiB in four 5 MiB parts, one at a time, each taking about 1.5 s to arrive: progress the eye can follow
    slow_oss(home, oss_server, delay=0.02)
    name = "café-截图.jpg"  # é is Latin-1, the CJK part is not: the xorg title must survive it
    big = make_image(home.pictures / name, 20 * 1024 * 1024, seed=7)
    d = start_daemon(home, tray=True, env=tray_env(home, desktop, "xorg"))
    try:
        wid = wait_until(desktop.icon_window, 20, message="the pixlift icon window")
        wait_until(lambda: desktop.title(wid) == "pixlift: idle", 10, message="the idle title")
        info = wait_until(lambda: (i := desktop.window_info(wid))["Map State"] == "IsViewable" and i, 10,
                          message="the icon to be mapped")
        assert info["parent"] != desktop.root_id(), "the icon was not reparented into the tray"
        idle = desktop.icon_pixels(wid, tmp_path)
        assert count(idle, bluish) > idle.width * idle.height // 5, "the blue idle icon is not on the screen"
        assert count(idle, greenish) == 0

        # the JSON-RPC API answers while the tray owns the main thread
        assert d.rpc("get_daemon_info")["pid"] == d.proc.pid

        task = d.rpc("upload_images", {"paths": [str(big)], "profile": "slow"})["tasks"][0]
        d.wait_task(task["task_id"], "uploading", timeout=10)
        pattern = re.compile(r"pixlift: uploading caf.{1,4}-\?\?\.jpg, (\d+)%")  # é as xprop's locale shows it
        first = wait_until(lambda: pattern.fullmatch(desktop.title(wid)), 10, message="an uploading title")
        later = wait_until(lambda: (m := pattern.fullmatch(desktop.title(wid))) and
                           int(m.group(1)) > int(first.group(1)) and m, 20, message="the percentage to grow")
        assert 0 <= int(first.group(1)) < int(later.group(1)) < 100
        busy = wait_until(lambda: (img := desktop.icon_pixels(wid, tmp_path)) and count(img, greenish) > 0 and img,
                          10, message="the green progress ring on the screen")
        assert busy.tobytes() != idle.tobytes()

        # SIGTERM in the middle of the upload: exit 0, quickly, with the upload saved for the next start
        started = time.monotonic()
        assert d.stop(signal.SIGTERM, timeout=15) == 0, d.log()
        assert time.monotonic() - started < 8
        assert not (home.root / "daemon.json").exists()
        assert "Traceback" not in d.log(), d.log()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    oss_server.server.put_delay_s = 0
    again = start_daemon(home)
    try:
        done = again.wait_task(task["task_id"], timeout=60)
        assert done["status"] == "completed", done
        stored = {p.name: p.stat().st_size for p in oss_server.server.objects("test").values()}
        assert big.stat().st_size in stored.values()
    finally:
        assert again.stop() == 0


def test_xorg_icon_shows_failure_and_exits_on_sigint(home: Home, desktop: Desktop, tray_manager: Any,
                                                     oss_server: OssServerThread, tmp_path: Path) -> None:
    slow_oss(home, oss_server, delay=0)
    bad = make_image(home.pictures / "bad.jpg", 2048)
    opened = tmp_path / "browser.log"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    browser.chmod(0o755)
    d = start_daemon(home, tray=True, env={**tray_env(home, desktop, "xorg"), "BROWSER": str(browser)})
    try:
        wid = wait_until(desktop.icon_window, 20, message="the pixlift icon window")
        wait_until(lambda: desktop.title(wid) == "pixlift: idle", 10, message="the idle title")
        # xorg has no menu: a real left click on the docked icon opens the uploader, logged in
        desktop.run("xdotool", "mousemove", "--window", wid, "4", "4", "click", "1")
        assert wait_until(lambda: opened.exists() and opened.read_text().split(), 10,
                          message="the browser") == [f"{d.url}/?token={home.token}"]
        task = d.rpc("upload_images", {"paths": [str(bad)], "profile": "broken"})["tasks"][0]
        assert d.wait_task(task["task_id"])["status"] == "failed"
        wait_until(lambda: desktop.title(wid) == "pixlift: 1 failed", 10, message="the failed title")
        shot = desktop.icon_pixels(wid, tmp_path)
        assert count(shot, lambda px: px[0] > 180 and px[1] < 90 and px[2] < 90) > 0, "no red attention badge"
        assert d.stop(signal.SIGINT, timeout=15) == 0, d.log()
        assert not (home.root / "daemon.json").exists()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


def test_xorg_without_a_tray_manager_keeps_serving_and_says_so_once(home: Home, desktop: Desktop) -> None:
    d = start_daemon(home, tray=True, env=tray_env(home, desktop, "xorg"))
    try:
        for seed in range(3):  # each upload changes the icon twice; pystray tries to dock each time
            image = make_image(home.pictures / f"{seed}.jpg", 5000, seed=seed)
            task = d.rpc("upload_images", {"paths": [str(image)]})["tasks"][0]
            assert d.wait_task(task["task_id"])["status"] == "completed"
        time.sleep(1.5)  # a poll or two after the last change
        assert d.log().count("Failed to dock icon") == 1, d.log()
        assert "Traceback" not in d.log()
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


def test_tray_start_with_a_busy_port_fails_clearly(home: Home, desktop: Desktop) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "pixlift", "serve", "--port", str(port)],
                              env=tray_env(home, desktop, "xorg"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr, done.stderr


# -- no tray: the daemon serves anyway, and says why in one line ----------------------------------------------------
@pytest.mark.parametrize("case", ["no display", "dead display", "unknown backend"])
def test_without_a_tray_the_daemon_serves_and_says_why_once(home: Home, case: str) -> None:
    env = pixlift_env(home)
    env.pop("WAYLAND_DISPLAY", None)
    expected = {"no display": "no graphical session", "dead display": "the tray backend could not start",
                "unknown backend": "the tray backend could not start"}[case]
    if case == "dead display":
        env.update(DISPLAY=":4077", PYSTRAY_BACKEND="xorg")  # no X server there
    elif case == "unknown backend":
        env.update(DISPLAY=":4077", PYSTRAY_BACKEND="no-such-backend")
    d = start_daemon(home, tray=True, env=env)
    try:
        assert d.rpc("get_daemon_info")["pid"] == d.proc.pid
        image = make_image(home.pictures / "a.jpg", 1000)
        task = d.rpc("upload_images", {"paths": [str(image)]})["tasks"][0]
        assert d.wait_task(task["task_id"])["status"] == "completed"
        lines = [line for line in d.log().splitlines() if "pixlift.tray" in line or "tray icon" in line]
        assert len(lines) == 1, lines
        assert "tray icon off" in lines[0] and expected in lines[0], lines[0]
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


# -- gtk / appindicator: every menu item, clicked, does what it says ------------------------------------------------
class MenuDriver:
    """The test's end of `python tests/test_tray.py --drive-menu` (see the module docstring)."""

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


def png_bytes(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def login_response(url: str) -> tuple[int, str]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        resp = conn.getresponse()
        return resp.status, resp.getheader("Set-Cookie") or ""
    finally:
        conn.close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


@pytest.mark.parametrize("backend", ["gtk", "appindicator"])
def test_menu_items_do_what_they_say(home: Home, notifications: Desktop, oss_server: OssServerThread,
                                     tmp_path: Path, backend: str) -> None:
    desktop = notifications
    slow_oss(home, oss_server, delay=0.1)
    drv = MenuDriver(home, desktop, backend, tmp_path)
    try:
        assert drv.backend == backend
        d = drv.daemon

        # every item is there, in order; nothing to pause, resume or copy yet
        menu = drv.menu()
        assert [i["label"] for i in menu] == MENU
        state = {i["label"]: i["sensitive"] for i in menu}
        assert state["Open uploader"] and state["Upload image from clipboard"] and state["Quit"]
        assert not (state["Pause all"] or state["Resume all"] or state["Copy last link"])
        assert [(i["label"], i["sensitive"]) for i in drv.item("Recent links")["children"]] == \
            [("No uploads yet", False)]

        # Open uploader: the browser gets the login link, and the link logs in
        drv.click("Open uploader")
        opened = wait_until(lambda: drv.browser_log.exists() and drv.browser_log.read_text().split(), 10,
                            message="the browser to be started")
        assert opened == [f"{d.url}/?token={home.token}"]
        status, cookie = login_response(opened[0])
        assert status in (302, 303) and "HttpOnly" in cookie, (status, cookie)

        # Upload image from clipboard, with text on the clipboard: a notification says what to do
        desktop.clip_set(b"just some words")
        drv.click("Upload image from clipboard")
        desktop.wait_notification(r"holds no image \(it holds text\)")
        assert d.rpc("get_upload_history")["total"] == 0

        # ... with an image: it is uploaded, its link replaces it on the clipboard, a notification says so
        shot = png_bytes((64, 48), (200, 30, 30))
        desktop.clip_set(shot, "image/png")
        drv.click("Upload image from clipboard")
        item = wait_until(lambda: (h := d.rpc("get_upload_history"))["total"] == 1 and h["items"][0], 20,
                          message="the clipboard upload")
        assert re.fullmatch(r"clipboard-\d{8}-\d{6}\.png", item["name"]), item
        assert fetch(item["url"]) == shot
        wait_until(lambda: desktop.clip_text() == item["url"], 10, message="the link on the clipboard")
        desktop.wait_notification(rf"pixlift: upload finished.*Uploaded {re.escape(item['name'])}; the link is on "
                                  "the clipboard")

        # Pause all / Resume all, on a slow upload
        big = make_image(home.pictures / "big.jpg", 2 * 1024 * 1024, seed=3)
        task = d.rpc("upload_images", {"paths": [str(big)], "profile": "slow"})["tasks"][0]
        d.wait_task(task["task_id"], "uploading", timeout=10)
        wait_until(lambda: drv.send(op="title")["title"].startswith("pixlift: uploading big.jpg, "), 10,
                   interval=0.2, message="the uploading title")
        drv.click("Pause all")
        paused = d.wait_task(task["task_id"], "paused", timeout=10)
        tooltip = "pixlift: 1 paused" if backend == "gtk" else None  # set just after the title
        wait_until(lambda: (t := drv.send(op="title"))["title"] == "pixlift: 1 paused" and t["tooltip"] == tooltip,
                   10, interval=0.2, message="the paused title and tooltip")
        time.sleep(1.0)
        assert d.rpc("get_upload_progress", {"task_id": task["task_id"]})["bytes_uploaded"] == \
            paused["bytes_uploaded"], "bytes kept flowing while paused"
        assert d.rpc("get_all_upload_progress")["summary"]["paused"] == 1
        oss_server.server.put_delay_s = 0.01
        drv.click("Resume all")
        wait_until(lambda: d.rpc("get_upload_progress", {"task_id": task["task_id"]})["status"] != "paused", 10,
                   message="the upload to resume")
        assert d.wait_task(task["task_id"], timeout=60)["status"] == "completed"
        assert d.rpc("get_all_upload_progress")["summary"]["paused"] == 0
        desktop.wait_notification(r"pixlift: upload finished.*Uploaded big\.jpg\.")

        # a file that fails: a notification names it and says why
        bad = make_image(home.pictures / "bad.jpg", 2048)
        failed = d.rpc("upload_images", {"paths": [str(bad)], "profile": "broken"})["tasks"][0]
        assert d.wait_task(failed["task_id"])["status"] == "failed"
        desktop.wait_notification(r"pixlift: upload failed.*bad\.jpg failed: ")

        # Recent links: newest first; clicking one copies its link
        newest = d.rpc("get_upload_history")["items"]
        assert [i["name"] for i in newest] == ["big.jpg", item["name"]]
        wait_until(lambda: [i["label"] for i in drv.item("Recent links")["children"]] == ["big.jpg", item["name"]],
                   10, interval=0.2, message="the recent links in the menu")
        desktop.clip_set(b"something else")
        drv.click("Recent links", item["name"])
        wait_until(lambda: desktop.clip_text() == item["url"], 10, message="the older link on the clipboard")
        desktop.wait_notification(r"pixlift: link copied")

        # Copy last link
        desktop.clip_set(b"something else")
        drv.click("Copy last link")
        wait_until(lambda: desktop.clip_text() == newest[0]["url"], 10, message="the last link on the clipboard")

        # Quit: both sides stop, exit 0
        started = time.monotonic()
        drv.send(op="activate", path=["Quit"])
        assert drv.next(15) == {"exit": 0}
        assert drv.proc.wait(15) == 0
        assert time.monotonic() - started < 8
        assert not (home.root / "daemon.json").exists()
        assert "Traceback" not in drv.log(), drv.log()
    finally:
        if drv.proc.poll() is None:
            drv.proc.kill()
            drv.proc.wait(10)


def test_gtk_real_clicks_open_the_uploader_and_quit(home: Home, notifications: Desktop, tmp_path: Path) -> None:
    """Real pointer and keyboard input (XTEST, through xdotool) on the icon docked in trayer."""
    desktop = notifications
    opened = tmp_path / "browser.log"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    browser.chmod(0o755)
    d = start_daemon(home, tray=True, env={**tray_env(home, desktop, "gtk"), "BROWSER": str(browser)})
    try:
        def icon() -> str | None:
            out = desktop.run("xdotool", "search", "--name", "^pixlift: idle$", check=False).split()
            return out[0] if out else None

        wid = wait_until(icon, 20, message="the gtk icon in the tray")
        desktop.run("xdotool", "mousemove", "--window", wid, "5", "5", "click", "1")  # left: the default item
        assert wait_until(lambda: opened.exists() and opened.read_text().split(), 10,
                          message="the browser") == [f"{d.url}/?token={home.token}"]

        def popup() -> str | None:  # the menu: a visible pixlift window taller than the icon
            ids = desktop.run("xdotool", "search", "--onlyvisible", "--class", "pixlift", check=False).split()
            return next((w for w in ids if w != wid and int(desktop.window_info(w)["Height"]) > 100), None)

        desktop.run("xdotool", "mousemove", "--window", wid, "5", "5", "click", "3")  # right: the menu
        wait_until(popup, 10, message="the menu to pop up")
        desktop.run("xdotool", "key", "Up", "Return")  # from the top, Up wraps round to the last item: Quit
        assert d.proc.wait(15) == 0, d.log()
        assert not (home.root / "daemon.json").exists()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_gtk_tray_exits_0_on_signals(home: Home, notifications: Desktop, sig: signal.Signals) -> None:
    """The GTK backends reset SIGINT to "die at once"; pixlift must still save and exit 0."""
    d = start_daemon(home, tray=True, env=tray_env(home, notifications, "gtk"))
    try:
        wait_until(lambda: "pixlift: idle" in notifications.run("xwininfo", "-root", "-tree"), 20,
                   message="the gtk icon")
        assert d.rpc("get_daemon_info")["pid"] == d.proc.pid
        assert d.stop(sig, timeout=15) == 0, d.log()
        assert not (home.root / "daemon.json").exists()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


# -- the clipboard module against a real X clipboard ----------------------------------------------------------------
def test_clipboard_reads_images_and_writes_links(desktop: Desktop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", desktop.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(clipboard.ClipboardError, match=r"holds no image \(it is empty\)"):
        clipboard.read_image()

    shot = png_bytes((10, 7), (0, 128, 255))
    desktop.clip_set(shot, "image/png")
    got = clipboard.read_image()
    assert (got.data, got.extension) == (shot, ".png")
    assert re.fullmatch(r"clipboard-\d{8}-\d{6}\.png", got.name())

    bmp = io.BytesIO()
    Image.new("RGB", (5, 4), (9, 9, 9)).save(bmp, "BMP")
    desktop.clip_set(bmp.getvalue(), "image/bmp")
    got = clipboard.read_image()
    assert got.extension == ".png"
    with Image.open(io.BytesIO(got.data)) as image:
        assert (image.format, image.size) == ("PNG", (5, 4))

    desktop.clip_set("https://example.com/é".encode())
    with pytest.raises(clipboard.ClipboardError, match=r"holds no image \(it holds text\)"):
        clipboard.read_image()

    clipboard.copy_text("http://127.0.0.1:1/files/x.png")
    assert desktop.clip_text() == "http://127.0.0.1:1/files/x.png"


def test_clipboard_says_what_is_missing(tmp_path: Path) -> None:
    no_tools = {"DISPLAY": ":0", "PATH": str(tmp_path)}  # an empty folder: no xclip, no wl-paste
    with pytest.raises(clipboard.ClipboardError, match=r"needs xclip .* or wl-clipboard"):
        clipboard.read_image(no_tools)
    with pytest.raises(clipboard.ClipboardError, match="Copying needs xclip or xsel"):
        clipboard.copy_text("x", no_tools)
    with pytest.raises(clipboard.ClipboardError, match="no graphical session"):
        clipboard.read_image({"PATH": os.environ.get("PATH", "")})


# -- the pure parts: titles, pictures ---------------------------------------------------------------------------------
def test_titles_say_what_is_happening() -> None:
    assert title_for(TrayState()) == "pixlift: idle"
    assert title_for(TrayState(uploading=2, queued=1, bytes_total=100, bytes_done=42)) == "pixlift: 3 uploading, 42%"
    assert title_for(TrayState(uploading=1, bytes_total=10, bytes_done=1, first_name="a.png")) == \
        "pixlift: uploading a.png, 10%"
    assert title_for(TrayState(paused=2, failed=1)) == "pixlift: 2 paused, 1 failed"
    long = title_for(TrayState(queued=1, first_name="x" * 100, bytes_total=1))
    assert len(long) < 80 and long.endswith("..., 0%")
    assert latin1_safe("pixlift: uploading café — 截图.png") == "pixlift: uploading café ? ??.png"
    latin1_safe(title_for(TrayState(uploading=1, first_name="截图.png"))).encode("latin-1")


def test_icons_differ_by_state() -> None:
    idle = render_icon(*icon_key(TrayState()))
    half = render_icon(*icon_key(TrayState(uploading=1, bytes_total=100, bytes_done=50)))
    full = render_icon(*icon_key(TrayState(uploading=1, bytes_total=100, bytes_done=95)))
    paused = render_icon(*icon_key(TrayState(paused=1)))
    failed = render_icon(*icon_key(TrayState(failed=1)))
    pictures = [i.tobytes() for i in (idle, half, full, paused, failed)]
    assert len(set(pictures)) == 5
    assert all(i.size == (64, 64) and i.mode == "RGBA" for i in (idle, half, full, paused, failed))
    green = [count(i.convert("RGB"), greenish) for i in (half, full)]
    assert 0 < green[0] < green[1]
    assert icon_key(TrayState(uploading=1, bytes_total=100, bytes_done=51)) == icon_key(
        TrayState(uploading=1, bytes_total=100, bytes_done=54))  # redrawn in 5 % steps, not on every byte


def test_graphical_session_detection() -> None:
    assert missing_session({}, "linux") is not None
    assert missing_session({"DISPLAY": ":0"}, "linux") is None
    assert missing_session({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_session({}, "darwin") is None
    assert missing_session({}, "win32") is None


def test_the_crossing_ends_its_subscription_on_the_loop() -> None:
    """The application's unsubscribe edits the loop's event bus: the crossing runs it there, not on the tray's
    thread, and says DaemonGone (which the tray ignores when stopping) once the loop is closed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ended: list[threading.Thread] = []

    class App:
        def subscribe(self, handler: Callable[[Any], None]) -> Callable[[], None]:
            return lambda: ended.append(threading.current_thread())

    try:
        end = Crossing(loop, App(), timeout=5).subscribe()  # type: ignore[arg-type]
        assert ended == []
        end()
        assert ended == [thread]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    with pytest.raises(DaemonGone):
        end()
    assert ended == [thread]


# -- the driver (runs in its own process; see the module docstring) --------------------------------------------------
def drive_menu() -> int:
    import logging

    import gi

    gi.require_version("Gtk", "3.0")
    from gi.repository import GLib, Gtk
    from pixlift.config import SettingsBox
    from pixlift.config_file import load_settings
    from pixlift.home import Home as PixliftHome
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
