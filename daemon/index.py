"""The live list's indexes, so that a read costs what changed, not what exists.

- Tasks by last change (newest last): an incremental read walks back from the newest until ``since``.
- Totals of the finished tasks, kept as they finish, leave or are removed: a summary adds the few unfinished
  tasks to them instead of walking thousands of finished ones on every poll.

The engine tells the index about every change (``touch``) and every saved state (``saved``), on the loop.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .tasks import Task, TaskStatus
from .views import Summary, percent, summarize


@dataclass
class _Totals:
    counts: dict[TaskStatus, int] = field(default_factory=lambda: dict.fromkeys(TaskStatus, 0))
    bytes_total: int = 0
    bytes_uploaded: int = 0

    def add(self, part: tuple[TaskStatus, int, int], sign: int) -> None:
        status, total, done = part
        self.counts[status] += sign
        if status is not TaskStatus.CANCELLED:
            self.bytes_total += sign * total
            self.bytes_uploaded += sign * done


class LiveIndex:
    def __init__(self) -> None:
        self._by_change: OrderedDict[str, Task] = OrderedDict()
        self._unfinished: dict[str, Task] = {}
        self._finished = _Totals()
        self._counted: dict[str, tuple[TaskStatus, int, int]] = {}  # what each finished task adds to the totals

    def touch(self, task: Task) -> None:
        """The task just took a new version."""
        self._by_change[task.task_id] = task
        self._by_change.move_to_end(task.task_id)

    def saved(self, task: Task) -> None:
        """The task's state is settled (after a transition): count it where it now belongs."""
        old = self._counted.pop(task.task_id, None)
        if old is not None:
            self._finished.add(old, -1)
        if task.status.finished:
            self._unfinished.pop(task.task_id, None)
            part = (task.status, task.bytes_total, task.bytes_uploaded)
            self._counted[task.task_id] = part
            self._finished.add(part, +1)
        else:
            self._unfinished[task.task_id] = task

    def remove(self, task: Task) -> None:
        self._by_change.pop(task.task_id, None)
        self._unfinished.pop(task.task_id, None)
        old = self._counted.pop(task.task_id, None)
        if old is not None:
            self._finished.add(old, -1)

    @property
    def unfinished(self) -> int:
        return len(self._unfinished)

    def changed_since(self, since: int) -> list[Task]:
        """Tasks whose last change is after ``since``, oldest change first."""
        out = []
        for task in reversed(self._by_change.values()):
            if task.version <= since:
                break
            out.append(task)
        out.reverse()
        return out

    def summary(self, now: float) -> Summary:
        """The whole list's summary: the finished totals plus the unfinished tasks, as ``summarize`` counts."""
        live = summarize(self._unfinished.values(), now)
        fin = self._finished
        total = live.bytes_total + fin.bytes_total
        done = live.bytes_uploaded + fin.bytes_uploaded
        completed = fin.counts[TaskStatus.COMPLETED]
        n = live.total + sum(fin.counts.values())
        return Summary(total=n, queued=live.queued, uploading=live.uploading, paused=live.paused,
                       completed=completed, failed=fin.counts[TaskStatus.FAILED],
                       cancelled=fin.counts[TaskStatus.CANCELLED], bytes_total=total, bytes_uploaded=done,
                       percent=percent(done, total, n > 0 and completed == n), speed_bps=live.speed_bps)
