"""The tray icon: pixlift's face on the desktop (pystray).

Threads, and the one rule between them: the tray never touches the engine except through ``Crossing``.

    main thread     pystray's event loop (macOS requires it); GTK menu callbacks and signal handlers run here
    pixlift-loop    the asyncio daemon (``app.LoopThread``): engine, RPC, web UI
    setup thread    pystray's ``setup`` callback, used as the poller: about once a second it reads a frozen
                    ``TrayState`` through the crossing, redraws icon, title and menu, and shows notifications
    action threads  one short thread per menu click, so a slow clipboard tool never freezes the menu

``Crossing.call`` runs a function on the loop (``asyncio.run_coroutine_threadsafe``) and waits for its result;
engine events come back the other way as frozen ``Notice`` objects on a queue the poller drains.

Stopping: Quit, SIGTERM and SIGINT only set an event. The poller sees it, asks the daemon to stop (its cleanup
context stops the engine, which journals interrupted uploads as queued) and stops the icon; ``icon.run`` returns
on the main thread, which waits for the daemon thread and exits 0. ``icon.run(setup=...)`` is used, never
``run_detached``, which keeps an X11 process alive after ``stop()``.

No graphical session, or a backend that cannot load or start: one log line, and the daemon serves on without an
icon, exactly as with ``--no-tray``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import webbrowser
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from types import FrameType, ModuleType
from typing import Any, TypeVar

from PIL import Image, ImageDraw

from . import clipboard
from .app import APPLICATION, LoopThread, serve_headless
from .application import Application
from .client import Client
from .config import SettingsBox
from .errors import DaemonGone, PixliftError
from .events import BatchFinished, Event, TaskFinished
from .home import Home
from .tasks import TaskSource, TaskStatus
from .views import Summary

log = logging.getLogger("pixlift.tray")

NAME = "pixlift"
POLL_S = 1.0
RECENT = 5
CALL_TIMEOUT_S = 15.0
XLIB_NUDGE_S = 0.5
SHUTDOWN_S = 30.0  # the engine gives its workers 10 s; the rest is for providers and the journal
OFF = "tray icon off: %s; serving without it (pass --no-tray to skip the tray)"
T = TypeVar("T")


# -- what the tray shows: frozen data, built on the loop ---------------------------------------------------------
@dataclass(frozen=True)
class Link:
    name: str
    url: str


@dataclass(frozen=True)
class TrayState:
    uploading: int = 0
    queued: int = 0
    paused: int = 0
    failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    first_name: str = ""  # an uploading (or queued) file, named in the title when it is the only one
    recent: tuple[Link, ...] = ()

    @property
    def active(self) -> int:
        """Files that are sending or waiting to send."""
        return self.uploading + self.queued

    @property
    def percent(self) -> int:
        return int(100 * self.bytes_done / self.bytes_total) if self.bytes_total else 0


def read_state(app: Application) -> TrayState:
    """Runs on the loop: what the tray shows, from the same summary the web UI shows."""
    s: Summary = app.summary()
    items = app.history(RECENT, 0)["items"]
    return TrayState(uploading=s.uploading, queued=s.queued, paused=s.paused, failed=s.failed,
                     bytes_total=s.bytes_total, bytes_done=s.bytes_uploaded, first_name=app.current_name(),
                     recent=tuple(Link(str(i["name"]), str(i["url"])) for i in items if i.get("url")))


def title_for(state: TrayState) -> str:
    """The tooltip: "pixlift: 3 uploading, 42%", "pixlift: uploading cat.png, 7%", "pixlift: idle"."""
    parts = []
    if state.active == 1 and state.first_name:
        parts.append(f"uploading {shorten(state.first_name)}, {state.percent}%")
    elif state.active:
        parts.append(f"{state.active} uploading, {state.percent}%")
    if state.paused:
        parts.append(f"{state.paused} paused")
    if state.failed:
        parts.append(f"{state.failed} failed")
    return "pixlift: " + (", ".join(parts) or "idle")


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def latin1_safe(text: str) -> str:
    """pystray's xorg backend writes the title as Latin-1 and dies on anything else (a CJK file name)."""
    return text.encode("latin-1", "replace").decode("latin-1")


