"""The screenshot-to-link command and Typora's custom command, run as a desktop shortcut and as Typora run them:
``pixlift upload --clipboard --copy`` under Xvfb with xclip, and ``pixlift upload FILE...`` with no terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable

from conftest import Daemon, Home, make_image, pixlift_env
from PIL import Image
from tray_harness import Desktop, desktop_fixture  # noqa: F401 - Xvfb for the clipboard


def pixlift(home: Home, *args: str, display: str | None = None) -> subprocess.CompletedProcess[str]:
    env = pixlift_env(home)  # without the session's DISPLAY
    if display:
        env["DISPLAY"] = display
    return subprocess.run([sys.executable, "-m", "pixlift", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def screenshot() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 128, 255)).save(out, "PNG")
    return out.getvalue()


def test_upload_clipboard_copy_puts_the_link_on_the_clipboard(home: Home, desktop: Desktop,
                                                              daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory()
    empty = pixlift(home, "upload", "--clipboard", display=desktop.display)
    assert empty.returncode == 2 and "holds no image" in empty.stderr and not empty.stdout

    shot = screenshot()
    desktop.clip_set(shot, "image/png")
    done = pixlift(home, "upload", "--clipboard", "--copy", display=desktop.display)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\S+/clipboard-\d{8}-\d{6}-[0-9a-f]{8}\.png", link), link
    with urllib.request.urlopen(link, timeout=30) as resp:
        assert resp.read() == shot
    assert desktop.clip_text() == link  # ready to paste
    task = d.rpc("get_all_upload_progress")["tasks"][-1]
    assert task["source"] == "clipboard" and task["url"] == link

    no_display = pixlift(home, "upload", "--clipboard")
    assert no_display.returncode == 2 and "no graphical session" in no_display.stderr


def test_typora_custom_command_reads_the_links_as_the_last_lines(home: Home,
                                                                 daemon_factory: Callable[..., Daemon]) -> None:
    """Typora runs its custom command with the image paths as arguments, no terminal, and takes the last lines
    of its output as the new links, one per image, in order."""
    daemon_factory()
    images = [make_image(home.pictures / f"pasted {i}.jpg", 20_000 + i, seed=i) for i in range(3)]
    done = pixlift(home, "upload", *(str(p) for p in images))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("http://127.0.0.1:") for line in lines)
    for line, image in zip(lines, images, strict=True):
        assert "pasted-" in line and line.endswith(".jpg")
        with urllib.request.urlopen(line, timeout=30) as resp:
            assert resp.read() == image.read_bytes()
    assert "\x1b" not in done.stderr  # no terminal, no progress drawing
