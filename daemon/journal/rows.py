"""A task as a journal row: the tables, and what is written of a task and read back.

Reading back never lets a damaged row keep the daemon from starting: a row whose status, source or file cannot
be read is left out (``stored_task`` says None), and a column of its own that cannot be (its error, its
processing note, its multipart state, the original of an edited copy) is read as absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from ..core.tasks import Task, TaskSource, TaskStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    profile TEXT NOT NULL,
    status TEXT NOT NULL,
    bytes_total INTEGER NOT NULL,
    bytes_uploaded INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    url TEXT,
    key TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    source TEXT NOT NULL,
    checked TEXT NOT NULL,
    multipart TEXT
);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks(seq);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    size INTEGER NOT NULL,
    profile TEXT NOT NULL,
    key TEXT NOT NULL,
    uploaded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_time ON history(uploaded_at);
CREATE TABLE IF NOT EXISTS aborts (
    upload_id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


ADDED = {  # columns added since the first journal: every start adds what an older journal lacks
    "tasks": {"processing": "TEXT", "original": "TEXT", "deduplicated": "INTEGER NOT NULL DEFAULT 0",
              "url_expires": "REAL"},
    "history": {"sha256": "TEXT", "deleted_at": "REAL", "url_expires": "REAL"},
}


@dataclass
class StoredTask:
    task: Task
    batch_size: int
    checked: dict[str, Any]
    multipart: dict[str, Any] | None
    original: dict[str, Any] | None = None


STATUSES = frozenset(s.value for s in TaskStatus)
SOURCES = frozenset(s.value for s in TaskSource)


def stored_task(row: tuple[Any, ...]) -> StoredTask | None:
    """A row of ``Journal.load``'s query as a task; None when its status, source or file cannot be read."""
    (task_id, batch_id, batch_size, path, name, profile, status, total, done, attempts, url, key, error, created,
     started, finished, source, checked, multipart, processing, original, deduplicated, url_expires) = row
    file = _stored(checked)
    if status not in STATUSES or source not in SOURCES or file is None:
        return None
    task = Task(task_id=task_id, batch_id=batch_id, path=path, name=name, profile=profile, bytes_total=total,
                status=TaskStatus(status), bytes_uploaded=done, attempts=attempts, url=url, key=key,
                error=_stored(error), created_at=created, started_at=started, finished_at=finished,
                source=TaskSource(source), processing=_stored(processing), deduplicated=bool(deduplicated),
                url_expires=url_expires)
    return StoredTask(task, batch_size, file, _stored(multipart), _stored(original))


def as_json(value: Any) -> str:
    """JSON text for a column: orjson's, about ten times faster than the standard library's for these small
    records, and read back by ``json.loads`` like any other."""
    return orjson.dumps(value).decode()


def _stored(text: str | None) -> Any:
    """A column's JSON object; None when there is none, or what is there is not one (damaged on disk, or edited
    by hand): a task then loads without it rather than keeping the daemon from starting."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def processing_json(task: Task) -> str | None:
    """The task's ``processing`` as stored. It is set once, and a task's state is saved several times: its JSON
    is made once, and made again only if ``processing`` is another object."""
    if not task.processing:
        return None
    if task.stored is None or task.stored[0] is not task.processing:
        task.stored = (task.processing, as_json(task.processing))
    return task.stored[1]
