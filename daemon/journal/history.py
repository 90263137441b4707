"""The history table of the journal: every uploaded object, what it held, and whether it was deleted since.

A mixin of ``Journal``: writes are queued with every other change (same group commit), so a caller that must
report a change awaits ``Journal.durable()``. Reads go through a connection of their own: in WAL mode a reader
sees what is committed without waiting for a commit under way, so the event loop (dedup looks up every file
it sends) never stops for the writer thread.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from ..core.views import iso

COLUMNS = "id, task_id, name, url, size, profile, key, uploaded_at, deleted_at, url_expires"


class Digests:
    """Which (profile, SHA-256) pairs the history may hold: a Bloom filter of 1 MiB, two bits per pair, so that
    a file never uploaded before (nearly every file) costs dedup no query. Filled from the history at start
    and as uploads complete; it only ever says "maybe" or "no", and a "maybe" is asked of the history.
    Wrong "maybe"s: about 1 in 2,000 lookups with 100,000 uploads in the history, 1 in 22 with a million."""

    BITS = 1 << 23

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS >> 3)

    def add(self, profile: str, sha256: str) -> None:
        for at in self._at(profile, sha256):
            self._bits[at >> 3] |= 1 << (at & 7)

    def may_hold(self, profile: str, sha256: str) -> bool:
        return all(self._bits[at >> 3] >> (at & 7) & 1 for at in self._at(profile, sha256))

    def _at(self, profile: str, sha256: str) -> tuple[int, int]:
        h = hash((profile, sha256))  # this process's own hash: the filter lives in memory only
        return h & (self.BITS - 1), (h >> 32) & (self.BITS - 1)


class HistoryRecords:
    _reads: sqlite3.Connection
    _read_cur: sqlite3.Cursor  # the only one, used under _read_lock (journal.py says why)
    _read_lock: threading.Lock
    _digests: Digests

    def _load_digests(self) -> None:
        """At start: the filter learns every object the history holds."""
        self._digests = Digests()
        with self._read_lock:
            for profile, sha256 in self._read_cur.execute("SELECT profile, sha256 FROM history WHERE sha256 IS NOT "
                                                       "NULL AND deleted_at IS NULL"):
                self._digests.add(profile, sha256)

    def _write(self, sql: str, args: Any, *, many: bool = False, key: tuple[str, ...] | None = None) -> None:
        raise NotImplementedError

    def history(self, limit: int, offset: int, query: str | None = None,
                deleted: bool | None = None) -> tuple[list[dict[str, Any]], int]:
        """A page of entries, newest first: by name, and only deleted (``deleted=True``) or only live ones."""
        clauses, args = [], []
        if query:
            clauses.append("name LIKE ? ESCAPE '\\'")
            args.append("%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if deleted is not None:
            clauses.append("deleted_at IS NOT NULL" if deleted else "deleted_at IS NULL")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._read_lock:
            self._read_cur.execute("BEGIN")  # the count and the page from one snapshot
            try:
                total = int(self._read_cur.execute(f"SELECT COUNT(*) FROM history {where}", args).fetchone()[0])
                rows = self._read_cur.execute(f"SELECT {COLUMNS} FROM history {where} ORDER BY uploaded_at DESC, "
                                           "id DESC LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
            finally:
                self._read_cur.execute("COMMIT")
        return [_item(r) for r in rows], total

    def history_item(self, history_id: int) -> dict[str, Any] | None:
        with self._read_lock:
            row = self._read_cur.execute(f"SELECT {COLUMNS} FROM history WHERE id=?", (history_id,)).fetchone()
        return _item(row) if row else None

    def history_of(self, profile: str, key: str) -> dict[str, Any] | None:
        """The newest entry for an object (a deduplicated task has none of its own: its object's)."""
        with self._read_lock:
            row = self._read_cur.execute(f"SELECT {COLUMNS} FROM history WHERE profile=? AND key=? ORDER BY id DESC"
                                      " LIMIT 1", (profile, key)).fetchone()
        return _item(row) if row else None

    def history_of_task(self, task_id: str) -> dict[str, Any] | None:
        with self._read_lock:
            row = self._read_cur.execute(f"SELECT {COLUMNS} FROM history WHERE task_id=? ORDER BY id DESC LIMIT 1",
                                      (task_id,)).fetchone()
        return _item(row) if row else None

    def history_by_url(self, url: str) -> dict[str, Any] | None:
        """The newest entry whose link is ``url`` (as it was last handed out)."""
        with self._read_lock:
            row = self._read_cur.execute(f"SELECT {COLUMNS} FROM history WHERE url=? ORDER BY id DESC LIMIT 1",
                                      (url,)).fetchone()
        return _item(row) if row else None

    def find_upload(self, profile: str, sha256: str) -> tuple[str, int] | None:
        """The key and size of an object of this profile with these bytes, as far as the journal knows."""
        if not self._digests.may_hold(profile, sha256):
            return None
        with self._read_lock:
            row = self._read_cur.execute("SELECT key, size FROM history WHERE profile=? AND sha256=? AND deleted_at IS "
                                      "NULL ORDER BY id DESC LIMIT 1", (profile, sha256)).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def add_upload(self, task_id: str, name: str, url: str, size: int, profile: str, key: str, when: float,
                   url_expires: float | None) -> None:
        """An object uploaded without a task of the daemon's (a presigned upload the app sent itself)."""
        self._write("INSERT INTO history (task_id, name, url, size, profile, key, uploaded_at, url_expires)"
                    " VALUES (?,?,?,?,?,?,?,?)", (task_id, name, url, size, profile, key, when, url_expires))

    def relink(self, history_id: int, url: str, expires: float | None) -> None:
        """A re-signed link for an entry."""
        self._write("UPDATE history SET url=?, url_expires=? WHERE id=?", (url, expires, history_id))

    def mark_deleted(self, profile: str, key: str, when: float) -> None:
        """Every entry that points to the object: it is gone from the store."""
        self._write("UPDATE history SET deleted_at=? WHERE profile=? AND key=? AND deleted_at IS NULL",
                    (when, profile, key))


def _item(r: Any) -> dict[str, Any]:
    return {"history_id": r[0], "task_id": r[1], "name": r[2], "url": r[3], "size": r[4], "profile": r[5],
            "key": r[6], "uploaded_at": iso(r[7]), "deleted_at": iso(r[8]), "url_expires_at": iso(r[9]),
            "_url_expires": r[9]}
