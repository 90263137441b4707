"""The tray on a real desktop: the xorg icon docks, shows progress and failures, and the tray's life (start,
signals, no tray at all) ends with everything saved.

How each part is observed (the desktop is tray_harness.py's):
- xorg backend (`pixlift serve` as a subprocess, PYSTRAY_BACKEND=xorg): the icon is a window of class
  "pixlift" that trayer has reparented and mapped (xwininfo), its pixels are on a screenshot of the root
  window (import), its title is the window's WM_NAME (xprop), and SIGTERM ends the process with 0.
  A real left click (xdotool, XTEST) on the docked icon opens the uploader.
- gtk backend: SIGTERM and SIGINT end `pixlift serve` with 0 although GTK resets SIGINT.
- No display, a dead display, an unknown backend: the daemon serves and logs one line saying why.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Home, make_image, pixlift_env, start_daemon, wait_until
from ossserver import OssServerThread
from tray_harness import (
    Desktop,
    bluish,
    count,
    desktop_fixture,  # noqa: F401 (a fixture, asked for as 'desktop': see tray_harness)
    greenish,
    notifications_fixture,  # noqa: F401 (a fixture, asked for as 'notifications': see tray_harness)
    slow_oss,
    tray_env,
    tray_manager_fixture,  # noqa: F401 (a fixture, asked for as 'tray_manager': see tray_harness)
)


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
        info = wait_until(lambda: (i := desktop.window_info(wid))["Map State"] == "IsViewable" and i, 30,
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


# -- gtk: the signals that GTK would otherwise let kill pixlift unsaved --------------------------------------------
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
