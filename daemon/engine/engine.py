"""The transfer engine: owns every task, decides what runs, and is the only writer of task state.

A dispatcher starts queued tasks in order while their slots fit (``TransferSettings.slots``: by default up to
64 small files at once, or 8 larger ones, or a mix; ``max_concurrent`` when the user set it) and fewer than
``batch_size`` of their own batch are in flight. Each running task is an asyncio task of its own (a *worker*):
it opens the checked file, sends it through its profile's provider, and retries transient failures with
backoff. Pause, cancel and shutdown cancel the worker, which stops the bytes at once; what happens next is
decided by the status the caller already set (paused keeps finished parts, cancelled aborts them, an
interrupted upload goes back to the queue). Every state change is journalled before the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from functools import partial

from ..core.config import SettingsBox
from ..core.events import BatchFinished, EventBus, TaskFinished
from ..core.retry import Backoff
from ..core.tasks import FINISHED, Task, TaskSource, TaskStatus, task_ids
from ..errors import ConfigError, InvalidState, PathRefused, PixliftError, TransferError
from ..files.paths import CheckedFile, PathChecker
from ..files.spool import Spool
from ..images.metadata_bounds import ParseMarks
from ..journal.journal import Journal
from ..providers import MultipartState, Provider
from ..providers.registry import ProviderPool
from ..settings.links import Links
from .changes import ChangeLog
from .cleanup import Cleanup
from .processing import copies, prepare_job, unsurvived
from .task_list import TaskList
from .worker import Job, attempts, digests_for

log = logging.getLogger(__name__)


class Engine(TaskList):
    def __init__(self, *, config: SettingsBox, providers: ProviderPool, journal: Journal, changes: ChangeLog,
                 events: EventBus, cleanup: Cleanup, spool: Spool, clock: Callable[[], float] = time.time,
                 marks: ParseMarks | None = None) -> None:
        super().__init__(journal=journal, changes=changes, clock=clock)
        self.config = config
        self.providers = providers
        self.cleanup = cleanup
        self.spool = spool
        self.marks = marks or ParseMarks(spool.root / "parsing")  # parses under way, to survive a crash in one
        self.links = Links(providers, clock)
        self.events = events
        self._used = 0  # slots of the files in flight (TransferSettings.slots_of)
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the journal: finished tasks stay listed, interrupted ones go back to the queue, except one whose
        file was being parsed when the daemon stopped: it is failed, not parsed again (nothing is parsed here)."""
        died_in = self.marks.left()
        for stored in self.journal.load():
            task = stored.task
            try:
                checked = CheckedFile.from_json(stored.checked)
            except (KeyError, TypeError):
                continue
            task.version = self.changes.version
            self.index.saved(task)
            batch = self._batch(task.batch_id, stored.batch_size)
            job = Job(task, checked, batch, MultipartState.restored(stored.multipart),
                      multipart_journalled=stored.multipart is not None)
            with contextlib.suppress(KeyError, TypeError):
                job.original = CheckedFile.from_json(stored.original) if stored.original else None
            self._jobs[task.task_id] = job
            self.links.keep(task, self.config.current.profiles.get(task.profile))
            batch.task_ids.append(task.task_id)
            batch.unfinished += not task.status.finished
            if task.status is TaskStatus.UPLOADING:
                task.status = TaskStatus.QUEUED  # interrupted by a crash or a restart: send it again
            if task.status in (TaskStatus.QUEUED, TaskStatus.PAUSED):
                task.bytes_uploaded = job.multipart.bytes_done(task.bytes_total)
                self._save(task)
            if task.status is TaskStatus.QUEUED and task.task_id in died_in:
                self._fail(job, unsurvived(task.name))
            elif task.status is TaskStatus.QUEUED:
                batch.queue.append(task.task_id)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="pixlift-dispatcher")
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; interrupted uploads are journalled as queued (keeping finished parts)."""
        self._closing = True
        self._wake.set()
        if self._dispatcher:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        workers = [j.worker for j in self._jobs.values() if j.worker is not None]
        for job in self._jobs.values():
            job.stop()
        if workers:
            await asyncio.wait(workers, timeout=timeout)

    # -- submitting ----------------------------------------------------------------------------------------
    def submit(self, files: list[CheckedFile], *, profile: str, batch_size: int,
               source: TaskSource = TaskSource.PATH, names: list[str] | None = None,
               batch_id: str | None = None) -> tuple[str, list[Task]]:
        """Queue files as one batch (or add them to ``batch_id``, as the browser does file by file).

        Journal first: the tasks exist (in memory, for the dispatcher) only once their rows are committed, in
        one transaction; when they cannot be, JournalUnavailable is raised and nothing is queued."""
        batch_id = batch_id or uuid.uuid4().hex
        now = self.clock()
        ids = task_ids(len(files))
        tasks = [Task(task_id=ids[i], batch_id=batch_id, path="" if source.spooled else checked.path,
                      name=names[i] if names else checked.name, profile=profile, bytes_total=checked.size,
                      created_at=now, source=source) for i, checked in enumerate(files)]
        self.journal.add([(task, batch_size, checked.to_json()) for task, checked in zip(tasks, files, strict=True)])
        batch = self._batch(batch_id, batch_size)
        for task, checked in zip(tasks, files, strict=True):
            self._jobs[task.task_id] = Job(task, checked, batch)
            self._touch(task)
            self.index.saved(task)
            batch.task_ids.append(task.task_id)
            batch.queue.append(task.task_id)
            batch.unfinished += 1
        self._wake.set()
        return batch_id, tasks

    # -- acting --------------------------------------------------------------------------------------------
    def cancel(self, task_id: str) -> Task:
        job = self._job(task_id)
        task = job.task
        if task.status in FINISHED:
            raise InvalidState(f"Task {task_id} is already {task.status}; only queued, uploading or paused tasks "
                               "can be cancelled.", data={"task_id": task_id, "status": str(task.status)})
        self._move(job, TaskStatus.CANCELLED)
        task.finished_at = self.clock()
        task.bytes_uploaded = 0
        self._save(task)
        if job.worker is not None:
            job.stop()  # its release aborts the multipart upload
        else:
            self._abandon(job)
        self._finished(job)
        return task

    def retry(self, task_id: str, checker: PathChecker) -> Task:
        job = self._job(task_id)
        task = job.task
        if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise InvalidState(f"Task {task_id} is {task.status}; only failed or cancelled tasks can be retried.",
                               data={"task_id": task_id, "status": str(task.status)})
        if not task.source.spooled:
            result = checker.check(task.path)
            if isinstance(result, str):
                raise PathRefused([{"path": task.path, "reason": result}])
            if result.identity != (job.original or job.checked).identity:
                task.key = None  # new content: a new key (the hash in it changes)
                self._abandon(job)
                if job.original is not None:  # its edited copy is of the old content
                    self.spool.drop(job.checked)
                    job.checked, job.original, task.processing = job.original, None, None
                task.bytes_total = result.size
            if job.original is None:
                job.checked = result
            else:
                job.original = result
            self.journal.update_prepared(task, job.checked.to_json(), job.original.to_json() if job.original else None)
        elif not os.path.exists(job.checked.path):
            raise InvalidState(f"The bytes of {task.name} are gone (cleared); add the file again.",
                               data={"task_id": task_id})
        self._move(job, TaskStatus.QUEUED)
        task.error = task.url = None
        task.finished_at = task.started_at = None
        task.bytes_uploaded = 0
        self._save(task)
        job.batch.queue.append(task_id)
        self._wake.set()
        return task

    def _targets(self, task_id: str | None, verb: str) -> list[Job]:
        """One named task (refused when finished), or every task."""
        if not task_id:
            return list(self._jobs.values())
        job = self._job(task_id)
        if job.task.status in FINISHED:
            raise InvalidState(f"Task {task_id} is {job.task.status}; it cannot be {verb}.",
                               data={"task_id": task_id, "status": str(job.task.status)})
        return [job]

    def pause(self, task_id: str | None = None) -> int:
        count = 0
        for job in self._targets(task_id, "paused"):
            if job.task.status in (TaskStatus.QUEUED, TaskStatus.UPLOADING):
                self._move(job, TaskStatus.PAUSED)
                job.stop()
                job.task.bytes_uploaded = job.multipart.bytes_done(job.task.bytes_total)
                self._save(job.task)
                count += 1
        return count

    def resume(self, task_id: str | None = None) -> int:
        count = 0
        for job in self._targets(task_id, "resumed"):
            if job.task.status is TaskStatus.PAUSED:  # a worker still unwinding re-queues it on release
                self._move(job, TaskStatus.QUEUED)
                self._save(job.task)
                job.batch.queue.append(job.task.task_id)
                count += 1
        self._wake.set()
        return count

    def clear(self) -> list[Job]:
        """Forget finished tasks (history keeps their links); active ones stay. Returns what was forgotten."""
        return self._forget([tid for tid, j in self._jobs.items() if j.task.status in FINISHED and j.worker is None])

    def expire(self, finished_before: float) -> list[Job]:
        """Forget completed and cancelled tasks that finished before a time; failed ones wait to be retried."""
        return self._forget([tid for tid, j in self._jobs.items()
                             if j.task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED) and j.worker is None
                             and (j.task.finished_at or 0) < finished_before])

    def _forget(self, gone: list[str]) -> list[Job]:
        for tid in gone:
            self._abandon(self._jobs[tid])  # a failed task's kept parts: nobody will retry it now
        jobs = self._drop(gone)
        self.journal.remove(gone)
        self.changes.remove(gone)
        return jobs

    # -- running -------------------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            self._start_queued()

    def _start_queued(self) -> None:
        """Queued tasks start while there are slots. Apart from ``_dispatch`` so that the last job and batch
        looked at are not kept while it waits: they would outlive a clear and keep its memory."""
        transfers = self.config.current.transfers
        budget = transfers.slots
        for batch in list(self._batches.values()):
            while self._used < budget and batch.running < batch.batch_size and batch.queue:
                job = self._jobs.get(batch.queue[0])
                if job is None or job.task.status is not TaskStatus.QUEUED or job.worker is not None:
                    batch.queue.popleft()
                    continue
                slots = min(budget, transfers.slots_of(job.task.bytes_total))
                if self._used + slots > budget:
                    break
                batch.queue.popleft()
                self._start(job, slots)
            if self._used >= budget:
                break

    def _start(self, job: Job, slots: int) -> None:
        self._move(job, TaskStatus.UPLOADING)
        job.task.started_at = self.clock()
        job.task.error = None
        self._save(job.task, passing=True)  # a restart queues an uploading task again
        job.slots = slots
        self._used += slots
        job.batch.running += 1
        job.worker = asyncio.create_task(self._run(job), name=f"upload-{job.task.task_id}")

    async def _run(self, job: Job) -> None:
        task = job.task
        transfers = self.config.current.transfers
        backoff = Backoff(transfers.attempts, transfers.backoff_base_s, transfers.backoff_max_s)
        try:
            dedup = self.config.current.images_for(task.profile).dedup
            with self.providers.lease(task.profile) as provider:
                job.drop_on_fail = not provider.keeps_failed_uploads  # no half file left in a user's folder
                profile = self.config.current.profile(task.profile)
                find_copy = copies(self.journal, provider, task) if dedup else None
                await self._prepare(job, digests_for(job, provider, profile, find_copy), provider)
                await attempts(job, provider, profile, backoff, outage_tolerance_s=transfers.outage_tolerance_s,
                               on_bytes=partial(self._on_bytes, task), save=partial(self._save, task, passing=True),
                               save_multipart=partial(self._save_multipart, job), find_copy=find_copy)
            await self.links.sign(task)
            finished_at = self.clock()
            self.journal.complete(task, finished_at, job.sha256, multipart=job.multipart_journalled)
            await self.journal.durable()  # reported as uploaded only once that is on disk
        except asyncio.CancelledError:
            self._unwind(job)
            return
        except (TransferError, ConfigError) as exc:
            self._fail(job, exc)
            return
        except Exception as exc:
            log.exception("unexpected error uploading %s", task.name)
            self._fail(job, TransferError(f"Internal error ({type(exc).__name__}: {exc}); this is a bug in "
                                                "pixlift, please report it with the daemon's log."))
            return
        finally:
            self._release(job)
        self._complete(job, finished_at)

    async def refresh_links(self) -> None:
        """Sign again the links of completed tasks that are due (settings/links.py), before they are read."""
        await self.links.refresh(lambda tid: self._jobs[tid].task if tid in self._jobs else None, self._relinked)

    def _relinked(self, task: Task) -> None:
        self._touch(task)
        self.journal.update(task)

    async def _prepare(self, job: Job, digests: frozenset[str], provider: Provider) -> None:
        """Once per task, before it is named: its metadata removed into an edited copy (processing.py)."""
        before = job.checked
        if await prepare_job(job, self.config.current.images_for(job.task.profile), self.spool, digests,
                             self.marks, provider.part_checksums(job.checked.size)):
            if job.checked is not before:  # an edited copy goes; a note alone is saved with the task's state
                self.journal.update_prepared(job.task, job.checked.to_json(),
                                             job.original.to_json() if job.original else None)
            self._save(job.task, passing=True)

    def _on_bytes(self, task: Task, delta: int) -> None:
        if task.status is TaskStatus.UPLOADING:
            task.add_bytes(delta, time.monotonic())  # speed from the monotonic clock: sleep and wake
            self._touch(task)

    def _save_multipart(self, job: Job) -> None:
        state = job.multipart
        job.multipart_journalled = bool(state.upload_id)
        self.journal.save_multipart(job.task.task_id, state.to_json() if state.upload_id else None)

    def _release(self, job: Job) -> None:
        """The worker is gone. Act on what happened to the task while it unwound."""
        job.worker = None
        job.close_source()  # opened by prepare_job, when the worker ended before sending it
        self._used -= job.slots
        job.batch.running -= 1
        status = job.task.status
        if status is TaskStatus.CANCELLED or (status is TaskStatus.FAILED and job.drop_on_fail):
            self._abandon(job)  # leave no parts behind (a failed task keeps its parts for a retry)
        elif status is TaskStatus.QUEUED and not self._closing:
            job.batch.queue.appendleft(job.task.task_id)  # resumed (or retried) before it finished unwinding
        self._wake.set()

    def _unwind(self, job: Job) -> None:
        """The worker was cancelled: finish according to the status its canceller set."""
        task = job.task
        if task.status is TaskStatus.UPLOADING:  # shutdown: back to the queue for the next start
            self._move(job, TaskStatus.QUEUED)
        task.bytes_uploaded = 0 if task.status is TaskStatus.CANCELLED else job.multipart.bytes_done(task.bytes_total)
        self._save(task)

    def _abandon(self, job: Job) -> None:
        """The task's multipart upload will not go on: the clean-up aborts it, durably, until the store confirms."""
        state = job.multipart
        if state.started and state.key and state.upload_id:
            self.cleanup.abort(job.task.profile, state.key, state.upload_id)
            state.reset()
            job.task.bytes_uploaded = 0  # nothing of it is kept now
            self._save_multipart(job)

    def _fail(self, job: Job, exc: PixliftError) -> None:
        task = job.task
        self._move(job, TaskStatus.FAILED)
        task.error = exc.to_dict()
        task.finished_at = self.clock()
        self._save(task)
        log.warning("%s failed: %s", task.name, exc.message)
        self._finished(job)

    def _complete(self, job: Job, finished_at: float) -> None:
        """The upload is done and journalled (``Journal.complete``): now in memory, and told."""
        task = job.task
        self._move(job, TaskStatus.COMPLETED)
        task.bytes_uploaded = task.bytes_total
        task.finished_at = finished_at
        task.error = None
        job.completed()
        self._touch(task)
        self.index.saved(task)
        self._finished(job)

    def _move(self, job: Job, to: TaskStatus) -> None:
        """Every transition passes here (Task.move refuses illegal ones), keeping the batch's count true."""
        was_finished = job.task.status.finished
        job.task.move(to)
        self._touch(job.task)
        if was_finished != to.finished:
            job.batch.unfinished += -1 if to.finished else 1

    def _finished(self, job: Job) -> None:
        """Tell subscribers a task is done, and its batch when that was the last of it."""
        task, batch = job.task, job.batch
        self.events.publish(TaskFinished(task.task_id, task.batch_id, task.status, partial(self.view, task)))
        if batch.unfinished == 0:
            self.events.publish(BatchFinished(batch.batch_id, lambda: tuple(
                self.view(self._jobs[t].task) for t in batch.task_ids if t in self._jobs)))
