"""A real TCP proxy on loopback that can slow a connection down or cut it: faults made real, not mocked.

``Proxy(target_port).start()`` listens on a free port and forwards to ``127.0.0.1:target_port``. While running:
``rate_bps`` caps client-to-server bytes per second per connection (0 = unlimited); ``cut()`` drops every open
connection; ``refuse = True`` makes new connections fail at once (a dead server); ``flip_after = N`` flips one
bit of the client-to-server byte N bytes further on (once), as a faulty link or NIC would; ``capture = True``
keeps every client-to-server byte, and ``requests()`` reads the HTTP requests out of them; ``add_header``
(bytes) is added to every ``200 OK`` answer, as a store saying more than it did would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time

REQUEST = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.DOTALL)


class Proxy:
    def __init__(self, target_port: int, rate_bps: int = 0) -> None:
        self.target_port = target_port
        self.rate_bps = rate_bps
        self.refuse = False
        self.flip_after: int | None = None
        self.flipped = 0
        self.port = 0
        self.bytes_up = 0
        self.capture = False
        self.add_header: bytes | None = None
        self.up = bytearray()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._conns.update((writer, up_w))
        await asyncio.gather(self._pipe(reader, up_w, throttle=True), self._pipe(up_r, writer, throttle=False),
                             return_exceptions=True)
        for w in (writer, up_w):
            self._conns.discard(w)
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, throttle: bool) -> None:
        started, sent = time.monotonic(), 0
        while True:
            data = await src.read(16 * 1024)
            if not data:
                with contextlib.suppress(Exception):
                    dst.write_eof()
                return
            if throttle and self.flip_after is not None:
                if self.flip_after < len(data):
                    i = self.flip_after
                    data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
                    self.flip_after = None
                    self.flipped += 1
                else:
                    self.flip_after -= len(data)
            if not throttle and self.add_header:
                data = data.replace(b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n" + self.add_header + b"\r\n")
            dst.write(data)
            await dst.drain()
            if throttle:
                self.bytes_up += len(data)
                if self.capture:
                    self.up += data
                sent += len(data)
                if self.rate_bps:
                    ahead = sent / self.rate_bps - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, target, headers with lower-case names) of every request captured so far."""
        out = []
        for m in REQUEST.finditer(bytes(self.up)):
            lines = m.group(3).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
            out.append((m.group(1).decode(), m.group(2).decode("latin-1"), headers))
        return out

    def cut(self) -> None:
        """Drop every open connection, as a crashing server would."""
        def drop() -> None:
            for w in list(self._conns):
                w.transport.abort()
        self._loop.call_soon_threadsafe(drop)

    def stop(self) -> None:
        stop_proxy(self._loop, self._thread, self._server, self._conns)


def stop_proxy(loop: asyncio.AbstractEventLoop, thread: threading.Thread, server: asyncio.Server | None,
               conns: set[asyncio.StreamWriter]) -> None:
    """Close a proxy running on its own loop and thread: stop listening, drop every connection, end the loop."""
    async def close() -> None:
        if server:
            server.close()
        for w in list(conns):
            w.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
