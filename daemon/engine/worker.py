"""One upload attempt of one task: open the checked file, name its object, and send it through its provider.

The engine decides when a task runs and what its state is; this module only moves bytes. Naming happens on
the first attempt and is kept, so a retried or resumed upload goes to the same key. The content hash for
``{hash}`` templates is computed off the event loop, except for a file of at most 64 KiB: opening, reading
and hashing that costs less than handing it to a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from ..core.config import ProfileBase
from ..core.keys import needs_hash, render_key
from ..core.retry import Backoff
from ..core.tasks import Task
from ..errors import TransferError, TransientStorageError
from ..files.paths import CheckedFile
from ..files.sources import Source
from ..providers.base import OnBytes, Provider
from ..providers.multipart import MultipartState

log = logging.getLogger("pixlift.engine")
T = TypeVar("T")

@dataclass
class Batch:
    batch_id: str
    batch_size: int
    queue: deque[str] = field(default_factory=deque)
    running: int = 0
    task_ids: list[str] = field(default_factory=list)
    unfinished: int = 0  # kept by Engine._move, so "is the batch done?" costs nothing per completion


@dataclass(slots=True)
class Job:
    """Engine-private state of one task: what to send, and the worker sending it."""

    task: Task
    checked: CheckedFile
    batch: Batch
    state: MultipartState | None = None  # made when first needed, dropped once the task completed (``multipart``)
    worker: asyncio.Task[None] | None = None
    slots: int = 0  # what it takes of the files in flight (TransferSettings.slots_of)
    source: Source | None = None
    sha256: str | None = None  # of the bytes sent, once known: the history keeps it for dedup
    original: CheckedFile | None = None  # the file an edited copy (``checked``) was made from (processing.py)
    multipart_journalled: bool = False  # the journal holds a multipart state for it (to clear when it completes)
    drop_on_fail: bool = False  # its store shows an unfinished upload as a file (WebDAV, SFTP): removed on failure

    @property
    def multipart(self) -> MultipartState:
        """What survives a pause, a retry or a restart. Made on first use and let go when the task completes: a
        list of 100,000 finished tasks does not keep 100,000 empty states (with two dicts each, 240 bytes)."""
        if self.state is None:
            self.state = MultipartState()
        return self.state

    def completed(self) -> None:
        """What only an upload under way needs goes: the transfer's state and the digest the history now holds."""
        self.state = None
        self.sha256 = None

    def stop(self) -> None:
        """Stop the bytes at once: readers in worker threads raise at their next read, the worker is cancelled."""
        if self.source is not None:
            self.source.stop.set()
        if self.worker is not None:
            self.worker.cancel()

    def close_source(self) -> None:
        """Close the opened file, if any: after an attempt, or when the worker ended before it sent it."""
        if self.source is not None:
            self.source.close()
            self.source = None


INLINE_READ = 64 * 1024  # files up to this size are opened, read and hashed on the loop
FindCopy = Callable[[str], Awaitable[str | None]]  # SHA-256 of the bytes to send -> the key of a stored copy
OUTAGE = frozenset({"network_error", "server_error"})  # the store could not be reached, or is restarting
PROBE_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # waits between looks at a store that is out
MAX_RETRY_AFTER_S = 300.0  # a store's Retry-After is honoured up to this


def asked_wait(exc: TransferError) -> float:
    """What the store asked to be given before the next try (its Retry-After on a 503), bounded; 0 if nothing."""
    return min(float(getattr(exc, "retry_after_s", None) or 0.0), MAX_RETRY_AFTER_S)


async def attempts(job: Job, provider: Provider, profile: ProfileBase, backoff: Backoff, *, outage_tolerance_s: float,
                   on_bytes: OnBytes, save: Callable[[], None], save_multipart: Callable[[], None],
                   find_copy: FindCopy | None = None) -> None:
    """Send the task; raises the failure that ends it.

    An outage (the store cannot be reached, or answers that it is unavailable) is waited out: the task keeps
    its parts, says so in its error, and looks again with growing waits, for up to ``outage_tolerance_s`` of
    not reaching the store; then it goes on from its last whole part. Other transient failures are retried
    ``backoff.attempts`` times. ``task.attempts`` counts the tries that reached the store (a byte was
    acknowledged, or the store answered), but not one an outage cut short: neither an outage nor a restart
    uses one up."""
    task = job.task
    tries = 0
    outage: float | None = None
    probes = 0
    while True:
        task.bytes_uploaded = job.multipart.bytes_done(task.bytes_total)  # kept parts show from the first read
        reached = False

        def counted(delta: int) -> None:
            nonlocal reached
            if delta > 0 and not reached:
                reached = True
                task.attempts += 1
            on_bytes(delta)

        try:
            await send(job, provider, profile, on_bytes=counted, on_key=save, on_part=save_multipart,
                       find_copy=find_copy)
            task.attempts += not reached
            return
        except TransferError as exc:
            if exc.retryable and exc.code in OUTAGE:
                task.attempts -= reached  # cut short by the outage: not a try of its own
                now = time.monotonic()  # monotonic: a laptop's sleep does not count as waiting
                outage = now if outage is None or reached else outage
                if now - outage >= outage_tolerance_s:
                    raise TransientStorageError(
                        f"{exc.message} It could not be reached for {round(now - outage)} s ([transfers] "
                        "outage_tolerance_s), so the upload stopped; retry it once the store is back.",
                        code=exc.code) from exc
                if (task.error or {}).get("code") != exc.code:  # one line per task per change, not per look
                    log.warning("%s: %s Waiting for it.", task.name, exc.message)
                    task.error = {"code": exc.code, "message": f"{exc.message} pixlift keeps what was sent and "
                                  "goes on by itself as soon as the store answers."}
                    save()
                await asyncio.sleep(max(PROBE_S[min(probes, len(PROBE_S) - 1)], asked_wait(exc)))
                probes += 1
                continue
            outage, probes = None, 0
            task.attempts += not reached
            tries += 1
            if not exc.retryable or tries >= backoff.attempts:
                raise
            log.info("%s: attempt %d failed (%s); retrying", task.name, tries, exc.message)
            task.error = {**exc.to_dict(), "message": f"{exc.message} Retrying (attempt {tries + 1} "
                          f"of {backoff.attempts})."}
            save()
            await asyncio.sleep(max(backoff.delay(tries), asked_wait(exc)))


