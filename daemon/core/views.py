"""The read model: frozen views of tasks and of a set of tasks, made in one place.

Every face reads these (the JSON-RPC results, the web UI's polls, the tray, the CLI); nobody else computes a
percent, a speed or a total. A view is built from a live ``Task`` in O(1) and never changes afterwards, so it
can cross threads (the tray) and be serialised at leisure.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from .tasks import Task, TaskSource, TaskStatus


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, as ``datetime.isoformat(timespec="milliseconds")`` writes it; a third of
    its cost, which counts when a poll serialises a hundred changed tasks."""
    if ts is None:
        return None
    whole = math.floor(ts)
    micros = round((ts - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return f"{_second(whole)}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=64)
def _second(whole: int) -> str:
    """A batch's tasks are made, started and finished within a few seconds: each second is formatted once. The
    last 64 only: tasks are read about in the order of their times. Each entry is made between that second's
    tasks and would keep their heap pages after they are cleared: ``forget_seconds``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def forget_seconds() -> None:
    """After a clear: the cached seconds, made among the cleared tasks, would keep their memory."""
    _second.cache_clear()


def percent(done: int, total: int, complete: bool = False) -> float:
    if total <= 0:
        return 100.0 if complete else 0.0
    return round(100.0 * done / total, 2)


class TaskView(NamedTuple):
    """One task as the contract shows it. A named tuple, as immutable as a frozen dataclass and five times
    quicker to make (a frozen dataclass sets each of its 25 fields through ``object.__setattr__``): views are
    made for every task of a submission and every changed task of a poll."""

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
    created_at: str  # ISO 8601 UTC, as the API shows them
    started_at: str | None
    finished_at: str | None
    profile: str
    key: str | None
    source: TaskSource
    version: int
    processing: dict[str, Any] | None = None
    deduplicated: bool = False
    url_expires_at: str | None = None

    @classmethod
    def of(cls, task: Task, now: float) -> TaskView:
        return cls(**{**task_dict(task), "status": task.status, "source": task.source})

    def to_json(self) -> dict[str, Any]:
        """The contract's ``Task``: the fields are its keys."""
        out = self._asdict()
        out["status"], out["source"] = str(self.status), str(self.source)
        return out


def task_dict(task: Task) -> dict[str, Any]:
    """The contract's ``Task`` made straight from the task (the view is made from it): a read serialises every
    task that changed, and a view with its ``_asdict`` in between cost half of that."""
    status = task.status
    speed = task.speed(time.monotonic()) if status is TaskStatus.UPLOADING else 0.0
    done, total = task.bytes_uploaded, task.bytes_total
    eta = 0.0 if status is TaskStatus.COMPLETED else round((total - done) / speed, 1) if speed > 0 else None
    return {"task_id": task.task_id, "batch_id": task.batch_id, "path": task.path, "name": task.name,
            "status": status.value, "bytes_total": total, "bytes_uploaded": done,
            "percent": percent(done, total, status is TaskStatus.COMPLETED), "speed_bps": round(speed),
            "eta_s": eta, "attempts": task.attempts, "url": task.url,
            "error": dict(task.error) if task.error else None, "created_at": iso(task.created_at) or "",
            "started_at": iso(task.started_at), "finished_at": iso(task.finished_at), "profile": task.profile,
            "key": task.key, "source": task.source.value, "version": task.version,
            "processing": dict(task.processing) if task.processing else None, "deduplicated": task.deduplicated,
            "url_expires_at": iso(task.url_expires)}


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
    total = done = 0
    speed = 0.0
    cancelled, uploading = TaskStatus.CANCELLED, TaskStatus.UPLOADING
    mono = time.monotonic()
    for t in tasks:  # a tight loop: it runs over every listed task on every poll
        status = t.status
        counts[status] += 1
        if status is not cancelled:
            total += t.bytes_total
            done += t.bytes_uploaded
            if status is uploading:
                speed += t.speed(mono)
    n = sum(counts.values())
    completed = counts[TaskStatus.COMPLETED]
    return Summary(total=n, queued=counts[TaskStatus.QUEUED], uploading=counts[uploading],
                   paused=counts[TaskStatus.PAUSED], completed=completed, failed=counts[TaskStatus.FAILED],
                   cancelled=counts[cancelled], bytes_total=total, bytes_uploaded=done,
                   percent=percent(done, total, n > 0 and completed == n), speed_bps=round(speed))


def trimmed(data: bytes) -> bytes:
    """orjson's output copied to its size: orjson hands back its working buffer (about 8 KB for a task's 900
    bytes), which a cache of 10,000 tasks would keep. ``bytes(memoryview(...))`` copies; ``bytes(...)`` would not."""
    return bytes(memoryview(data))


T = TypeVar("T")


class JsonArray(Generic[T]):
    """A long list of tasks in a reply, serialised a slice at a time as it is sent (``chunks``) rather than
    built whole: a read of 100,000 tasks is 90 MB of JSON, which made whole (a fragment per task, the reply,
    its text) took 130 MB at once beside the tasks themselves. ``fragment`` makes it whole, for a reply that
    cannot be sent in parts (over the WebSocket, in a batch)."""

    __slots__ = ("_items", "_render")
    SLICE = 256  # items serialised at once

    def __init__(self, items: Sequence[T], render: Callable[[T], Any]) -> None:
        self._items = items
        self._render = render  # an item -> what orjson serialises (a dict, a Fragment)

    def __len__(self) -> int:
        return len(self._items)

    def chunks(self) -> Iterator[bytes | memoryview]:
        items, step = self._items, self.SLICE
        yield b"["
        for i in range(0, len(items), step):
            if i:
                yield b","
            yield memoryview(orjson.dumps([self._render(x) for x in items[i:i + step]]))[1:-1]
        yield b"]"

    def fragment(self) -> orjson.Fragment:
        return orjson.Fragment(b"".join(self.chunks()))


KEEP_JSON_UP_TO = 20_000  # tasks listed, up to which each task keeps its JSON (about 650 bytes a task)


def task_json(task: Task, now: float, keep: bool = True) -> orjson.Fragment:
    """A task's JSON, kept with the task until it changes: a bulk read costs what changed, not what exists.

    An uploading task's speed and ETA move with the clock, so it is serialised afresh on every read. With
    ``keep`` false (a list longer than ``KEEP_JSON_UP_TO``, read whole rarely and incrementally as a rule)
    nothing is kept, and what was kept goes: 100,000 tasks would keep 65 MB of JSON for a read nobody makes."""
    cached = task.wire
    if cached is not None and cached[0] == task.version and task.status is not TaskStatus.UPLOADING:
        fragment: orjson.Fragment = cached[1]
        if not keep:
            task.wire = None
        return fragment
    fragment = orjson.Fragment(trimmed(orjson.dumps(task_dict(task))))
    task.wire = (task.version, fragment) if keep else None
    return fragment


@dataclass(frozen=True)
class Progress:
    """One read of the live list (or a batch): the tasks changed after ``since`` (all of them without it, or
    with ``full`` when ``since`` is older than the daemon remembers), the ids removed since, and a summary of
    the whole set. Built and serialised on the event loop, right away."""

    version: int
    summary: Summary
    removed: list[str]
    full: bool
    now: float
    _tasks: list[Task] = field(repr=False)
    listed: int = 0  # tasks in the live list: past KEEP_JSON_UP_TO, their JSON is not kept

    def views(self) -> list[TaskView]:
        return [TaskView.of(t, self.now) for t in self._tasks]

    def to_json(self, *, incremental: bool = False, lazy: bool = False) -> dict[str, Any]:
        """``lazy``: the tasks as a ``JsonArray``, serialised when the reply is sent (``api/rpc``). Each is then
        as it is when its slice goes: never older than ``version``, and one that changed meanwhile shows again
        in the next read ``since`` it, as any change after ``version`` does."""
        keep = self.listed <= KEEP_JSON_UP_TO
        tasks: Any = (JsonArray(self._tasks, functools.partial(task_json, now=self.now, keep=keep)) if lazy
                      else [task_json(t, self.now, keep) for t in self._tasks])
        out: dict[str, Any] = {"tasks": tasks, "summary": self.summary.to_json(), "version": self.version}
        if incremental or self.removed:
            out["removed"] = self.removed
        if self.full:
            out["full"] = True
        return out


@dataclass(frozen=True)
class Submitted:
    """A batch just queued, its tasks live: each shows as it is when the reply is made."""

    batch_id: str
    live: Sequence[Task]
    clock: Callable[[], float]
    listed: int = 0  # tasks in the live list: past KEEP_JSON_UP_TO, their JSON is not kept (as ``Progress``)

    @functools.cached_property
    def tasks(self) -> list[TaskView]:
        now = self.clock()
        return [TaskView.of(t, now) for t in self.live]

    def to_json(self, *, lazy: bool = False) -> dict[str, Any]:
        """``lazy``: each task serialised as the reply is sent (``JsonArray``), with no view made first: the loop
        starts the first uploads meanwhile, and each task keeps its JSON for the first read of the list."""
        if not lazy:
            return {"batch_id": self.batch_id, "tasks": [t.to_json() for t in self.tasks]}
        render = functools.partial(task_json, now=self.clock(), keep=self.listed <= KEEP_JSON_UP_TO)
        return {"batch_id": self.batch_id, "tasks": JsonArray(self.live, render)}
