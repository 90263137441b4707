"""Nothing lost, nothing faked: full disks, one daemon per home, racing writes; each fault made real.

A tmpfs mounted by the test (as root, as CI runs) and filled to an exact edge stands for a full disk; a second
``pixlift serve`` on the same home is started for real.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, RpcFailure, make_image, oss_profile, pixlift_env, start_daemon, wait_until
from pixlift.providers.inflight import TARGET_S

MiB = 1024 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    assert os.geteuid() == 0, "these tests mount a tmpfs: run them as root (CI does)"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_leaving(folder: Path, free_bytes: int) -> Path:
    """Fill the filesystem holding ``folder`` until exactly ``free_bytes`` (to a block) are left."""
    st = os.statvfs(folder)
    filler = folder / "filler"
    want = st.f_bavail * st.f_frsize - free_bytes
    with filler.open("wb", buffering=0) as fh:
        try:
            while want > 0:  # in pieces: a daemon writing meanwhile may take the last blocks first
                want -= fh.write(b"\0" * min(want, MiB))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC and free_bytes == 0, exc
    left = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    assert left <= free_bytes + st.f_frsize, left
    return filler


def test_a_full_disk_fails_the_upload_and_keeps_no_truncated_copy(home: Home, tmpfs: Path,
                                                                  daemon_factory: Callable[..., Daemon]) -> None:
    store = tmpfs / "store"
    home.write_config(profiles={"disk": {"provider": "local", "root": str(store)}}, default="disk")
    d = daemon_factory()
    store.mkdir()
    filler = fill_leaving(tmpfs, int(3.25 * MiB))
    photo = make_image(home.pictures / "big.jpg", int(3.5 * MiB), seed=7)
    task = d.rpc("upload_images", {"paths": [str(photo)]})["tasks"][0]
    failed = d.wait_task(task["task_id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "disk_full", failed
    assert "full" in failed["error"]["message"] and failed["url"] is None
    assert [p for p in store.rglob("*") if p.is_file()] == []  # no truncated object, no temporary file
    assert d.rpc("get_upload_history")["total"] == 0

    filler.unlink()  # space freed: the retry completes, byte for byte, with a link that works
    d.rpc("retry_upload", {"task_id": task["task_id"]})
    done = d.wait_task(task["task_id"])
    assert done["status"] == "completed", done
    assert done["url"].startswith(f"{d.url}/local/disk/")
    with urllib.request.urlopen(done["url"]) as resp:
        assert resp.read() == photo.read_bytes()
    assert (store / done["key"]).read_bytes() == photo.read_bytes()


def test_same_named_uploads_racing_to_one_folder_all_complete(home: Home, daemon: Daemon) -> None:
    photo = make_image(home.pictures / "same.jpg", 400_000, seed=3)
    batch = daemon.rpc("upload_images_batch", {"paths": [str(photo)] * 24, "batch_size": 24})
    result = daemon.wait_batch(batch["batch_id"])
    assert [t["status"] for t in result["tasks"]] == ["completed"] * 24, [t["error"] for t in result["tasks"]]
    stored = [p for p in (home.root / "files").rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].read_bytes() == photo.read_bytes()  # one key, one whole object


def test_a_second_daemon_on_the_same_home_refuses_and_touches_nothing(home: Home, daemon: Daemon) -> None:
    info = (home.root / "daemon.json").read_text()
    log = home.root / "pixlift.log"
    log_before = log.read_bytes() if log.exists() else b""
    second = subprocess.run([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"],
                            env=pixlift_env(home), capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"pid {daemon.proc.pid}" in lines[0] and daemon.url in lines[0] and "already" in lines[0]
    assert (home.root / "daemon.json").read_text() == info  # the first one's files are untouched
    assert (log.read_bytes() if log.exists() else b"") == log_before
    status = subprocess.run([sys.executable, "-m", "pixlift", "status"], env=pixlift_env(home),
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and daemon.url in status.stdout
    assert json.loads(info)["pid"] == daemon.proc.pid


def test_retry_failed_queues_every_failed_task_again(home: Home, oss_server: Any,
                                                     daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config(profiles={"oss": oss_profile(oss_server)}, default="oss")
    daemon = daemon_factory()
    photos = [make_image(home.pictures / f"r{i}.jpg", 200_000, seed=60 + i) for i in range(3)]
    oss_server.server.put_delay_s = 0.3  # the first file takes about a second; the others wait their turn
    batch = daemon.rpc("upload_images_batch", {"paths": [str(p) for p in photos], "batch_size": 1})
    hidden = [p.rename(p.with_suffix(".moved")) for p in photos[1:]]  # two files vanish before they are sent
    oss_server.server.put_delay_s = 0
    result = daemon.wait_batch(batch["batch_id"])
    assert [t["status"] for t in result["tasks"]] == ["completed", "failed", "failed"]
    for moved, photo in zip(hidden, photos[1:], strict=True):
        moved.rename(photo)  # back where they were: now they can be sent
    again = daemon.rpc("retry_failed", {"batch_id": batch["batch_id"]})
    assert again == {"retried": 2, "skipped": []}
    result = daemon.wait_batch(batch["batch_id"])
    assert [t["status"] for t in result["tasks"]] == ["completed"] * 3
    assert daemon.rpc("retry_failed") == {"retried": 0, "skipped": []}
    out = subprocess.run([sys.executable, "-m", "pixlift", "retry", "--failed"], env=pixlift_env(home),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "retried 0 failed uploads"


def home_on_tmpfs(tmp_path: Path, tmpfs: Path, count: int) -> tuple[Home, list[str]]:
    """PIXLIFT_HOME on the small tmpfs (the pictures on the real disk), and ``count`` small photos to send."""
    home = Home(tmpfs / "home", tmp_path / "Pictures")
    home.root.mkdir()
    home.pictures.mkdir()
    home.write_config(security={"files_per_minute": 100000})
    return home, [str(make_image(home.pictures / f"j{i}.jpg", 3_000, seed=100 + i)) for i in range(count)]


def test_a_call_whose_rows_cannot_be_written_queues_nothing(tmp_path: Path, tmpfs: Path) -> None:
    """PIXLIFT_HOME on a full disk: the call answers -32005 saying what to do, and none of its files is uploaded
    later, when something else wakes the daemon, or after a restart."""
    home, photos = home_on_tmpfs(tmp_path, tmpfs, 400)
    d = start_daemon(home)
    try:
        filler = fill_leaving(tmpfs, 0)
        with pytest.raises(RpcFailure) as refused:
            d.rpc("upload_images_batch", {"paths": photos, "batch_size": 20})
        assert refused.value.code == -32005 and "full" in refused.value.error["message"]
        assert "nothing was queued" in refused.value.error["message"]
        assert d.rpc("get_all_upload_progress")["tasks"] == []
        filler.unlink()
        one = make_image(home.pictures / "after.jpg", 3_000, seed=999)
        task = d.rpc("upload_images", {"paths": [str(one)]})["tasks"][0]
        assert d.wait_task(task["task_id"])["status"] == "completed"
        assert [t["task_id"] for t in d.rpc("get_all_upload_progress")["tasks"]] == [task["task_id"]]
        assert d.rpc("get_upload_history")["total"] == 1
        assert d.stop() == 0
        d = start_daemon(home)
        assert [t["task_id"] for t in d.rpc("get_all_upload_progress")["tasks"]] == [task["task_id"]]
        stored = [p for p in (home.root / "files").rglob("*") if p.is_file()]
        assert len(stored) == 1
    finally:
        d.proc.kill()
        d.proc.wait(10)


def test_a_call_whose_rows_fit_only_in_part_queues_none_of_them(tmp_path: Path, tmpfs: Path) -> None:
    """Room on the disk for some of a call's rows but not all: none of its files is queued, now or after a
    restart (a batch is one transaction: stored row by row, the rows that fitted came back as queued tasks)."""
    home, photos = home_on_tmpfs(tmp_path, tmpfs, 600)
    d = start_daemon(home)
    try:
        filler = fill_leaving(tmpfs, 128 * 1024)  # a few dozen rows' worth
        with pytest.raises(RpcFailure) as refused:
            d.rpc("upload_images_batch", {"paths": photos, "batch_size": 20})
        assert refused.value.code == -32005 and "nothing was queued" in refused.value.error["message"]
        assert d.rpc("get_all_upload_progress")["tasks"] == []
        assert d.stop() == 0
        filler.unlink()
        d = start_daemon(home)
        assert d.rpc("get_all_upload_progress")["tasks"] == []
    finally:
        d.proc.kill()
        d.proc.wait(10)


def test_a_store_restarted_mid_batch_forgets_its_uploads_and_every_file_still_arrives(
        home: Home, tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    """rclone forgets its multipart uploads when it restarts: the files whose uploads it forgot start again from
    their first byte, by themselves, and the batch completes with every object whole and none left behind."""
    from conftest import start_rclone
    from netproxy import Proxy

    s3 = start_rclone(tmp_path / "s3")
    s3.bucket("restart")
    proxy = Proxy(s3.port, rate_bps=8 * MiB).start()
    try:
        home.write_config({"s3": {**s3.profile("restart"), "endpoint_url": proxy.endpoint}}, default="s3",
                          transfers={"backoff_base_s": 0.05, "backoff_max_s": 0.2})
        d = daemon_factory()
        files = [make_image(home.pictures / f"big{i}.jpg", 24 * MiB, seed=200 + i) for i in range(2)]
        batch = d.rpc("upload_images", {"paths": [str(f) for f in files]})

        def under_way() -> bool:
            return d.rpc("get_all_upload_progress")["summary"]["bytes_uploaded"] > 12 * MiB

        wait_until(under_way, 30, message="both uploads under way")
        s3.proc.terminate()
        s3.proc.wait(10)
        proxy.cut()
        s3 = start_rclone(tmp_path / "s3", port=s3.port)  # the same folder and port; its uploads forgotten
        proxy.rate_bps = 0
        result = d.wait_batch(batch["batch_id"], timeout=120)
        statuses = [t["status"] for t in result["tasks"]]
        assert statuses == ["completed", "completed"], [t["error"] for t in result["tasks"]]
        assert any(t["attempts"] >= 2 for t in result["tasks"])  # an upload the store forgot was started again
        for t, f in zip(result["tasks"], files, strict=True):
            assert s3.objects("restart")[t["key"]].read_bytes() == f.read_bytes()
        client = s3.client()
        try:
            left = client.list_multipart_uploads(Bucket="restart").get("Uploads", [])
        except client.exceptions.NoSuchUpload:
            left = []
        assert left == []
    finally:
        proxy.stop()
        s3.proc.terminate()
        s3.proc.wait(10)


def test_kill_9_every_few_seconds_over_a_slow_link_still_finishes_the_batch(home: Home, s3_server: Any,
                                                                            tmp_path: Path) -> None:
    """A daemon killed (-9) every four seconds, up to twelve times, while a 30-file batch crosses a 16 MB/s link: each
    start goes on from what was kept (journalled tasks, whole parts), so the batch finishes, with every object
    byte-identical and every history entry exactly once, each kill having cost no more than what was in flight."""
    from slowlink import SlowLink

    s3_server.bucket("killed")
    link = SlowLink(s3_server.port, 16 * MiB).start()
    d: Daemon | None = None
    try:
        home.write_config({"s3": {**s3_server.profile("killed"), "endpoint_url": link.endpoint}}, default="s3",
                          transfers={"backoff_base_s": 0.05, "backoff_max_s": 0.5})
        files = [make_image(home.pictures / f"k{i:02d}.jpg", size, seed=300 + i)
                 for i, size in enumerate([11 * MiB, 7 * MiB, 3 * MiB] * 10)]
        total = sum(f.stat().st_size for f in files)
        d = start_daemon(home)
        batch = d.rpc("upload_images", {"paths": [str(f) for f in files]})["batch_id"]
        kills = 0
        deadline = time.monotonic() + 240
        while True:
            time.sleep(4)
            summary = d.rpc("get_all_upload_progress", {"batch_id": batch})["summary"]
            if summary["completed"] == len(files):
                break
            assert time.monotonic() < deadline, f"no end after {kills} kills: {summary}"
            if kills >= 12:
                # Enough: rclone may hold a part whose sender was killed mid-body until its own timeout, which
                # no kill every 4 s outlasts. From here the daemon is left alone to finish what it kept.
                continue
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(10)
            kills += 1
            d = start_daemon(home)
        assert kills >= 3, "the batch must have lived through several kills"
        result = d.rpc("get_all_upload_progress", {"batch_id": batch})
        objects = s3_server.objects("killed")
        for t, f in zip(result["tasks"], files, strict=True):
            assert t["status"] == "completed" and objects[t["key"]].read_bytes() == f.read_bytes()
        history = d.rpc("get_upload_history", {"limit": 100})["items"]
        assert sorted(i["task_id"] for i in history) == sorted(t["task_id"] for t in result["tasks"])
        # What a kill may lose is what was in flight: InFlight keeps that near TARGET_S seconds of the link (parts
        # finish within seconds, so most of what was sent is kept), give or take one part as the rate is measured.
        lost = link.body - total
        per_kill = TARGET_S * 16 * MiB + 5 * MiB
        assert lost <= kills * per_kill, (f"sent {link.body / total:.2f} times the batch's bytes: "
                                          f"{lost / kills / MiB:.1f} MiB lost per kill")
    finally:
        if d is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        link.stop()


def test_changes_the_full_disk_refused_reach_the_journal_once_it_has_room(tmp_path: Path, tmpfs: Path,
                                                                         oss_server: Any) -> None:
    """Tasks queued, then the journal's disk fills while they upload: they complete (the store has them), the
    daemon keeps what it could not record, and stores it as soon as the disk has room, so a restart shows the
    truth: completed, with their links in history.

    The journal reuses its write-ahead log once a checkpoint has copied it (daemon/journal/checkpoints.py), so a full
    disk refuses it only when a second of changes outgrows the log: here, a file completing every 0.1 s."""
    home = Home(tmpfs / "home", tmp_path / "Pictures")
    home.root.mkdir()
    home.pictures.mkdir()
    home.write_config(profiles={"oss": oss_profile(oss_server)}, default="oss")
    photos = [str(make_image(home.pictures / f"u{i}.jpg", 40_000, seed=700 + i)) for i in range(30)]
    d = start_daemon(home)
    try:
        oss_server.server.put_delay_s = 0.05  # one at a time, a few seconds in all: the disk fills meanwhile
        batch = d.rpc("upload_images_batch", {"paths": photos, "batch_size": 1})
        filler = fill_leaving(tmpfs, 0)
        result = d.wait_batch(batch["batch_id"])
        oss_server.server.put_delay_s = 0
        assert [t["status"] for t in result["tasks"]] == ["completed"] * 30
        assert "unrecorded for now" in d.log()  # the journal did refuse, and the daemon said so
        filler.unlink()
        more = make_image(home.pictures / "u-after.jpg", 10_000, seed=799)
        extra = d.rpc("upload_images", {"paths": [str(more)]})["tasks"][0]  # the next write catches up first
        assert d.wait_task(extra["task_id"])["status"] == "completed"
        assert d.stop() == 0
        d = start_daemon(home)
        listed = {t["task_id"]: t for t in d.rpc("get_all_upload_progress")["tasks"]}
        assert [listed[t["task_id"]]["status"] for t in batch["tasks"]] == ["completed"] * 30
        assert d.rpc("get_upload_history")["total"] == 31
    finally:
        d.proc.kill()
        d.proc.wait(10)


def test_a_task_whose_stored_file_no_file_could_be_is_left_out_and_the_daemon_starts(home: Home) -> None:
    """A journal row damaged on disk or edited by hand (here: an inode no file has) must not keep the daemon
    from starting: that task is left out of the list, every other one is listed as before."""
    import contextlib
    import sqlite3

    daemon = start_daemon(home)
    try:
        photos = [make_image(home.pictures / f"kept{i}.jpg", 30_000, seed=i) for i in range(2)]
        batch = daemon.rpc("upload_images_batch", {"paths": [str(p) for p in photos]})
        tasks = daemon.wait_batch(batch["batch_id"])["tasks"]
        assert [t["status"] for t in tasks] == ["completed"] * 2
    finally:
        daemon.stop()
    damaged, kept = tasks[0]["task_id"], tasks[1]["task_id"]
    with contextlib.closing(sqlite3.connect(home.root / "journal.sqlite3")) as db:
        (raw,) = db.execute("SELECT checked FROM tasks WHERE task_id = ?", (damaged,)).fetchone()
        checked = json.loads(raw)
        checked["identity"]["ino"] = -1
        db.execute("UPDATE tasks SET checked = ? WHERE task_id = ?", (json.dumps(checked), damaged))
        db.commit()
    daemon = start_daemon(home)
    try:
        listed = daemon.rpc("get_all_upload_progress")["tasks"]
        assert [t["task_id"] for t in listed] == [kept]
        assert listed[0]["status"] == "completed" and listed[0]["url"] == tasks[1]["url"]
    finally:
        daemon.stop()


def test_damaged_columns_of_a_journal_row_do_not_keep_the_daemon_from_starting(home: Home) -> None:
    """What a task keeps beside its file (its multipart state, its error, its processing note) damaged on disk or by
    hand: the daemon still starts, and each of those tasks is listed without the part it could not read. A row
    whose status no task has is left out; every other task is listed as before."""
    import contextlib
    import sqlite3

    daemon = start_daemon(home)
    try:
        photos = [make_image(home.pictures / f"row{i}.jpg", 30_000, seed=40 + i) for i in range(5)]
        batch = daemon.rpc("upload_images_batch", {"paths": [str(p) for p in photos]})
        tasks = daemon.wait_batch(batch["batch_id"])["tasks"]
        assert [t["status"] for t in tasks] == ["completed"] * 5
    finally:
        daemon.stop()
    ids = [t["task_id"] for t in tasks]
    damage = [("multipart", '{"upload_id": "u", "parts": {"one": "etag"}}'), ("error", "{not json"),
              ("processing", "[1, 2"), ("status", "exploded")]
    with contextlib.closing(sqlite3.connect(home.root / "journal.sqlite3")) as db:
        for task_id, (column, text) in zip(ids, damage, strict=False):
            db.execute(f"UPDATE tasks SET {column} = ? WHERE task_id = ?", (text, task_id))
        db.commit()
    daemon = start_daemon(home)
    try:
        listed = {t["task_id"]: t for t in daemon.rpc("get_all_upload_progress")["tasks"]}
        assert set(listed) == set(ids[:3] + ids[4:])  # the row with no status a task can have is left out
        for before in tasks[:3] + tasks[4:]:
            now = listed[before["task_id"]]
            assert (now["status"], now["url"], now["key"]) == ("completed", before["url"], before["key"])
        assert listed[ids[1]]["error"] is None and listed[ids[2]]["processing"] is None
        after = daemon.rpc("upload_images", {"paths": [str(make_image(home.pictures / "next.jpg", 20_000, seed=9))]})
        assert daemon.wait_task(after["tasks"][0]["task_id"])["status"] == "completed"
    finally:
        daemon.stop()


def test_a_journal_that_is_not_a_database_is_kept_aside_and_the_daemon_starts(home: Home) -> None:
    """A journal file SQLite cannot read (garbage written over it, a half-copied backup) kept the daemon from
    starting, with a traceback, at every start. It is now renamed beside a new journal, kept for whoever wants it,
    and the daemon starts and uploads."""
    home.root.mkdir(parents=True, exist_ok=True)
    garbage = b"this is not a SQLite database, whatever its name says\n" * 40
    (home.root / "journal.sqlite3").write_bytes(garbage)
    daemon = start_daemon(home)
    try:
        kept = list(home.root.glob("journal.sqlite3.damaged-*"))
        assert len(kept) == 1 and kept[0].read_bytes() == garbage
        photo = make_image(home.pictures / "after-damage.jpg", 20_000, seed=3)
        task = daemon.rpc("upload_images", {"paths": [str(photo)]})["tasks"][0]
        assert daemon.wait_task(task["task_id"])["status"] == "completed"
        assert "could not be read" in (home.root / "pixlift.log").read_text()
    finally:
        daemon.stop()


def test_a_start_that_fails_unexpectedly_says_so_in_words_and_logs_the_traceback(home: Home) -> None:
    """Something pixlift did not foresee stops the start (here: a folder where its journal should be). The
    terminal gets a sentence saying where the details are, not a Python traceback; the log file has it."""
    home.root.mkdir(parents=True, exist_ok=True)
    (home.root / "journal.sqlite3").mkdir()
    done = subprocess.run([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"], env=pixlift_env(home),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "Traceback" not in said and 'File "' not in said
    assert "stopped on an error it did not expect" in said and str(home.root / "pixlift.log") in said
    assert "Traceback" in (home.root / "pixlift.log").read_text()
