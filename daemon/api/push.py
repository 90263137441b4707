"""Live progress for one subscriber: what the SSE stream (``GET /events``) and a WebSocket subscription send.

A ``Feed`` first replays what a reconnecting client missed (a ``progress`` message with every task changed
after ``since``, then a ``task`` message for each task that finished after it, then a ``batch`` message for
each batch that finished after it), then follows the engine: ``task`` and ``batch`` messages for everything
that finishes, never coalesced away, and at most one ``progress`` message per interval, only when something
changed. Messages are delivered together once per interval (a busy batch finishing hundreds of files a
second costs a subscriber a few writes a second, not one per file), and each event is serialised once for all
subscribers. A progress message is computed when it is sent, so a client that reads slowly gets the newest
state, never a backlog; the finished-task messages waiting for it are bounded, and past the bound the feed
gives up (``FeedOverflow``) and the connection is closed: the client reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..application import Application
from ..core.events import BatchFinished, Event, TaskFinished
from ..core.views import trimmed

MAX_PENDING = 2000  # task and batch messages waiting for a slow client before the feed gives up
INTERVAL_MS = (50, 5000)
DEFAULT_INTERVAL_MS = 500


class FeedOverflow(Exception):
    """The client did not keep up; it should reconnect with the last id it received."""


@dataclass(frozen=True)
class Message:
    event: str  # "progress" | "task" | "batch"
    id: int  # the version it reflects: a client resumes from the last one it received
    payload: bytes  # the data as JSON: an object, without newlines

    @classmethod
    def of(cls, event: str, id: int, data: Any) -> Message:
        return cls(event, id, trimmed(orjson.dumps(data)))  # queued per slow client: no 8 KB buffer each

    @functools.cached_property
    def sse(self) -> bytes:
        """The event as an event stream carries it (made once, however many streams send it)."""
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.id, self.event.encode(), self.payload)

    @functools.cached_property
    def _rpc_head(self) -> bytes:
        return b'{"jsonrpc":"2.0","method":"%s","params":%s,"subscription":' % (self.event.encode(),
                                                                               self.payload[:-1])

    def notification(self, subscription: str) -> bytes:
        """The JSON-RPC notification of a WebSocket subscription: the data with ``subscription`` added."""
        return self._rpc_head + orjson.dumps(subscription) + b"}}"


class Feed:
    def __init__(self, app: Application, *, batch_id: str | None = None, since: int | None = None,
                 interval_ms: int = DEFAULT_INTERVAL_MS, on_overflow: Callable[[], None] | None = None) -> None:
        if batch_id is not None:
            app.progress(batch_id)  # NotFound for a batch the daemon does not list, before anything is sent
        self._app = app
        self._batch = batch_id
        self._interval = interval_ms / 1000
        self._last = since if since is not None else app.version
        self._pending: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._overflowed = False
        self._on_overflow = on_overflow
        self._next_progress = 0.0
        if since is not None:
            self._replay(since)
        self._unsubscribe = app.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()

    def _replay(self, since: int) -> None:
        progress = self._app.progress(self._batch, since)
        if progress.full or progress.removed or progress.views():
            self._pending.append(Message.of("progress", progress.version, progress.to_json(incremental=True)))
        for view in progress.views():
            if view.status.finished:
                self._pending.append(Message.of("task", view.version, view.to_json()))
        for batch_id, summary in self._app.finished_batches(since, self._batch):
            self._pending.append(Message.of("batch", progress.version, {"batch_id": batch_id,
                                                                         "summary": summary.to_json()}))
        self._last = progress.version

    def _on_event(self, event: Event) -> None:
        """Runs on the loop inside the engine: queue the message, never block."""
        if isinstance(event, TaskFinished):
            if self._batch in (None, event.batch_id):
                self._push(shared(event, lambda: Message.of("task", event.task.version, event.task.to_json())))
        elif isinstance(event, BatchFinished) and self._batch in (None, event.batch_id):
            self._push(shared(event, lambda: Message.of("batch", self._app.version, {
                "batch_id": event.batch_id, "summary": self._app.batch_summary(event.batch_id).to_json()})))

    def _push(self, message: Message) -> None:
        if self._overflowed:
            return
        if len(self._pending) >= MAX_PENDING:
            self._overflowed = True
            self._pending.clear()
            if self._on_overflow is not None:
                self._on_overflow()
        else:
            self._pending.append(message)
            if asyncio.get_running_loop().time() < self._next_progress:
                return  # a delivery is already due at the next tick: waking the sender now would find nothing to do
        self._wake.set()

    def _progress(self) -> Message | None:
        """What changed since the last message, or None when nothing did. Feeds that follow the same tasks at
        the same interval tick together (their ticks are on one grid) and from the same version, so one read
        and one serialisation serve all of them."""
        if self._app.version <= self._last:
            return None
        key = (id(self._app), self._batch, self._last, self._app.version)
        found = _PROGRESS.get(key)
        if found is None:
            progress = self._app.progress(self._batch, self._last)
            data = progress.to_json(incremental=True)
            found = (progress.version, Message.of("progress", progress.version, data)
                     if data["tasks"] or data["removed"] or progress.full else None)
            _PROGRESS[key] = found
            if len(_PROGRESS) > 64:
                del _PROGRESS[next(iter(_PROGRESS))]
        self._last = found[0]
        return found[1]

    async def next(self) -> list[Message]:
        """The messages to send now, at most once per interval (the replay at once); raises FeedOverflow when
        the client fell too far behind."""
        loop = asyncio.get_running_loop()
        while True:
            if self._overflowed:
                raise FeedOverflow
            now = loop.time()
            if now >= self._next_progress:
                batch = list(self._pending)
                self._pending.clear()
                progress = self._progress()
                if progress is not None:
                    batch.append(progress)
                if batch:
                    # the next tick on the grid of this interval: feeds with the same interval tick together
                    self._next_progress = (math.floor(now / self._interval) + 1) * self._interval
                    return batch
                deadline = now + self._interval  # look again then (bytes move without events), or at an event
            else:
                deadline = self._next_progress
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), deadline - now)


_SHARED: dict[int, tuple[object, Message]] = {}
_PROGRESS: dict[tuple[int, str | None, int, int], tuple[int, Message | None]] = {}


def shared(event: object, make: Callable[[], Message]) -> Message:
    """One message per engine event, however many feeds send it: serialised once, for the first feed that asks.

    Keyed by the event object (kept alive in the entry, so its id cannot be reused while it is there); the
    table holds the last few events only."""
    found = _SHARED.get(id(event))
    if found is not None and found[0] is event:
        return found[1]
    message = make()
    _SHARED[id(event)] = (event, message)
    if len(_SHARED) > 64:
        del _SHARED[next(iter(_SHARED))]
    return message


def interval_ms(raw: object) -> int:
    """``interval_ms`` from a query or params: a whole number of milliseconds in range, or ValueError."""
    value = int(str(raw)) if not isinstance(raw, int) else raw
    lo, hi = INTERVAL_MS
    if isinstance(raw, bool) or not lo <= value <= hi:
        raise ValueError(f"interval_ms must be a whole number from {lo} to {hi}")
    return value


__all__ = ["DEFAULT_INTERVAL_MS", "Feed", "FeedOverflow", "Message", "interval_ms"]
