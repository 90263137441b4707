"""Group commit: the journal's writes of a short window go to disk together, in one transaction, off the loop.

Each state change of a task used to be a transaction of its own on the event loop: five per small file, which
cost more of the loop than sending the file. Now writers only queue their change (``put``, which never blocks
on the disk); a thread of its own commits everything queued so far in one transaction, and while it does,
the next changes queue up for the next one. ``durable()`` waits until every change queued before it is
committed: the engine awaits it before it tells anyone a file is uploaded.

Waking a thread costs more than committing a change, so the writer is woken as little as possible: after a
commit it sleeps for a window (``WINDOW_S``) and then takes whatever queued meanwhile, and only once it
finds nothing does it wait to be woken, which the loop then does ``WINDOW_S`` after the next change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
W = TypeVar("W")
WINDOW_S = 0.004  # on the loop, the writer is woken this long after the first change it has not taken yet


class GroupCommit(Generic[W]):
    def __init__(self, commit: Callable[[list[W]], None], name: str = "pixlift-journal") -> None:
        self._commit = commit  # runs on the writer thread; must not raise (it keeps what it could not store)
        self._cv = threading.Condition()
        self._queue: list[W] = []
        self._queued = 0  # changes put so far
        self._done = 0  # changes committed (or kept by ``commit`` to store later) so far
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._idle = False
        self._wake_due = False  # a wake of the writer is scheduled on the loop
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, change: W) -> None:
        """Queue a change. On the event loop the writer is woken ``WINDOW_S`` after the first change it has not
        taken yet, not once per change: waking a thread costs more than committing a change, and the changes of
        every file in that window then go in one transaction."""
        with self._cv:
            if self._closing:
                raise RuntimeError("the journal is closed")
            self._queue.append(change)
            self._queued += 1
            if not self._idle or self._wake_due:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop: nothing would wake the writer later
                self._cv.notify_all()
                return
            self._wake_due = True
        loop.call_later(WINDOW_S, self._wake)

    def _wake(self) -> None:
        with self._cv:
            self._wake_due = False
            if self._idle and self._queue:
                self._cv.notify_all()

    async def durable(self) -> None:
        """Return once every change put before this call is committed."""
        with self._cv:
            target = self._queued
            if self._done >= target:
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((target, loop, future))
            wake = self._idle and not self._wake_due
            self._wake_due = self._wake_due or wake
        if wake:
            loop.call_later(WINDOW_S, self._wake)
        await future

    def drain(self, timeout: float | None = None) -> bool:
        """Block until every change put so far is committed; False if that took longer than ``timeout``."""
        with self._cv:
            target = self._queued
            self._cv.notify_all()
            return self._cv.wait_for(lambda: self._done >= target or not self._thread.is_alive(), timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._idle = True
                self._cv.wait_for(lambda: bool(self._queue) or self._closing)
                self._idle = False
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                upto = self._queued
            try:
                self._commit(batch)
            except Exception:  # a bug; the changes stay in memory, and the writer must go on
                log.exception("the journal writer failed to commit %d changes", len(batch))
            del batch  # not kept while the writer waits: a clear's 100,000 ids would stay alive until the next write
            self._wake_waiters(upto)
            if not self._closing:
                # While changes keep coming, the writer wakes itself once a window and takes what queued
                # meanwhile: the loop then never has to wake it (a thread switch, which costs more than a change).
                time.sleep(WINDOW_S)

    def _wake_waiters(self, upto: int) -> None:
        """Resolve the ``durable`` calls that ``upto`` covers. A method of its own so that nothing of theirs
        (the futures, their loops) stays referenced by the writer while it waits: made mid-batch and kept,
        they would keep a batch's freed memory from going back to the system."""
        with self._cv:
            self._done = upto
            self._cv.notify_all()
            ready: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for target, loop, future in self._waiters:
                if target <= upto:
                    ready.setdefault(loop, []).append(future)
            self._waiters = [w for w in self._waiters if w[0] > upto]
        for loop, futures in ready.items():  # one wake-up of each loop, however many wait on it
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
