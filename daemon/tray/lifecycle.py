"""The tray's life: whether it can start, the threads it runs, the poller, and how it stops (see __init__.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType, ModuleType
from typing import Any

from ..app import APPLICATION, LoopThread, serve_headless
from ..client import Client
from ..core.config import SettingsBox
from ..errors import PixliftError
from ..settings.home import Home
from .crossing import Crossing
from .icon import icon_key, render_icon
from .menu import TrayMenu
from .quirks import Once, backend_name, icon_class, name_gtk_program, nudge_xlib, release_setup_thread, set_tooltip
from .state import NAME, latin1_safe, read_state, title_for

log = logging.getLogger("pixlift.tray")

POLL_S = 1.0
SHUTDOWN_S = 30.0  # the engine gives its workers 10 s; the rest is for providers and the journal
OFF = "tray icon off: %s; serving without it (pass --no-tray to skip the tray)"


def missing_session(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> str | None:
    """Why there can be no tray here, or None. macOS and Windows always have a desktop for a logged-in user."""
    env = os.environ if env is None else env
    if platform in ("darwin", "win32") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return "no graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def run_with_tray(home: Home, box: SettingsBox, port: int) -> int:
    """``pixlift serve`` with a tray: the tray on this (main) thread, the daemon on a worker thread."""
    tray = Tray.create(home, box, port)
    if tray is None:
        return serve_headless(home, box, port)
    return tray.run()


class Tray:
    def __init__(self, pystray: ModuleType, home: Home, box: SettingsBox, port: int) -> None:
        self.home = home
        self.daemon = LoopThread(home, box, port)
        self.crossing: Crossing | None = None
        self.started = threading.Event()  # the icon is shown and the poller runs
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._icon_done = threading.Event()  # icon.run has returned
        self._exit_code = 0
        self._fallback: str | None = None  # why the icon gave up while the daemon kept serving
        self._icon_key: tuple[str, int, bool] | None = None
        self._menu_key: object = None
        self._last_error = ""
        self.menu = TrayMenu(pystray, notify=self.notify, wake=self._wake, on_quit=self.stop,
                             login_url=self.login_url)
        self.icon = icon_class(pystray)(NAME, render_icon("idle"), "pixlift: starting", menu=self.menu.build(),
                                        on_main_ready=self._install_signals)
        self.backend = backend_name(self.icon)
        self._latin1 = self.backend == "xorg"

    @classmethod
    def create(cls, home: Home, box: SettingsBox, port: int) -> Tray | None:
        """A tray ready to run, or None (after one log line) when this session cannot have one."""
        reason = missing_session()
        if reason is not None:
            log.warning(OFF, reason)
            return None
        name_gtk_program()
        logging.getLogger("pystray._base").addFilter(Once())
        try:
            import pystray  # picks a backend from PYSTRAY_BACKEND or the platform; connects to the display

            return cls(pystray, home, box, port)
        except Exception as exc:  # ImportError, Xlib's display errors, GLib errors: any of them means no icon
            log.warning(OFF, f"the tray backend could not start ({type(exc).__name__}: {exc})".replace("\n", " "))
            return None

    # -- running -------------------------------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self.daemon.start()
        self.daemon.ready.wait()
        if self.daemon.error is not None:
            raise self.daemon.error  # e.g. the port is taken: SystemExit with the message for the user
        assert self.daemon.app is not None
        self.crossing = self.menu.crossing = Crossing(self.daemon.loop, self.daemon.app[APPLICATION],
                                                         on_change=self._wake.set)
        if not self.icon.HAS_MENU:
            log.info("the %s tray backend has no menu: left-click opens the uploader. Install PyGObject "
                     "(python3-gi) for the menu and notifications.", self.backend)
        if self.backend == "xorg":
            threading.Thread(target=nudge_xlib, args=(self.icon, self._icon_done), name="pixlift-xlib-nudge",
                             daemon=True).start()
        try:
            self.icon.run(setup=self._setup)
        except Exception as exc:
            if self.started.is_set():
                log.debug("the tray backend raised while closing", exc_info=True)
            else:
                self._fallback = f"the tray backend failed ({type(exc).__name__}: {exc})".replace("\n", " ")
        finally:
            self._icon_done.set()
        release_setup_thread(self.icon)
        if self._fallback is not None and not self._stopping.is_set():
            log.warning(OFF, self._fallback)
            while not self._stopping.wait(0.5) and self.daemon.thread.is_alive():
                pass
        return self._finish()

    def stop(self) -> None:
        """Quit, SIGTERM, SIGINT: the poller stops both sides."""
        self._stopping.set()
        self._wake.set()

    def _finish(self) -> int:
        self.daemon.stop()
        self.daemon.join(SHUTDOWN_S)
        if self.daemon.thread.is_alive():
            log.error("the daemon did not stop within %.0f s", SHUTDOWN_S)
            return 1
        if self.daemon.error is not None:
            log.error("the daemon failed: %s", self.daemon.error)
            return 1
        return self._exit_code

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: stopping", signal.Signals(signum).name)
            self.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    # -- the poller (pystray's setup thread) ---------------------------------------------------------------------
    def _setup(self, icon: Any) -> None:
        """pystray's setup thread, once the backend's loop runs: show the icon, then poll until stopped."""
        if self._fallback is not None or self.crossing is None:
            return
        give_up = False
        unsubscribe: Callable[[], None] | None = None
        try:
            if self._stopping.is_set():
                return
            try:
                icon.visible = True
                unsubscribe = self.crossing.subscribe()
            except Exception as exc:
                self._fallback = f"the icon could not be shown ({type(exc).__name__}: {exc})"
                give_up = True
                return
            self.started.set()
            while not self._stopping.is_set():
                if not self.daemon.thread.is_alive():
                    log.error("the daemon stopped unexpectedly; closing the tray")
                    self._exit_code = 1
                    break
                try:
                    self._tick()
                except Exception as exc:  # a broken redraw must not take the daemon down; say it once
                    if repr(exc) != self._last_error:
                        self._last_error = repr(exc)
                        log.warning("tray: could not update the icon", exc_info=True)
                self._wake.wait(POLL_S)
                self._wake.clear()
        finally:
            if unsubscribe is not None and self.daemon.thread.is_alive():
                # before the daemon stops: the engine's last events (interrupted uploads) have no tray to go to
                with contextlib.suppress(PixliftError):  # the daemon went away meanwhile: so did its listeners
                    unsubscribe()
            if not give_up:
                self._stopping.set()
                self.daemon.stop()
            icon.stop()

    def _tick(self) -> None:
        assert self.crossing is not None
        seen = self.menu.state.version
        try:
            state = self.crossing.call(lambda app: read_state(app, seen))
        except PixliftError as exc:
            log.warning("tray: %s", exc.message)
            return
        if state is None:  # nothing changed since the last tick: no redraw, only the notices
            self.menu.deliver()
            return
        self.menu.state = state
        key = icon_key(state)
        if key != self._icon_key:
            self._icon_key = key
            self.icon.icon = render_icon(*key)
        title = latin1_safe(title_for(state)) if self._latin1 else title_for(state)
        if title != self.icon.title:
            self.icon.title = title
            set_tooltip(self.icon, title)
        menu_key = (state.active > 0, state.paused > 0, state.recent)
        if menu_key != self._menu_key:
            self._menu_key = menu_key
            self.icon.update_menu()
        self.menu.deliver()

    # -- what the menu asks of the tray ----------------------------------------------------------------------------
    def notify(self, message: str, title: str) -> None:
        log.info("%s: %s", title, message.replace("\n", " / "))
        if not getattr(self.icon, "HAS_NOTIFICATION", False):
            return
        try:
            self.icon.notify(latin1_safe(message) if self._latin1 else message, title)
        except Exception:
            log.debug("the notification could not be shown", exc_info=True)

    def login_url(self) -> str:
        assert self.daemon.runtime is not None
        return Client(self.daemon.runtime.base_url, self.home.read_token() or "").login_url()
