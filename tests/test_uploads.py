"""The engine end to end: the real daemon uploading to real S3 (rclone) and OSS (our server) over HTTP.

Each store is reached through a real TCP proxy (tests/netproxy.py) so that tests can slow it down or kill it.
"""

from __future__ import annotations

import itertools
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import AK, SK, Daemon, Home, S3Server, make_image, oss_profile, wait_until
from netproxy import Proxy
from ossserver import OssServerThread

MiB = 1024 * 1024
FAST = {"backoff_base_s": 0.05, "backoff_max_s": 0.2}


@dataclass
class Store:
    kind: str
    proxy: Proxy
    profile: dict[str, Any]
    objects: Callable[[], dict[str, Path]]
    pending: Callable[[], list[str]]
    abort_all: Callable[[], None]  # abort every multipart upload at the store, behind the daemon's back


@pytest.fixture(params=["s3", "oss"])
def store(request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path) -> Iterator[Store]:
    if request.param == "s3":
        bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-b"
        s3_server.bucket(bucket)
        proxy = Proxy(s3_server.port).start()
        client = s3_server.client()

        def s3_pending() -> list[str]:
            try:
                listed = client.list_multipart_uploads(Bucket=bucket)
            except client.exceptions.NoSuchUpload:  # rclone's answer when it holds none since it started
                return []
            return [u["UploadId"] for u in listed.get("Uploads", [])]

        def s3_abort_all() -> None:
            for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])

        yield Store("s3", proxy, {**s3_server.profile(bucket), "endpoint_url": proxy.endpoint},
                    lambda: s3_server.objects(bucket), s3_pending, s3_abort_all)
    else:
        import oss2
        from ossserver import run_in_thread

        server: OssServerThread = run_in_thread(tmp_path / "oss", AK, SK, buckets=("test",))
        proxy = Proxy(server.server.port).start()
        bucket_client = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, "test")

        def oss_abort_all() -> None:
            for u in oss2.MultipartUploadIterator(bucket_client):
                bucket_client.abort_multipart_upload(u.key, u.upload_id)

        yield Store("oss", proxy, {**oss_profile(server), "endpoint": proxy.endpoint},
                    lambda: server.server.objects("test"), lambda: server.server.pending_uploads("test"),
                    oss_abort_all)
        server.stop()
    proxy.stop()


def configure(home: Home, store: Store, **transfers: Any) -> None:
    home.write_config({"cloud": store.profile}, default="cloud", transfers={**FAST, **transfers})


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def poll(d: Daemon, batch_id: str | None = None) -> dict[str, Any]:
    return d.rpc("get_all_upload_progress", {"batch_id": batch_id} if batch_id else {})


def test_mixed_batch_arrives_byte_identical_with_working_links(home: Home, store: Store,
                                                               daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store)
    d = daemon_factory()
    sizes = [3_000, 300_000, 6 * MiB, 61 * MiB + 17]
    files = [make_image(home.pictures / f"photo {i}.jpg", n, seed=i) for i, n in enumerate(sizes)]
    started = d.rpc("upload_images_batch", {"paths": [str(f) for f in files], "batch_size": 3})
    assert [t["path"] for t in started["tasks"]] == [str(f) for f in files]  # input order
    assert all(t["status"] in ("queued", "uploading") for t in started["tasks"])
    done = d.wait_batch(started["batch_id"])
    objects = store.objects()
    for task, f in zip(done["tasks"], files, strict=True):
        assert task["status"] == "completed", task["error"]
        assert task["bytes_uploaded"] == task["bytes_total"] == f.stat().st_size
        assert task["percent"] == 100.0
        assert re.fullmatch(r"\d{4}/\d{2}/photo-\d-[0-9a-f]{8}\.jpg", task["key"]), task["key"]
        assert objects[task["key"]].read_bytes() == f.read_bytes()
        assert fetch(task["url"]) == f.read_bytes()  # a presigned/signed link that really opens
    assert done["summary"]["completed"] == 4 and done["summary"]["percent"] == 100.0
    assert store.pending() == []
    history = d.rpc("get_upload_history", {"limit": 10})
    assert history["total"] == 4
    assert {i["url"] for i in history["items"]} == {t["url"] for t in done["tasks"]}


