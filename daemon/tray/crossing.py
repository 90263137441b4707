"""The one crossing between the tray's threads and the daemon's event loop.

The engine and the application layer belong to the loop; nothing on a tray thread may touch them directly.
``Crossing.call`` runs a function of the ``Application`` on the loop (``asyncio.run_coroutine_threadsafe``) and
waits for its result; engine events come back the other way as frozen ``Notice`` objects on a queue the poller
drains.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from ..application import Application
from ..core.events import BatchFinished, Event, TaskFinished
from ..core.tasks import TaskStatus
from ..errors import DaemonGone

CALL_TIMEOUT_S = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class Notice:
    """An engine event, frozen on the loop for the tray: which file, and for a finished batch, every file."""

    event: str  # "completed" | "failed" | "batch_finished"
    task_id: str
    name: str
    url: str | None
    error: str | None
    batch: tuple[tuple[str, str], ...] = ()  # (name, status) of each task of the batch


class Crossing:
    """The one way between the tray's threads and the daemon's event loop.

    Tray to loop: ``call`` / ``call_async`` run a function of the ``Application`` on the loop and wait for the result
    (exceptions travel back too). Loop to tray: ``subscribe`` registers an engine listener (on the loop) that puts
    frozen ``Notice`` objects on ``notices``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: Application, timeout: float = CALL_TIMEOUT_S,
                 on_change: Callable[[], None] | None = None) -> None:
        self._loop = loop
        self._app = app
        self._timeout = timeout
        self._on_change = on_change  # thread-safe (a threading.Event's set): wakes the poller on any event
        self.notices: queue.SimpleQueue[Notice] = queue.SimpleQueue()

    def call(self, fn: Callable[[Application], T]) -> T:
        async def on_loop() -> T:
            return fn(self._app)

        return self._wait(on_loop())

    def call_async(self, fn: Callable[[Application], Awaitable[T]]) -> T:
        async def on_loop() -> T:
            return await fn(self._app)

        return self._wait(on_loop())

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as exc:  # the loop is closed: the daemon has stopped
            coro.close()
            raise DaemonGone("pixlift's daemon has stopped.") from exc
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise DaemonGone(f"pixlift's daemon did not answer within {self._timeout:.0f} s.") from exc

    def subscribe(self) -> Callable[[], None]:
        """Engine events become Notices on ``notices``; returns the function that ends the subscription.

        The application's unsubscribe edits the event bus, which belongs to the loop, so the returned function
        runs it there too (and, like ``call``, raises DaemonGone once the loop is gone)."""
        unsubscribe = self.call(lambda app: app.subscribe(self._on_event))
        return lambda: self.call(lambda _app: unsubscribe())

    def _on_event(self, event: Event) -> None:
        """Runs on the loop, inside the engine: copy what the tray needs, never block."""
        if self._on_change is not None:
            self._on_change()  # a task started, paused, finished...: redraw now, not at the next tick
        if isinstance(event, TaskFinished) and event.status is not TaskStatus.CANCELLED:
            t = event.task
            error = (t.error or {}).get("message") if t.status is TaskStatus.FAILED else None
            self.notices.put(Notice(str(t.status), t.task_id, t.name, t.url, error))
        elif isinstance(event, BatchFinished) and event.tasks:
            last = event.tasks[-1]
            self.notices.put(Notice("batch_finished", last.task_id, last.name, last.url, None,
                                    tuple((t.name, str(t.status)) for t in event.tasks)))