# -- the icon image ----------------------------------------------------------------------------------------------
BLUE, AMBER, GREEN, RED, WHITE = (37, 99, 235), (217, 119, 6), (22, 163, 74), (220, 38, 38), (255, 255, 255)
TRACK = (203, 213, 225)


def icon_key(state: TrayState) -> tuple[str, int, bool]:
    """What the picture depends on; progress in 5 % steps so it is redrawn only when it visibly changes."""
    if state.active:
        return "uploading", state.percent // 5 * 5, state.failed > 0
    if state.paused:
        return "paused", 0, state.failed > 0
    return "idle", 0, state.failed > 0


def render_icon(kind: str, percent: int = 0, attention: bool = False, size: int = 64) -> Image.Image:
    """idle: a blue disc with an up arrow; uploading: the same inside a green progress ring; paused: amber with
    two bars; attention (something failed): a red badge with "!" in the top right corner."""
    s = size / 64
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return x0 * s, y0 * s, x1 * s, y1 * s

    if kind == "uploading":
        draw.ellipse(box(1, 1, 63, 63), fill=TRACK)
        if percent > 0:
            draw.pieslice(box(1, 1, 63, 63), -90, -90 + 360 * min(percent, 100) / 100, fill=GREEN)
        draw.ellipse(box(9, 9, 55, 55), fill=BLUE)
    else:
        draw.ellipse(box(3, 3, 61, 61), fill=AMBER if kind == "paused" else BLUE)
    if kind == "paused":
        draw.rectangle(box(22, 19, 29, 45), fill=WHITE)
        draw.rectangle(box(35, 19, 42, 45), fill=WHITE)
    else:
        arrow = [(32, 15), (46, 31), (37, 31), (37, 48), (27, 48), (27, 31), (18, 31)]
        draw.polygon([(x * s, y * s) for x, y in arrow], fill=WHITE)
    if attention:
        draw.ellipse(box(38, 0, 64, 26), fill=RED, outline=WHITE, width=max(1, round(2 * s)))
        draw.rectangle(box(49, 5, 53, 16), fill=WHITE)
        draw.rectangle(box(49, 18, 53, 21), fill=WHITE)
    return image


# -- the one crossing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """An engine event, frozen on the loop for the tray: which file, and for a finished batch, every file."""

    event: str  # "completed" | "failed" | "batch_finished"
    task_id: str
    name: str
    url: str | None
    error: str | None
    batch: tuple[tuple[str, str], ...] = ()  # (name, status) of each task of the batch