def digests_for(job: Job, provider: Provider, profile: ProfileBase, find_copy: FindCopy | None) -> frozenset[str]:
    """What to hash of the file when it is read: the provider's checksums, and its SHA-256 when the task is still
    to be named by a ``{hash}`` key or looked up for dedup. Hashed once, when the task is named: a task resumed
    after a restart goes on at once (its history entry then has no hash, so dedup will not find that one copy),
    where a re-read of a large file would cost its time again at every restart."""
    return provider.digests | {"sha256"} if _hashed(job, profile, find_copy) else provider.digests


def _hashed(job: Job, profile: ProfileBase, find_copy: FindCopy | None) -> bool:
    return job.task.key is None and (needs_hash(profile.key_template) or find_copy is not None)


async def off_loop(fn: Callable[[], T], close: Callable[[T], None]) -> T:
    """``fn()`` on a worker thread. If the caller is stopped meanwhile, what ``fn`` returns is closed when it
    comes (an opened file would otherwise stay open: nobody is left to send it)."""
    future = asyncio.get_running_loop().run_in_executor(None, fn)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(lambda f: None if f.cancelled() or f.exception() else close(f.result()))
        raise


def sha256_ahead(source: Source, parts: list[tuple[str, int, int]], start: threading.Event | None = None) -> str:
    """Blocking: the content's SHA-256. No byte can go before it (the key waits for it), so meanwhile one more
    thread takes the checksums of the first ``parts`` (Provider.part_checksums), in order, until it is known:
    the second core works while the store waits, and the parts after those are hashed while they are on the
    wire (s3.py), not all before the first one goes. With ``start``, that thread waits for it first (the
    second core is busy until then: a third busy thread would slow the hash everyone waits for)."""
    done = False

    def ahead() -> None:
        if start is not None:
            start.wait()
        try:
            for name, offset, length in parts:
                if done or source.stop.is_set():
                    return
                source.digest(name, offset, length)
        except Exception:  # the part is read again when it is sent, and fails there if it must
            pass

    helper = threading.Thread(target=ahead, name="pixlift-parts-ahead", daemon=True) if parts else None
    if helper is not None:
        helper.start()
    try:
        return source.sha256()
    finally:
        done = True
        if helper is not None:
            if start is not None:
                start.set()  # a helper still waiting for it ends at once
            helper.join()  # the source is closed once the attempt ends: not under a reader


async def hash_large(source: Source, provider: Provider) -> str:
    """The SHA-256 of a file too large to hash on the loop (``sha256_ahead``), on a worker thread."""
    return await asyncio.to_thread(sha256_ahead, source, provider.part_checksums(source.size))


async def send(job: Job, provider: Provider, profile: ProfileBase, *, on_bytes: OnBytes,
               on_key: Callable[[], None], on_part: Callable[[], None], find_copy: FindCopy | None = None) -> None:
    """One attempt: raises TransferError (or ConfigError) when it fails, CancelledError when stopped. With
    ``find_copy``, an object of the profile that already holds these bytes completes the task, sending none."""
    task = job.task
    hashed = _hashed(job, profile, find_copy)
    digests = digests_for(job, provider, profile, find_copy)
    if job.source is not None:  # opened, read and hashed by prepare_job (processing.py)
        source = job.source
    elif job.checked.size <= INLINE_READ:  # an open and a read: far less than a hop to a worker thread and back
        source = job.source = Source.open(job.checked, digests=digests)
    else:
        source = job.source = await off_loop(partial(Source.open, job.checked, digests=digests), Source.close)
    try:
        if hashed:  # a small file's is known already; a large one's is a read of its own, off the loop
            job.sha256 = source.sha256() if source.has("sha256") else await hash_large(source, provider)
        if task.key is None:
            if find_copy is not None and job.sha256 is not None and (copy := await find_copy(job.sha256)):
                task.key, task.deduplicated = copy, True
                on_key()
                return
            digest = job.sha256 if needs_hash(profile.key_template) else None
            task.key = render_key(profile.key_template, filename=job.checked.name, digest=digest,
                                  when=datetime.now(UTC), task_id=task.task_id, profile=task.profile)
            on_key()
        await provider.upload(source, task.key, on_bytes=on_bytes, state=job.multipart, on_part=on_part)
    finally:
        job.close_source()
