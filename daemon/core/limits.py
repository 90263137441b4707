"""Rate limits per client: calls per second with bursts, and files queued per minute.

The application layer charges every call and every queued file here, whichever face it came through; a
client over a limit gets ``RateLimited`` with the seconds to wait, never a silent delay.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from ..errors import RateLimited
from .config import SecuritySettings


class TokenBucket:
    """Calls per second with bursts. aiolimiter waits for capacity; we must refuse and say how long to wait."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self, n: float = 1.0) -> float:
        """Take n tokens; return 0 on success, else the seconds until n tokens are there."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return _round_up((n - self.tokens) / self.rate)


class WindowCounter:
    """How many files a client queued in the last minute."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self.events: deque[tuple[float, int]] = deque()
        self.count = 0

    def add(self, n: int) -> float:
        now = self.clock()
        while self.events and now - self.events[0][0] > self.window_s:
            self.count -= self.events.popleft()[1]
        if self.count + n > self.limit:
            if n > self.limit:
                return self.window_s
            # wait until enough old entries expire
            need, freed = self.count + n - self.limit, 0
            for stamp, k in self.events:
                freed += k
                if freed >= need:
                    return _round_up(self.window_s - (now - stamp))
            return self.window_s
        self.events.append((now, n))
        self.count += n
        return 0.0


def _round_up(wait: float) -> float:
    """The wait rounded up to the next millisecond (never 0), so that a client that sleeps exactly
    ``retry_after_s`` is served, whatever the float rounding of the refill."""
    return max(0.001, math.ceil(wait * 1000 + 1e-6) / 1000)


class Limits:
    """Per-client call and file limits, read from the settings in force at each call (a changed limit applies
    at once, to clients already seen too)."""

    def __init__(self, settings: Callable[[], SecuritySettings]) -> None:
        self._settings = settings
        self._calls: dict[str, TokenBucket] = {}
        self._files: dict[str, WindowCounter] = {}

    def charge_call(self, client: str) -> None:
        s = self._settings()
        bucket = self._calls.get(client)
        if bucket is None:
            bucket = self._calls[client] = TokenBucket(s.calls_per_second, s.call_burst)
        bucket.rate, bucket.burst = s.calls_per_second, s.call_burst
        wait = bucket.take()
        if wait:
            raise RateLimited(f"Too many calls: the limit is {s.calls_per_second:g} per second "
                              f"(bursts of {s.call_burst}). Retry in {wait:.2f} s.", wait)

    def charge_files(self, client: str, n: int) -> None:
        limit = self._settings().files_per_minute
        counter = self._files.get(client)
        if counter is None:
            counter = self._files[client] = WindowCounter(limit)
        counter.limit = limit
        wait = counter.add(n)
        if wait:
            raise RateLimited(f"Too many files queued: the limit is {limit} per minute. "
                              f"Retry in {wait:.1f} s.", wait)
