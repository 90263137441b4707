"""HTTP/1.1 for the two requests that carry bytes (S3's PutObject and UploadPart): pooled keep-alive connections
on the event loop, each answer parsed by ``httptools`` (llhttp, the parser of Node.js and uvicorn).

aiohttp's client builds every request through a generic pipeline (a URL object, header multidicts, cookies,
proxies, tracing, a stream reader per answer). Measured against ``rclone serve s3`` with 10 KB bodies, that
cost about 0.3 ms of CPU per request, more than everything else pixlift does to send a small file, where one
write of the request and one parsed answer on a pooled connection cost well under 0.1 ms. These requests need
none of that pipeline: a PUT of known length to one endpoint, whose answer is a status, a few headers and, on
an error, a short XML document.

A body is an ``acked.Body``: it learns the socket that carries it, so progress counts what the store has
acknowledged. A small one (in memory) goes out in one write with the request head; a larger one is read a
chunk at a time off the loop, with the transport's flow control between chunks. The store must take or send
a byte at least every ``read_timeout_s``; a connection must open within ``connect_timeout_s``. A connection
idle for ``KEEPALIVE_S`` is closed rather than reused (stores close idle ones), and a reused connection that
the store closed before answering is tried once more on a new one (a PUT may be sent again). Failures raise
``ConnectionError`` or ``TimeoutError`` with a phrase that says what happened; a certificate the TLS context
refuses raises ``CertificateUntrusted`` at once, which no retry can help.

Connections open with happy eyeballs (RFC 8305: the next address 250 ms after the previous one, families
interleaved), so a name whose first address drops packets (IPv6 broken on the way) costs a quarter of a second,
not ``connect_timeout_s``. Through an HTTP proxy, an https store is reached through a ``CONNECT`` tunnel and
an http one with requests in absolute form; credentials in the proxy's URL go as ``Proxy-Authorization``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from .. import __version__
from ..errors import Interrupted
from .acked import Body, guess_for, held_by_transport
from .dial import Proxy, ProxyRefused, open_socket, tunnel

KEEPALIVE_S = 15.0  # aiohttp's default: below what stores allow an idle connection
MAX_BODY = 64 * 1024  # kept of an answer: an error document is a few hundred bytes
CHUNK = 1024 * 1024  # read off the loop at a time: fewer hops to a worker thread
USER_AGENT = f"pixlift/{__version__}"


class Disconnected(ConnectionError):
    """The store closed the connection, or sent something that is not HTTP, before it answered."""


class CertificateUntrusted(ConnectionError):
    """The TLS context refused the store's certificate (``error`` says why): not an outage, never retried."""

    def __init__(self, host: str, port: int, error: ssl.SSLCertVerificationError) -> None:
        super().__init__(f"{host}:{port}'s TLS certificate is not trusted ({error.verify_message})")
        self.host = host
        self.error = error


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes  # at most MAX_BODY bytes of it


class Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout_s: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout_s
        self.transport: asyncio.Transport | None = None
        self.reused = False  # taken from the pool: the store may have closed it meanwhile
        self.idle_since = 0.0
        self.heard = False  # a byte of the current answer arrived
        self._parser: Any = None
        self._answer: asyncio.Future[Answer] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._timer: asyncio.TimerHandle | None = None  # fires at or after the deadline (``_arm``)
        self._deadline = 0.0  # when the store's silence ends the request; 0 while no request waits on it
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._lost: BaseException | None = None
        self._bodyless = False  # the answer to a HEAD: it ends with its headers, whatever they announce
        self._sock: Any = None  # the transport's socket, its buffer, and (``_guess``) what it holds when it cannot say

    # -- asyncio.Protocol ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        self._sock = transport.get_extra_info("socket")
        self._held: Callable[[], int] = functools.partial(held_by_transport, transport)
        self._guess: int = guess_for(self._sock)  # asked once per connection, not per request

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # between requests (a store's "408" before it hangs up): not for reuse
            self.close()
            return
        self.heard = True
        self._arm()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(Disconnected("the store switched to another protocol"))
        except httptools.HttpParserError as exc:
            self._fail(Disconnected(f"the store's answer is not valid HTTP ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = Disconnected(f"the connection broke ({exc})" if exc else "the store closed the connection")
        if self._status and "content-length" not in self._headers and "transfer-encoding" not in self._headers:
            self._finish()  # an answer that ends where the connection does
        self._fail(self._lost)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_sender()

    # -- httptools' callbacks --------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._bodyless and self._status >= 200:
            self._finish()

    def on_body(self, body: bytes) -> None:
        if len(self._body) < MAX_BODY:
            self._body += body[:MAX_BODY - len(self._body)]

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # "100 Continue" and the like: the answer is still to come
            self._status, self._headers = 0, {}
            return
        self._finish()

    # -- one request -----------------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and self._lost is None

    async def exchange(self, head: bytes, body: Body | None, bodyless: bool = False) -> Answer:
        """Send the request (its head, then its body) and return the store's answer."""
        self._bodyless = bodyless
        self._parser = httptools.HttpResponseParser(self)
        self._answer = self._loop.create_future()
        self._status, self._headers, self._body, self.heard = 0, {}, bytearray(), False
        try:
            try:
                complete = await self._send(head, body)
            except ConnectionError:  # the connection went while sending, maybe after the store answered
                if not self._answer.done():
                    raise
                complete = False
            if not complete:  # the store expects bytes that will not come: not for another request
                self.close()
            self._arm()
            return await self._answer
        finally:
            self._disarm()
            answer, self._parser, self._answer = self._answer, None, None
            if answer.done() and not answer.cancelled():
                answer.exception()  # the sender raised it already (a timeout while the store took no bytes)

    async def _send(self, head: bytes, body: Body | None) -> bool:
        """Write the request; False when the store answered before it had the whole body, and the rest was not
        sent."""
        transport = self.transport
        assert transport is not None
        if body is None:
            transport.write(head)
            return True
        written = 0
        body.counts_writes(lambda: written)
        body.on_wire(self._sock, self._held, self._guess)
        body.seek(0)
        view = body.view()
        if view is not None:  # a small file, in memory: the head and the bytes in one write
            if body.stopped():
                raise Interrupted("upload interrupted")
            written = len(view)
            transport.writelines((head, view))
            return True
        transport.write(head)
        while written < len(body):
            chunk = await self._loop.run_in_executor(None, body.read, min(CHUNK, len(body) - written))
            if self._status >= 200 or self._lost is not None:
                # The store is answering before it has everything (a refusal, and it may close the connection
                # right after): send no more; the answer, or the connection's loss, says what happened.
                return False
            written += len(chunk)  # no await between the count and the write: the transport has them
            transport.write(chunk)
            if self._paused:
                self._drained = self._loop.create_future()
                self._arm()  # the store must keep taking bytes, as it must keep answering
                try:
                    await self._drained
                finally:
                    self._drained = None
                    self._disarm()
        return True

    def _arm(self) -> None:
        """(Re)start the wait on the store: nothing either way for ``read_timeout_s`` ends the request.

        This runs for every request and every piece of an answer, so it only moves the deadline; the
        connection's one timer, when it fires, compares and goes again for what is left (``_check``). Making
        and cancelling a libuv timer twice a request was 2% of the loop on 10,000 tiny files."""
        self._deadline = self._loop.time() + self._read_timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check)

    def _disarm(self) -> None:
        self._deadline = 0.0  # the timer, when it fires, finds nothing waiting and stops

    def _check(self) -> None:
        self._timer = None
        if not self._deadline:
            return
        if self._loop.time() >= self._deadline:
            self._timed_out()
        else:
            self._timer = self._loop.call_at(self._deadline, self._check)

    def _timed_out(self) -> None:
        self._fail(TimeoutError(f"the store neither answered nor took a byte for {self._read_timeout:g} s "
                                "([transfers] read_timeout_s)"))

    def _wake_sender(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _finish(self) -> None:
        if self._answer is not None and not self._answer.done():
            if self._parser is not None and not self._parser.should_keep_alive():
                self.close()  # "Connection: close", or HTTP/1.0: not for another request
            self._answer.set_result(Answer(self._status, self._headers, bytes(self._body)))
            self._wake_sender()

    def _fail(self, exc: BaseException) -> None:
        for waiter in (self._answer, self._drained):
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Pool:
    """Keep-alive connections to one endpoint (``scheme://host[:port]``), at most ``limit`` in use at once."""

    def __init__(self, base: str, *, limit: int, connect_timeout_s: float, read_timeout_s: float,
                 tls: ssl.SSLContext | bool | None = True, proxy: Proxy | None = None) -> None:
        """``tls``: the context for an https endpoint (True: the system's default; False or None: certificates
        unchecked); ``proxy``: an http:// proxy to go through."""
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {base!r}")
        if proxy is not None and proxy.scheme != "http":
            raise ValueError(f"not an http:// proxy: {proxy.shown}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl.create_default_context() if tls is True else (tls or _unchecked())
        self._proxy = proxy
        # Through a proxy, an http store's requests name it in absolute form; an https one's go in a tunnel.
        self._forward = proxy is not None and self._ssl is None
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = f"{host}:{self._port}"
        self._origin = f"http://{host}" + (f":{self._port}" if self._port != 80 else "")  # as the signed Host
        self._proxy_headers = {"Proxy-Authorization": proxy.authorization} if proxy and proxy.authorization else {}
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._idle: list[Connection] = []  # newest last: the one most likely still open is taken first
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    async def request(self, method: str, target: str, headers: dict[str, str], body: Body | None = None) -> Answer:
        """One request on a pooled connection (``headers`` include Host); raises ConnectionError or TimeoutError."""
        if self._forward:
            target, headers = self._origin + target, {**headers, **self._proxy_headers}
        head = _head(method, target, headers, 0 if body is None else len(body))
        bodyless = method == "HEAD"
        async with self._slots:
            conn = await self._take()
            while True:
                try:
                    answer = await conn.exchange(head, body, bodyless)
                    break
                except ConnectionError:
                    conn.close()
                    if not conn.reused or conn.heard:
                        raise
                    conn = await self._connect()  # the store had closed the kept connection: once more, anew
                except BaseException:
                    conn.close()  # cancelled or timed out mid-request: the connection is in an unknown state
                    raise
            if conn.usable and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            if self._forward and answer.status in (401, 407) and self._proxy is not None:
                _proxy_refusal(answer, self._proxy)
            return answer

    async def _take(self) -> Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable and now - conn.idle_since < KEEPALIVE_S:
                conn.reused = True
                return conn
            conn.close()
        return await self._connect()

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        where = self._authority
        proxy = self._proxy
        try:
            async with asyncio.timeout(self._connect_timeout):
                sock = await open_socket(self._host, self._port) if proxy is None else await self._via(proxy, where)
                _, conn = await loop.create_connection(lambda: Connection(loop, self._read_timeout), sock=sock,
                                                       ssl=self._ssl,
                                                       server_hostname=self._host if self._ssl else None)
        except TimeoutError:
            via = f" through the proxy {proxy.shown}" if proxy else ""
            raise TimeoutError(f"no connection to {where}{via} within {self._connect_timeout:g} s ([transfers] "
                               "connect_timeout_s)") from None
        except ssl.SSLCertVerificationError as exc:
            raise CertificateUntrusted(self._host, self._port, exc) from exc
        except ProxyRefused:
            raise
        except OSError as exc:  # refused, unreachable, a name that does not resolve, a TLS failure
            at = f"the proxy {proxy.shown}" if proxy is not None else where
            raise ConnectionError(f"cannot connect to {at} ({_reason(exc)})") from exc
        return conn

    async def _via(self, proxy: Proxy, where: str) -> socket.socket:
        """A socket to the proxy; for an https store, tunnelled through it to ``where``."""
        sock = await open_socket(proxy.host, proxy.port)
        if self._ssl is not None:
            try:
                await tunnel(sock, where, proxy, USER_AGENT)
            except BaseException:
                sock.close()
                raise
        return sock

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _proxy_refusal(answer: Answer, proxy: Proxy) -> None:
    """Raise ProxyRefused when a request in absolute form was refused by the proxy, not the store: a 407, or a
    401 asking for Basic credentials (tinyproxy's answer), which S3 stores never send."""
    basic = answer.headers.get("www-authenticate", "").lower().startswith("basic")
    if answer.status == 407 or basic:
        raise ProxyRefused(proxy.shown, 407, "Proxy Authentication Required")


def _unchecked() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
        return exc.strerror or str(exc)  # a name lookup's own words ("Name or service not known")
    return os.strerror(exc.errno)  # "Connection refused", not asyncio's "Connect call failed (...)"


def _head(method: str, target: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Content-Length: {length}", f"User-Agent: {USER_AGENT}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"the header {name!r} has a line break")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")
