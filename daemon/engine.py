"""The transfer engine: owns every task, decides what runs, and is the only writer of task state.

A dispatcher starts queued tasks in order while fewer than ``max_concurrent`` files are in flight overall and
fewer than ``batch_size`` for their own batch. Each running task is an asyncio task of its own (a *worker*):
it opens the checked file, sends it through its profile's provider, and retries transient failures with
backoff. Pause, cancel and shutdown cancel the worker, which stops the bytes at once; what happens next is
decided by the status the caller already set (paused keeps finished parts, cancelled aborts them, an
interrupted upload goes back to the queue). Every state change is journalled before the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from .config import SettingsBox
from .errors import ConfigError, InvalidState, NotFound, PathRefused, PixliftError, TransferError
from .journal import Journal
from .keys import needs_hash, render_key
from .providers import ProviderPool
from .providers.base import MultipartState
from .retry import Backoff
from .sources import CheckedFile, Identity, PathChecker, Source
from .tasks import ACTIVE, FINISHED, Task, TaskStatus, summarize

log = logging.getLogger(__name__)
Listener = Callable[[str, Task], None]  # ("completed" | "failed" | "batch_finished", task)


@dataclass
class Batch:
    batch_id: str
    batch_size: int
    queue: deque[str] = field(default_factory=deque)
    running: int = 0
    task_ids: list[str] = field(default_factory=list)
    unfinished: int = 0  # kept by Engine._move, so "is the batch done?" costs nothing per completion


@dataclass
class Job:
    """Engine-private state of one task: what to send, and the worker sending it."""

    task: Task
    checked: CheckedFile
    batch: Batch
    multipart: MultipartState = field(default_factory=MultipartState)
    worker: asyncio.Task[None] | None = None
    source: Source | None = None


class Engine:
    def __init__(self, *, config: SettingsBox, providers: ProviderPool, journal: Journal, spool: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.providers = providers
        self.journal = journal
        self.spool = spool
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._batches: dict[str, Batch] = {}
        self._running = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self.listeners: list[Listener] = []

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the journal: finished tasks stay listed, interrupted ones go back to the queue."""
        for stored in self.journal.load():
            task = stored.task
            try:
                checked = _checked_from_json(stored.checked)
            except (KeyError, TypeError):
                continue
            batch = self._batch(task.batch_id, stored.batch_size)
            job = Job(task, checked, batch, MultipartState.from_json(stored.multipart))
            self._jobs[task.task_id] = job
            batch.task_ids.append(task.task_id)
            batch.unfinished += not task.status.finished
            if task.status is TaskStatus.UPLOADING:
                task.status = TaskStatus.QUEUED  # interrupted by a crash or a restart: send it again
            if task.status in (TaskStatus.QUEUED, TaskStatus.PAUSED):
                task.bytes_uploaded = job.multipart.bytes_done(task.bytes_total)
                self.journal.update(task)
            if task.status is TaskStatus.QUEUED:
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
            if job.worker is not None:
                self._stop_worker(job)
        if workers:
            await asyncio.wait(workers, timeout=timeout)
        if self._background:
            await asyncio.wait(self._background, timeout=timeout)

    # -- submitting ----------------------------------------------------------------------------------------
    def submit(self, files: list[CheckedFile], *, profile: str | None, batch_size: int,
               source: str = "path", names: list[str] | None = None,
               batch_id: str | None = None) -> tuple[str, list[Task]]:
        """Queue files as one batch (or add them to ``batch_id``, as the browser does file by file).

        Raises ConfigError for an unknown profile before anything is queued."""
        settings = self.config.current
        chosen = settings.profile(profile).name
        batch_id = batch_id or uuid.uuid4().hex
        batch = self._batch(batch_id, batch_size)
        now = self.clock()
        tasks, rows = [], []
        for i, checked in enumerate(files):
            task = Task(task_id=uuid.uuid4().hex, batch_id=batch_id, path=checked.path if source == "path" else "",
                        name=names[i] if names else checked.name, profile=chosen, bytes_total=checked.size,
                        created_at=now, source=source)
            job = Job(task, checked, batch)
            self._jobs[task.task_id] = job
            batch.task_ids.append(task.task_id)
            batch.queue.append(task.task_id)
            batch.unfinished += 1
            tasks.append(task)
            rows.append((task, batch_size, _checked_to_json(checked)))
        self.journal.add(rows)
        self._wake.set()
        return batch_id, tasks

    def _batch(self, batch_id: str, batch_size: int) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            batch = self._batches[batch_id] = Batch(batch_id, batch_size)
        return batch

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task:
        job = self._jobs.get(task_id)
        if job is None:
            raise NotFound(f"No task {task_id!r}; it may have been cleared.", data={"task_id": task_id})
        return job.task

    def tasks(self, batch_id: str | None = None) -> list[Task]:
        if batch_id is None:
            return [j.task for j in self._jobs.values()]
        batch = self._batches.get(batch_id)
        if batch is None:
            raise NotFound(f"No batch {batch_id!r}; it may have been cleared.", data={"batch_id": batch_id})
        return [self._jobs[t].task for t in batch.task_ids if t in self._jobs]

    def summary(self, tasks: list[Task]) -> dict[str, Any]:
        return summarize(tasks, self.clock())

    def active_count(self) -> int:
        return sum(1 for j in self._jobs.values() if j.task.status in ACTIVE)

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
        self.journal.update(task)
        if job.worker is not None:
            self._stop_worker(job)  # its release aborts the multipart upload
        elif job.multipart.upload_id:
            self._spawn(self._abort(job))
        return task

    def retry(self, task_id: str, checker: PathChecker) -> Task:
        job = self._job(task_id)
        task = job.task
        if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise InvalidState(f"Task {task_id} is {task.status}; only failed or cancelled tasks can be retried.",
                               data={"task_id": task_id, "status": str(task.status)})
        if task.source == "path":
            result = checker.check(task.path)
            if isinstance(result, str):
                raise PathRefused([{"path": task.path, "reason": result}])
            if result.identity != job.checked.identity:
                task.key = None  # new content: a new key (the hash in it changes)
                job.multipart.reset()
                task.bytes_total = result.size
            job.checked = result
            self.journal.update_checked(task_id, _checked_to_json(result))
        elif not os.path.exists(job.checked.path):
            raise InvalidState(f"The bytes of {task.name} are gone (cleared); add the file again.",
                               data={"task_id": task_id})
        self._move(job, TaskStatus.QUEUED)
        task.error = task.url = None
        task.finished_at = task.started_at = None
        task.bytes_uploaded = 0
        self.journal.update(task)
        job.batch.queue.append(task_id)
        self._wake.set()
        return task

    def pause(self, task_id: str | None = None) -> int:
        jobs = [self._job(task_id)] if task_id else list(self._jobs.values())
        if task_id and jobs[0].task.status in FINISHED:
            raise InvalidState(f"Task {task_id} is {jobs[0].task.status}; it cannot be paused.",
                               data={"task_id": task_id, "status": str(jobs[0].task.status)})
        count = 0
        for job in jobs:
            if job.task.status in (TaskStatus.QUEUED, TaskStatus.UPLOADING):
                self._move(job, TaskStatus.PAUSED)
                if job.worker is not None:
                    self._stop_worker(job)
                job.task.bytes_uploaded = job.multipart.bytes_done(job.task.bytes_total)
                self.journal.update(job.task)
                count += 1
        return count

    def resume(self, task_id: str | None = None) -> int:
        jobs = [self._job(task_id)] if task_id else list(self._jobs.values())
        if task_id and jobs[0].task.status in FINISHED:
            raise InvalidState(f"Task {task_id} is {jobs[0].task.status}; it cannot be resumed.",
                               data={"task_id": task_id, "status": str(jobs[0].task.status)})
        count = 0
        for job in jobs:
            if job.task.status is TaskStatus.PAUSED:  # a worker still unwinding re-queues it on release
                self._move(job, TaskStatus.QUEUED)
                self.journal.update(job.task)
                job.batch.queue.append(job.task.task_id)
                count += 1
        self._wake.set()
        return count

    def clear(self) -> int:
        """Forget finished tasks (history keeps their links); active ones stay."""
        gone = [tid for tid, j in self._jobs.items() if j.task.status in FINISHED and j.worker is None]
        for tid in gone:
            job = self._jobs.pop(tid)
            self._drop_spool(job)
            job.batch.task_ids.remove(tid)
            if not job.batch.task_ids:
                self._batches.pop(job.batch.batch_id, None)
        self.journal.remove(gone)
        return len(gone)

    def history(self, limit: int, offset: int, query: str | None = None) -> tuple[list[dict[str, Any]], int]:
        return self.journal.history(limit, offset, query)

    def _job(self, task_id: str) -> Job:
        self.get(task_id)
        return self._jobs[task_id]

    # -- running -------------------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            limit = self.config.current.transfers.max_concurrent
            for batch in list(self._batches.values()):
                while self._running < limit and batch.running < batch.batch_size and batch.queue:
                    job = self._jobs.get(batch.queue.popleft())
                    if job is not None and job.task.status is TaskStatus.QUEUED and job.worker is None:
                        self._start(job)
                if self._running >= limit:
                    break

    def _start(self, job: Job) -> None:
        self._move(job, TaskStatus.UPLOADING)
        job.task.started_at = self.clock()
        job.task.error = None
        self.journal.update(job.task)
        self._running += 1
        job.batch.running += 1
        job.worker = asyncio.create_task(self._run(job), name=f"upload-{job.task.task_id}")

    async def _run(self, job: Job) -> None:
        task = job.task
        transfers = self.config.current.transfers
        backoff = Backoff(transfers.attempts, transfers.backoff_base_s, transfers.backoff_max_s)
        try:
            provider = await self.providers.get(task.profile)
            for attempt in range(1, backoff.attempts + 1):
                task.attempts += 1
                task.bytes_uploaded = 0
                try:
                    await self._attempt(job, provider)
                    break
                except TransferError as exc:
                    if not exc.retryable or attempt == backoff.attempts:
                        raise
                    log.info("%s: attempt %d failed (%s); retrying", task.name, attempt, exc.message)
                    task.error = {**exc.to_dict(), "message": f"{exc.message} Retrying (attempt {attempt + 1} "
                                  f"of {backoff.attempts})."}
                    self.journal.update(task)
                await asyncio.sleep(backoff.delay(attempt))
            task.url = await provider.link(task.key or "")
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
        self._complete(job)

    async def _attempt(self, job: Job, provider: Any) -> None:
        task = job.task
        source = job.source = await asyncio.to_thread(Source.open, job.checked)
        try:
            if task.key is None:
                digest = None
                profile = self.config.current.profile(task.profile)
                if needs_hash(profile.key_template):
                    digest = await asyncio.to_thread(_sha256, source)
                task.key = render_key(profile.key_template, filename=task.name, digest=digest,
                                      when=datetime.now(UTC), task_id=task.task_id, profile=task.profile)
                self.journal.update(task)
            await provider.upload(source, task.key, on_bytes=partial(self._on_bytes, task), state=job.multipart,
                                  on_part=partial(self._save_multipart, job))
        finally:
            job.source = None
            source.close()

    def _on_bytes(self, task: Task, delta: int) -> None:
        if task.status is TaskStatus.UPLOADING:
            task.add_bytes(delta, self.clock())

    def _save_multipart(self, job: Job) -> None:
        state = job.multipart
        self.journal.save_multipart(job.task.task_id, state.to_json() if state.upload_id else None)

    def _release(self, job: Job) -> None:
        """The worker is gone. Act on what happened to the task while it unwound."""
        job.worker = None
        self._running -= 1
        job.batch.running -= 1
        status = job.task.status
        if status in (TaskStatus.CANCELLED, TaskStatus.FAILED) and job.multipart.upload_id:
            self._spawn(self._abort(job))  # leave no parts behind
        elif status is TaskStatus.QUEUED and not self._closing:
            job.batch.queue.appendleft(job.task.task_id)  # resumed (or retried) before it finished unwinding
        self._wake.set()

    def _stop_worker(self, job: Job) -> None:
        if job.source is not None:
            job.source.stop.set()  # readers in worker threads stop at their next read
        if job.worker is not None:
            job.worker.cancel()

    def _unwind(self, job: Job) -> None:
        """The worker was cancelled: finish according to the status its canceller set."""
        task = job.task
        if task.status is TaskStatus.UPLOADING:  # shutdown: back to the queue for the next start
            self._move(job, TaskStatus.QUEUED)
        task.bytes_uploaded = 0 if task.status is TaskStatus.CANCELLED else job.multipart.bytes_done(task.bytes_total)
        self.journal.update(task)

    async def _abort(self, job: Job) -> None:
        if job.multipart.upload_id:
            with contextlib.suppress(PixliftError):
                provider = await self.providers.get(job.task.profile)
                await provider.abort(job.multipart)
            self._save_multipart(job)

    def _fail(self, job: Job, exc: PixliftError) -> None:
        task = job.task
        self._move(job, TaskStatus.FAILED)
        task.error = exc.to_dict()
        task.finished_at = self.clock()
        self.journal.update(task)
        log.warning("%s failed: %s", task.name, exc.message)
        self._emit("failed", task)
        self._maybe_batch_finished(job)

    def _complete(self, job: Job) -> None:
        task = job.task
        self._move(job, TaskStatus.COMPLETED)
        task.bytes_uploaded = task.bytes_total
        task.finished_at = self.clock()
        task.error = None
        job.multipart.reset()
        self.journal.update(task)
        self.journal.save_multipart(task.task_id, None)
        self.journal.record_upload(task, task.finished_at)
        self._drop_spool(job)
        self._emit("completed", task)
        self._maybe_batch_finished(job)

    def _move(self, job: Job, to: TaskStatus) -> None:
        """Every transition passes here (Task.move refuses illegal ones), keeping the batch's count true."""
        was_finished = job.task.status.finished
        job.task.move(to)
        if was_finished != to.finished:
            job.batch.unfinished += -1 if to.finished else 1

    def _maybe_batch_finished(self, job: Job) -> None:
        if job.batch.unfinished == 0:
            self._emit("batch_finished", job.task)

    def _emit(self, event: str, task: Task) -> None:
        for listener in self.listeners:
            try:
                listener(event, task)
            except Exception:
                log.exception("listener failed on %s", event)

    def _drop_spool(self, job: Job) -> None:
        if job.task.source == "browser":
            folder = Path(job.checked.path).parent
            if folder.parent == self.spool:
                shutil.rmtree(folder, ignore_errors=True)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)


def _sha256(source: Source) -> str:
    h = hashlib.sha256()
    pos = 0
    while pos < source.size:
        chunk = os.pread(source.fd, 1024 * 1024, pos)
        if not chunk:
            break
        h.update(chunk)
        pos += len(chunk)
    return h.hexdigest()


def _checked_to_json(c: CheckedFile) -> dict[str, Any]:
    return asdict(c)


def _checked_from_json(raw: dict[str, Any]) -> CheckedFile:
    return CheckedFile(path=raw["path"], root=raw["root"], name=raw["name"], size=int(raw["size"]),
                       content_type=raw["content_type"], identity=Identity(**raw["identity"]))
