"""The tray's pure parts, with no desktop: titles, pictures, the session check and the crossing to the loop.

The tray on a real desktop is tested in test_tray_icon.py (the xorg icon, the tray's life) and test_tray_menu.py
(the menus, the clipboard, notifications); their desktop is tray_harness.py's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pixlift.core.views import Summary
from pixlift.errors import DaemonGone
from pixlift.tray import Crossing, TrayState, icon_key, latin1_safe, missing_session, render_icon, title_for
from tray_harness import count, greenish


# -- the pure parts: titles, pictures ---------------------------------------------------------------------------------
def test_titles_say_what_is_happening() -> None:
    assert title_for(TrayState()) == "pixlift: idle"
    assert title_for(TrayState(Summary(uploading=2, queued=1, bytes_total=100, bytes_uploaded=42))) == \
        "pixlift: 3 uploading, 42%"
    assert title_for(TrayState(Summary(uploading=1, bytes_total=10, bytes_uploaded=1), first_name="a.png")) == \
        "pixlift: uploading a.png, 10%"
    assert title_for(TrayState(Summary(paused=2, failed=1))) == "pixlift: 2 paused, 1 failed"
    long = title_for(TrayState(Summary(queued=1, bytes_total=1), first_name="x" * 100))
    assert len(long) < 80 and long.endswith("..., 0%")
    assert latin1_safe("pixlift: uploading café — 截图.png") == "pixlift: uploading café ? ??.png"
    latin1_safe(title_for(TrayState(Summary(uploading=1), first_name="截图.png"))).encode("latin-1")


def test_icons_differ_by_state() -> None:
    idle = render_icon(*icon_key(TrayState()))
    half = render_icon(*icon_key(TrayState(Summary(uploading=1, bytes_total=100, bytes_uploaded=50))))
    full = render_icon(*icon_key(TrayState(Summary(uploading=1, bytes_total=100, bytes_uploaded=95))))
    paused = render_icon(*icon_key(TrayState(Summary(paused=1))))
    failed = render_icon(*icon_key(TrayState(Summary(failed=1))))
    pictures = [i.tobytes() for i in (idle, half, full, paused, failed)]
    assert len(set(pictures)) == 5
    assert all(i.size == (64, 64) and i.mode == "RGBA" for i in (idle, half, full, paused, failed))
    green = [count(i.convert("RGB"), greenish) for i in (half, full)]
    assert 0 < green[0] < green[1]
    assert icon_key(TrayState(Summary(uploading=1, bytes_total=100, bytes_uploaded=51))) == icon_key(
        TrayState(Summary(uploading=1, bytes_total=100, bytes_uploaded=54)))  # redrawn in 5 % steps, not on every byte


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
