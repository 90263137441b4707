"""The tray's menu, what its items do, and the notifications that report on uploads.

Every item but Quit runs on a short thread of its own (``_action``): a menu callback runs on the main thread,
which owns the backend's event loop, and a slow clipboard tool or a busy daemon must never freeze the menu. Each
item reaches the daemon only through the ``Crossing``.

A clipboard upload's link goes back to the clipboard once the upload completes: ``upload_clipboard`` remembers
its task, and ``deliver`` (on the poller, when the engine's notice arrives) copies the link and says so in the
batch's notification.
"""

from __future__ import annotations

import logging
import queue
import threading
import webbrowser
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

from ..core.tasks import TaskSource
from ..errors import PixliftError
from ..intake import clipboard
from .crossing import Crossing
from .state import Link, TrayState, shorten

log = logging.getLogger("pixlift.tray")


class TrayMenu:
    def __init__(self, pystray: ModuleType, *, notify: Callable[[str, str], None], wake: threading.Event,
                 on_quit: Callable[[], None], login_url: Callable[[], str]) -> None:
        self.state = TrayState()  # the poller's last reading: which items are enabled, which links are listed
        self.crossing: Crossing | None = None  # set once the daemon runs, before any item can be clicked
        self._pystray = pystray
        self._notify = notify
        self._wake = wake
        self._on_quit = on_quit
        self._login_url = login_url
        self._lock = threading.Lock()
        self._copy_when_done: set[str] = set()  # clipboard uploads: their link goes to the clipboard
        self._copied: set[str] = set()  # ... and has gone there (said in the batch's notification)

    def build(self) -> Any:
        """The pystray menu; the backend asks the ``enabled`` callables and ``_recent_items`` again at each
        ``update_menu``, so it follows ``state``."""
        item, menu = self._pystray.MenuItem, self._pystray.Menu
        return menu(
            item("Open uploader", self._action(self.open_uploader), default=True),
            item("Upload image from clipboard", self._action(self.upload_clipboard)),
            menu.SEPARATOR,
            item("Pause all", self._action(self.pause_all), enabled=lambda _: self.state.active > 0),
            item("Resume all", self._action(self.resume_all), enabled=lambda _: self.state.paused > 0),
            menu.SEPARATOR,
            item("Recent links", menu(self._recent_items)),
            item("Copy last link", self._action(self.copy_last_link), enabled=lambda _: bool(self.state.recent)),
            menu.SEPARATOR,
            item("Quit", self._on_quit),
        )

    def _recent_items(self) -> tuple[Any, ...]:
        item = self._pystray.MenuItem
        if not self.state.recent:
            return (item("No uploads yet", None, enabled=False),)
        return tuple(item(shorten(link.name), self._action(partial(self.copy_link, link)))
                     for link in self.state.recent)

    def _action(self, fn: Callable[[], None]) -> Callable[[], None]:
        """A menu callback: runs ``fn`` on a short thread (menus must never wait) and reports its failure."""

        def guarded() -> None:
            try:
                fn()
            except PixliftError as exc:
                self._notify(exc.message, "pixlift")
            except Exception as exc:
                log.exception("tray action failed")
                self._notify(f"Something went wrong ({type(exc).__name__}: {exc}); see pixlift's log.", "pixlift")
            finally:
                self._wake.set()  # show the effect now, not at the next tick

        def activate() -> None:
            threading.Thread(target=guarded, name="pixlift-tray-action", daemon=True).start()

        return activate

    # -- what the items do (on an action thread) -------------------------------------------------------------------
    def open_uploader(self) -> None:
        if not webbrowser.open(self._login_url()):
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
        if not self.state.recent:
            raise PixliftError("Nothing has been uploaded yet.")
        self.copy_link(self.state.recent[0])

    def copy_link(self, link: Link) -> None:
        url = link.url
        if self.crossing is not None and link.history_id is not None:  # a presigned link near its end: signed again
            history_id = link.history_id
            url = self.crossing.call_async(lambda app: app.link_now(history_id)) or url
        clipboard.copy_text(url)
        self._notify(f"{link.name}: {url}", "pixlift: link copied")

    # -- notifications (on the poller) -----------------------------------------------------------------------------
    def deliver(self) -> None:
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
                line = batch_line(notice.batch)
                if line:
                    good.append(line[:-1] + "; the link is on the clipboard." if copied else line)
        if bad or good:
            self._notify("\n".join(bad + good), "pixlift: upload failed" if bad else "pixlift: upload finished")


def batch_line(batch: tuple[tuple[str, str], ...]) -> str:
    """What a finished batch did, in one line ("" for a lone failure, whose own line says it)."""
    done = [name for name, status in batch if status == "completed"]
    failed = [name for name, status in batch if status == "failed"]
    if len(batch) == 1:
        return f"Uploaded {done[0]}." if done else ""  # a lone failure has its own line already
    names = ", ".join(shorten(n, 30) for n in done[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")
    if failed:
        return f"{len(done)} of {len(batch)} files uploaded; {len(failed)} failed."
    return f"{len(done)} files uploaded: {names}."
