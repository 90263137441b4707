"""The body of a request the S3 client sends (when the lean path is off), written so that progress stays exact."""

from __future__ import annotations

import asyncio
import functools

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from ..errors import Interrupted
from .acked import Body, held_by_transport

CHUNK = 256 * 1024


class WiredBody(Payload):
    """A body aiohttp writes straight onto its connection, so that the body can watch the connection's socket.

    botocore takes it for a stream (it has ``read``), and aiobotocore hands anything that is not an ``io.IOBase``
    to aiohttp untouched; aiohttp then calls ``write_with_length`` with the connection's writer (again, from
    the first byte, if it resends the request on a fresh connection). Bytes count as written the moment they
    enter the transport: from then on the transport's buffer or the socket holds them until the store has them.
    """

    def __init__(self, body: Body) -> None:
        super().__init__(body)
        self._body = body
        self._size = self._length = len(body)
        self._written = 0
        body.counts_writes(lambda: self._written)

    # what botocore looks at
    def read(self, n: int = -1) -> bytes:
        return self._body.read(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._body.seek(pos, whence)

    def tell(self) -> int:
        return self._body.tell()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file's bytes are not text")

    # what aiohttp calls
    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        transport = getattr(writer, "transport", None)
        if transport is not None:
            self._body.on_wire(transport.get_extra_info("socket"), functools.partial(held_by_transport, transport))
        self._body.seek(0)
        self._written = 0
        end = self._length if content_length is None else min(content_length, self._length)
        view = self._body.view()
        if view is not None:  # a small file, in memory: one write, and the transport holds what the socket cannot
            if self._body.stopped():
                raise Interrupted("upload interrupted")
            self._written = end
            await writer.write(view[:end])
            return
        loop = asyncio.get_running_loop()
        while self._written < end:
            chunk = await loop.run_in_executor(None, self._body.read, min(CHUNK, end - self._written))
            self._written += len(chunk)  # no await before the write puts it in the transport
            await writer.write(chunk)
