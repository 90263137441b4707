"""A request body's progress as the store has acknowledged it, measured at the socket that carries it.

Bytes handed to a socket are not at the store yet: the kernel's send buffer (up to 4 MB per socket on Linux)
and any user-space buffer in front of it hold the rest, and behind a slow link that is a large share of a file.
A ``Body`` knows how many of its bytes were written into its connection and which socket that connection uses;
the store has what was written less what is still held on this side:

- Linux: ``SIOCOUTQ`` gives the bytes written to the socket that the peer has not acknowledged yet.
- macOS: ``SO_NWRITE`` gives the bytes still in the send buffer, which keeps them until they are acknowledged.
- elsewhere (Windows) no socket option says; the body takes its socket's send buffer (``SO_SNDBUF``) as full,
  so progress lags by up to one send buffer per request in flight and catches up when the store answers.

plus what still waits in user space (an asyncio transport's buffer). A ``Ticker`` polls every body in flight on
the event loop, so progress keeps moving while a socket drains after the last byte was written; when the store
answers, the body reports the rest, and when its request fails it takes back everything it reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..files.sources import SliceReader, Source

T = TypeVar("T")
OnBytes = Callable[[int], None]
TICK_S = 0.05

if sys.platform == "linux":
    import fcntl
    import termios

    def held_by_socket(sock: Any) -> int | None:
        """Bytes written to ``sock`` that the peer has not acknowledged (None: the socket cannot say)."""
        try:
            return int(struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0\0\0\0"))[0])
        except (OSError, ValueError, TypeError):  # closed (fileno -1) or not a socket
            return None
elif sys.platform == "darwin":
    SO_NWRITE = 0x1024  # <sys/socket.h>: bytes in the send buffer, which keeps them until they are acknowledged

    def held_by_socket(sock: Any) -> int | None:
        try:
            return int(sock.getsockopt(socket.SOL_SOCKET, SO_NWRITE))
        except (OSError, ValueError, AttributeError):
            return None
else:
    def held_by_socket(sock: Any) -> int | None:
        return None


def held_by_transport(transport: asyncio.BaseTransport) -> int:
    """Bytes a transport holds in user space; for TLS, the encrypting transport's and the TCP transport's."""
    held = 0
    for t in (transport, getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)):
        size = getattr(t, "get_write_buffer_size", None)  # duck-typed: uvloop's are not asyncio.WriteTransport
        if size is not None:
            held += int(size())
    return held


def send_buffer(sock: Any) -> int:
    """The socket's send buffer size: at most this much is held when nothing says how much is."""
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    except (OSError, ValueError, AttributeError):
        return 0


def guess_for(sock: Any) -> int:
    """What a socket is taken to hold when it cannot say (its send buffer); 0 when it can say."""
    return send_buffer(sock) if sock is not None and held_by_socket(sock) is None else 0


class Body(SliceReader):
    """A part (or a whole object) being sent, which reports its bytes once the store has acknowledged them.

    By default the bytes written are the bytes read, which is right within a block for a synchronous sender
    (http.client) that writes each block as soon as it has read it; such a sender can say when a block is all
    in the socket (``sent_what_was_read``), and one that reads ahead of its writes says what it wrote
    (``counts_writes``). ``on_wire`` tells the body which socket carries it. Those may be called from any
    thread; ``report(delta)`` is called on the event loop only.
    """

    def __init__(self, source: Source, offset: int, length: int, report: OnBytes) -> None:
        super().__init__(source, offset, length)
        self._report = report
        self._reported = 0
        self._written: Callable[[], int] = self.tell
        self._sock: Any = None
        self._buffered: Callable[[], int] | None = None
        self._guess = 0  # what a socket that cannot say is taken to hold
        self._sent = 0
        self._settled = False  # every byte acknowledged: nothing to poll until it is sent again
        self._counted = False  # the sender says what it wrote, and says it anew for each sending

    def counts_writes(self, written: Callable[[], int]) -> None:
        """For a sender that reads ahead of its writes: ``written()`` says how many bytes it has written (called
        again for each sending, a second one included)."""
        self._written = written
        self._counted, self._settled = True, False

    def sent_what_was_read(self) -> None:
        """For a sender that writes each block in the thread that read it, after a write: every byte read so far
        is in the socket. From then on a block counts once all of it is there, not when it is read."""
        self._sent = self.tell()
        self._written = self._sent_so_far

    def _sent_so_far(self) -> int:
        return min(self._sent, self.tell())  # a rewind counts at once

    def on_wire(self, sock: Any, buffered: Callable[[], int] | None = None, guess: int | None = None) -> None:
        """The connection now carrying this body: its socket and, if it has one, its user-space buffer.
        ``guess``: ``guess_for(sock)``, when the connection knows it already (one system call less a request)."""
        if sock is self._sock:
            return
        self._guess = guess_for(sock) if guess is None else guess
        self._sock, self._buffered = sock, buffered

    def acknowledged(self) -> int:
        """Body bytes the store has: those written, less those still held on this side of the link."""
        written = self._written()
        sock = self._sock
        held = 0
        if sock is not None:
            in_kernel = held_by_socket(sock)
            held = self._guess if in_kernel is None else in_kernel
            if self._buffered is not None:
                with contextlib.suppress(Exception):  # a transport being torn down
                    held += self._buffered()
        return max(0, min(len(self), written - held))

    def poll(self) -> None:
        if not self._settled:
            acknowledged = self.acknowledged()
            self._move_to(acknowledged)
            # A sender that only reads (an SDK) may rewind to send again without saying so: it is polled on.
            self._settled = self._counted and acknowledged == len(self)

    def finish(self) -> None:
        """The store answered: it has every byte."""
        self._move_to(len(self))

    def take_back(self) -> None:
        """The request failed: nothing it sent is kept."""
        self._move_to(0)

    def _move_to(self, n: int) -> None:
        if n != self._reported:
            delta, self._reported = n - self._reported, n
            self._report(delta)


class Ticker:
    """One timer for every body in flight: polls them all every ``interval`` seconds on the event loop."""

    def __init__(self, interval: float = TICK_S) -> None:
        self.interval = interval
        self._bodies: set[Body] = set()
        self._task: asyncio.Task[None] | None = None

    async def send(self, body: Body, request: Awaitable[T]) -> T:
        """Await ``request`` (which sends ``body``), reporting the body's bytes as the store acknowledges them."""
        self._bodies.add(body)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pixlift-progress")
        try:
            result = await request
        except BaseException:
            self._bodies.discard(body)
            body.take_back()
            raise
        self._bodies.discard(body)
        body.finish()
        return result

    async def _run(self) -> None:
        try:
            while self._bodies:
                await asyncio.sleep(self.interval)
                for body in list(self._bodies):
                    body.poll()
        finally:
            self._task = None  # no await between the last check and here: a new body starts a new timer
