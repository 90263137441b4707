"""Bounds for every parser of bytes from outside: reads that stay inside the file, counts checked against the
bytes that are there, a time budget, and a cap on how many files are parsed at once.

A file's metadata is parsed on a thread of ``ParseGate``'s own (never on the event loop), at most
``MAX_PARSES`` at a time, so hostile files can neither freeze the daemon nor take the threads other uploads
hash and read with. Python threads cannot be killed, so the budget is cooperative: every loop of a parser
calls ``tick()``, which raises ``GaveUp`` once the thread's parse has run ``BUDGET_S``. With every count
checked against the bytes it claims (``fits``) and every read bounded (``take``, ``u16``...), the work of a
parse grows with the file's size, and the budget is the backstop, not the rule.

    ValueError
    └── Unreadable        the bytes do not parse as their format: the task fails ``metadata_unreadable``
    GaveUp                over the budget, or a structure no valid file has: the task fails ``file_error``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
BUDGET_S = 10.0
MAX_PARSES = max(2, min(4, os.cpu_count() or 2))
MAX_DEPTH = 16  # boxes and directories nested deeper than any camera writes


class Unreadable(ValueError):
    """The bytes do not parse as the format they were sniffed as (the message says where)."""


class GaveUp(Exception):
    """pixlift stopped reading the file: over its time budget, or a structure that cannot be valid."""


_local = threading.local()


@contextlib.contextmanager
def budget(seconds: float = BUDGET_S) -> Iterator[None]:
    """Run the parses of this thread with a deadline (nested budgets keep the earliest)."""
    outer = getattr(_local, "deadline", None)
    deadline = time.monotonic() + seconds
    _local.deadline = deadline if outer is None else min(outer, deadline)
    try:
        yield
    finally:
        _local.deadline = outer


def tick() -> None:
    """Called in every parser loop: GaveUp once the thread's budget is spent."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise GaveUp(f"reading its metadata took more than {BUDGET_S:.0f} s, longer than any real photo takes")


def take(data: bytes | bytearray | memoryview | object, at: int, n: int, what: str = "a value") -> bytes:
    """``n`` bytes at ``at``; Unreadable when they are not all there."""
    size = len(data)  # type: ignore[arg-type]
    if at < 0 or n < 0 or at + n > size:
        raise Unreadable(f"{what} ({n} bytes at offset {at}) runs past the end of its {size} bytes")
    return bytes(data[at:at + n])  # type: ignore[index]


def uint(data: object, at: int, n: int, order: str = ">", what: str = "a number") -> int:
    """An unsigned integer of ``n`` bytes (0 to 8) at ``at``."""
    if n == 0:
        return 0
    return int.from_bytes(take(data, at, n, what), "big" if order == ">" else "little")


def u16(data: object, at: int, order: str = ">") -> int:
    return int(struct.unpack(order + "H", take(data, at, 2, "a 16-bit number"))[0])


def u32(data: object, at: int, order: str = ">") -> int:
    return int(struct.unpack(order + "I", take(data, at, 4, "a 32-bit number"))[0])


def fits(count: int, each: int, available: int, what: str) -> None:
    """A count of entries of at least ``each`` bytes must fit in the ``available`` bytes: GaveUp otherwise."""
    if count < 0 or count * max(each, 1) > max(available, 0):
        raise GaveUp(f"{what} announces {count} entries, but the {max(available, 0)} bytes that follow hold at "
                     f"most {max(available, 0) // max(each, 1)}: a structure no valid file has")


def deep(depth: int, what: str) -> None:
    if depth > MAX_DEPTH:
        raise GaveUp(f"{what} is nested more than {MAX_DEPTH} levels deep: a structure no valid file has")


class ParseGate:
    """Threads of its own for parsing, ``parallel`` at most: a hostile file holds one of them for at most
    its budget, and uploads that need no parsing never wait for them."""

    def __init__(self, parallel: int = MAX_PARSES, seconds: float = BUDGET_S) -> None:
        self.parallel = parallel
        self.seconds = seconds
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="pixlift-parse")

    async def run(self, fn: Callable[[], T], close: Callable[[T], None] | None = None) -> T:
        """``fn()`` on a parse thread, within the budget. If the caller is stopped meanwhile, what ``fn``
        returns is closed when it comes (an opened file would otherwise stay open)."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._timed, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if close is not None:
                future.add_done_callback(lambda f: None if f.cancelled() or f.exception() else close(f.result()))
            raise

    def _timed(self, fn: Callable[[], T]) -> T:
        with budget(self.seconds):
            return fn()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


GATE = ParseGate()  # one per process: every way in shares the same threads and the same cap


def all_zero(data: object, start: int, stop: int) -> bool:
    """The bytes in [start, stop) are zero padding (read a MiB at a time)."""
    pos = start
    while pos < stop:
        tick()
        chunk = take(data, pos, min(1024 * 1024, stop - pos))
        if chunk.strip(b"\x00"):
            return False
        pos += len(chunk)
    return True


class ParseMarks:
    """A file per task being parsed, made before the parse and removed after: one still there at the next
    start is a task whose parse the daemon did not survive (a crash, a kill, a hang), failed instead of being
    parsed again at every start. Made and removed on the parse thread: the loop never waits for the disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def around(self, task_id: str, fn: Callable[[], T]) -> Callable[[], T]:
        def marked() -> T:
            mark = self.folder / task_id
            with contextlib.suppress(OSError):
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                mark.touch()
            try:
                return fn()
            finally:
                with contextlib.suppress(OSError):
                    mark.unlink()
        return marked

    def left(self) -> set[str]:
        """Tasks whose parse was under way when the daemon last stopped; forgotten once read."""
        try:
            names = {p.name for p in self.folder.iterdir()}
        except OSError:
            return set()
        for name in names:
            with contextlib.suppress(OSError):
                (self.folder / name).unlink()
        return names
