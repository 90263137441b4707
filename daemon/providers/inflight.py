"""Bytes on their way to the stores, all uploads together: few enough that a part finishes within seconds.

With many files and several parts each in flight, every part crawls on a slow link and none finishes: a pause,
a crash or a kill then loses all of it (8 files x 4 parts x 8 MiB once meant 268 MB in flight and no part done
in 9 s at 30 MB/s). ``InFlight`` holds back new parts while the bytes in flight exceed what the link carries
in ``TARGET_S`` seconds, measured from the parts that finished in the last ``WINDOW_S``; never below two
parts, never above ``[transfers] max_bytes_in_flight_mb``. Before anything is measured (at start, after a
quiet spell) it starts from two parts and grows as parts finish, the way TCP starts slow: on a fast link that
takes a fraction of a second, on a slow one it is what keeps the first seconds from being lost to a kill.

The rate is measured over busy time only: once nothing has been in flight for ``IDLE_S``, what was measured
before is forgotten and the next upload starts afresh. Measured across a pause, a few screenshots then a
screen recording a few seconds later saw the screenshots' bytes spread over the whole window, idle seconds
included, and the recording went at two parts in flight until a third of it was sent: 35% slower.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.config import TransferSettings

TARGET_S = 2.0
WINDOW_S = 10.0
IDLE_S = 0.5


class InFlight:
    def __init__(self, maximum: Callable[[], int], part_size: Callable[[], int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._maximum = maximum
        self._part = part_size
        self._used = 0
        self._done: deque[tuple[float, int]] = deque()  # (when, bytes) of parts that finished
        self._done_bytes = 0  # their sum: limit() runs for every request, with thousands in the window
        self._first = 0.0
        self._changed: asyncio.Condition | None = None
        self._waiting = 0  # holds waiting for room
        self._idle_since = 0.0  # when the last bytes in flight came back (nothing has been in flight since)

    @classmethod
    def of(cls, transfers: TransferSettings) -> InFlight:
        """A provider's own bound, when the pool gives it none: the settings' maximum and part size."""
        return cls(lambda: transfers.max_bytes_in_flight, lambda: transfers.part_size)

    def limit(self) -> int:
        maximum = max(1, self._maximum())
        now = self._clock()
        while self._done and now - self._done[0][0] > WINDOW_S:
            self._done_bytes -= self._done.popleft()[1]
        floor = min(2 * self._part(), maximum)
        if not self._done:
            return floor
        span = max(0.5, min(WINDOW_S, now - self._first))
        rate = self._done_bytes / span
        return max(floor, min(maximum, int(rate * TARGET_S)))

    def hold(self, n: int) -> Hold:
        """``async with in_flight.hold(n)``: wait until ``n`` more bytes may be in flight (one request larger
        than the bound goes alone), and give them back after. A class, not a generator: one per request.

        Everything here runs on the loop, so a check and the take that follows it with no await between cannot
        be interleaved: the condition is needed only to wait (and only when others already wait, to keep order)."""
        return Hold(self, n)

    async def _take(self, n: int) -> None:
        if self._used == 0 and self._done and self._clock() - self._idle_since > IDLE_S:
            self._done.clear()  # measured before a quiet spell: says little about what comes now
            self._done_bytes = 0
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

    async def _give_back(self, n: int, finished: bool) -> None:
        self._used -= n
        now = self._clock()
        if self._used == 0:
            self._idle_since = now
        if finished:
            if not self._done:
                self._first = now
            self._done.append((now, n))
            self._done_bytes += n
        if self._waiting and self._changed is not None:
            async with self._changed:
                self._changed.notify_all()


class Hold:
    __slots__ = ("_bound", "_n")

    def __init__(self, bound: InFlight, n: int) -> None:
        self._bound, self._n = bound, n

    async def __aenter__(self) -> None:
        await self._bound._take(self._n)

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self._bound._give_back(self._n, finished=kind is None)
