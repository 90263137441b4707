"""Typed engine events and the bus that delivers them.

The engine publishes; the application layer, the tray and the push channels subscribe. ``subscribe``
returns the function that ends the subscription. Only endings are events: every other change of a task is
read through the change log (``changes.py``, the versions behind ``since``), which costs the hot path nothing
per change, where an event would build a view for each. Handlers run on the event loop, inside the engine's call:
they copy what they need and return at once; one that raises is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .views import TaskView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskFinished:
    """A task became completed, failed or cancelled."""

    task: TaskView


@dataclass(frozen=True)
class BatchFinished:
    """A batch has nothing left to do; ``tasks`` are all of its listed tasks."""

    batch_id: str
    tasks: tuple[TaskView, ...]


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