def test_progress_moves_byte_by_byte_inside_a_large_file(home: Home, store: Store,
                                                          daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, part_size_mb=8)
    store.proxy.rate_bps = 2 * MiB  # per connection; four parts in flight
    d = daemon_factory()
    f = make_image(home.pictures / "big.jpg", 40 * MiB)
    task_id = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
    readings: list[dict[str, Any]] = []
    while (t := d.rpc("get_upload_progress", {"task_id": task_id}))["status"] not in ("completed", "failed"):
        readings.append(t)
        time.sleep(0.05)
    assert t["status"] == "completed", t["error"]
    middle = [r for r in readings if 0 < r["bytes_uploaded"] < r["bytes_total"]]
    assert len({r["bytes_uploaded"] for r in middle}) >= 8, "progress should move many times within the file"
    # Byte progress, not part-sized steps: many readings fall between 8 MiB part boundaries. (Some sit on a
    # boundary while the kernel's socket buffers drain the end of a part onto the wire.)
    assert len({r["bytes_uploaded"] for r in middle if r["bytes_uploaded"] % (8 * MiB)}) >= 5
    assert any(r["speed_bps"] > 1 * MiB for r in middle)
    assert any(r["eta_s"] is not None and r["eta_s"] > 0 for r in middle)
    for r in middle:
        assert r["percent"] == pytest.approx(100 * r["bytes_uploaded"] / r["bytes_total"], abs=0.01)
    # With nothing to retry, progress never snaps back (no bytes counted that were not being sent).
    assert all(a["bytes_uploaded"] <= b["bytes_uploaded"] for a, b in itertools.pairwise(readings))


def test_files_in_flight_never_exceed_the_limits(home: Home, store: Store,
                                                 daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, max_concurrent=3)
    store.proxy.rate_bps = 2 * MiB
    d = daemon_factory()
    files = [str(make_image(home.pictures / f"f{i}.jpg", 600_000, seed=i)) for i in range(8)]
    wide = d.rpc("upload_images_batch", {"paths": files[:6], "batch_size": 10})  # global limit 3 applies
    seen_global = 0
    while True:
        s = poll(d)["summary"]
        seen_global = max(seen_global, s["uploading"])
        assert s["uploading"] <= 3
        if s["completed"] == 6:
            break
        assert s["failed"] == 0
        time.sleep(0.03)
    assert seen_global == 3
    narrow = d.rpc("upload_images_batch", {"paths": files[6:], "batch_size": 1})["batch_id"]
    seen = 0
    while (s := poll(d, narrow)["summary"])["completed"] < 2:
        seen = max(seen, s["uploading"])
        assert s["uploading"] <= 1
        time.sleep(0.03)
    assert seen == 1
    assert wide["batch_id"] != narrow


def test_cancel_queued_and_mid_multipart_leaves_nothing(home: Home, store: Store,
                                                        daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, max_concurrent=1, part_size_mb=5, part_concurrency=2)
    store.proxy.rate_bps = 6 * MiB
    d = daemon_factory()
    big = make_image(home.pictures / "big.jpg", 40 * MiB)
    small = make_image(home.pictures / "small.jpg", 50_000)
    r = d.rpc("upload_images", {"paths": [str(big), str(small)]})
    big_id, small_id = (t["task_id"] for t in r["tasks"])
    wait_until(lambda: d.rpc("get_upload_progress", {"task_id": big_id})["bytes_uploaded"] > 11 * MiB, 30,
               message="two parts of the big file")
    assert d.rpc("get_upload_progress", {"task_id": small_id})["status"] == "queued"
    queued = d.rpc("cancel_upload", {"task_id": small_id})
    assert queued["status"] == "cancelled"
    assert store.pending(), "a multipart upload should be under way"
    cancelled = d.rpc("cancel_upload", {"task_id": big_id})
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    wait_until(lambda: store.pending() == [], 15, message="the multipart upload to be aborted")
    time.sleep(1.0)  # what the kernel had already buffered drains through the proxy
    sent = store.proxy.bytes_up
    time.sleep(1.0)
    assert store.proxy.bytes_up == sent, "bytes kept flowing after cancel"
    assert store.objects() == {}
    assert d.rpc("get_upload_progress", {"task_id": big_id})["status"] == "cancelled"
    with pytest.raises(Exception, match="-32003"):
        d.rpc("cancel_upload", {"task_id": big_id})


