"""Typed engine events and the bus that delivers them.

The engine publishes; the application layer, the tray and the push channels subscribe. ``subscribe``
returns the function that ends the subscription. Only endings are events: every other change of a task is
read through the change log (``engine/changes.py``, the versions behind ``since``), which costs the hot path nothing
per change, where an event would build a view for each. Handlers run on the event loop, inside the engine's call:
they copy what they need and return at once; one that raises is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .tasks import TaskStatus
from .views import TaskView

log = logging.getLogger(__name__)


class TaskFinished:
    """A task became completed, failed or cancelled. Its id, batch and status are copied at once; its view is
    made when first read, which handlers do while the event is delivered (they run inside ``publish``), so it
    is the task as it was then, and a file nobody is watching (no tray, no push subscriber) costs no view."""

    __slots__ = ("_make", "_view", "batch_id", "status", "task_id")

    def __init__(self, task_id: str, batch_id: str, status: TaskStatus, view: Callable[[], TaskView]) -> None:
        self.task_id, self.batch_id, self.status = task_id, batch_id, status
        self._make: Callable[[], TaskView] | None = view
        self._view: TaskView | None = None

    @property
    def task(self) -> TaskView:
        if self._view is None:
            assert self._make is not None
            self._view, self._make = self._make(), None
        return self._view


class BatchFinished:
    """A batch has nothing left to do; ``tasks`` are the views of all of its listed tasks, made when first read
    (during delivery, as ``TaskFinished.task``)."""

    __slots__ = ("_make", "_tasks", "batch_id")

    def __init__(self, batch_id: str, tasks: Callable[[], tuple[TaskView, ...]]) -> None:
        self.batch_id = batch_id
        self._make: Callable[[], tuple[TaskView, ...]] | None = tasks
        self._tasks: tuple[TaskView, ...] | None = None

    @property
    def tasks(self) -> tuple[TaskView, ...]:
        if self._tasks is None:
            assert self._make is not None
            self._tasks, self._make = self._make(), None
        return self._tasks


Event = TaskFinished | BatchFinished
Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                log.exception("an event handler failed on %s", type(event).__name__)
