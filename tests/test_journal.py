"""The journal on a real SQLite file: which of a task's states reach the disk, and when.

A passing state (uploading, the key, a retry's note) is one a restart does not need: from it, as from the
state before it, a restart queues the task again. It is written only if it is still the task's newest state
``PASSING_S`` later, so that a small file, which lives a few milliseconds, costs the journal two writes, not
five. What a restart finds is read back with a second ``Journal`` on the same file, as the daemon's next start
would read it (``tests/test_reliability.py`` kills the real daemon mid-upload)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pixlift.core.tasks import Task, TaskStatus
from pixlift.journal import journal as journal_module
from pixlift.journal.journal import Journal


def stored(path: Path) -> dict[str, Task]:
    """What a restart would find: the journal file read by a journal of its own."""
    reader = Journal(path)
    try:
        return {s.task.task_id: s.task for s in reader.load()}
    finally:
        reader.close()


def queued(journal: Journal, *ids: str) -> list[Task]:
    tasks = [Task(task_id=i, batch_id="b", path=f"/p/{i}.jpg", name=f"{i}.jpg", profile="s3", bytes_total=10)
             for i in ids]
    journal.add([(t, 4, {"path": t.path}) for t in tasks])
    return tasks


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journal]:
    monkeypatch.setattr(journal_module, "PASSING_S", 0.2)  # passing states due sooner: the tests wait less
    opened = Journal(tmp_path / "journal.sqlite3")
    try:
        yield opened
    finally:
        opened.close()


def test_a_passing_state_overtaken_by_the_next_never_reaches_the_disk(journal: Journal) -> None:
    path = journal.path
    task, other = queued(journal, "a", "other")
    task.move(TaskStatus.UPLOADING)
    task.started_at, task.key = 5.0, "2026/12/a.jpg"
    journal.update(task, passing=True)
    journal._commits.drain()  # what the writer had queued is on disk; the passing state was not queued
    assert stored(path)["a"].status is TaskStatus.QUEUED  # a crash now: the task is sent again

    task.move(TaskStatus.FAILED)
    task.error = {"code": "store_refused", "message": "refused"}
    journal.update(task)
    journal._commits.drain()
    after = stored(path)["a"]
    assert after.status is TaskStatus.FAILED and after.error == task.error
    assert after.key == "2026/12/a.jpg"  # the durable state carries what the passing one had

    time.sleep(0.3)  # past the passing state's time: the next commit must not bring it back over "failed"
    other.move(TaskStatus.PAUSED)
    journal.update(other)
    journal._commits.drain()
    assert stored(path)["a"].status is TaskStatus.FAILED


def test_a_passing_state_that_lasts_is_written_with_the_next_commit(journal: Journal) -> None:
    path = journal.path
    slow, other = queued(journal, "slow", "other")
    slow.move(TaskStatus.UPLOADING)
    slow.started_at = 7.0
    journal.update(slow, passing=True)
    time.sleep(0.3)
    other.move(TaskStatus.PAUSED)  # any change of any task takes the due passing states along
    journal.update(other)
    journal._commits.drain()
    found = stored(path)
    assert found["slow"].status is TaskStatus.UPLOADING and found["slow"].started_at == 7.0
    assert found["other"].status is TaskStatus.PAUSED


def test_flush_and_close_write_the_passing_states_too(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        first, second = queued(journal, "first", "second")
        for task in (first, second):
            task.move(TaskStatus.UPLOADING)
            task.attempts = 2
            journal.update(task, passing=True)
        assert journal.flush()
        assert {t.status for t in stored(path).values()} == {TaskStatus.UPLOADING}

        first.move(TaskStatus.QUEUED)
        journal.update(first, passing=True)
    finally:
        journal.close()
    found = stored(path)
    assert found["first"].status is TaskStatus.QUEUED and found["first"].attempts == 2


def test_the_log_is_copied_into_the_database_while_the_daemon_runs(tmp_path: Path) -> None:
    """Commits run no checkpoint (one took up to 0.6 s on a busy disk, and every upload waiting to be reported
    stood still); a thread of their own does, so the write-ahead log does not grow for as long as the daemon
    runs. Read as SQLite reads a file with no log (``immutable=1``), the database itself holds the rows."""
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        for n in range(20):
            queued(journal, *(f"t{n}-{i}" for i in range(100)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
                try:
                    in_file = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
                except sqlite3.OperationalError:  # not even the table has left the log yet
                    in_file = 0
            if in_file == 2000:
                break
            time.sleep(0.1)
        assert in_file == 2000, f"{in_file} of 2000 rows in the database file; the rest only in its log"
        assert len(stored(path)) == 2000
    finally:
        journal.close()


def test_the_writer_lets_go_of_what_it_committed() -> None:
    """A commit's changes are let go once written, not held while the writer waits for the next one: after a
    clear of 100,000 tasks, their ids (in the commit's DELETE) stayed in memory until the next write."""
    import weakref

    from pixlift.journal.commits import GroupCommit

    class Change:
        pass

    written: list[int] = []
    commits: GroupCommit[Change] = GroupCommit(lambda batch: written.append(len(batch)), name="test-writer")
    try:
        change = Change()
        gone = weakref.ref(change)
        commits.put(change)
        del change
        assert commits.drain(5) and written == [1]
        assert gone() is None
    finally:
        commits.close()


def test_the_writer_lets_go_of_the_calls_it_answered() -> None:
    """Once a ``durable`` call is answered, the writer keeps nothing of it (its future, its loop) while it waits
    for the next change: what it kept was made in the middle of a batch and held that batch's memory after a
    clear (bench/README.md, "Memory through a large batch")."""
    import asyncio
    import gc
    import weakref

    from pixlift.journal.commits import GroupCommit

    commits: GroupCommit[object] = GroupCommit(lambda batch: None, name="test-writer")
    seen: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def put_and_wait() -> None:
        seen.append(weakref.ref(asyncio.get_running_loop()))
        commits.put(object())
        await commits.durable()

    try:
        asyncio.run(put_and_wait())
        assert commits.drain(5)
        time.sleep(0.2)  # the writer is back to waiting for changes
        gc.collect()
        assert seen[0]() is None, "the writer still holds the loop whose call it answered"
    finally:
        commits.close()