def test_pause_keeps_whole_parts_and_resume_continues_from_them(home: Home, store: Store,
                                                               daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, part_size_mb=5, part_concurrency=1)
    store.proxy.rate_bps = 8 * MiB
    d = daemon_factory()
    f = make_image(home.pictures / "big.jpg", 30 * MiB + 5)
    task_id = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
    wait_until(lambda: d.rpc("get_upload_progress", {"task_id": task_id})["bytes_uploaded"] > 12 * MiB, 30,
               message="two whole parts")
    assert d.rpc("pause_upload", {"task_id": task_id}) == {"paused": 1}
    paused = d.rpc("get_upload_progress", {"task_id": task_id})
    assert paused["status"] == "paused"
    assert paused["bytes_uploaded"] % (5 * MiB) == 0 and paused["bytes_uploaded"] >= 10 * MiB
    time.sleep(1.0)  # what the kernel had already buffered drains through the proxy
    quiet = store.proxy.bytes_up
    time.sleep(0.7)
    assert store.proxy.bytes_up == quiet, "a paused upload must send nothing"
    assert d.rpc("get_upload_progress", {"task_id": task_id})["status"] == "paused"
    store.proxy.rate_bps = 0
    before = store.proxy.bytes_up
    assert d.rpc("resume_upload", {}) == {"resumed": 1}
    done = d.wait_task(task_id)
    assert done["status"] == "completed", done["error"]
    resent = store.proxy.bytes_up - before
    remaining = f.stat().st_size - paused["bytes_uploaded"]
    assert remaining <= resent < remaining + 1 * MiB, "resume must continue from the last whole part"
    assert store.objects()[done["key"]].read_bytes() == f.read_bytes()


def test_a_store_gone_for_good_fails_after_the_outage_tolerance_and_others_are_unharmed(
        home: Home, store: Store, daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, attempts=3, outage_tolerance_s=3)
    store.proxy.rate_bps = 4 * MiB
    d = daemon_factory()
    smalls = [make_image(home.pictures / f"s{i}.jpg", 20_000, seed=i) for i in range(2)]
    big = make_image(home.pictures / "big.jpg", 20 * MiB, seed=9)
    r = d.rpc("upload_images", {"paths": [str(p) for p in [*smalls, big]]})
    big_id = r["tasks"][2]["task_id"]
    wait_until(lambda: poll(d)["summary"]["completed"] == 2, 30, message="the small files")
    wait_until(lambda: d.rpc("get_upload_progress", {"task_id": big_id})["bytes_uploaded"] > 1 * MiB, 30,
               message="the big file to be under way")
    store.proxy.refuse = True
    store.proxy.cut()
    waiting = wait_until(lambda: (t := d.rpc("get_upload_progress", {"task_id": big_id}))["error"] and t, 20,
                         message="the outage to show")
    assert waiting["status"] == "uploading" and waiting["error"]["code"] == "network_error"
    assert "goes on by itself" in waiting["error"]["message"]
    failed = d.wait_task(big_id, timeout=60)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 0  # a try the outage cut short, and looks for a dead store, are not tries
    assert failed["error"]["code"] == "network_error"
    assert "Could not reach" in failed["error"]["message"] and "outage_tolerance_s" in failed["error"]["message"]
    for t in poll(d)["tasks"][:2]:
        assert t["status"] == "completed"
        assert store.objects()[t["key"]].read_bytes() == Path(t["path"]).read_bytes()
    # The store comes back: retry sends the same task again, under the same id, from the parts it kept.
    store.proxy.refuse = False
    store.proxy.rate_bps = 0
    again = d.rpc("retry_upload", {"task_id": big_id})
    assert again["task_id"] == big_id and again["status"] in ("queued", "uploading") and again["error"] is None
    done = d.wait_task(big_id)
    assert done["status"] == "completed" and done["attempts"] >= 1
    assert fetch(done["url"]) == big.read_bytes()
    assert store.pending() == []  # nothing left behind on the store


