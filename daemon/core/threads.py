"""Thread pools started whole, when the daemon starts.

A thread pool starts its threads as work first comes, which is in the middle of the first large batch. What a
thread keeps for its whole life (its ``Thread`` object, its locks, its context) is then made among that batch's
task records, and Python's allocator cannot hand a block of memory back to the system while any object in it
lives: those few objects kept most of what 100,000 cleared tasks had used. Started at once, they sit with the
daemon's other lasting objects instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

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
