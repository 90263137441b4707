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
- calls and queued files are rate limited per client (the limits are kept in ``core/limits.py``).

Session cookies are stateless (a nonce and its HMAC under the token), so they survive a daemon restart and die
with ``pixlift token --rotate``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)
COOKIE = "pixlift_session"
PUBLIC_PREFIXES = ("/files/", "/local/", "/static/")  # pasted links and the UI's own assets: no token needed
CAPABILITY_PREFIXES = ("/presigned/",)  # the URL is the permission: any origin may use it, with CORS


@dataclass
class Client:
    id: str  # "token" or "session:<nonce>": the key for rate limits
    via_cookie: bool


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
