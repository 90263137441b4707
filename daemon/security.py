"""The security gate in front of every route: Host, Origin, authentication, rate limits.

A local daemon that reads files and publishes them is a prize: any web page can post to 127.0.0.1, and DNS
rebinding can make a hostile page look same-origin. So, before any handler runs:

- ``Host`` must be exactly ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT`` (defeats DNS rebinding);
- a request carrying a foreign ``Origin`` (or ``null``), or ``Sec-Fetch-Site: cross-site``, is refused (CSRF);
  there are no CORS headers for anyone, so browsers refuse cross-origin reads too. One exception: the local
  store's one-time upload URLs (``/presigned/<token>``, ``CAPABILITY_PREFIXES``) are their own permission, like
  an S3 presigned URL, so any page an app hands one to may PUT to it (web.py answers its CORS preflight);
- API routes need ``Authorization: Bearer <token>`` (compared in constant time) or the UI's session cookie,
  and the cookie counts only on requests whose ``Origin`` is the daemon's own;
- calls and queued files are rate limited per client.

Session cookies are stateless (a nonce and its HMAC under the token), so they survive a daemon restart and die
with ``pixlift token --rotate``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import stat
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from .config import SecuritySettings
from .errors import RateLimited

log = logging.getLogger(__name__)
COOKIE = "pixlift_session"
PUBLIC_PREFIXES = ("/files/", "/local/", "/static/")  # pasted links and the UI's own assets: no token needed
CAPABILITY_PREFIXES = ("/presigned/",)  # the URL is the permission: any origin may use it, with CORS


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


def loopback_hosts(port: int) -> set[str]:
    """The ``Host`` values of a request meant for this machine's ``port``: anything else is DNS rebinding."""
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


class Gate:
    def __init__(self, token: Callable[[], str], port: Callable[[], int]) -> None:
        self._token = token
        self._port = port

    # -- who may talk to us --------------------------------------------------------------------------------
    def hosts(self) -> set[str]:
        return loopback_hosts(self._port())

    def origins(self) -> set[str]:
        return {f"http://{h}" for h in self.hosts()}

    def session_cookie(self) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._sign(nonce)}"

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._token().encode(), f"session:{nonce}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self._token().encode())  # type: ignore[union-attr]

    def client(self, request: web.Request, *, stream: bool = False) -> Client | None:
        """The authenticated caller, or None.

        The session cookie counts only on requests the daemon's own pages make: with the daemon's own Origin,
        or, for the event streams (an EventSource sends no Origin to its own origin), with no Origin and a
        ``Sec-Fetch-Site`` that is absent, ``same-origin`` or ``none``."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":  # auth schemes are case-insensitive (RFC 9110)
            return Client("token", False) if self.token_ok(credential.strip()) else None
        cookie = request.cookies.get(COOKIE)
        origin = request.headers.get("Origin")
        own = origin in self.origins() or (
            stream and origin is None and request.headers.get("Sec-Fetch-Site", "none") in ("same-origin", "none"))
        if cookie and own:
            nonce, _, mac = cookie.partition(".")
            if mac and hmac.compare_digest(mac, self._sign(nonce)):
                return Client(f"session:{nonce}", True)
        return None

    def require(self, request: web.Request, *, stream: bool = False) -> Client:
        """The authenticated caller, or HTTP 401 saying how to authenticate."""
        client = self.client(request, stream=stream)
        if client is None:
            raise web.HTTPUnauthorized(
                text='{"error": {"status": 401, "message": "Missing or wrong token: send Authorization: Bearer '
                     '<contents of the token file>, or open the UI with pixlift open."}}',
                content_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="pixlift"'})
        return client

    # -- the middleware --------------------------------------------------------------------------------------
    def middleware(self) -> Middleware:
        @web.middleware
        async def gate(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            if request.headers.get("Host") not in self.hosts():
                return _refuse(403, "This daemon answers only to 127.0.0.1, localhost and [::1] on its own port.")
            public = request.path.startswith(PUBLIC_PREFIXES)
            origin = request.headers.get("Origin")
            if not public and not request.path.startswith(CAPABILITY_PREFIXES):
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


# -- secrets at rest and in logs -------------------------------------------------------------------------------
PRIVATE_FILES = ("config.toml", "token", "daemon.json", "journal.sqlite3*", "pixlift.log*")
def make_private(root: Path) -> list[str]:
    """Close the home folder (0700) and its files that hold secrets or history (0600) to other users.

    A config.toml written by an editor, a home folder made by hand, or SQLite's WAL files created before the
    database was chmod-ed may be readable by everyone. Returns the names that were tightened."""
    tightened = []
    for path in [root, *(p for pattern in PRIVATE_FILES for p in root.glob(pattern))]:
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) & ~want:
                os.chmod(path, want)
                tightened.append(path.name)
        except OSError as exc:
            log.warning("cannot make %s private: %s", path.name, exc.strerror or exc)
    if tightened:
        log.warning("other users could read %s; made private (0600, home folder 0700)", ", ".join(tightened))
    return tightened


class Redactor(logging.Filter):
    """Blanks secrets out of every record a log handler writes.

    Our own messages never contain a secret; this is for the ones we do not write: aiohttp logs the raw header
    lines of a malformed request (``Authorization: Bearer ...``), SDKs may log URLs and signatures."""

    MASK = "[redacted]"

    def __init__(self, source: Callable[[], Iterable[str | None]]) -> None:
        super().__init__("pixlift.redact")
        self.source = source
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            found: set[str] = set()
            for secret in self.source():
                if secret and len(secret) >= 4:
                    found.update({secret, urllib.parse.quote(secret, safe=""), repr(secret)[1:-1]})
            if not found:
                return True
            message = record.getMessage()
            clean = self._redact(message, found)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._redact(record.exc_text, found)
            if record.stack_info:
                record.stack_info = self._redact(record.stack_info, found)
        except Exception:  # a filter must never lose the record; the handler reports formatting errors
            return True
        return True

    def _redact(self, text: str, found: set[str]) -> str:
        for secret in sorted(found, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text


def redact_logs(source: Callable[[], Iterable[str | None]]) -> None:
    """Put a Redactor for ``source`` on every handler of the root logger (the log file and stderr), once."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, Redactor) and f.source == source for f in handler.filters):
            handler.addFilter(Redactor(source))
