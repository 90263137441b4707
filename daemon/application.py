"""The application layer: every operation pixlift offers, typed, in one place.

Every face is an adapter over this class: the JSON-RPC methods, the HTTP routes (browser uploads), the tray
and the in-process parts of the CLI. None of them reaches the engine, a provider, the journal or the spool.
It owns the submit pipeline once (profile, rate charging, the path rules or the byte checks, spooling), so a
file dropped in the browser, a clipboard image and a path from a script pass the same gates.

    adapters (rpc_methods, web, tray, cli)  ->  Application  ->  Engine, Profiles, Journal, Spool
                                            <-  TaskView / Summary / events
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import __version__
from .core.config import SettingsBox
from .core.events import Event, EventBus, Handler, TaskFinished
from .core.heap import give_back
from .core.limits import Limits
from .core.tasks import TaskSource, TaskStatus
from .core.views import Progress, Submitted, Summary, TaskView, forget_seconds, iso, summarize
from .engine.engine import Engine
from .engine.worker import Job
from .errors import (
    InvalidParams,
    InvalidState,
    NotFound,
    PixliftError,
    RateLimited,
    StoreActionFailed,
    TransferError,
    UrlRefused,
)
from .files.paths import CheckedFile, PathChecker
from .files.spool import Spool
from .intake.fetch import UrlsRefused, fetch_all
from .intake.presigned import Presigned
from .journal.journal import Journal
from .settings.home import Home
from .settings.integrations import Integrations
from .settings.links import due, lifetime_of
from .settings.profiles import Profiles

GIVE_BACK_AFTER = 1000  # tasks cleared at once, past which their memory is handed back to the system


class Application:
    def __init__(self, *, home: Home, config: SettingsBox, engine: Engine, journal: Journal, events: EventBus,
                 profiles: Profiles, spool: Spool, port: Callable[[], int], presigned: Presigned,
                 integrations: Integrations) -> None:
        self.home = home
        self.config = config
        self.profiles = profiles
        self.presigned = presigned  # uploads an app sends to the store itself
        self.integrations = integrations  # [integrations]: the PicGo-compatible server's settings and state
        self._engine = engine
        self._journal = journal
        self._events = events
        self._spool = spool
        self._port = port
        self._limits = Limits(lambda: config.current.security)
        self._unsubscribe = events.subscribe(self._on_event)
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle: the application's own background work ------------------------------------------------------
    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="pixlift-expiry")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def close(self) -> None:
        self._unsubscribe()

    async def _sweep(self) -> None:
        """Completed and cancelled tasks leave the live list ``forget_finished_after_s`` after they finished."""
        while True:
            keep = self.config.current.transfers.forget_finished_after_s
            if keep > 0:
                self.expire(keep)
            self._journal.flush()  # what a full disk refused is stored as soon as it takes writes again
            await asyncio.sleep(min(30.0, max(0.5, keep / 10)) if keep > 0 else 30.0)

    def expire(self, keep_s: float) -> int:
        return self._let_go(self._engine.expire(self._engine.clock() - keep_s))

    def _let_go(self, gone: list[Job]) -> int:
        """After tasks leave the list: their spooled bytes deleted; after many, once freed, the tables remade and
        the memory handed back to the system (``core/heap.py``). Returns how many left."""
        self._spool.drop_owned(job.checked for job in gone)
        count = len(gone)
        gone.clear()
        if count >= GIVE_BACK_AFTER:
            self._engine.compact()
            forget_seconds()
            give_back()
        return count

    # -- submitting ------------------------------------------------------------------------------------------
    def charge_call(self, client: str) -> None:
        """One API call against the client's rate limit (RateLimited when over it)."""
        self._limits.charge_call(client)

    def _admit(self, client: str, files: int, profile: str | None) -> str:
        """The gates every submission passes before any byte is read: a known profile, then the file caps."""
        chosen = self.config.current.profile(profile).name
        cap = self.config.current.security.max_queued_files
        active = self._engine.active_count()
        if active + files > cap:
            raise RateLimited(f"{active} files are already waiting; at most {cap} may be queued at once. "
                              "Retry when some have finished.", 30.0)
        self._limits.charge_files(client, files)
        return chosen

    async def submit_paths(self, client: str, paths: list[str], *, profile: str | None,
                           batch_size: int | None = None) -> Submitted:
        """Files named by path, as one batch; one refused path refuses the call (PathRefused lists them all)."""
        chosen = self._admit(client, len(paths), profile)
        checked = await asyncio.to_thread(self.path_checker().check_all, paths)
        size = batch_size if batch_size is not None else self.config.current.transfers.slots
        batch_id, tasks = self._engine.submit(checked, profile=chosen, batch_size=size, source=TaskSource.PATH)
        return self._engine.submitted(batch_id, tasks)

    async def submit_bytes(self, client: str, name: str, data: bytes, *, profile: str | None = None,
                           source: TaskSource = TaskSource.CLIPBOARD) -> TaskView:
        """Bytes held in memory (a clipboard image), as a one-file batch."""
        chosen = self._admit(client, 1, profile)
        checked = await asyncio.to_thread(self._spool.keep_bytes, name, data, self.config.current.security)
        return self._queue_spooled(checked, chosen, source, batch_id=None, batch_size=1).tasks[0]

    async def submit_stream(self, client: str, name: str, chunks: AsyncIterator[bytes], *, profile: str | None,
                            batch_id: str | None, batch_size: int, from_clipboard: bool = False) -> Submitted:
        """A body streamed in by the browser, added to ``batch_id`` (the browser sends a drop file by file), or
        a clipboard image sent by ``pixlift upload --clipboard``."""
        chosen = self._admit(client, 1, profile)
        checked = await self._spool.keep_stream(name, chunks, self.config.current.security)
        source = TaskSource.CLIPBOARD if from_clipboard else TaskSource.BROWSER
        return self._queue_spooled(checked, chosen, source, batch_id=batch_id, batch_size=batch_size)

    async def submit_urls(self, client: str, urls: list[str], *, profile: str | None,
                          batch_size: int | None = None) -> Submitted:
        """Images fetched from the web (intake/fetch.py) into the spool, then queued as one batch; one URL refused (or
        not fetched) refuses the call, listing every refused URL with its reason, and keeps nothing."""
        chosen = self._admit(client, len(urls), profile)
        try:
            fetched = await fetch_all(urls, self.config.current.security, self._spool)
        except UrlsRefused as exc:
            raise UrlRefused(exc.refused) from None
        size = batch_size if batch_size is not None else self.config.current.transfers.slots
        batch_id, tasks = self._engine.submit([f.checked for f in fetched], profile=chosen, batch_size=size,
                                              source=TaskSource.URL)
        return self._engine.submitted(batch_id, tasks)

    def _queue_spooled(self, checked: CheckedFile, profile: str, source: TaskSource, *, batch_id: str | None,
                       batch_size: int) -> Submitted:
        try:
            batch, tasks = self._engine.submit([checked], profile=profile, batch_size=batch_size, source=source,
                                               names=[checked.name], batch_id=batch_id)
        except BaseException:
            self._spool.drop(checked)
            raise
        return self._engine.submitted(batch, tasks)

    async def settled(self, task_ids: list[str], timeout: float) -> list[TaskView | None]:
        """The tasks once each has finished (completed, failed or cancelled), or as they are after ``timeout``;
        None for a task no longer listed. For a caller that answers only when its files are done."""
        pending = set(task_ids)
        done = asyncio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, TaskFinished) and event.task_id in pending:
                pending.discard(event.task_id)
                if not pending:
                    done.set()

        unsubscribe = self._events.subscribe(on_event)
        try:
            pending -= {t for t in task_ids if (v := self._listed(t)) is None or v.status.finished}
            if pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout)
        finally:
            unsubscribe()
        return [self._listed(t) for t in task_ids]

    def _listed(self, task_id: str) -> TaskView | None:
        try:
            return self.task(task_id)
        except NotFound:
            return None

    def path_checker(self) -> PathChecker:
        return PathChecker(self.config.current.security)  # the rules in force now, after any settings change

    # -- acting --------------------------------------------------------------------------------------------------
    def cancel(self, task_id: str) -> TaskView:
        return self._engine.view(self._engine.cancel(task_id))

    def retry(self, task_id: str) -> TaskView:
        return self._engine.view(self._engine.retry(task_id, self.path_checker()))

    def retry_failed(self, batch_id: str | None = None) -> dict[str, Any]:
        """Queue every failed task (of a batch) again. A file that can no longer be sent (gone, changed into
        something refused) stays failed and is listed with the reason; the others go."""
        retried, skipped = 0, []
        checker = self.path_checker()
        for task in self._engine.tasks(batch_id):
            if task.status is not TaskStatus.FAILED:
                continue
            try:
                self._engine.retry(task.task_id, checker)
                retried += 1
            except PixliftError as exc:
                skipped.append({"task_id": task.task_id, "name": task.name, "reason": exc.message})
        return {"retried": retried, "skipped": skipped}

    def pause(self, task_id: str | None = None) -> int:
        return self._engine.pause(task_id)

    def resume(self, task_id: str | None = None) -> int:
        return self._engine.resume(task_id)

    def clear(self) -> int:
        """Finished tasks leave the list (history keeps their links); their spooled bytes are deleted."""
        return self._let_go(self._engine.clear())

    # -- reading ---------------------------------------------------------------------------------------------
    def task(self, task_id: str) -> TaskView:
        return self._engine.view(self._engine.get(task_id))

    def progress(self, batch_id: str | None = None, since: int | None = None) -> Progress:
        """The live list (or a batch): everything, or what changed after version ``since``."""
        engine = self._engine
        now = engine.clock()
        changes = engine.changes
        full = since is not None and not changes.answers(since)
        if batch_id is not None:
            engine.batch(batch_id)  # NotFound for a batch that is not listed
        summary = engine.index.summary(now, batch_id)
        if since is None or full:
            return Progress(changes.version, summary, [], full, now, engine.tasks(batch_id), engine.listed())
        changed = engine.index.changed_since(since)
        if batch_id is not None:
            changed = [t for t in changed if t.batch_id == batch_id]
        return Progress(changes.version, summary, changes.removed_since(since), False, now, changed, engine.listed())

    def batch_summary(self, batch_id: str) -> Summary:
        return summarize(self._engine.tasks(batch_id), self._engine.clock())

    def finished_batches(self, since: int, batch_id: str | None = None) -> list[tuple[str, Summary]]:
        """Batches that finished after version ``since`` (their last change is after it), with their summaries."""
        now = self._engine.clock()
        return [(bid, summarize(tasks, now)) for bid, tasks in self._engine.finished_batches(batch_id)
                if max(t.version for t in tasks) > since]

    @property
    def version(self) -> int:
        """The latest change's version."""
        return self._engine.changes.version

    def summary(self) -> Summary:
        return self._engine.index.summary(self._engine.clock())

    def current_name(self) -> str:
        """An uploading (else a queued) file's name, for a title that names the only file in flight."""
        tasks = self._engine.tasks()
        for status in (TaskStatus.UPLOADING, TaskStatus.QUEUED):
            found = next((t.name for t in tasks if t.status is status), None)
            if found:
                return found
        return ""

    def history(self, limit: int = 50, offset: int = 0, query: str | None = None,
                deleted: bool | None = None) -> dict[str, Any]:
        """A page of the history as stored (the tray's recent links); ``history_now`` re-signs due links."""
        items, total = self._journal.history(limit, offset, query, deleted)
        for item in items:
            item.pop("_url_expires", None)
        return {"items": items, "total": total}

    async def history_now(self, limit: int = 50, offset: int = 0, query: str | None = None,
                          deleted: bool | None = None) -> dict[str, Any]:
        """A page of the history whose presigned links have at least a tenth of their lifetime left
        (settings/links.py)."""
        items, total = self._journal.history(limit, offset, query, deleted)
        for item in items:
            await self._fresh(item)
        return {"items": items, "total": total}

    async def link_now(self, history_id: int) -> str | None:
        """One history entry's link, signed again if it is due (the tray's copy); None for no such entry."""
        item = self._journal.history_item(history_id)
        if item is None:
            return None
        await self._fresh(item)
        return str(item["url"])

    async def _fresh(self, item: dict[str, Any]) -> None:
        expires = item.pop("_url_expires", None)
        lifetime = lifetime_of(self.config.current.profiles.get(item["profile"]))
        now = self._engine.clock()
        if item["deleted_at"] is None and due(expires, lifetime, now) and lifetime is not None:
            try:
                with self._engine.providers.lease(item["profile"]) as provider:
                    item["url"] = await provider.link(item["key"])
            except PixliftError:
                return  # keeps its old link (and says when it ends); tried again at the next read
            self._journal.relink(item["history_id"], item["url"], now + lifetime)
            item["url_expires_at"] = iso(now + lifetime)

    async def fresh_links(self) -> None:
        """Before a read of the live list: completed tasks' presigned links re-signed when due."""
        await self._engine.refresh_links()

    async def delete_upload(self, task_id: str | None = None, history_id: int | None = None) -> dict[str, Any]:
        """Remove an uploaded object from its store, then mark every history entry that points to it. A store
        that refuses (or cannot be reached) changes nothing: StoreActionFailed says why."""
        if (task_id is None) == (history_id is None):
            raise InvalidParams("Give either task_id or history_id: which upload to delete.")
        entry = self._journal.history_item(history_id) if history_id is not None else self._uploaded(task_id or "")
        if entry is None:
            raise NotFound(f"No upload in the history with history_id {history_id}.", data={"history_id": history_id})
        profile, key = entry["profile"], entry["key"]
        try:
            with self._engine.providers.lease(profile) as provider:
                await provider.delete_object(key)
        except TransferError as exc:
            raise StoreActionFailed(f"{entry['name']} was not deleted: {exc.message}",
                                    data={"code": exc.code, "profile": profile, "key": key}) from exc
        now = self._engine.clock()
        self._journal.mark_deleted(profile, key, now)
        await self._journal.durable()
        return {"deleted": True, "name": entry["name"], "profile": profile, "key": key, "deleted_at": iso(now)}

    async def delete_link(self, url: str) -> dict[str, Any]:
        """``delete_upload`` for the upload whose link is ``url`` (PicList's /delete names images by link)."""
        entry = self._journal.history_by_url(url)
        if entry is None:
            raise NotFound("No upload in the history has that link.", data={"url": url})
        return await self.delete_upload(history_id=int(entry["history_id"]))

    def _uploaded(self, task_id: str) -> dict[str, Any] | None:
        """The history entry of a task's object (a listed task's, or one cleared from the list)."""
        try:
            task = self._engine.get(task_id)
        except NotFound:
            entry = self._journal.history_of_task(task_id)
            if entry is None:
                raise NotFound(f"No uploaded file with task_id {task_id} (listed or in the history).",
                               data={"task_id": task_id}) from None
            return entry
        if task.status is not TaskStatus.COMPLETED or task.key is None:
            raise InvalidState(f"Task {task_id} is {task.status}; only an uploaded file can be deleted.",
                               data={"task_id": task_id, "status": str(task.status)})
        return self._journal.history_of(task.profile, task.key) or {"name": task.name, "profile": task.profile,
                                                                     "key": task.key}

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Engine events (typed, see core/events.py) until the returned function is called."""
        return self._events.subscribe(handler)

    def describe(self) -> dict[str, Any]:
        s = self.config.current
        return {"version": __version__, "pid": os.getpid(), "port": self._port(), "home": str(self.home.root),
                "config_file": str(self.home.config), "default_profile": s.default_profile,
                "profiles": sorted(s.profiles), "max_concurrent": s.transfers.max_concurrent,
                "max_concurrent_small": s.transfers.slots, "images": dataclasses.asdict(s.images),
                "allowed_roots": [str(r) for r in s.security.allowed_roots],
                "images_only": s.security.images_only, "max_file_size": s.security.max_file_size,
                "files_root": str(self.home.files), "integrations": self.integrations.view()}

    def _on_event(self, event: Event) -> None:
        # A completed upload no longer needs its spooled bytes.
        if isinstance(event, TaskFinished) and event.status is TaskStatus.COMPLETED:
            checked = self._engine.checked(event.task_id)
            if self._spool.owns(checked):  # bytes handed over, or an edited copy
                self._spool.drop(checked)
