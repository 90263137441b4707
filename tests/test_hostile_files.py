"""No file freezes pixlift (issue 21): the crafted files that once held the event loop for hours, uploaded to
the real daemon by path and by URL, fail (or pass) within moments while /rpc keeps answering; a file over the
time budget fails ``file_error`` saying pixlift gave up; a daemon killed while it reads a file starts at once
and fails that task with the reason instead of reading it again."""

from __future__ import annotations

import asyncio
import http.server
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Daemon, Home, make_image, start_daemon, wait_until
from crafted import gif_tiny_subblocks, heic_billion_items, heic_empty_extents, tiff_shared_gps_value, write
from pixlift.images.metadata_bounds import GaveUp, ParseGate, tick


class Prober:
    """Calls /rpc every 50 ms on a thread of its own and keeps the slowest answer (any answer: a rate limit
    is an answer too)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon, self.slowest, self.calls = daemon, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            status, _ = self.daemon.call_raw({"jsonrpc": "2.0", "id": 1, "method": "get_daemon_info"})
            assert status == 200
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.calls += 1
            self._stop.wait(0.05)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def parsing(home: Home) -> set[str]:
    """The tasks the daemon marks as being parsed (ParseMarks' slot files: one per parse thread, the id inside)."""
    return {p.read_text().strip() for p in (home.root / "spool" / "parsing").glob("*")} - {""}


# The prober calls 20 times a second and a waiting test as often again: over the default call limit of 20 a
# second, which would answer them with -32029 (an answer, but not the one a test waits for).
PROBED = {"calls_per_second": 200, "call_burst": 400}


@pytest.fixture
def daemon(home: Home, daemon_factory: Callable[..., Daemon]) -> Daemon:
    home.write_config(security=PROBED)
    return daemon_factory()


def test_the_crafted_files_fail_at_once_and_the_daemon_keeps_answering(home: Home, daemon: Daemon) -> None:
    files = [write(home.pictures, "iloc-v2.heic", heic_billion_items()),
             write(home.pictures, "extents.heic", heic_empty_extents()),
             write(home.pictures, "gps-shared.tif", tiff_shared_gps_value())]
    started = time.monotonic()
    with Prober(daemon) as prober:
        batch = daemon.rpc("upload_images", {"paths": [str(p) for p in files]})
        done = daemon.wait_batch(batch["batch_id"], timeout=60)
    took = time.monotonic() - started
    by_name = {t["name"]: t for t in done["tasks"]}
    for name in ("iloc-v2.heic", "extents.heic"):
        task = by_name[name]
        assert task["status"] == "failed" and task["error"]["code"] == "file_error", task
        assert "gave up reading" in task["error"]["message"] and "no valid file has" in task["error"]["message"]
    tiff = by_name["gps-shared.tif"]  # a valid structure: its GPS goes, in time linear in its size
    assert tiff["status"] == "completed", tiff["error"]
    assert tiff["processing"]["stripped"] == ["gps"]
    assert took < 8, f"the crafted files took {took:.1f} s"
    assert prober.calls > 0 and prober.slowest < 1.0, f"/rpc took {prober.slowest:.2f} s to answer"


@pytest.fixture
def image_server(home: Home) -> Iterator[str]:
    """Serves home.pictures over HTTP on loopback, as an image host would."""
    folder = str(home.pictures)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=folder, **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_same_bytes_from_a_url_fail_the_same_way(home: Home, image_server: str,
                                                    daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config(security={"allow_private_urls": True, **PROBED})
    d = daemon_factory()
    write(home.pictures, "iloc-v2.heic", heic_billion_items())
    with Prober(d) as prober:
        batch = d.rpc("upload_urls", {"urls": [f"{image_server}/iloc-v2.heic"]})
        task = d.wait_batch(batch["batch_id"], timeout=30)["tasks"][0]
    assert task["status"] == "failed" and task["error"]["code"] == "file_error"
    assert "gave up reading" in task["error"]["message"]
    assert prober.slowest < 1.0


def test_a_file_over_the_time_budget_fails_and_other_uploads_go_on(home: Home, daemon: Daemon) -> None:
    slow = write(home.pictures, "slow.gif", gif_tiny_subblocks())
    started = time.monotonic()
    with Prober(daemon) as prober:
        slow_task = daemon.rpc("upload_images", {"paths": [str(slow)]})["tasks"][0]
        wait_until(lambda: parsing(home), 20, message="the parse to start")
        photo = make_image(home.pictures / "meanwhile.jpg", 50_000, seed=5)
        other = daemon.rpc("upload_images", {"paths": [str(photo)]})["tasks"][0]
        assert daemon.wait_task(other["task_id"], timeout=20)["status"] == "completed"
        assert daemon.rpc("get_upload_progress", {"task_id": slow_task["task_id"]})["status"] == "uploading"
        failed = daemon.wait_task(slow_task["task_id"], timeout=60, interval=0.25)  # with the prober: under
    assert failed["status"] == "failed" and failed["error"]["code"] == "file_error"  # the /rpc rate limit
    assert "gave up reading slow.gif" in failed["error"]["message"] and "10 s" in failed["error"]["message"]
    assert 9 < time.monotonic() - started < 30
    assert prober.slowest < 1.0


def test_a_daemon_killed_while_it_reads_a_file_starts_at_once_and_fails_that_task(
        home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config(security=PROBED)
    d = daemon_factory()
    slow = write(home.pictures, "slow.gif", gif_tiny_subblocks())
    task = d.rpc("upload_images", {"paths": [str(slow)]})["tasks"][0]
    wait_until(lambda: parsing(home), 20, message="the parse to start")
    time.sleep(1.5)  # the task's uploading state is journalled (passing states wait a second)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    started = time.monotonic()
    again = start_daemon(home)
    try:
        assert time.monotonic() - started < 10
        got = again.rpc("get_upload_progress", {"task_id": task["task_id"]})
        assert got["status"] == "failed" and got["error"]["code"] == "file_error", got
        assert "stopped while it was reading slow.gif" in got["error"]["message"]
        assert not parsing(home)
        photo = make_image(home.pictures / "after.jpg", 20_000, seed=6)
        after = again.rpc("upload_images", {"paths": [str(photo)]})["tasks"][0]
        assert again.wait_task(after["task_id"], timeout=20)["status"] == "completed"
    finally:
        again.proc.kill()
        again.proc.wait(10)


async def test_the_parse_gate_caps_parses_and_gives_up_at_its_budget() -> None:
    gate = ParseGate(parallel=2, seconds=0.3)
    running, most = 0, 0
    lock = threading.Lock()

    def spin() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            while True:
                tick()
        finally:
            with lock:
                running -= 1

    started = time.monotonic()
    results = await asyncio.gather(*(gate.run(spin) for _ in range(6)), return_exceptions=True)
    assert all(isinstance(r, GaveUp) for r in results)
    assert most == 2
    assert 0.8 < time.monotonic() - started < 3  # three rounds of two, each stopped at its budget
    gate.close()


def test_a_count_that_cannot_fit_is_refused_before_any_work(tmp_path: Path) -> None:
    from pixlift.images.metadata import strip

    started = time.monotonic()
    with pytest.raises(GaveUp, match="no valid file has"):
        strip(heic_billion_items(), "image/heic", "location", tmp_path / "out.heic")
    with pytest.raises(GaveUp, match="no valid file has"):
        strip(heic_empty_extents(), "image/heic", "location", tmp_path / "out.heic")
    assert time.monotonic() - started < 1



def test_a_file_truncated_while_pixlift_reads_it_fails_and_the_daemon_lives(home: Home, daemon: Daemon) -> None:
    """Another process truncates a large image while pixlift reads it (a camera app rewriting it, a sync
    client): the task fails ``file_error`` saying the file changed, and the daemon keeps answering. (Read
    through a memory map, the next access past the new end raised SIGBUS and killed the daemon.)"""
    import os

    big = write(home.pictures, "rewritten.gif", gif_tiny_subblocks(3 * 1024 * 1024))  # seconds to walk

    def holds_it_open() -> bool:
        fds = Path(f"/proc/{daemon.proc.pid}/fd")
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) == str(big):
                    return True
            except OSError:
                continue
        return False

    with Prober(daemon) as prober:
        task = daemon.rpc("upload_images", {"paths": [str(big)]})["tasks"][0]
        wait_until(lambda: parsing(home) and holds_it_open(), 20,
                   interval=0.01, message="pixlift to read the file")
        time.sleep(0.2)  # well into the parse, which takes seconds
        truncations = 0
        while truncations < 50 and daemon.proc.poll() is None:  # rewritten over and over, as a writer does
            with big.open("r+b") as fh:
                fh.truncate(4096)
                truncations += 1
            time.sleep(0.02)
        assert daemon.proc.poll() is None, f"the daemon died ({daemon.proc.returncode}): {daemon.log()[-2000:]}"
        failed = daemon.wait_task(task["task_id"], timeout=60, interval=0.25)
    assert failed["status"] == "failed" and failed["error"]["code"] == "file_error", failed
    assert "rewritten.gif changed while pixlift was reading it" in failed["error"]["message"], failed["error"]
    assert prober.calls > 0 and prober.slowest < 1.0
    assert daemon.rpc("get_daemon_info")
    assert not list((home.root / "spool").rglob("rewritten.gif")), "a half-edited copy was left in the spool"


def test_file_bytes_reads_as_the_bytes_do(tmp_path: Path) -> None:
    """What the editors see of a large file (read on demand) is what they would see of its bytes."""
    import os
    import random

    from pixlift.images.metadata_bounds import FileBytes

    rng = random.Random(7)
    data = bytes(rng.choice(b"\x00\xffAB") for _ in range(FileBytes.BLOCK * 3 + 123))
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        view = FileBytes(fd)
        assert len(view) == len(data) and view[5] == data[5] and view[-1] == data[-1]
        for _ in range(300):
            a = rng.randrange(len(data))
            b = a + rng.choice([0, 1, 2, 7, FileBytes.BLOCK - 1, FileBytes.BLOCK + 5, 3 * FileBytes.BLOCK])
            assert view[a:b] == data[a:b]
            sub = data[b:b + rng.choice([1, 2, 5])] or b"\xff"
            assert view.find(sub, a) == data.find(sub, a)
            assert view.find(sub, a, b) == data.find(sub, a, b)
        assert view.find(b"not there") == -1
    finally:
        os.close(fd)
