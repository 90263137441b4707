"""One upload attempt of one task: open the checked file, name its object, and send it through its provider.

The engine decides when a task runs and what its state is; this module only moves bytes. Naming happens on
the first attempt (a content hash for ``{hash}`` templates is computed off the event loop) and is kept, so a
retried or resumed upload goes to the same key.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .config import ProfileBase
from .errors import TransferError
from .keys import needs_hash, render_key
from .providers.base import MultipartState, OnBytes, Provider
from .retry import Backoff
from .sources import CheckedFile, Source
from .tasks import Task

log = logging.getLogger("pixlift.engine")

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

    def stop(self) -> None:
        """Stop the bytes at once: readers in worker threads raise at their next read, the worker is cancelled."""
        if self.source is not None:
            self.source.stop.set()
        if self.worker is not None:
            self.worker.cancel()


async def attempts(job: Job, provider: Provider, profile: ProfileBase, backoff: Backoff, *, on_bytes: OnBytes,
                   save: Callable[[], None], save_multipart: Callable[[], None]) -> None:
    """Send the task, retrying transient failures with backoff; raises the last failure."""
    task = job.task
    for attempt in range(1, backoff.attempts + 1):
        task.attempts += 1
        task.bytes_uploaded = job.multipart.bytes_done(task.bytes_total)  # kept parts show from the first read
        try:
            await send(job, provider, profile, on_bytes=on_bytes, on_key=save, on_part=save_multipart)
            return
        except TransferError as exc:
            if not exc.retryable or attempt == backoff.attempts:
                raise
            log.info("%s: attempt %d failed (%s); retrying", task.name, attempt, exc.message)
            task.error = {**exc.to_dict(), "message": f"{exc.message} Retrying (attempt {attempt + 1} "
                          f"of {backoff.attempts})."}
            save()
        await asyncio.sleep(backoff.delay(attempt))


async def send(job: Job, provider: Provider, profile: ProfileBase, *, on_bytes: OnBytes,
               on_key: Callable[[], None], on_part: Callable[[], None]) -> None:
    """One attempt: raises TransferError (or ConfigError) when it fails, CancelledError when stopped."""
    task = job.task
    source = job.source = await asyncio.to_thread(Source.open, job.checked)
    try:
        if task.key is None:
            digest = await asyncio.to_thread(source.sha256) if needs_hash(profile.key_template) else None
            task.key = render_key(profile.key_template, filename=task.name, digest=digest,
                                  when=datetime.now(UTC), task_id=task.task_id, profile=task.profile)
            on_key()
        await provider.upload(source, task.key, on_bytes=on_bytes, state=job.multipart, on_part=on_part)
    finally:
        job.source = None
        source.close()
