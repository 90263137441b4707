"""Thread pools started whole, when the daemon starts, and ``Workers``: threads whose results reach the loop in
batches.

A thread pool starts its threads as work first comes, which is in the middle of the first large batch. What a
thread keeps for its whole life (its ``Thread`` object, its locks, its context) is then made among that batch's
task records, and Python's allocator cannot hand a block of memory back to the system while any object in it
lives: those few objects kept most of what 100,000 cleared tasks had used. Started at once, they sit with the
daemon's other lasting objects instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
START_TIMEOUT_S = 5.0


def default_size() -> int:
    """``ThreadPoolExecutor``'s own default, so that the pool asyncio would make is the one started."""
    return min(32, (os.cpu_count() or 1) + 4)


def started(pool: ThreadPoolExecutor, count: int) -> ThreadPoolExecutor:
    """``pool`` with ``count`` threads running: each of ``count`` jobs waits until all of them run, which only
    ``count`` threads can do."""
    gate = threading.Barrier(count + 1)
    for _ in range(count):
        pool.submit(_wait, gate)
    with contextlib.suppress(threading.BrokenBarrierError):  # a slow machine: the pool starts the rest later
        gate.wait(START_TIMEOUT_S)
    return pool


def _wait(gate: threading.Barrier) -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        gate.wait(START_TIMEOUT_S)


class _Call(NamedTuple):
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    outbox: _Outbox
    close: Callable[[Any], None] | None


class _Outbox:
    """The results of one loop's calls: handed to the loop in one wake-up however many finish meanwhile."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready: deque[tuple[_Call, bool, Any]] = deque()
        self.due = False  # a ``deliver`` is scheduled on the loop and has not started yet

    def put(self, call: _Call, ok: bool, value: Any) -> None:
        """On a worker thread. The result goes in first, the flag is read after: a ``deliver`` that has begun
        (and so reset it) either finds the result or is followed by the one scheduled here."""
        self.ready.append((call, ok, value))
        if not self.due:
            self.due = True
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                self.loop.call_soon_threadsafe(self.deliver)

    def deliver(self) -> None:
        self.due = False
        ready = self.ready
        while ready:
            call, ok, value = ready.popleft()
            try:
                if call.future.done():  # its caller was stopped: what it returned (an opened file) is closed
                    if ok and call.close is not None:
                        call.close(value)
                elif ok:
                    call.future.set_result(value)
                else:
                    call.future.set_exception(value)
            except Exception as exc:  # one bad result (a close that failed) must not strand the others
                log.exception("a worker thread's result could not be handed over")
                if not call.future.done():
                    call.future.set_exception(RuntimeError(f"its result could not be handed over ({exc!r})"))


class Workers:
    """``count`` threads taking calls from one queue; each result is handed back to the loop that asked for it.

    ``loop.run_in_executor`` costs about 40 us of CPU a call (a concurrent Future with its Condition, an asyncio
    Future chained to it, and a write to the loop's self-pipe for every result), more than opening, reading and
    hashing a small file. Here a call is a tuple on a ``SimpleQueue``, and the results that finish while the
    loop is busy reach it in one wake-up: about 10 us. A call whose caller was stopped before it began is not
    run; one stopped while it ran has what it returned closed (``close``), as ``off_loop`` does."""

    def __init__(self, count: int, name: str) -> None:
        self.count, self.name = count, name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every thread now (not amid the first batch: see the module's doc)."""
        with self._lock:
            while len(self._threads) < self.count:
                thread = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    async def run(self, fn: Callable[[], T], close: Callable[[T], None] | None = None) -> T:
        """``fn()`` on one of the threads."""
        loop = asyncio.get_running_loop()
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outbox(loop)
        if len(self._threads) < self.count:
            self.start()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(fn, future, outbox, close))
        return await future

    def _outbox(self, loop: asyncio.AbstractEventLoop) -> _Outbox:
        with self._lock:
            self._outboxes = {k: v for k, v in self._outboxes.items() if not k.is_closed()}
            return self._outboxes.setdefault(loop, _Outbox(loop))

    def close(self) -> None:
        """The calls not begun are cancelled; each thread ends once its call (if any) returns."""
        with contextlib.suppress(queue.Empty):
            while True:
                call = self._calls.get_nowait()
                if call is not None:
                    with contextlib.suppress(RuntimeError):
                        call.outbox.loop.call_soon_threadsafe(call.future.cancel)
        with self._lock:
            for _ in self._threads:
                self._calls.put(None)
            self._threads = []

    def _work(self) -> None:
        while self._one():
            pass

    def _one(self) -> bool:
        """One call; nothing of it stays referenced while the thread waits for the next (a batch's memory)."""
        call = self._calls.get()
        if call is None:
            return False
        if call.future.done():
            return True
        try:
            result = call.fn()
        except BaseException as exc:  # handed to the caller, as an executor does
            call.outbox.put(call, False, exc)
        else:
            call.outbox.put(call, True, result)
        return True
