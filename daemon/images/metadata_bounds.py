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
    Changed               the file got shorter (or was rewritten) while it was read: ``file_error``

A file is read through ``FileBytes`` (``os.pread``, a few 64 KiB blocks cached), never through ``mmap``: a
mapped file that another process truncates raises SIGBUS at the next read past its new end, which kills the
whole daemon; a read that comes back short is ``Changed``, which fails one task.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

from ..core.threads import Workers

T = TypeVar("T")
BUDGET_S = 10.0
MAX_PARSES = max(2, min(4, os.cpu_count() or 2))
MAX_DEPTH = 16  # boxes and directories nested deeper than any camera writes


class Unreadable(ValueError):
    """The bytes do not parse as the format they were sniffed as (the message says where)."""


class GaveUp(Exception):
    """pixlift stopped reading the file: over its time budget, or a structure that cannot be valid."""


class Changed(Exception):
    """The file is not what it was when it was opened: another process truncated or rewrote it meanwhile."""


_local = threading.local()
MARK_AFTER_S = 0.05  # a parse that lasts longer is marked on disk (ParseMarks)


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
    """Called in every parser loop: GaveUp once the thread's budget is spent; a parse that lasts is marked."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None:
        now = time.monotonic()
        if now > deadline:
            raise GaveUp(f"reading its metadata took more than {BUDGET_S:.0f} s, longer than any real photo takes")
        mark = getattr(_local, "mark", None)
        if mark is not None and now > mark[0]:
            _local.mark = None
            mark[1]()


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


class FileBytes:
    """An open file's bytes as the editors read them (``len``, slices, ``find``), read with ``os.pread`` when
    asked: memory stays at a few blocks however large the file, and a file that changes underneath fails
    its task (``Changed``) instead of killing the process as a memory map would (SIGBUS)."""

    BLOCK = 64 * 1024
    WINDOW = 1024 * 1024  # what a scan reads at once (``search``)
    KEPT = 8  # blocks cached: the editors read forwards, with short looks back

    def __init__(self, fd: int) -> None:
        st = os.fstat(fd)
        self.fd, self.size = fd, st.st_size
        self._stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._base, self._last = 0, b""  # the block read last, and where it starts

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice | int) -> bytes | int:
        if type(key) is slice and key.step is None:  # the common read, inside the last block used: no call
            start, stop, base = key.start, key.stop, self._base
            if start is not None and stop is not None and base <= start <= stop <= base + len(self._last):
                return self._last[start - base:stop - base]
        if isinstance(key, int):
            at = key + self.size if key < 0 else key
            if not 0 <= at < self.size:
                raise IndexError("index out of range")
            return self._block(at // self.BLOCK)[at % self.BLOCK]
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("FileBytes slices have no step")
        if stop <= start:
            return b""
        if stop - start > self.BLOCK:  # a large span (image data, a big metadata item): read as it is
            return self._read(start, stop - start)
        first, last = start // self.BLOCK, (stop - 1) // self.BLOCK
        base = first * self.BLOCK
        if first == last:
            return self._block(first)[start - base:stop - base]
        return (self._block(first) + self._block(last))[start - base:stop - base]

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """As ``bytes.find``, a block at a time."""
        end = self.size if end is None else min(end, self.size)
        pos, n = max(start, 0), len(sub)
        while pos + n <= end:
            tick()
            index = pos // self.BLOCK
            base = index * self.BLOCK
            block = self._block(index)
            stop = min(end, base + len(block))
            at = block.find(sub, pos - base, stop - base)
            if at >= 0:
                return base + at
            if stop >= end:
                return -1
            if n > 1:  # a match across the block's end
                edge = max(pos, stop - n + 1)
                at = bytes(self[edge:min(end, stop + n - 1)]).find(sub)  # type: ignore[arg-type]
                if at >= 0:
                    return edge + at
            pos = stop
        return -1

    def search(self, pattern: re.Pattern[bytes], start: int, width: int) -> int:
        """Where ``pattern`` (whose matches are ``width`` bytes long) first matches from ``start``, or -1. Read
        a window of ``WINDOW`` bytes at a time, past the block cache: a scan crosses a large file once, and a
        read (and a regex call) per 64 KiB block cost as much as the scan itself."""
        pos = max(start, 0)
        window = memoryview(bytearray(min(self.WINDOW, max(self.size - pos, 0))))  # one buffer, read into
        while pos < self.size:
            tick()
            n = min(self.WINDOW, self.size - pos)
            self._read_into(window[:n], pos)
            found = pattern.search(window[:n])
            if found:
                return pos + int(found.start())
            if pos + n >= self.size:
                return -1
            pos += n - (width - 1)  # a match across the window's end is found in the next one
        return -1

    def check(self) -> None:
        """Changed if the file is no longer the one that was read (its size, time or inode moved)."""
        st = os.fstat(self.fd)
        if (st.st_size, st.st_mtime_ns, st.st_ino) != self._stamp:
            raise Changed(f"its size was {self.size} bytes and is now {st.st_size}" if st.st_size != self.size
                          else "it was written to meanwhile")

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            at = index * self.BLOCK
            block = self._read(at, min(self.BLOCK, self.size - at))
            self._blocks[index] = block
            if len(self._blocks) > self.KEPT:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(index)
        self._base, self._last = index * self.BLOCK, block
        return block

    def _read_into(self, buffer: memoryview, at: int) -> None:
        got = 0
        while got < len(buffer):
            n = os.preadv(self.fd, [buffer[got:]], at + got)
            if not n:
                raise Changed(f"it got shorter than the {self.size} bytes it had when pixlift opened it")
            got += n

    def _read(self, at: int, n: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < n:
            chunk = os.pread(self.fd, n - got, at + got)
            if not chunk:
                raise Changed(f"it got shorter than the {self.size} bytes it had when pixlift opened it")
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def search(data: object, pattern: re.Pattern[bytes], start: int, width: int) -> int:
    """Where ``pattern`` (matches ``width`` bytes long) first matches in ``data`` from ``start``, or -1: a
    whole scan found in C, not byte by byte in Python."""
    if isinstance(data, FileBytes):
        return data.search(pattern, start, width)
    found = pattern.search(data, start)  # type: ignore[call-overload]
    return -1 if found is None else int(found.start())


class ParseGate:
    """Threads of its own for parsing, ``parallel`` at most: a hostile file holds one of them for at most
    its budget, and uploads that need no parsing never wait for them. Results reach the loop in batches
    (``core.threads.Workers``): a hop through an executor cost more than reading a small photo's metadata."""

    def __init__(self, parallel: int = MAX_PARSES, seconds: float = BUDGET_S) -> None:
        self.parallel = parallel
        self.seconds = seconds
        self._threads = Workers(parallel, "pixlift-parse")

    def start(self) -> None:
        """Start the parse threads (the daemon starts them all when it starts: ``core/threads.py``)."""
        self._threads.start()

    async def run(self, fn: Callable[[], T], close: Callable[[T], None] | None = None) -> T:
        """``fn()`` on a parse thread, within the budget. If the caller is stopped meanwhile, what ``fn``
        returns is closed when it comes (an opened file would otherwise stay open)."""
        return await self._threads.run(partial(self._timed, fn), close)

    def _timed(self, fn: Callable[[], T]) -> T:
        with budget(self.seconds):
            return fn()

    def close(self) -> None:
        self._threads.close()


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
    """Which task each parsing thread is reading, on disk: one still marked at the next start is a task whose parse
    the daemon did not survive (a crash, a kill, a hang), failed instead of being parsed again at every start.

    Each thread keeps a slot file of its own open in ``folder`` and writes the task's id into it before the parse
    (one ``pwrite``) and empties it after (one ``ftruncate``), on the parse thread: the loop never waits for the
    disk. A file made and removed per parse cost 40% of the parse threads' time on 10,000 small files. A process
    that dies leaves the page cache as it was, so no sync is needed for what this guards against."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._local = threading.local()

    def _slot(self) -> int | None:
        fd: int | None = getattr(self._local, "fd", None)
        if fd is None:
            with contextlib.suppress(OSError):
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.folder / f"thread-{threading.get_ident()}",
                             os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                self._local.fd = fd
        return fd

    def around(self, task_id: str, fn: Callable[[], T], *, late: bool = False) -> Callable[[], T]:
        """``fn`` with the task marked while it runs. ``late``: for pixlift's own parsers, which call ``tick``
        in every loop: the mark is written only once the parse has lasted ``MARK_AFTER_S``. Nothing in pure
        Python kills a process within that, and a parse of a small photo is over long before: 10,000 of them
        then cost no write at all (each write was 5% of the parse threads' time)."""
        def marked() -> T:
            written = False

            def write() -> None:
                nonlocal written
                fd = self._slot()
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.pwrite(fd, task_id.encode(), 0)
                        written = True

            if late:
                _local.mark = (time.monotonic() + MARK_AFTER_S, write)
            else:
                write()
            try:
                return fn()
            finally:
                _local.mark = None
                if written:
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._local.fd, 0)
        return marked

    def left(self) -> set[str]:
        """Tasks whose parse was under way when the daemon last stopped; forgotten once read (at start, before
        any parse). A file named after a task, not a thread, is the mark of a daemon of before the slots."""
        try:
            slots = list(self.folder.iterdir())
        except OSError:
            return set()
        names = set()
        for slot in slots:
            with contextlib.suppress(OSError):
                names.add(slot.read_text(errors="replace").strip() if slot.name.startswith("thread-") else slot.name)
                slot.unlink()
        return names - {""}
