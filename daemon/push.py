"""Live progress for one subscriber: what the SSE stream (``GET /events``) and a WebSocket subscription send.

A ``Feed`` first replays what a reconnecting client missed (a ``progress`` message with every task changed
after ``since``, then a ``task`` message for each task that finished after it, then a ``batch`` message for
each batch that finished after it), then follows the engine: ``task`` and ``batch`` messages as they happen,
never coalesced away, and at most one ``progress`` message per interval, only when something changed. A
progress message is computed when it is sent, so a client that reads slowly gets the newest state, never a
backlog; the finished-task messages waiting for it are bounded, and past the bound the feed gives up
(``FeedOverflow``) and the connection is closed: the client reconnects with ``Last-Event-ID`` and replays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .application import Application
from .events import BatchFinished, Event, TaskFinished

MAX_PENDING = 2000  # task and batch messages waiting for a slow client before the feed gives up
INTERVAL_MS = (50, 5000)
DEFAULT_INTERVAL_MS = 500


class FeedOverflow(Exception):
    """The client did not keep up; it should reconnect with the last id it received."""


@dataclass(frozen=True)
class Message:
    event: str  # "progress" | "task" | "batch"
    id: int  # the version it reflects: a client resumes from the last one it received
    data: dict[str, Any]


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
            self._pending.append(Message("progress", progress.version, progress.to_json(incremental=True)))
        for view in progress.views():
            if view.status.finished:
                self._pending.append(Message("task", view.version, view.to_json()))
        for batch_id, summary in self._app.finished_batches(since, self._batch):
            self._pending.append(Message("batch", progress.version, {"batch_id": batch_id,
                                                                      "summary": summary.to_json()}))
        self._last = progress.version

    def _on_event(self, event: Event) -> None:
        """Runs on the loop inside the engine: queue the message, never block."""
        if isinstance(event, TaskFinished):
            if self._batch in (None, event.task.batch_id):
                self._push(Message("task", event.task.version, event.task.to_json()))
        elif isinstance(event, BatchFinished) and self._batch in (None, event.batch_id):
            summary = self._app.batch_summary(event.batch_id)
            self._push(Message("batch", self._app.version, {"batch_id": event.batch_id,
                                                            "summary": summary.to_json()}))

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
        self._wake.set()

    def _progress(self) -> Message | None:
        """What changed since the last message, or None when nothing did."""
        if self._app.version <= self._last:
            return None
        progress = self._app.progress(self._batch, self._last)
        self._last = progress.version
        data = progress.to_json(incremental=True)
        if not (data["tasks"] or data["removed"] or progress.full):
            return None
        return Message("progress", progress.version, data)

    async def next(self) -> Message:
        """The next message to send; raises FeedOverflow when the client fell too far behind."""
        loop = asyncio.get_running_loop()
        while True:
            if self._overflowed:
                raise FeedOverflow
            if self._pending:
                return self._pending.popleft()
            now = loop.time()
            if now >= self._next_progress:
                self._next_progress = now + self._interval
                message = self._progress()
                if message is not None:
                    return message
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, self._next_progress - now))


def interval_ms(raw: object) -> int:
    """``interval_ms`` from a query or params: a whole number of milliseconds in range, or ValueError."""
    value = int(str(raw)) if not isinstance(raw, int) else raw
    lo, hi = INTERVAL_MS
    if isinstance(raw, bool) or not lo <= value <= hi:
        raise ValueError(f"interval_ms must be a whole number from {lo} to {hi}")
    return value


__all__ = ["DEFAULT_INTERVAL_MS", "Feed", "FeedOverflow", "Message", "interval_ms"]
