"""The security gate in front of every route: Host, Origin, authentication, rate limits.

A local daemon that reads files and publishes them is a prize: any web page can post to 127.0.0.1, and DNS
rebinding can make a hostile page look same-origin. So, before any handler runs:

- ``Host`` must be exactly ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT`` (defeats DNS rebinding);
- a request carrying a foreign ``Origin`` (or ``null``), or ``Sec-Fetch-Site: cross-site``, is refused (CSRF);
  there are no CORS headers for anyone, so browsers refuse cross-origin reads too;
- API routes need ``Authorization: Bearer <token>`` (compared in constant time) or the UI's session cookie,
  and the cookie counts only on requests whose ``Origin`` is the daemon's own;
- calls and queued files are rate limited per client.

Session cookies are stateless (a nonce and its HMAC under the token), so they survive a daemon restart and die
with ``pixlift token --rotate``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from .errors import RateLimited

COOKIE = "pixlift_session"
PUBLIC_PREFIXES = ("/files/", "/static/")  # pasted links and the UI's own assets: no token needed


@dataclass
class Client:
    id: str  # "token" or "session:<nonce>": the key for rate limits
    via_cookie: bool


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
        return (n - self.tokens) / self.rate


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
                    return max(0.001, self.window_s - (now - stamp))
            return self.window_s
        self.events.append((now, n))
        self.count += n
        return 0.0


class Limits:
    def __init__(self, calls_per_second: float, burst: int, files_per_minute: int) -> None:
        self.calls_per_second, self.burst, self.files_per_minute = calls_per_second, burst, files_per_minute
        self._calls: dict[str, TokenBucket] = {}
        self._files: dict[str, WindowCounter] = {}

    def charge_call(self, client: str) -> None:
        bucket = self._calls.setdefault(client, TokenBucket(self.calls_per_second, self.burst))
        wait = bucket.take()
        if wait:
            raise RateLimited(f"Too many calls: the limit is {self.calls_per_second:g} per second "
                              f"(bursts of {self.burst}). Retry in {wait:.2f} s.", wait)

    def charge_files(self, client: str, n: int) -> None:
        counter = self._files.setdefault(client, WindowCounter(self.files_per_minute))
        wait = counter.add(n)
        if wait:
            raise RateLimited(f"Too many files queued: the limit is {self.files_per_minute} per minute. "
                              f"Retry in {wait:.1f} s.", wait)


class Gate:
    def __init__(self, token: Callable[[], str], port: Callable[[], int]) -> None:
        self._token = token
        self._port = port

    # -- who may talk to us --------------------------------------------------------------------------------
    def hosts(self) -> set[str]:
        p = self._port()
        return {f"127.0.0.1:{p}", f"localhost:{p}", f"[::1]:{p}"}

    def origins(self) -> set[str]:
        return {f"http://{h}" for h in self.hosts()}

    def session_cookie(self) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._sign(nonce)}"

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._token().encode(), f"session:{nonce}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self._token().encode())  # type: ignore[union-attr]

    def client(self, request: web.Request) -> Client | None:
        """The authenticated caller, or None."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return Client("token", False) if self.token_ok(auth[7:].strip()) else None
        cookie = request.cookies.get(COOKIE)
        if cookie and request.headers.get("Origin") in self.origins():
            nonce, _, mac = cookie.partition(".")
            if mac and hmac.compare_digest(mac, self._sign(nonce)):
                return Client(f"session:{nonce}", True)
        return None

    # -- the middleware --------------------------------------------------------------------------------------
    def middleware(self) -> Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                                     Awaitable[web.StreamResponse]]:
        @web.middleware
        async def gate(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            if request.headers.get("Host") not in self.hosts():
                return _refuse(403, "This daemon answers only to 127.0.0.1, localhost and [::1] on its own port.")
            public = request.path.startswith(PUBLIC_PREFIXES)
            origin = request.headers.get("Origin")
            if not public:
                if origin is not None and origin not in self.origins():
                    return _refuse(403, "Requests from other web pages are refused.")
                if request.headers.get("Sec-Fetch-Site") == "cross-site":
                    return _refuse(403, "Requests from other web pages are refused.")
                if request.method == "OPTIONS":
                    return _refuse(403, "No cross-origin access.")
            return await handler(request)

        return gate


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)
