"""The live list of tasks: the engine's state, and every way of reading it.

``Engine`` (engine.py) schedules and changes tasks; this base holds what it changes (jobs, batches, the change
counter and the indexes behind cheap reads) and answers the reads, so each file has one concern.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.tasks import ACTIVE, Task
from ..core.views import Submitted, TaskView
from ..errors import NotFound
from ..files.paths import CheckedFile
from ..journal.journal import Journal
from .changes import ChangeLog
from .index import LiveIndex
from .worker import Batch, Job


class TaskList:
    def __init__(self, *, journal: Journal, changes: ChangeLog, clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.changes = changes
        self.clock = clock
        self.index = LiveIndex()
        self._jobs: dict[str, Job] = {}
        self._batches: dict[str, Batch] = {}

    # -- reading -------------------------------------------------------------------------------------------
    def listed(self) -> int:
        """How many tasks the live list holds."""
        return len(self._jobs)

    def get(self, task_id: str) -> Task:
        job = self._jobs.get(task_id)
        if job is None:
            raise NotFound(f"No task {task_id!r}; it may have been cleared.", data={"task_id": task_id})
        return job.task

    def tasks(self, batch_id: str | None = None) -> list[Task]:
        if batch_id is None:
            return [j.task for j in self._jobs.values()]
        return [self._jobs[t].task for t in self.batch(batch_id).task_ids if t in self._jobs]

    def batch(self, batch_id: str) -> Batch:
        """A listed batch; NotFound when there is none by that id."""
        batch = self._batches.get(batch_id)
        if batch is None:
            raise NotFound(f"No batch {batch_id!r}; it may have been cleared.", data={"batch_id": batch_id})
        return batch

    def finished_batches(self, batch_id: str | None = None) -> list[tuple[str, list[Task]]]:
        """Listed batches (or the one named) with nothing left to do, with their tasks."""
        batches = [self._batches[batch_id]] if batch_id in self._batches else [] if batch_id else self._batches.values()
        return [(b.batch_id, [self._jobs[t].task for t in b.task_ids if t in self._jobs])
                for b in batches if b.unfinished == 0 and b.task_ids]

    def checked(self, task_id: str) -> CheckedFile:
        """The file a task sends."""
        return self._job(task_id).checked

    def view(self, task: Task) -> TaskView:
        return TaskView.of(task, self.clock())

    def submitted(self, batch_id: str, tasks: list[Task]) -> Submitted:
        """Tasks just queued, as the reply to their call shows them."""
        return Submitted(batch_id, tasks, self.clock, self.listed())

    def busy_with(self, profile: str) -> int:
        """Unfinished tasks that use a profile (a profile in use cannot be deleted)."""
        return sum(1 for j in self._jobs.values() if j.task.profile == profile and j.task.status in ACTIVE)

    def active_count(self) -> int:
        """Queued, uploading and paused tasks: what counts against [security] max_queued_files."""
        return self.index.unfinished

    def _batch(self, batch_id: str, batch_size: int) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            batch = self._batches[batch_id] = Batch(batch_id, batch_size)
        return batch

    def _job(self, task_id: str) -> Job:
        self.get(task_id)
        return self._jobs[task_id]

    def compact(self) -> None:
        """The tables made anew at their size, after many tasks left (a dict never shrinks: those of 100,000
        tasks kept 20 MB once cleared). Called once the forgotten tasks are freed: tables made while they
        still lived would sit among their memory and keep it from going back to the system."""
        self._jobs = dict(self._jobs)
        self.index.rebuild()

    def _drop(self, gone: list[str]) -> list[Job]:
        """Tasks leave the list, its indexes and their batches (``compact`` after many)."""
        jobs = [self._jobs.pop(tid) for tid in gone]
        for job in jobs:
            self.index.remove(job.task)
        for batch in {id(j.batch): j.batch for j in jobs}.values():  # each list rebuilt once, not id by id
            batch.task_ids = [t for t in batch.task_ids if t in self._jobs]
            if not batch.task_ids:
                self._batches.pop(batch.batch_id, None)
        return jobs

    def _touch(self, task: Task) -> None:
        task.version = self.changes.bump()
        self.index.touch(task)

    def _save(self, task: Task, *, passing: bool = False) -> None:
        """A change to a task: a new version for incremental readers, the totals, and the journal (``passing``:
        a state a restart need not see, ``Journal.update``)."""
        self._touch(task)
        self.index.saved(task)
        self.journal.update(task, passing=passing)

