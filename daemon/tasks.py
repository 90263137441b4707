"""Upload tasks: named states, legal transitions, and the snapshot the API serves.

The engine owns the live ``Task`` objects and is the only writer; readers get ``snapshot()`` dicts built in
O(1) from plain fields, so polling never waits on an upload.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidState


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


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SpeedMeter:
    """Bytes per second over a sliding window of a few seconds, so the figure neither jitters nor lags."""

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


@dataclass
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
    source: str = "path"  # "path" (upload_images) or "browser" (bytes streamed into the spool)
    meter: SpeedMeter = field(default_factory=SpeedMeter, repr=False)

    def move(self, to: TaskStatus) -> None:
        if to not in _TRANSITIONS[self.status]:
            raise InvalidState(
                f"Task {self.task_id} is {self.status}; it cannot become {to}.",
                data={"task_id": self.task_id, "status": str(self.status)},
            )
        self.status = to
        if to is TaskStatus.UPLOADING:
            self.meter.reset()

    def add_bytes(self, delta: int, now: float) -> None:
        self.bytes_uploaded = min(self.bytes_total, max(0, self.bytes_uploaded + delta))
        self.meter.add(now, self.bytes_uploaded)

    def speed(self, now: float) -> float:
        if self.status is not TaskStatus.UPLOADING:
            return 0.0
        return self.meter.rate(now, self.bytes_uploaded)

    def snapshot(self, now: float) -> dict[str, Any]:
        speed = self.speed(now)
        left = self.bytes_total - self.bytes_uploaded
        if self.status is TaskStatus.COMPLETED:
            eta: float | None = 0.0
        elif speed > 0:
            eta = round(left / speed, 1)
        else:
            eta = None
        return {
            "task_id": self.task_id,
            "batch_id": self.batch_id,
            "path": self.path,
            "name": self.name,
            "status": str(self.status),
            "bytes_total": self.bytes_total,
            "bytes_uploaded": self.bytes_uploaded,
            "percent": percent(self.bytes_uploaded, self.bytes_total, self.status is TaskStatus.COMPLETED),
            "speed_bps": round(speed),
            "eta_s": eta,
            "attempts": self.attempts,
            "url": self.url,
            "error": self.error,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "profile": self.profile,
            "key": self.key,
        }


def percent(done: int, total: int, complete: bool = False) -> float:
    if total <= 0:
        return 100.0 if complete else 0.0
    return round(100.0 * done / total, 2)


def summarize(tasks: list[Task], now: float) -> dict[str, Any]:
    counts = dict.fromkeys((str(s) for s in TaskStatus), 0)
    total = done = 0
    speed = 0.0
    for t in tasks:
        counts[str(t.status)] += 1
        if t.status is not TaskStatus.CANCELLED:
            total += t.bytes_total
            done += t.bytes_uploaded
        speed += t.speed(now)
    return {"total": len(tasks), **counts, "bytes_total": total, "bytes_uploaded": done,
            "percent": percent(done, total, bool(tasks) and counts["completed"] == len(tasks)),
            "speed_bps": round(speed)}