def test_an_outage_is_waited_out_and_everything_completes_from_its_kept_parts(
        home: Home, store: Store, daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store)
    store.proxy.rate_bps = 6 * MiB
    d = daemon_factory()
    files = [make_image(home.pictures / f"o{i}.jpg", size, seed=40 + i)
             for i, size in enumerate([12 * MiB, 12 * MiB, 300_000, 300_000, 300_000])]
    batch = d.rpc("upload_images", {"paths": [str(f) for f in files]})
    wait_until(lambda: poll(d)["summary"]["bytes_uploaded"] > 8 * MiB, 30, message="the batch to be under way")
    store.proxy.refuse = True
    store.proxy.cut()
    time.sleep(8)  # the link is down for 8 s: nothing fails, every task says it is waiting
    during = poll(d)
    assert during["summary"]["failed"] == 0, during["tasks"]
    unfinished = [t for t in during["tasks"] if t["status"] != "completed"]
    assert unfinished and all(t["status"] in ("queued", "uploading") for t in unfinished)
    assert any((t["error"] or {}).get("code") == "network_error" for t in unfinished)
    store.proxy.refuse = False
    store.proxy.rate_bps = 0
    result = d.wait_batch(batch["batch_id"], timeout=120)  # no retry call: it goes on by itself
    assert [t["status"] for t in result["tasks"]] == ["completed"] * 5, [t["error"] for t in result["tasks"]]
    for t, f in zip(result["tasks"], files, strict=True):
        assert store.objects()[t["key"]].read_bytes() == f.read_bytes()
        assert t["attempts"] == 1 and t["error"] is None
    assert store.pending() == []
    total = sum(f.stat().st_size for f in files)
    assert store.proxy.bytes_up < 1.6 * total, "kept parts are not sent again"


def test_wrong_credentials_and_missing_bucket_fail_at_once_with_what_to_fix(
        home: Home, store: Store, daemon_factory: Callable[..., Daemon]) -> None:
    secret_key = "secret_access_key" if store.kind == "s3" else "access_key_secret"
    bucket_key = "bucket"
    wrong_secret = {**store.profile, secret_key: "not-the-secret"}
    wrong_id = {**store.profile, "access_key_id": "nobody"}
    no_bucket = {**store.profile, bucket_key: "no-such-bucket"}
    home.write_config({"secret": wrong_secret, "keyid": wrong_id, "nobucket": no_bucket}, default="secret",
                      transfers=FAST)
    d = daemon_factory()
    f = make_image(home.pictures / "a.jpg", 10_000)
    expect = {"secret": ("invalid_credentials", secret_key), "keyid": ("invalid_credentials", "access_key_id"),
              "nobucket": ("bucket_not_found", "no-such-bucket")}
    for profile, (code, hint) in expect.items():
        task = d.rpc("upload_images", {"paths": [str(f)], "profile": profile})["tasks"][0]
        t = d.wait_task(task["task_id"])
        assert t["status"] == "failed"
        assert t["attempts"] == 1, "retrying cannot fix this, so it must not retry"
        assert t["error"]["code"] == code
        assert hint in t["error"]["message"]
        assert "not-the-secret" not in str(t)
    assert store.objects() == {}


def test_restart_keeps_history_and_requeues_interrupted_tasks(home: Home, store: Store,
                                                            daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, part_size_mb=5, part_concurrency=1)
    d = daemon_factory()
    first = make_image(home.pictures / "first.jpg", 5_000, seed=1)
    done = d.wait_task(d.rpc("upload_images", {"paths": [str(first)]})["tasks"][0]["task_id"])
    store.proxy.rate_bps = 6 * MiB
    big = make_image(home.pictures / "big.jpg", 25 * MiB, seed=2)
    queued_later = make_image(home.pictures / "later.jpg", 5_000, seed=3)
    home_cfg = home.root / "config.toml"
    home_cfg.write_text(home_cfg.read_text().replace("[transfers]", "[transfers]\nmax_concurrent = 1"))
    d2 = d
    d2.stop()
    d = daemon_factory()
    r = d.rpc("upload_images", {"paths": [str(big), str(queued_later)]})
    big_id, later_id = (t["task_id"] for t in r["tasks"])
    wait_until(lambda: d.rpc("get_upload_progress", {"task_id": big_id})["bytes_uploaded"] > 6 * MiB, 30,
               message="a part of the big file")
    assert d.stop(signal.SIGTERM, timeout=15) == 0
    assert not (home.root / "daemon.json").exists()
    store.proxy.rate_bps = 0
    d = daemon_factory()
    history = d.rpc("get_upload_history", {})
    assert [i["url"] for i in history["items"]] == [done["url"]]
    tasks = {t["task_id"]: t for t in poll(d)["tasks"]}
    assert tasks[big_id]["status"] in ("queued", "uploading")
    assert tasks[later_id]["status"] in ("queued", "uploading")
    for tid, f in ((big_id, big), (later_id, queued_later)):
        t = d.wait_task(tid)
        assert t["status"] == "completed", t["error"]
        assert fetch(t["url"]) == f.read_bytes()
    assert store.pending() == []


