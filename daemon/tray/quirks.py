"""Workarounds for pystray's backends (xorg, gtk, appindicator), each named after what it works around.

Kept apart from the tray's own logic so that each can be dropped when the backend it patches is fixed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .state import NAME

XLIB_NUDGE_S = 0.5


class Once(logging.Filter):
    """pystray logs "Failed to dock icon" with a traceback at every icon change when no tray manager runs (or
    the desktop has no system tray): say it once, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self._seen:
            return False
        self._seen.add(message)
        record.exc_info = record.exc_text = None
        if message == "Failed to dock icon":
            record.msg, record.args = "Failed to dock icon: no system tray is running in this session", ()
        return True


def name_gtk_program() -> None:
    """GTK names the icon's window after the program, "__main__.py" under ``python -m``: make it pixlift."""
    if sys.platform.startswith("linux") and os.environ.get("PYSTRAY_BACKEND", "") in ("", "gtk", "appindicator"):
        with contextlib.suppress(Exception):  # no PyGObject: pystray will use xorg, which names it itself
            from gi.repository import GLib  # type: ignore[import-not-found, import-untyped, unused-ignore]

            GLib.set_prgname(NAME)
            GLib.set_application_name(NAME)


def icon_class(pystray: ModuleType) -> Any:
    """pystray's Icon class for the chosen backend, patched (the backend is known only once pystray is imported)."""

    class PixliftIcon(pystray.Icon):  # type: ignore[misc, name-defined]
        """pystray's Icon, plus a hook on the main thread once the backend's loop is set up, and xorg clicks."""

        def __init__(self, *args: Any, on_main_ready: Callable[[], None], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._on_main_ready = on_main_ready
            window = getattr(self, "_window", None)
            if window is not None:  # xorg: pystray handles clicks but never asks X for them; ask, so that a
                import Xlib.X  # left click runs the default item (Open uploader)

                window.change_attributes(
                    event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask)
                self._display.flush()

        def _mark_ready(self) -> None:
            # The GTK backends reset SIGINT to SIG_DFL just before this (Ctrl-C would kill pixlift without saving):
            # install our handlers again. The xorg and win32 backends set self._thread only after this returns,
            # yet the setup thread that this releases needs it: set it first.
            self._thread = threading.current_thread()
            self._on_main_ready()
            super()._mark_ready()

    return PixliftIcon


def backend_name(icon: Any) -> str:
    """"xorg", "gtk", "appindicator", ...: the module of the backend class that ``icon_class`` subclassed."""
    return str(type(icon).__mro__[1].__module__.rsplit(".", 1)[-1].lstrip("_"))


def nudge_xlib(icon: Any, done: threading.Event) -> None:
    """Work around a lost wake-up in python-xlib's threaded mode, which pystray's xorg backend uses.

    When two threads talk to the X server at once, a thread that has just sent (pystray's dispatcher, on
    our poller thread, sending "update the icon") and sees a reply waiting returns without releasing the
    thread that waits for that reply (the main loop, now drawing the icon): the tray freezes for good and
    SIGTERM can no longer stop it. A flush from a third thread that has nothing to send finishes a
    send_and_recv the normal way, which releases every waiter; doing it twice a second bounds the stall.
    Runs on its own thread until ``done`` is set.
    """
    display = getattr(icon, "_display", None)
    if display is None:
        return
    while not done.wait(XLIB_NUDGE_S):
        try:
            display.flush()
        except Exception:  # the display is closing: nothing left to unstick
            return


def set_tooltip(icon: Any, text: str) -> None:
    """pystray's gtk backend sets only the status icon's title, which no tray shows: set its tooltip too."""
    status_icon = getattr(icon, "_status_icon", None)
    if status_icon is not None:
        from gi.repository import GLib  # type: ignore[import-not-found, import-untyped, unused-ignore]

        GLib.idle_add(lambda: status_icon.set_tooltip_text(text) and False)


def release_setup_thread(icon: Any) -> None:
    """pystray's setup thread waits for a signal that a backend failing early never sends, and it is not a
    daemon thread: release it (our setup returns at once) so the process can exit."""
    with contextlib.suppress(Exception):
        icon._Icon__queue.put(False)
