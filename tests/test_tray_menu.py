"""The tray's menu, clipboard and notifications on a real desktop (gtk and appindicator backends).

How each part is observed (the desktop is tray_harness.py's):
- every menu item, through the driver (tray_driver.py): every effect is checked from outside: the URL the
  browser got (BROWSER is a script that records its argument) and that it logs in, the clipboard (xclip -o), the
  engine state (JSON-RPC), the notifications (dunstctl history), the exit code.
- gtk backend, real input: `pixlift serve` docked in trayer; a left click opens the uploader, a right click pops
  the real menu up and the keyboard picks Quit; the process exits 0.
- the clipboard module against a real X clipboard (xclip).
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pytest
from conftest import Home, make_image, start_daemon, wait_until
from ossserver import OssServerThread
from PIL import Image
from pixlift.intake import clipboard
from tray_driver import MenuDriver
from tray_harness import (
    Desktop,
    desktop_fixture,  # noqa: F401 (a fixture, asked for as 'desktop': see tray_harness)
    fetch,
    login_response,
    notifications_fixture,  # noqa: F401 (a fixture, asked for as 'notifications': see tray_harness)
    png_bytes,
    slow_oss,
    tray_env,
    tray_manager_fixture,  # noqa: F401 (a fixture, asked for as 'tray_manager': see tray_harness)
)

MENU = ["Open uploader", "Upload image from clipboard", "Pause all", "Resume all", "Recent links", "Copy last link",
        "Quit"]


# -- gtk / appindicator: every menu item, clicked, does what it says ------------------------------------------------
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
