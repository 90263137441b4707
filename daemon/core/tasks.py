"""Upload tasks: named states, legal transitions, where the bytes came from, and the live speed meter.

The engine owns the live ``Task`` objects and is the only writer; readers get frozen views (``views.py``).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import InvalidState


def task_ids(count: int) -> list[str]:
    """``count`` new task ids, each a version 4 UUID as 32 hex digits (as ``uuid.uuid4().hex``), from one read of
    the system's randomness: a submission of 10,000 files made 10,000 ``UUID`` objects and as many system calls
    (26 ms) before its first upload could start; this takes 3."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # the version: 4
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # the variant: RFC 4122
    text = raw.hex()
    return [text[i:i + 32] for i in range(0, 32 * count, 32)]


class TaskStatus(StrEnum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


class TaskSource(StrEnum):
    """Where a task's bytes came from."""

    PATH = "path"  # a file named by its path (upload_images, the CLI)
    BROWSER = "browser"  # bytes the web UI streamed into the spool
    CLIPBOARD = "clipboard"  # an image read from the desktop's clipboard (the tray)
    URL = "url"  # downloaded from the web (reserved for upload_urls)

    @property
    def spooled(self) -> bool:
        """The bytes live in pixlift's spool (deleted once the task no longer needs them)."""
        return self is not TaskSource.PATH


FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE = frozenset({TaskStatus.QUEUED, TaskStatus.UPLOADING, TaskStatus.PAUSED})

# Completed is final. Failed and cancelled can only be queued again (retry); everything else is a bug.
_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.UPLOADING, TaskStatus.PAUSED, TaskStatus.CANCELLED,
                                  TaskStatus.FAILED}),
    TaskStatus.UPLOADING: frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED,
                                     TaskStatus.PAUSED, TaskStatus.QUEUED}),
    TaskStatus.PAUSED: frozenset({TaskStatus.QUEUED, TaskStatus.CANCELLED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.QUEUED}),
}


class SpeedMeter:
    """Bytes per second over a sliding window of a few seconds, so the figure neither jitters nor lags."""

    __slots__ = ("_samples",)
    WINDOW_S = 3.0
    SAMPLE_EVERY_S = 0.1

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def add(self, now: float, total: int) -> None:
        s = self._samples
        if s and now - s[-1][0] < self.SAMPLE_EVERY_S:
            return  # coarse samples are enough: rate() uses the current total as its end point
        s.append((now, total))
        while len(s) > 1 and now - s[0][0] > self.WINDOW_S:
            s.popleft()

    def rate(self, now: float, total: int) -> float:
        s = self._samples
        while len(s) > 1 and now - s[0][0] > self.WINDOW_S:
            s.popleft()
        if not s:
            return 0.0
        t0, b0 = s[0]
        dt = now - t0
        if dt < 0.2 or dt > 2 * self.WINDOW_S:
            return 0.0  # too soon to say, or nothing has moved for a while
        return max(0.0, (total - b0) / dt)


@dataclass(slots=True)
class Task:
    task_id: str
    batch_id: str
    path: str
    name: str
    profile: str
    bytes_total: int
    status: TaskStatus = TaskStatus.QUEUED
    bytes_uploaded: int = 0
    attempts: int = 0
    url: str | None = None
    key: str | None = None
    error: dict[str, str] | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    source: TaskSource = TaskSource.PATH
    url_expires: float | None = None  # when a presigned url stops working (re-signed before: settings/links.py)
    deduplicated: bool = False  # completed by pointing at an object this profile already had: nothing sent
    processing: dict[str, Any] | None = None  # what was done to the file before sending it (metadata stripped)
    version: int = 0  # the daemon-wide change counter at this task's last change (engine/changes.py)
    wire: tuple[int, Any] | None = field(default=None, repr=False)  # (version, JSON fragment): see views.task_json
    stored: tuple[Any, str] | None = field(default=None, repr=False)  # (processing, its JSON): see journal/journal.py
    meter: SpeedMeter | None = field(default=None, repr=False)  # while uploading only: 10,000 tasks wait or are done

    def move(self, to: TaskStatus) -> None:
        if to not in _TRANSITIONS[self.status]:
            raise InvalidState(
                f"Task {self.task_id} is {self.status}; it cannot become {to}.",
                data={"task_id": self.task_id, "status": str(self.status)},
            )
        self.status = to
        self.meter = SpeedMeter() if to is TaskStatus.UPLOADING else None

    def add_bytes(self, delta: int, now: float) -> None:
        """``now``: ``time.monotonic()``, so a laptop's sleep is not a stall nor a clock change a burst."""
        self.bytes_uploaded = min(self.bytes_total, max(0, self.bytes_uploaded + delta))
        if self.meter is not None:
            self.meter.add(now, self.bytes_uploaded)

    def speed(self, now: float) -> float:
        if self.status is not TaskStatus.UPLOADING or self.meter is None:
            return 0.0
        return self.meter.rate(now, self.bytes_uploaded)
