"""The live list's indexes, so that a read costs what changed, not what exists.

- Tasks by last change (newest last): an incremental read walks back from the newest until ``since``.
- Totals of the finished tasks, for the whole list and for each batch, kept as they finish, leave or are
  removed: a summary adds the few unfinished tasks to them instead of walking thousands of finished ones on
  every poll.

The engine tells the index about every change (``touch``) and every saved state (``saved``), on the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.tasks import Task, TaskStatus
from ..core.views import Summary, percent, summarize


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


_COMPLETED = TaskStatus.COMPLETED


class LiveIndex:
    def __init__(self) -> None:
        # A plain dict, kept in order of change by taking a task out and putting it back at the end: an
        # OrderedDict keeps a node of its own for every entry (about 60 bytes a task, 6 MB for 100,000).
        self._by_change: dict[str, Task] = {}
        self._unfinished: dict[str, Task] = {}
        self._finished = _Totals()
        # What each finished task adds to the totals. A completed task never changes again, so one with all its
        # bytes is counted as its status alone, its bytes read back from it: no tuple of its own (64 bytes).
        self._counted: dict[str, tuple[TaskStatus, int, int] | TaskStatus] = {}
        self._batch_unfinished: dict[str, dict[str, Task]] = {}
        self._batch_finished: dict[str, _Totals] = {}

    def touch(self, task: Task) -> None:
        """The task just took a new version."""
        by_change = self._by_change
        by_change.pop(task.task_id, None)
        by_change[task.task_id] = task

    def saved(self, task: Task) -> None:
        """The task's state is settled (after a transition): count it where it now belongs."""
        self._uncount(task)
        if task.status.finished:
            self._unfinished.pop(task.task_id, None)
            self._batch_unfinished.get(task.batch_id, {}).pop(task.task_id, None)
            part = (task.status, task.bytes_total, task.bytes_uploaded)
            whole = task.status is _COMPLETED and task.bytes_uploaded == task.bytes_total
            self._counted[task.task_id] = _COMPLETED if whole else part
            self._finished.add(part, +1)
            self._batch_finished.setdefault(task.batch_id, _Totals()).add(part, +1)
        else:
            self._unfinished[task.task_id] = task
            self._batch_unfinished.setdefault(task.batch_id, {})[task.task_id] = task

    def _uncount(self, task: Task) -> None:
        old = self._counted.pop(task.task_id, None)
        if old is _COMPLETED:
            old = (_COMPLETED, task.bytes_total, task.bytes_total)
        if isinstance(old, tuple):
            self._finished.add(old, -1)
            self._batch_finished[task.batch_id].add(old, -1)

    def remove(self, task: Task) -> None:
        self._by_change.pop(task.task_id, None)
        self._unfinished.pop(task.task_id, None)
        self._uncount(task)
        live = self._batch_unfinished.get(task.batch_id)
        if live is not None:
            live.pop(task.task_id, None)
        fin = self._batch_finished.get(task.batch_id)
        if not live and (fin is None or not any(fin.counts.values())):  # the batch's last task left
            self._batch_unfinished.pop(task.batch_id, None)
            self._batch_finished.pop(task.batch_id, None)

    def rebuild(self) -> None:
        """Every table made anew at the size of what it holds (after many tasks left: a dict never shrinks)."""
        self._by_change = dict(self._by_change)
        self._unfinished = dict(self._unfinished)
        self._counted = dict(self._counted)
        self._batch_unfinished = {b: dict(live) for b, live in self._batch_unfinished.items()}

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

    def summary(self, now: float, batch_id: str | None = None) -> Summary:
        """The whole list's (or a batch's) summary: the finished totals plus the unfinished tasks, as
        ``summarize`` counts."""
        if batch_id is None:
            live, fin = summarize(self._unfinished.values(), now), self._finished
        else:
            live = summarize(self._batch_unfinished.get(batch_id, {}).values(), now)
            fin = self._batch_finished.get(batch_id) or _Totals()
        total = live.bytes_total + fin.bytes_total
        done = live.bytes_uploaded + fin.bytes_uploaded
        completed = fin.counts[TaskStatus.COMPLETED]
        n = live.total + sum(fin.counts.values())
        return Summary(total=n, queued=live.queued, uploading=live.uploading, paused=live.paused,
                       completed=completed, failed=fin.counts[TaskStatus.FAILED],
                       cancelled=fin.counts[TaskStatus.CANCELLED], bytes_total=total, bytes_uploaded=done,
                       percent=percent(done, total, n > 0 and completed == n), speed_bps=live.speed_bps)
