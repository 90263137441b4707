"""The read model: frozen views of tasks and of a set of tasks, made in one place.

Every face reads these (the JSON-RPC results, the web UI's polls, the tray, the CLI); nobody else computes a
percent, a speed or a total. A view is built from a live ``Task`` in O(1) and never changes afterwards, so it
can cross threads (the tray) and be serialised at leisure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .tasks import Task, TaskSource, TaskStatus


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def percent(done: int, total: int, complete: bool = False) -> float:
    if total <= 0:
        return 100.0 if complete else 0.0
    return round(100.0 * done / total, 2)


@dataclass(frozen=True, slots=True)
class TaskView:
    task_id: str
    batch_id: str
    path: str
    name: str
    status: TaskStatus
    bytes_total: int
    bytes_uploaded: int
    percent: float
    speed_bps: int
    eta_s: float | None
    attempts: int
    url: str | None
    error: dict[str, str] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    profile: str
    key: str | None
    source: TaskSource

    @classmethod
    def of(cls, task: Task, now: float) -> TaskView:
        speed = task.speed(now)
        if task.status is TaskStatus.COMPLETED:
            eta: float | None = 0.0
        elif speed > 0:
            eta = round((task.bytes_total - task.bytes_uploaded) / speed, 1)
        else:
            eta = None
        return cls(task_id=task.task_id, batch_id=task.batch_id, path=task.path, name=task.name,
                   status=task.status, bytes_total=task.bytes_total, bytes_uploaded=task.bytes_uploaded,
                   percent=percent(task.bytes_uploaded, task.bytes_total, task.status is TaskStatus.COMPLETED),
                   speed_bps=round(speed), eta_s=eta, attempts=task.attempts, url=task.url,
                   error=dict(task.error) if task.error else None, created_at=task.created_at,
                   started_at=task.started_at, finished_at=task.finished_at, profile=task.profile, key=task.key,
                   source=task.source)

    def to_json(self) -> dict[str, Any]:
        """The contract's ``Task``."""
        return {"task_id": self.task_id, "batch_id": self.batch_id, "path": self.path, "name": self.name,
                "status": str(self.status), "bytes_total": self.bytes_total, "bytes_uploaded": self.bytes_uploaded,
                "percent": self.percent, "speed_bps": self.speed_bps, "eta_s": self.eta_s, "attempts": self.attempts,
                "url": self.url, "error": self.error, "created_at": iso(self.created_at),
                "started_at": iso(self.started_at), "finished_at": iso(self.finished_at), "profile": self.profile,
                "key": self.key, "source": str(self.source)}


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts and totals over a set of tasks: the UI's header, the tray's title, the CLI's progress line."""

    total: int = 0
    queued: int = 0
    uploading: int = 0
    paused: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    bytes_total: int = 0
    bytes_uploaded: int = 0
    percent: float = 0.0
    speed_bps: int = 0

    @property
    def active(self) -> int:
        """Tasks sending or waiting to send."""
        return self.queued + self.uploading

    @property
    def unfinished(self) -> int:
        return self.queued + self.uploading + self.paused

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "queued": self.queued, "uploading": self.uploading, "paused": self.paused,
                "completed": self.completed, "failed": self.failed, "cancelled": self.cancelled,
                "bytes_total": self.bytes_total, "bytes_uploaded": self.bytes_uploaded, "percent": self.percent,
                "speed_bps": self.speed_bps}


def summarize(tasks: Iterable[Task], now: float) -> Summary:
    """The one rule for totals: cancelled tasks count in ``total`` but not in the bytes."""
    counts = dict.fromkeys(TaskStatus, 0)
    n = total = done = 0
    speed = 0.0
    for t in tasks:
        n += 1
        counts[t.status] += 1
        if t.status is not TaskStatus.CANCELLED:
            total += t.bytes_total
            done += t.bytes_uploaded
        speed += t.speed(now)
    completed = counts[TaskStatus.COMPLETED]
    return Summary(total=n, queued=counts[TaskStatus.QUEUED], uploading=counts[TaskStatus.UPLOADING],
                   paused=counts[TaskStatus.PAUSED], completed=completed, failed=counts[TaskStatus.FAILED],
                   cancelled=counts[TaskStatus.CANCELLED], bytes_total=total, bytes_uploaded=done,
                   percent=percent(done, total, n > 0 and completed == n), speed_bps=round(speed))