def test_resume_survives_the_store_forgetting_the_multipart_upload(home: Home, store: Store,
                                                                   daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store, part_size_mb=5, part_concurrency=1)
    store.proxy.rate_bps = 8 * MiB
    d = daemon_factory()
    f = make_image(home.pictures / "big.jpg", 22 * MiB, seed=4)
    task_id = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
    wait_until(lambda: d.rpc("get_upload_progress", {"task_id": task_id})["bytes_uploaded"] > 6 * MiB, 30,
               message="a whole part")
    d.rpc("pause_upload", {"task_id": task_id})
    store.abort_all()  # e.g. a lifecycle rule expired it while the laptop slept
    assert store.pending() == []
    store.proxy.rate_bps = 0
    d.rpc("resume_upload", {"task_id": task_id})
    done = d.wait_task(task_id)
    assert done["status"] == "completed", done["error"]
    assert store.objects()[done["key"]].read_bytes() == f.read_bytes()
    assert store.pending() == []


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_for_a_large_file_and_keys_come_from_the_aws_chain(
        home: Home, s3_server: S3Server, daemon_factory: Callable[..., Daemon]) -> None:
    from conftest import pixlift_env

    s3_server.bucket("chain")
    profile = s3_server.profile("chain")
    del profile["access_key_id"], profile["secret_access_key"]  # the standard AWS credential chain
    home.write_config({"s3": profile}, default="s3")
    d = daemon_factory(env=pixlift_env(home, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK))
    small = make_image(home.pictures / "warm.jpg", 10_000)
    d.wait_task(d.rpc("upload_images", {"paths": [str(small)]})["tasks"][0]["task_id"])
    before = rss_kib(d.proc.pid)
    big = make_image(home.pictures / "huge.jpg", 300 * MiB, seed=5)
    task_id = d.rpc("upload_images", {"paths": [str(big)]})["tasks"][0]["task_id"]
    peak = before
    while (t := d.rpc("get_upload_progress", {"task_id": task_id}))["status"] not in ("completed", "failed"):
        peak = max(peak, rss_kib(d.proc.pid))
        time.sleep(0.05)
    assert t["status"] == "completed", t["error"]
    assert s3_server.objects("chain")[t["key"]].stat().st_size == 300 * MiB
    # A 300 MiB file moves through a few parts' worth of buffers, never the whole file.
    assert peak - before < 100 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"


def test_an_upload_cancelled_during_an_outage_is_aborted_once_the_store_is_back(
        home: Home, store: Store, daemon_factory: Callable[..., Daemon]) -> None:
    """The abort that fails during the outage is journalled and tried again (also after a restart) until the
    store confirms it: no parts are left behind."""
    configure(home, store)
    store.proxy.rate_bps = 4 * MiB
    d = daemon_factory()
    big = make_image(home.pictures / "gone.jpg", 16 * MiB, seed=77)
    task = d.rpc("upload_images", {"paths": [str(big)]})["tasks"][0]
    wait_until(lambda: len(store.pending()) == 1 and d.rpc("get_upload_progress", {"task_id": task["task_id"]})[
        "bytes_uploaded"] > 5 * MiB, 30, message="a multipart upload under way")
    store.proxy.refuse = True
    store.proxy.cut()
    assert d.rpc("cancel_upload", {"task_id": task["task_id"]})["status"] == "cancelled"
    time.sleep(2)
    assert len(store.pending()) == 1  # the store could not be told yet
    assert d.stop() == 0
    store.proxy.refuse = False
    store.proxy.rate_bps = 0
    daemon_factory()  # a new start picks the abort up from the journal
    wait_until(lambda: store.pending() == [], 30, interval=0.2, message="the abort to reach the store")
    assert store.objects() == {}


@pytest.mark.parametrize("size", [400_000, 12 * MiB])
def test_a_byte_flipped_on_the_way_is_caught_and_sent_again(home: Home, store: Store, size: int,
                                                           daemon_factory: Callable[..., Daemon]) -> None:
    """A link that damages one byte: the store refuses what does not match its checksum (Content-MD5 for S3,
    CRC64 for OSS), the request is sent again, and what is stored is the file, byte for byte."""
    configure(home, store)
    d = daemon_factory()
    f = make_image(home.pictures / f"flip-{size}.jpg", size, seed=size % 251)
    store.proxy.flip_after = size // 2 + 4096  # well inside the body, past the request's headers
    task = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]
    done = d.wait_task(task["task_id"], timeout=60)
    assert store.proxy.flipped == 1
    assert done["status"] == "completed", done["error"]
    assert store.objects()[done["key"]].read_bytes() == f.read_bytes()
    assert fetch(done["url"]) == f.read_bytes()
    assert store.pending() == []
