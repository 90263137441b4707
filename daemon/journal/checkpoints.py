"""WAL checkpoints off the commit path: the journal's commits never wait for one.

In WAL mode with ``synchronous=NORMAL`` a commit appends to the write-ahead log and syncs nothing; the disk is
synced when the log is copied back into the database, the checkpoint. SQLite runs one inside the commit that
takes the log past 1,000 pages, and on a busy disk that commit took up to 0.6 s, while every upload waiting to
be reported stood still (``Journal.durable``). The journal's writer now runs none (``wal_autocheckpoint=0``);
this thread does, on a connection of its own, at most once every ``CHECKPOINT_S`` after something was
written. A passive checkpoint copies what no reader still needs and never holds up a writer; the next write
after one that copied everything starts the log afresh, so it stays about a second of writes long.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)
CHECKPOINT_S = 1.0


class Checkpointer:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._written = threading.Event()  # something was committed since the last checkpoint
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pixlift-checkpoint", daemon=True)
        self._thread.start()

    def written(self) -> None:
        """A commit added to the log (cheap: called after every commit)."""
        if not self._written.is_set():
            self._written.set()

    def close(self) -> None:
        self._closing.set()
        self._written.set()
        self._thread.join(30)

    def _run(self) -> None:
        cursor = self._db.cursor()  # one for every checkpoint: see the journal's own
        try:
            while True:
                self._written.wait()
                if self._closing.is_set():
                    return
                self._written.clear()
                try:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # a full or read-only disk: the log grows, and the next one tries again
                    log.debug("WAL checkpoint failed: %s", exc)
                if self._closing.wait(CHECKPOINT_S):
                    return
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