class Crossing:
    """The one way between the tray's threads and the daemon's event loop.

    Tray to loop: ``call`` / ``call_async`` run a function of the ``Application`` on the loop and wait for the result
    (exceptions travel back too). Loop to tray: ``subscribe`` registers an engine listener (on the loop) that puts
    frozen ``Notice`` objects on ``notices``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: Application, timeout: float = CALL_TIMEOUT_S) -> None:
        self._loop = loop
        self._app = app
        self._timeout = timeout
        self.notices: queue.SimpleQueue[Notice] = queue.SimpleQueue()

    def call(self, fn: Callable[[Application], T]) -> T:
        async def on_loop() -> T:
            return fn(self._app)

        return self._wait(on_loop())

    def call_async(self, fn: Callable[[Application], Awaitable[T]]) -> T:
        async def on_loop() -> T:
            return await fn(self._app)

        return self._wait(on_loop())

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as exc:  # the loop is closed: the daemon has stopped
            coro.close()
            raise DaemonGone("pixlift's daemon has stopped.") from exc
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise DaemonGone(f"pixlift's daemon did not answer within {self._timeout:.0f} s.") from exc

    def subscribe(self) -> Callable[[], None]:
        """Engine events become Notices on ``notices``; returns the function that ends the subscription."""
        return self.call(lambda app: app.subscribe(self._on_event))

    def _on_event(self, event: Event) -> None:
        """Runs on the loop, inside the engine: copy what the tray needs, never block."""
        if isinstance(event, TaskFinished) and event.task.status is not TaskStatus.CANCELLED:
            t = event.task
            error = (t.error or {}).get("message") if t.status is TaskStatus.FAILED else None
            self.notices.put(Notice(str(t.status), t.task_id, t.name, t.url, error))
        elif isinstance(event, BatchFinished) and event.tasks:
            last = event.tasks[-1]
            self.notices.put(Notice("batch_finished", last.task_id, last.name, last.url, None,
                                    tuple((t.name, str(t.status)) for t in event.tasks)))


# -- the tray ------------------------------------------------------------------------------------------------------
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
        self._pystray = pystray
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._icon_done = threading.Event()  # icon.run has returned
        self._exit_code = 0
        self._fallback: str | None = None  # why the icon gave up while the daemon kept serving
        self._state = TrayState()
        self._icon_key: tuple[str, int, bool] | None = None
        self._menu_key: object = None
        self._lock = threading.Lock()
        self._copy_when_done: set[str] = set()  # clipboard uploads: their link goes to the clipboard
        self._copied: set[str] = set()  # ... and has gone there (said in the batch's notification)
        self._last_error = ""
        self.icon = _icon_class(pystray)(NAME, render_icon("idle"), "pixlift: starting", menu=self._menu(),
                                         on_main_ready=self._install_signals)
        self.backend = type(self.icon).__mro__[1].__module__.rsplit(".", 1)[-1].lstrip("_")
        self._latin1 = self.backend == "xorg"

    @classmethod
    def create(cls, home: Home, box: SettingsBox, port: int) -> Tray | None:
        """A tray ready to run, or None (after one log line) when this session cannot have one."""
        reason = missing_session()
        if reason is not None:
            log.warning(OFF, reason)
            return None
        _name_gtk_program()
        logging.getLogger("pystray._base").addFilter(_Once())
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
        self.crossing = Crossing(self.daemon.loop, self.daemon.app[APPLICATION])
        if not self.icon.HAS_MENU:
            log.info("the %s tray backend has no menu: left-click opens the uploader. Install PyGObject "
                     "(python3-gi) for the menu and notifications.", self.backend)
        if self.backend == "xorg":
            threading.Thread(target=self._nudge_xlib, name="pixlift-xlib-nudge", daemon=True).start()
        try:
            self.icon.run(setup=self._setup)
        except Exception as exc:
            if self.started.is_set():
                log.debug("the tray backend raised while closing", exc_info=True)
            else:
                self._fallback = f"the tray backend failed ({type(exc).__name__}: {exc})".replace("\n", " ")
        finally:
            self._icon_done.set()
        # pystray's setup thread waits for a signal that a backend failing early never sends, and it is not a
        # daemon thread: release it (our setup returns at once) so the process can exit.
        with contextlib.suppress(Exception):
            self.icon._Icon__queue.put(False)
        if self._fallback is not None and not self._stopping.is_set():
            log.warning(OFF, self._fallback)
            while not self._stopping.wait(0.5) and self.daemon.thread.is_alive():
                pass
        return self._finish()

    def _nudge_xlib(self) -> None:
        """Work around a lost wake-up in python-xlib's threaded mode, which pystray's xorg backend uses.

        When two threads talk to the X server at once, a thread that has just sent (pystray's dispatcher, on
        our poller thread, sending "update the icon") and sees a reply waiting returns without releasing the
        thread that waits for that reply (the main loop, now drawing the icon): the tray freezes for good and
        SIGTERM can no longer stop it. A flush from a third thread that has nothing to send finishes a
        send_and_recv the normal way, which releases every waiter; doing it twice a second bounds the stall.
        """
        display = getattr(self.icon, "_display", None)
        if display is None:
            return
        while not self._icon_done.wait(XLIB_NUDGE_S):
            try:
                display.flush()
            except Exception:  # the display is closing: nothing left to unstick
                return

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

    def _setup(self, icon: Any) -> None:
        """pystray's setup thread, once the backend's loop runs: show the icon, then poll until stopped."""
        if self._fallback is not None or self.crossing is None:
            return
        give_up = False
        try:
            if self._stopping.is_set():
                return
            try:
                icon.visible = True
                self.crossing.subscribe()
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
            if not give_up:
                self._stopping.set()
                self.daemon.stop()
            icon.stop()

    def _tick(self) -> None:
        assert self.crossing is not None
        try:
            state = self.crossing.call(read_state)
        except PixliftError as exc:
            log.warning("tray: %s", exc.message)
            return
        self._state = state
        key = icon_key(state)
        if key != self._icon_key:
            self._icon_key = key
            self.icon.icon = render_icon(*key)
        title = latin1_safe(title_for(state)) if self._latin1 else title_for(state)
        if title != self.icon.title:
            self.icon.title = title
            self._tooltip(title)
        menu_key = (state.active > 0, state.paused > 0, state.recent)
        if menu_key != self._menu_key:
            self._menu_key = menu_key
            self.icon.update_menu()
        self._deliver()

    def _tooltip(self, text: str) -> None:
        """pystray's gtk backend sets only the status icon's title, which no tray shows: set its tooltip too."""
        status_icon = getattr(self.icon, "_status_icon", None)
        if status_icon is not None:
            from gi.repository import GLib  # type: ignore[import-not-found, import-untyped, unused-ignore]

            GLib.idle_add(lambda: status_icon.set_tooltip_text(text) and False)

    def _deliver(self) -> None:
        """Turn the engine's events since the last tick into (at most) one notification that says which files."""
        assert self.crossing is not None
        good: list[str] = []
        bad: list[str] = []
        while True:
            try:
                notice = self.crossing.notices.get_nowait()
            except queue.Empty:
                break
            if notice.event == "completed":
                with self._lock:
                    wanted = notice.task_id in self._copy_when_done
                    self._copy_when_done.discard(notice.task_id)
                if wanted and notice.url:
                    try:
                        clipboard.copy_text(notice.url)
                        self._copied.add(notice.task_id)
                    except PixliftError as exc:
                        bad.append(f"Uploaded {notice.name}, but the link could not be copied: {exc.message}")
            elif notice.event == "failed":
                with self._lock:
                    self._copy_when_done.discard(notice.task_id)
                bad.append(f"{notice.name} failed: {notice.error or 'unknown error'}")
            elif notice.event == "batch_finished":
                copied = notice.task_id in self._copied
                self._copied.discard(notice.task_id)
                line = _batch_line(notice.batch)
                if line:
                    good.append(line[:-1] + "; the link is on the clipboard." if copied else line)
        if bad or good:
            self.notify("\n".join(bad + good), "pixlift: upload failed" if bad else "pixlift: upload finished")

    def notify(self, message: str, title: str) -> None:
        log.info("%s: %s", title, message.replace("\n", " / "))
        if not getattr(self.icon, "HAS_NOTIFICATION", False):
            return
        try:
            self.icon.notify(latin1_safe(message) if self._latin1 else message, title)
        except Exception:
            log.debug("the notification could not be shown", exc_info=True)

    # -- the menu ------------------------------------------------------------------------------------------------
    def _menu(self) -> Any:
        item, menu = self._pystray.MenuItem, self._pystray.Menu
        return menu(
            item("Open uploader", self._action(self.open_uploader), default=True),
            item("Upload image from clipboard", self._action(self.upload_clipboard)),
            menu.SEPARATOR,
            item("Pause all", self._action(self.pause_all), enabled=lambda _: self._state.active > 0),
            item("Resume all", self._action(self.resume_all), enabled=lambda _: self._state.paused > 0),
            menu.SEPARATOR,
            item("Recent links", menu(self._recent_items)),
            item("Copy last link", self._action(self.copy_last_link), enabled=lambda _: bool(self._state.recent)),
            menu.SEPARATOR,
            item("Quit", self.stop),
        )

    def _recent_items(self) -> tuple[Any, ...]:
        item = self._pystray.MenuItem
        if not self._state.recent:
            return (item("No uploads yet", None, enabled=False),)
        return tuple(item(shorten(link.name), self._action(partial(self.copy_link, link)))
                     for link in self._state.recent)

    def _action(self, fn: Callable[[], None]) -> Callable[[], None]:
        """A menu callback: runs ``fn`` on a short thread (menus must never wait) and reports its failure."""

        def guarded() -> None:
            try:
                fn()
            except PixliftError as exc:
                self.notify(exc.message, "pixlift")
            except Exception as exc:
                log.exception("tray action failed")
                self.notify(f"Something went wrong ({type(exc).__name__}: {exc}); see pixlift's log.", "pixlift")
            finally:
                self._wake.set()  # show the effect now, not at the next tick

        def activate() -> None:
            threading.Thread(target=guarded, name="pixlift-tray-action", daemon=True).start()

        return activate

    # -- what the items do (on an action thread) -------------------------------------------------------------------
    def login_url(self) -> str:
        assert self.daemon.runtime is not None
        return Client(self.daemon.runtime.base_url, self.home.read_token() or "").login_url()

    def open_uploader(self) -> None:
        if not webbrowser.open(self.login_url()):
            raise PixliftError("No web browser could be started. Run 'pixlift open --print' and open the link "
                               "it prints.")

    def upload_clipboard(self) -> None:
        assert self.crossing is not None
        image = clipboard.read_image()
        name = image.name()
        with self._lock:  # registered before the upload can finish, so its link is copied
            task = self.crossing.call_async(
                lambda app: app.submit_bytes("tray", name, image.data, source=TaskSource.CLIPBOARD))
            self._copy_when_done.add(task.task_id)
        log.info("tray: uploading %s from the clipboard (%d bytes)", name, len(image.data))

    def pause_all(self) -> None:
        assert self.crossing is not None
        count = self.crossing.call(lambda app: app.pause())
        log.info("tray: paused %d upload(s)", count)

    def resume_all(self) -> None:
        assert self.crossing is not None
        count = self.crossing.call(lambda app: app.resume())
        log.info("tray: resumed %d upload(s)", count)

    def copy_last_link(self) -> None:
        if not self._state.recent:
            raise PixliftError("Nothing has been uploaded yet.")
        self.copy_link(self._state.recent[0])

    def copy_link(self, link: Link) -> None:
        clipboard.copy_text(link.url)
        self.notify(f"{link.name}: {link.url}", "pixlift: link copied")


def _batch_line(batch: tuple[tuple[str, str], ...]) -> str:
    done = [name for name, status in batch if status == "completed"]
    failed = [name for name, status in batch if status == "failed"]
    if len(batch) == 1:
        return f"Uploaded {done[0]}." if done else ""  # a lone failure has its own line already
    names = ", ".join(shorten(n, 30) for n in done[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")
    if failed:
        return f"{len(done)} of {len(batch)} files uploaded; {len(failed)} failed."
    return f"{len(done)} files uploaded: {names}."


class _Once(logging.Filter):
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


def _name_gtk_program() -> None:
    """GTK names the icon's window after the program, "__main__.py" under ``python -m``: make it pixlift."""
    if sys.platform.startswith("linux") and os.environ.get("PYSTRAY_BACKEND", "") in ("", "gtk", "appindicator"):
        with contextlib.suppress(Exception):  # no PyGObject: pystray will use xorg, which names it itself
            from gi.repository import GLib  # type: ignore[import-not-found, import-untyped, unused-ignore]

            GLib.set_prgname(NAME)
            GLib.set_application_name(NAME)


def _icon_class(pystray: ModuleType) -> Any:
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
