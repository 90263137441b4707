"""A slow link that behaves like one: a loopback proxy whose bottleneck is the proxy, not its buffers.

``SlowLink(target_port, rate_bps).start()`` forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port`` and lets
client-to-server bytes through at ``rate_bps`` in all, shared by every connection (a token bucket that holds at
most one small burst, so no credit piles up while a connection is idle). Its own buffers are small (a 16 KiB
``SO_RCVBUF`` set on the listening socket before ``listen``, a StreamReader limit of 8 KiB, reads of 4 KiB),
so the backlog stays in the sender's socket as it would behind a real slow link, and the bytes it has
forwarded are what the store has received.

It counts what it forwarded: ``forwarded`` (every byte) and ``body`` (only the bodies of PUT requests, i.e. the
bytes of objects and parts, without HTTP headers or the XML of other requests), so a test can compare a
client's byte progress with what really reached the store. Used by tests and by bench/progress_error.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

from netproxy import stop_proxy

READ = 4096
BURST = 16 * 1024
RCVBUF = 16 * 1024


class TokenBucket:
    """``rate`` bytes per second for everyone together, never more than ``burst`` at once."""

    def __init__(self, rate: float, burst: int = BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = 0.0
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        async with self._lock:  # first come, first served: connections share the link fairly
            while True:
                now = time.monotonic()
                self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= n:
                    self._tokens -= n
                    return
                await asyncio.sleep((n - self._tokens) / self.rate)


class BodyCounter:
    """Follows one connection's HTTP/1.1 requests and counts the bytes of PUT bodies (Content-Length only)."""

    def __init__(self) -> None:
        self._head = b""
        self._left = 0  # body bytes of the current request still to come
        self._counted = False

    def feed(self, data: bytes) -> int:
        """The PUT body bytes in ``data``."""
        counted = 0
        view = memoryview(data)
        while view:
            if self._left:
                n = min(self._left, len(view))
                self._left -= n
                counted += n if self._counted else 0
                view = view[n:]
                continue
            self._head += bytes(view)
            view = memoryview(b"")
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                continue
            head, rest = self._head[:end], self._head[end + 4:]
            self._head = b""
            lines = head.split(b"\r\n")
            self._counted = lines[0].startswith(b"PUT ")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self._left = int(value.strip())
            view = memoryview(rest)
        return counted


class SlowLink:
    def __init__(self, target_port: int, rate_bps: float) -> None:
        self.target_port = target_port
        self.rate_bps = rate_bps
        self.port = 0
        self.forwarded = 0  # client-to-server bytes written to the store, headers and all
        self.body = 0  # PUT body bytes written to the store
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._bucket: TokenBucket | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slowlink", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SlowLink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def set_rate(self, rate_bps: float) -> None:
        def change() -> None:
            self.rate_bps = rate_bps
            if self._bucket:
                self._bucket.rate = rate_bps
        self._loop.call_soon_threadsafe(change)

    async def _start(self) -> None:
        self._bucket = TokenBucket(self.rate_bps)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # before listen: accepted sockets inherit it
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=8192)
        self.port = sock.getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # stop() cancels every connection
            await self._pipe(reader, writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_w))
        await asyncio.gather(self._upstream(reader, up_w), self._downstream(up_r, writer), return_exceptions=True)
        for w in (writer, up_w):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _upstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        assert self._bucket is not None
        bodies = BodyCounter()
        while True:
            data = await src.read(READ)
            if not data:
                with contextlib.suppress(Exception):
                    dst.write_eof()
                return
            await self._bucket.take(len(data))
            dst.write(data)
            await dst.drain()
            self.forwarded += len(data)
            self.body += bodies.feed(data)

    async def _downstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(64 * 1024)
            if not data:
                with contextlib.suppress(Exception):
                    dst.write_eof()
                return
            dst.write(data)
            await dst.drain()

    def stop(self) -> None:
        stop_proxy(self._loop, self._thread, self._server, self._writers)
