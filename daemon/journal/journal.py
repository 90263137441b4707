"""The SQLite journal: every task and every uploaded link, so that nothing is lost to a restart or a crash.

Writes happen on state changes (and after each finished multipart part), never per byte. New tasks are
written at once, in one transaction per call (journal first: a task exists only once its row does); every
other change is queued and committed with the others of its moment by a writer thread (``commits.py``), and
``durable()`` waits for them: a finished upload is reported only once its completion is on disk. A passing
state (uploading, a task's key, a retry's note), from which a restart would queue the task again just as from
the state before it, is written only when it is still the task's newest state ``PASSING_S`` later. WAL mode
with ``synchronous=NORMAL``: a crash of the daemon loses nothing committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.tasks import Task, TaskStatus
from ..errors import JournalUnavailable
from .checkpoints import Checkpointer
from .commits import GroupCommit
from .history import HistoryRecords
from .rows import ADDED, SCHEMA, StoredTask, as_json, processing_json, stored_task

log = logging.getLogger(__name__)

PASSING_S = 1.0  # a passing state still a task's newest after this long goes with the next commit
UPDATE_TASK = ("UPDATE tasks SET status=?, bytes_uploaded=?, attempts=?, url=?, url_expires=?, key=?, error=?,"
               " started_at=?, finished_at=?, processing=? WHERE task_id=?")
Change = tuple[str, Any, bool, tuple[str, ...] | None]  # sql, arguments, executemany, the thing it is the state of


class Journal(HistoryRecords):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                raise
            kept = _set_aside(path)
            log.warning("pixlift's journal %s could not be read (%s): it was kept as %s, and a new one started. "
                        "The uploads listed in it are no longer listed; the files in the stores are untouched.",
                        path, exc, kept.name)
            self._open()
        self._complained = -3600.0
        self._unwritten: dict[Any, tuple[str, Any, bool]] = {}
        self._lock = threading.Lock()  # the connection and the unwritten changes: the writer thread and the loop
        self._reads = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # history.py
        self._read_cur = self._reads.cursor()
        self._read_cur.execute("PRAGMA query_only=1")
        self._read_lock = threading.Lock()
        self._load_digests()
        self._passing: dict[Any, tuple[float, Change]] = {}  # key -> (when it is due, the change)
        self._passing_lock = threading.Lock()
        self._checkpoints = Checkpointer(path)
        self._commits: GroupCommit[Change] = GroupCommit(self._commit)

    def _open(self) -> None:
        path = self.path
        if not path.exists():  # created private, so SQLite's side files (-wal, -shm) start private too
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # One cursor per connection: Connection.execute makes a cursor each time, and the connection keeps a weak
        # reference to each of its last 200, made among the tasks' objects, which then kept their heap pages.
        self._cur = self._db.cursor()
        try:
            self._cur.execute("PRAGMA journal_mode=WAL")
            self._cur.execute("PRAGMA synchronous=NORMAL")
            self._cur.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints.py runs them, off the commit path
            self._db.executescript(SCHEMA)
            for table, columns in ADDED.items():  # a journal from before they existed
                have = {row[1] for row in self._cur.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns.items():
                    if column not in have:
                        self._cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._cur.execute("CREATE INDEX IF NOT EXISTS history_sha ON history(profile, sha256)")
            path.chmod(0o600)
            row = self._cur.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()
        except BaseException:
            self._db.close()
            raise
        self._seq = int(row[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction, committed at the end or rolled back on any error. The connection is in autocommit
        mode (``isolation_level=None``), where ``with connection:`` begins nothing: every statement would be a
        transaction of its own, with its own locks and WAL frames, and a batch would not be all or none."""
        self._cur.execute("BEGIN")
        try:
            yield
            self._cur.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a full disk may already have rolled it back
                self._cur.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._queue_passing()
        self._commits.close()
        self._checkpoints.close()
        with self._lock:
            self._db.close()
        with self._read_lock:
            self._reads.close()

    async def durable(self) -> None:
        """Return once every change made before this call is committed (or kept, when the disk refused it)."""
        await self._commits.durable()

    # -- the change counter's ceiling (see engine/changes.py) ---------------------------------------------------------
    def reserved_version(self) -> int:
        with self._lock:
            row = self._cur.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        return int(row[0]) if row else 0

    def reserve_version(self, ceiling: int) -> None:
        """Written at once: no version above the stored ceiling may be handed out before it is on disk."""
        with self._lock:
            self._write_now("INSERT INTO meta (name, value) VALUES ('version', ?) "
                            "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (ceiling,), False, None)

    def add(self, items: list[tuple[Task, int, dict[str, Any]]]) -> None:
        """New tasks, all or none (one transaction); JournalUnavailable when they cannot be stored."""
        rows = []
        seq = self._seq
        for task, batch_size, checked in items:
            seq += 1
            rows.append((task.task_id, seq, task.batch_id, batch_size, task.path, task.name, task.profile,
                         str(task.status), task.bytes_total, task.created_at, str(task.source), as_json(checked)))
        with self._lock:
            try:
                if self._unwritten and not self._replay():  # what the disk refused before comes first
                    raise sqlite3.OperationalError("database or disk is full")
                with self._transaction():
                    self._cur.executemany(
                        "INSERT INTO tasks (task_id, seq, batch_id, batch_size, path, name, profile, status,"
                        " bytes_total, created_at, source, checked) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            except sqlite3.Error as exc:
                raise JournalUnavailable(self._why(exc)) from exc
            self._seq = seq
        self._checkpoints.written()

    def _write(self, sql: str, args: Any, *, many: bool = False, key: tuple[str, ...] | None = None) -> None:
        """A change to what the journal holds, queued for the next group commit. When the disk refuses it (full,
        read-only), the daemon goes on from memory, says so once a minute, and keeps the write (the newest per
        ``key``: a task's state, its multipart state) to store it before the next write that succeeds and at
        every ``flush``: the journal catches up with memory as soon as the disk takes writes again. Only a crash
        in between loses them."""
        if key is not None and self._passing:
            with self._passing_lock:
                self._passing.pop(key, None)  # superseded
        self._commits.put((sql, args, many, key))

    def _queue_passing(self) -> None:
        """Every passing state, due or not, queued for the next commit (closing, flushing)."""
        for change in self._take_passing(float("inf")):
            self._commits.put(change)

    def _take_passing(self, now: float) -> list[Change]:
        """The passing states due by ``now``, taken out: older than any change still queued for their task."""
        with self._passing_lock:
            due = [key for key, (when, _) in self._passing.items() if when <= now]
            return [self._passing.pop(key)[1] for key in due]

    def _commit(self, changes: list[Change]) -> None:
        """On the writer thread: one transaction for every change queued (a task's newest state only), with
        the passing states that are due first, so that a later state of the same task goes after them."""
        newest: dict[Any, tuple[str, Any, bool]] = {}
        for sql, args, many, key in (self._take_passing(time.monotonic()) if self._passing else []) + changes:
            slot: Any = key if key is not None else object()
            newest.pop(slot, None)  # a newer state of the same thing replaces the old, and goes last
            newest[slot] = (sql, args, many)
        with self._lock:
            if self._unwritten and not self._replay():
                self._keep_all(newest)
                return
            try:
                with self._transaction():
                    for sql, args, many in newest.values():
                        (self._cur.executemany if many else self._cur.execute)(sql, args)
            except sqlite3.Error as exc:
                self._keep_all(newest)
                self._complain(exc)
                return
        self._checkpoints.written()

    def _keep_all(self, changes: dict[Any, tuple[str, Any, bool]]) -> None:
        for slot, change in changes.items():
            self._unwritten.pop(slot, None)
            self._unwritten[slot] = change

    def _write_now(self, sql: str, args: Any, many: bool, key: tuple[str, ...] | None) -> None:
        """A write that cannot wait for the writer thread (the caller holds the lock)."""
        if self._unwritten and not self._replay():
            self._keep(sql, args, many, key)
            return
        try:
            self._execute(sql, args, many)
        except sqlite3.Error as exc:
            self._keep(sql, args, many, key)
            self._complain(exc)

    def _execute(self, sql: str, args: Any, many: bool) -> None:
        if many:
            with self._transaction():
                self._cur.executemany(sql, args)
        else:
            self._cur.execute(sql, args)

    def _keep(self, sql: str, args: Any, many: bool, key: tuple[str, ...] | None) -> None:
        slot: Any = key if key is not None else object()
        self._unwritten.pop(slot, None)  # a newer state of the same thing replaces the old, and goes last
        self._unwritten[slot] = (sql, args, many)

    def _replay(self) -> bool:
        """Store the writes the disk refused, in order; False (and they stay) if it still refuses."""
        try:
            with self._transaction():
                for sql, args, many in self._unwritten.values():
                    (self._cur.executemany if many else self._cur.execute)(sql, args)
        except sqlite3.Error as exc:
            self._complain(exc)
            return False
        log.info("the journal is written again (%d changes caught up)", len(self._unwritten))
        self._unwritten.clear()
        return True

    def flush(self) -> bool:
        """Commit what is queued (passing states too) and try the writes the disk refused again; True when
        nothing is left unwritten."""
        self._queue_passing()
        self._commits.drain()
        with self._lock:
            return not self._unwritten or self._replay()

    def _complain(self, exc: sqlite3.Error) -> None:
        now = time.monotonic()
        if now - self._complained > 60:
            self._complained = now
            log.error("%s", self._why(exc).replace("nothing was queued", "uploads go on, unrecorded for now"))

    def _why(self, exc: sqlite3.Error) -> str:
        text = str(exc).lower()
        if "full" in text:
            return (f"The disk holding pixlift's data ({self.path.parent}) is full, so nothing was queued. Free "
                    "some space there, then send the files again.")
        return (f"pixlift could not write its journal ({self.path}), so nothing was queued. Check that the disk "
                "is writable and has space, then send the files again.")

    def update(self, task: Task, *, passing: bool = False) -> None:
        """A task's state. ``passing``: one a restart need not see, because it would queue the task again just
        as from the state before (uploading, its key, a retry's note); it is written only when it is still the
        task's newest state ``PASSING_S`` later, so a small file costs the journal its queuing and its end."""
        args = (str(task.status), task.bytes_uploaded, task.attempts, task.url, task.url_expires, task.key,
                as_json(task.error) if task.error else None, task.started_at, task.finished_at,
                processing_json(task), task.task_id)
        key = ("task", task.task_id)
        if passing:
            with self._passing_lock:
                self._passing[key] = (time.monotonic() + PASSING_S, (UPDATE_TASK, args, False, key))
            return
        self._write(UPDATE_TASK, args, key=key)

    def complete(self, task: Task, finished_at: float, sha256: str | None, *, multipart: bool) -> None:
        """A finished upload: the task completed, its multipart state gone (``multipart``: the journal holds
        one), its link in the history (once per object: a deduplicated task points to the entry already there).
        Await ``durable()`` before telling."""
        assert task.url is not None and task.key is not None
        self._write(UPDATE_TASK, (str(TaskStatus.COMPLETED), task.bytes_total, task.attempts, task.url,
                                  task.url_expires, task.key, None, task.started_at, finished_at, processing_json(task),
                                  task.task_id), key=("task", task.task_id))
        if multipart:
            self.save_multipart(task.task_id, None)
        if task.deduplicated:
            self._write("UPDATE tasks SET deduplicated=1 WHERE task_id=?", (task.task_id,))
            return
        if sha256 is not None:
            self._digests.add(task.profile, sha256)
        self._write("INSERT INTO history (task_id, name, url, size, profile, key, uploaded_at, sha256, url_expires)"
                    " VALUES (?,?,?,?,?,?,?,?,?)", (task.task_id, task.name, task.url, task.bytes_total, task.profile,
                                                    task.key, finished_at, sha256, task.url_expires))

    def update_prepared(self, task: Task, checked: dict[str, Any], original: dict[str, Any] | None) -> None:
        """What the task now sends (an edited copy) and the file it was made from; its ``processing``."""
        self._write("UPDATE tasks SET checked=?, original=?, processing=?, bytes_total=? WHERE task_id=?",
                    (as_json(checked), as_json(original) if original else None, processing_json(task),
                     task.bytes_total, task.task_id))

    def save_multipart(self, task_id: str, state: dict[str, Any] | None) -> None:
        self._write("UPDATE tasks SET multipart=? WHERE task_id=?",
                    (as_json(state) if state else None, task_id), key=("multipart", task_id))

    def remove(self, task_ids: list[str]) -> None:
        self._write("DELETE FROM tasks WHERE task_id=?", [(t,) for t in task_ids], many=True)

    def load(self) -> list[StoredTask]:
        out = []
        with self._lock:
            rows = self._cur.execute(
                "SELECT task_id, batch_id, batch_size, path, name, profile, status, bytes_total, bytes_uploaded,"
                " attempts, url, key, error, created_at, started_at, finished_at, source, checked, multipart,"
                " processing, original, deduplicated, url_expires FROM tasks ORDER BY seq").fetchall()
        for row in rows:
            stored = stored_task(row)
            if stored is None:  # damaged on disk, or edited by hand
                log.warning("the journal's row of task %s is damaged (its status, source or file): left out", row[0])
                continue
            out.append(stored)
        return out

    # -- multipart uploads to abort (see engine/cleanup.py) ------------------------------------------------------------
    def add_abort(self, profile: str, key: str, upload_id: str) -> None:
        self._write("INSERT OR IGNORE INTO aborts (upload_id, profile, key) VALUES (?,?,?)", (upload_id, profile, key))

    def remove_abort(self, upload_id: str) -> None:
        self._write("DELETE FROM aborts WHERE upload_id=?", (upload_id,))

    def pending_aborts(self) -> list[tuple[str, str, str]]:
        with self._lock:
            rows = self._cur.execute("SELECT upload_id, profile, key FROM aborts").fetchall()
        return [(str(p), str(k), str(u)) for u, p, k in rows]


def _set_aside(path: Path) -> Path:
    """A journal SQLite cannot read (not a database, or damaged), and its side files, renamed beside it: kept for
    whoever wants to look into it, out of the way of a new one."""
    kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("-wal", "-shm", ""):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{kept}{suffix}")
    return kept
