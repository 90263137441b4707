"""The tray tests' desktop (test_tray_icon.py, test_tray_menu.py): an X server (Xvfb), a tray manager (trayer),
a session bus and a notification daemon (dunst), as fixtures, and what the tests look at them with.

What CI needs for the tray tests (the lead copies these into .ci/run):
    apt: xvfb trayer xdotool x11-utils imagemagick xclip dbus dbus-x11 dunst
         libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1
    pip: 'PyGObject<3.51'   (builds against the -dev packages; newer needs a GLib that Debian 12 lacks)
    pystray, Pillow and python-xlib come with pixlift itself. x11-utils gives xwininfo and xprop; imagemagick
    gives `import` (screenshots); xdotool finds the icon's window and clicks it (XTEST, built into Xvfb).

The fixtures ``desktop``, ``tray_manager`` and ``notifications`` are defined as ``desktop_fixture`` and so on:
a test file imports all three of those (``notifications`` needs the other two, and pytest finds fixtures among
a test module's names) and its tests ask for them by their short names, which the import then does not shadow.
The menu driver, both ends of it, is in tray_driver.py.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Home, oss_profile, pixlift_env, wait_until
from ossserver import OssServerThread
from PIL import Image


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


@pytest.fixture(name="desktop")
def desktop_fixture(tmp_path: Path) -> Iterator[Desktop]:
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


@pytest.fixture(name="tray_manager")
def tray_manager_fixture(desktop: Desktop) -> Iterator[subprocess.Popen[bytes]]:
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


@pytest.fixture(name="notifications")
def notifications_fixture(desktop: Desktop, tray_manager: Any) -> Iterator[Desktop]:
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


# -- HTTP and images, as the tests check what the tray's actions did ----------------------------------------------
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
