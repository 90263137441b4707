"""Bytes on their way to the stores, all uploads together: few enough that a part finishes within seconds.

With many files and several parts each in flight, every part crawls on a slow link and none finishes: a pause,
a crash or a kill then loses all of it (8 files x 4 parts x 8 MiB once meant 268 MB in flight and no part done
in 9 s at 30 MB/s). ``InFlight`` holds back new parts while the bytes in flight exceed what the link carries
in ``TARGET_S`` seconds, measured from the parts that finished in the last ``WINDOW_S``; never below two
parts, never above ``[transfers] max_bytes_in_flight_mb``. Before anything is measured (at start, after a
quiet spell) it starts from two parts and grows as parts finish, the way TCP starts slow: on a fast link that
takes a fraction of a second, on a slow one it is what keeps the first seconds from being lost to a kill.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

TARGET_S = 2.0
WINDOW_S = 10.0


class InFlight:
    def __init__(self, maximum: Callable[[], int], part_size: Callable[[], int]) -> None:
        self._maximum = maximum
        self._part = part_size
        self._used = 0
        self._done: deque[tuple[float, int]] = deque()  # (when, bytes) of parts that finished
        self._done_bytes = 0  # their sum: limit() runs for every request, with thousands in the window
        self._first = 0.0
        self._changed: asyncio.Condition | None = None
        self._waiting = 0  # holds waiting for room

    def limit(self) -> int:
        maximum = max(1, self._maximum())
        now = time.monotonic()
        while self._done and now - self._done[0][0] > WINDOW_S:
            self._done_bytes -= self._done.popleft()[1]
        floor = min(2 * self._part(), maximum)
        if not self._done:
            return floor
        span = max(0.5, min(WINDOW_S, now - self._first))
        rate = self._done_bytes / span
        return max(floor, min(maximum, int(rate * TARGET_S)))

    @asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        """Wait until ``n`` more bytes may be in flight (one request larger than the bound goes alone).

        Everything here runs on the loop, so a check and the take that follows it with no await between cannot
        be interleaved: the condition is needed only to wait (and only when others already wait, to keep order)."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        if self._waiting or not (self._used == 0 or self._used + n <= self.limit()):
            self._waiting += 1
            try:
                async with self._changed:
                    await self._changed.wait_for(lambda: self._used == 0 or self._used + n <= self.limit())
                    self._used += n
            finally:
                self._waiting -= 1
        else:
            self._used += n
        finished = False
        try:
            yield
            finished = True
        finally:
            self._used -= n
            if finished:
                now = time.monotonic()
                if not self._done:
                    self._first = now
                self._done.append((now, n))
                self._done_bytes += n
            if self._waiting:
                async with self._changed:
                    self._changed.notify_all()
