"""The parse threads: where every image's metadata is read, a few at once, each within its time budget.

A hostile file holds one thread for at most its budget (``metadata_bounds.budget``); uploads that need no
parsing never wait for these threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .metadata_bounds import BUDGET_S, MAX_PARSES, budget

T = TypeVar("T")


class ParseGate:
    """Threads of its own for parsing, ``parallel`` at most: a hostile file holds one of them for at most
    its budget, and uploads that need no parsing never wait for them.

    Fed by a queue, not an executor: a thread takes what is queued until nothing is, and an answer is a call
    scheduled on the loop. A hop to a thread and back cost the loop 50 us through ``run_in_executor`` and 22
    us this way (measured on 20,000 hops): for a small image, the hop is most of what the loop pays to parse it."""

    def __init__(self, parallel: int = MAX_PARSES, seconds: float = BUDGET_S) -> None:
        self.parallel = parallel
        self.seconds = seconds
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="pixlift-parse")
        self._queue: deque[_Parse] = deque()
        self._lock = threading.Lock()
        self._takers = 0  # threads taking from the queue
        self._closed = False

    async def run(self, fn: Callable[[], T], close: Callable[[T], None] | None = None) -> T:
        """``fn()`` on a parse thread, within the budget. If the caller is stopped meanwhile, what ``fn``
        returns is closed when it comes (an opened file would otherwise stay open); one not started yet is not."""
        loop = asyncio.get_running_loop()
        item = _Parse(fn, loop.create_future(), loop)
        with self._lock:
            if self._closed:
                raise RuntimeError("the parse threads are stopped")
            self._queue.append(item)
            more = self._takers < self.parallel
            self._takers += more
        if more:
            self._pool.submit(self._take)
        try:
            return await asyncio.shield(item.future)
        except asyncio.CancelledError:
            item.abandoned = True
            if close is not None:
                item.future.add_done_callback(lambda f: None if f.cancelled() or f.exception() else close(f.result()))
            raise

    def _take(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._takers -= 1
                    return
                item = self._queue.popleft()
            if item.abandoned:
                continue
            try:
                with budget(self.seconds):
                    result = item.fn()
            except BaseException as exc:  # handed to the caller, as an executor would
                _settle(item, None, exc)
            else:
                _settle(item, result, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            left, self._queue = list(self._queue), deque()
        for item in left:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                item.loop.call_soon_threadsafe(item.future.cancel)
        self._pool.shutdown(wait=False)


class _Parse:
    __slots__ = ("abandoned", "fn", "future", "loop")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn, self.future, self.loop = fn, future, loop
        self.abandoned = False  # its caller was stopped before it started: not run at all


def _settle(item: _Parse, result: object, exc: BaseException | None) -> None:
    def done() -> None:
        if not item.future.done():
            if exc is None:
                item.future.set_result(result)
            else:
                item.future.set_exception(exc)
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
        item.loop.call_soon_threadsafe(done)


GATE = ParseGate()  # one per process: every way in shares the same threads and the same cap
