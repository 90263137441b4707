"""Unit tier: the state machine, keys, speed, part plans, sniffing, limits and error mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import botocore.exceptions as bce
import orjson
import pytest
from conftest import PNG_1PX
from pixlift.core.config import TransferSettings
from pixlift.core.keys import render_key, safe_stem, validate_template
from pixlift.core.limits import TokenBucket, WindowCounter
from pixlift.core.tasks import SpeedMeter, Task, TaskStatus
from pixlift.core.views import TaskView, summarize, task_json
from pixlift.engine.worker import Batch, Job
from pixlift.errors import ConfigError, InvalidState
from pixlift.files.paths import CheckedFile, identity, sniff_image
from pixlift.providers.multipart import MultipartState, part_plan
from pixlift.providers.s3 import S3Provider
from pixlift.providers.s3_kind import S3Profile
from pixlift.settings.config_file import parse_settings

MiB = 1024 * 1024


def task(status: TaskStatus = TaskStatus.QUEUED, total: int = 100) -> Task:
    return Task(task_id="t", batch_id="b", path="/p", name="n", profile="local", bytes_total=total, status=status)


@pytest.mark.parametrize(("start", "to"), [
    (TaskStatus.COMPLETED, TaskStatus.QUEUED), (TaskStatus.COMPLETED, TaskStatus.CANCELLED),
    (TaskStatus.FAILED, TaskStatus.UPLOADING), (TaskStatus.PAUSED, TaskStatus.UPLOADING),
    (TaskStatus.CANCELLED, TaskStatus.COMPLETED), (TaskStatus.QUEUED, TaskStatus.COMPLETED),
])
def test_illegal_transitions_raise(start: TaskStatus, to: TaskStatus) -> None:
    t = task(start)
    with pytest.raises(InvalidState):
        t.move(to)
    assert t.status is start


def test_the_legal_life_of_a_task() -> None:
    t = task()
    for step in (TaskStatus.UPLOADING, TaskStatus.PAUSED, TaskStatus.QUEUED, TaskStatus.UPLOADING,
                 TaskStatus.FAILED, TaskStatus.QUEUED, TaskStatus.UPLOADING, TaskStatus.COMPLETED):
        t.move(step)
    assert t.status is TaskStatus.COMPLETED


def test_bytes_never_leave_zero_to_total_and_rewinds_count() -> None:
    t = task(TaskStatus.UPLOADING, total=100)
    t.add_bytes(60, 1.0)
    t.add_bytes(-20, 1.1)  # an SDK resending a part
    assert t.bytes_uploaded == 40
    t.add_bytes(500, 1.2)
    assert t.bytes_uploaded == 100
    t.add_bytes(-500, 1.3)
    assert t.bytes_uploaded == 0


def test_speed_is_smoothed_over_seconds_and_drops_to_zero_when_stalled() -> None:
    m = SpeedMeter()
    total = 0
    for i in range(31):  # 1 MB every 0.1 s = 10 MB/s
        m.add(i * 0.1, total)
        total += 1_000_000
    assert m.rate(3.0, 30_000_000) == pytest.approx(10_000_000, rel=0.05)
    assert m.rate(20.0, 30_000_000) == 0.0


def test_summary_counts_and_percent() -> None:
    a, b, c = task(TaskStatus.UPLOADING, 100), task(TaskStatus.COMPLETED, 300), task(TaskStatus.CANCELLED, 1000)
    a.bytes_uploaded, b.bytes_uploaded = 50, 300
    s = summarize([a, b, c], 0.0).to_json()
    assert (s["total"], s["uploading"], s["completed"], s["cancelled"]) == (3, 1, 1, 1)
    assert (s["bytes_total"], s["bytes_uploaded"], s["percent"]) == (400, 350, 87.5)


def test_keys_follow_the_template_and_stay_safe() -> None:
    when = datetime(2026, 3, 9, 4, 5, 6, tzinfo=UTC)
    key = render_key("{year}/{month}/{stem}-{hash8}{ext}", filename="My Photo (1).JPG", digest="abcdef0123",
                     when=when, task_id="t1", profile="p")
    assert key == "2026/03/My-Photo-1-abcdef01.jpg"
    assert render_key("{name}", filename="../../etc/passwd", digest=None, when=when, task_id="t", profile="p") \
        == "passwd"
    assert render_key("a/{stem}{ext}", filename="图片.png", digest=None, when=when, task_id="t", profile="p") \
        == "a/图片.png"
    for bad in ("{nope}", "/{name}", "static", "../{name}"):
        with pytest.raises(ValueError):
            validate_template(bad)


def test_a_key_is_what_str_format_makes_of_the_template_cleaned() -> None:
    """render_key fills in only the placeholders a template names; the key must be what ``str.format`` makes of
    it with every value, its empty, ``.`` and ``..`` segments dropped, for odd templates and odd names alike."""
    when = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
    digest = "0123456789abcdef" * 4

    def reference(template: str, filename: str, hashed: str | None) -> str:
        p = filename.replace("\\", "/").rsplit("/", 1)[-1]
        suffix = p[p.rfind("."):] if 0 < p.rfind(".") < len(p) - 1 else ""
        ext = suffix.lower() if 1 < len(suffix) <= 10 and suffix[1:].replace("_", "a").isalnum() else ""
        stem = safe_stem(p[: len(p) - len(suffix)] if ext else p)
        key = template.format(year="2026", month="12", day="08", hour="01", minute="02", second="03", stem=stem,
                              ext=ext, name=stem + ext, hash8=(hashed or "")[:8], hash=hashed or "", uuid="U",
                              task_id="tid", profile=safe_stem("Pro file"))
        return "/".join(s for s in key.split("/") if s not in ("", ".", ".."))

    templates = ["{year}/{month}/{stem}-{hash8}{ext}", "{name}", "{profile}/{task_id}/{hash}", "./{stem}/../{ext}",
                 "//{name}//", "{year:>6}/{name}", "x/{stem}.{day}{hour}{minute}{second}/", ".{name}",
                 "{hash8}/.hidden/{name}", "{stem!r}"]
    names = ["a.jpg", "../../x.PNG", "weird name (1).JPEG", ".bashrc", "noext", "a.b.c.tar.gz", "日本語.jpg",
             "a\\b\\c.gif", "..", "x."]
    for template in templates:
        for name in names:
            for hashed in (None, digest):
                got = render_key(template, filename=name, digest=hashed, when=when, task_id="tid",
                                 profile="Pro file")
                assert got == reference(template, name, hashed), (template, name, hashed)
    assert len(render_key("{uuid}", filename="a.jpg", digest=None, when=when, task_id="t", profile="p")) == 32


def test_part_plan_covers_every_byte_once_and_respects_10000_parts() -> None:
    for size in (5 * MiB, 5 * MiB + 1, 61 * MiB + 17):
        plan = part_plan(size, 8 * MiB)
        assert [p[0] for p in plan] == list(range(1, len(plan) + 1))
        assert sum(p[2] for p in plan) == size
        assert all(p[1] == sum(q[2] for q in plan[: p[0] - 1]) for p in plan)
    assert len(part_plan(200_000 * MiB, 8 * MiB)) <= 10_000


def test_multipart_state_counts_only_finished_parts_and_round_trips() -> None:
    state = MultipartState(key="k", upload_id="u", part_size=5 * MiB, parts={1: "a", 3: "c"}, checksums={1: 7})
    assert state.bytes_done(12 * MiB) == 5 * MiB + 2 * MiB
    again = MultipartState.from_json(state.to_json())
    assert (again.parts, again.checksums, again.upload_id) == (state.parts, state.checksums, "u")


@pytest.mark.parametrize(("head", "kind"), [
    (PNG_1PX, "image/png"), (b"\xff\xd8\xff\xe0....", "image/jpeg"), (b"GIF89a...", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"\x00\x00\x00\x1cftypavif", "image/avif"),
    (b"\x00\x00\x00\x18ftypheic", "image/heic"), (b'<?xml version="1.0"?>\n<svg xmlns="...">', "image/svg+xml"),
    (b"#!/bin/sh\necho hi", None), (b"%PDF-1.7", None), (b"<html><script>", None),
])
def test_images_are_recognised_by_their_bytes(head: bytes, kind: str | None) -> None:
    assert sniff_image(head) == kind


def test_token_bucket_refuses_past_the_burst_and_says_when_to_come_back() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=20, burst=40, clock=lambda: now[0])
    assert all(bucket.take() == 0 for _ in range(40))
    wait = bucket.take()
    assert 0.05 <= wait <= 0.052
    now[0] += wait
    assert bucket.take() == 0


def test_files_per_minute_window() -> None:
    now = [0.0]
    counter = WindowCounter(limit=10, clock=lambda: now[0])
    assert counter.add(6) == 0
    now[0] = 30
    assert counter.add(4) == 0
    assert counter.add(1) == pytest.approx(30, abs=0.01)
    now[0] = 61
    assert counter.add(5) == 0


def test_s3_errors_map_to_what_to_fix() -> None:
    provider = S3Provider(S3Profile(name="photos", bucket="pics", endpoint_url="http://s3.test"), TransferSettings())

    def client_error(code: str, status: int) -> bce.ClientError:
        response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return bce.ClientError(response, "PutObject")  # type: ignore[arg-type]

    cases = [(client_error("InvalidAccessKeyId", 403), "invalid_credentials", False),
             (client_error("SignatureDoesNotMatch", 403), "invalid_credentials", False),
             (client_error("NoSuchBucket", 404), "bucket_not_found", False),
             (client_error("AccessDenied", 403), "access_denied", False),
             (client_error("SlowDown", 503), "server_error", True),
             (client_error("InternalError", 500), "server_error", True),
             (bce.EndpointConnectionError(endpoint_url="http://s3.test"), "network_error", True),
             (bce.NoCredentialsError(), "no_credentials", False)]
    for exc, code, retryable in cases:
        mapped = provider.translate(exc)
        assert mapped.code == code, exc
        assert getattr(mapped, "retryable", False) is retryable
        assert "photos" in mapped.message or "s3.test" in mapped.message


def test_config_messages_name_the_file_and_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"profiles": {"p": {"provider": "s3", "bucket": "b", "access_key_id": "only-one"}}},
                       tmp_path / "config.toml", tmp_path)
    assert "config.toml" in info.value.message and "profiles.p" in info.value.message
    assert "only-one" not in info.value.message


def test_a_batch_summary_from_kept_totals_is_what_walking_the_batch_gives() -> None:
    import random

    from pixlift.engine.index import LiveIndex

    rng = random.Random(7)
    index = LiveIndex()
    tasks: list[Task] = []
    for i in range(300):
        t = Task(task_id=f"t{i}", batch_id=f"b{i % 3}", path="/p", name="n", profile="local",
                 bytes_total=rng.randint(1, 1000))
        tasks.append(t)
        index.saved(t)
    for _ in range(2000):
        t = rng.choice(tasks)
        if t.status.finished and rng.random() < 0.05:
            index.remove(t)
            tasks.remove(t)
            continue
        nxt = rng.choice([s for s in TaskStatus if s is not t.status])
        try:
            t.move(nxt)
        except InvalidState:
            continue
        t.bytes_uploaded = t.bytes_total if nxt is TaskStatus.COMPLETED else rng.randint(0, t.bytes_total)
        index.saved(t)
    for batch in ("b0", "b1", "b2"):
        mine = [t for t in tasks if t.batch_id == batch]
        assert index.summary(0.0, batch) == summarize(mine, 0.0)
    assert index.summary(0.0) == summarize(tasks, 0.0)


async def test_in_flight_bytes_wait_for_room_and_a_request_over_the_bound_goes_alone() -> None:
    import asyncio

    from pixlift.providers.inflight import InFlight

    bound = InFlight(lambda: 10, lambda: 5)  # nothing measured yet: two parts (10 bytes) may be in flight
    order: list[str] = []
    alone: list[bool] = []
    gates = {name: asyncio.Event() for name in "abcde"}

    async def send(name: str, n: int) -> None:
        async with bound.hold(n):
            order.append(name)
            alone.append(len(order) - sum(g.is_set() for g in gates.values()) == 1)
            await gates[name].wait()

    tasks = [asyncio.create_task(send(name, n)) for name, n in (("a", 6), ("b", 4), ("c", 3), ("d", 30), ("e", 1))]
    await asyncio.sleep(0.01)
    assert order == ["a", "b"]  # 10 bytes in flight: the others wait
    gates["a"].set()
    await asyncio.sleep(0.01)
    assert order == ["a", "b", "c", "e"]  # room for 4 more; d (30 bytes, over the bound) waits for the others
    for name in "bce":
        gates[name].set()
    await asyncio.sleep(0.01)
    assert order[-1] == "d" and alone[-1]  # over the bound: it went alone
    gates["d"].set()
    await asyncio.gather(*tasks)


def test_a_long_list_keeps_no_json_and_lets_go_of_what_it_kept() -> None:
    """Each task keeps its JSON for fast whole reads while the list is short; in a list past KEEP_JSON_UP_TO
    nothing is kept (65 MB for 100,000 tasks), and what a task kept goes when it is read."""
    task = Task(task_id="t1", batch_id="b", path="/p/a.png", name="a.png", profile="local", bytes_total=10)
    task.move(TaskStatus.UPLOADING)
    task.move(TaskStatus.COMPLETED)
    first = task_json(task, 0.0)
    assert task.wire is not None and task_json(task, 0.0) is first  # kept, and served from what was kept
    again = task_json(task, 0.0, keep=False)
    assert orjson.dumps(again) == orjson.dumps(first) and task.wire is None
    task_json(task, 0.0, keep=False)
    assert task.wire is None


def test_a_completed_upload_lets_go_of_its_transfer_state() -> None:
    job = Job(Task(task_id="t", batch_id="b", path="/p/a.png", name="a.png", profile="local", bytes_total=10),
              CheckedFile("/p/a.png", "/p", "a.png", 10, "image/png", identity(1, 2, 10, 3)), Batch("b", 5))
    assert job.state is None  # nothing made before it is needed
    job.multipart.part_size = 5
    job.sha256 = "0" * 64
    job.completed()
    assert job.state is None and job.sha256 is None


async def test_in_flight_measures_busy_time_only() -> None:
    """A few small files, a quiet spell, then a large file: the large file's rate is measured from its own
    parts, not spread over the idle seconds, so it is not held at two parts in flight (35% slower, issue 23)."""
    from pixlift.providers.inflight import InFlight

    mib = 1024 * 1024
    now = [0.0]
    bound = InFlight(lambda: 1024 * mib, lambda: 5 * mib, clock=lambda: now[0])
    for _ in range(3):  # three screenshots
        async with bound.hold(100_000):
            now[0] += 0.01
    now[0] += 3.0  # a quiet spell: nothing in flight
    assert bound.limit() == 10 * mib  # two parts, as at start
    for _ in range(6):  # the recording's first parts, at 100 MiB/s
        async with bound.hold(5 * mib):
            now[0] += 0.05
    # 30 MiB in 0.3 s, counted over at least 0.5 s: 60 MiB/s, so 2 s of it may be in flight
    assert bound.limit() >= 100 * mib


def test_a_started_pool_runs_all_its_threads_before_any_work() -> None:
    """The daemon's pools start every thread at start (core/threads.py), not as the first batch's work comes."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pixlift.core.threads import started

    pool = started(ThreadPoolExecutor(3, thread_name_prefix="units-started"), 3)
    try:
        names = [t.name for t in threading.enumerate() if t.name.startswith("units-started")]
        assert len(names) == 3, names
        assert pool.submit(lambda: 7).result(5) == 7  # and it still does work
    finally:
        pool.shutdown()


def test_the_index_keeps_little_for_a_completed_task() -> None:
    """100,000 completed tasks are what the index holds after a large batch: no node, no tuple of its own for
    each (an OrderedDict's node and a counted tuple took about 130 bytes a task), only the tables' entries."""
    import tracemalloc

    from pixlift.engine.index import LiveIndex

    index = LiveIndex()
    tasks = [Task(task_id=f"t{i:05d}", batch_id="b", path="/p", name="n", profile="local", bytes_total=1000 + i)
             for i in range(20_000)]
    for t in tasks:
        t.move(TaskStatus.UPLOADING)
        t.move(TaskStatus.COMPLETED)
        t.bytes_uploaded = t.bytes_total
    tracemalloc.start()
    try:
        for version, t in enumerate(tasks, 1):
            t.version = version
            index.touch(t)
            index.saved(t)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held / len(tasks) < 110, f"{held / len(tasks):.0f} bytes a completed task"
    assert index.summary(0.0).completed == len(tasks)
    assert index.summary(0.0).bytes_uploaded == sum(t.bytes_total for t in tasks)
    assert [t.task_id for t in index.changed_since(len(tasks) - 3)] == [t.task_id for t in tasks[-3:]]
    index.touch(tasks[0])  # changed again: now the newest
    tasks[0].version = len(tasks) + 1
    assert [t.task_id for t in index.changed_since(len(tasks))] == [tasks[0].task_id]
    for t in tasks:
        index.remove(t)
    assert index.summary(0.0).total == 0 and index.summary(0.0).bytes_total == 0


def test_a_task_s_json_is_its_view_s_in_every_state() -> None:
    """``task_json`` builds a task's JSON straight from the task; it must say what the view says, field for field
    and in the same order, in every state a task shows."""
    import time as clock

    queued = task()
    uploading = task(total=1000)
    uploading.move(TaskStatus.UPLOADING)
    uploading.started_at = clock.time()
    start = clock.monotonic()
    for i in range(1, 6):
        uploading.add_bytes(100, start - 1.2 + i * 0.2)
    done = task(TaskStatus.COMPLETED, total=500)
    done.bytes_uploaded, done.url, done.key = 500, "https://cdn.example/a.png?X-Amz-Signature=1", "2026/12/a.png"
    done.url_expires, done.finished_at, done.deduplicated = clock.time() + 3600, clock.time(), True
    done.processing = {"stripped": ["gps"], "converted_to": None, "bytes_before": 600, "bytes_after": 500,
                       "note": None}
    failed = task(TaskStatus.FAILED)
    failed.error, failed.attempts = {"code": "network_error", "message": "The store could not be reached."}, 3
    cancelled = task(TaskStatus.CANCELLED)
    empty = task(TaskStatus.COMPLETED, total=0)
    for t in (queued, uploading, done, failed, cancelled, empty):
        t.version = 7
        now = clock.time()
        made = orjson.loads(orjson.dumps(task_json(t, now, keep=False)))
        expected = orjson.loads(orjson.dumps(TaskView.of(t, now).to_json()))
        made.pop("speed_bps"), expected.pop("speed_bps")  # the meter moves between the two reads
        made.pop("eta_s") if t is uploading else None
        expected.pop("eta_s") if t is uploading else None
        assert made == expected and list(made) == list(expected), t.status
    assert orjson.loads(orjson.dumps(task_json(uploading, 0, keep=False)))["speed_bps"] > 0


def test_task_ids_are_version_4_uuids_and_all_different() -> None:
    import uuid

    from pixlift.core.tasks import task_ids

    ids = task_ids(5000)
    assert len(set(ids)) == 5000 and task_ids(0) == []
    for text in ids:
        made = uuid.UUID(text)
        assert made.hex == text and made.version == 4 and made.variant == uuid.RFC_4122


def test_a_submission_s_reply_keeps_each_task_s_json_only_while_the_list_is_short() -> None:
    """The reply to a call of many paths serialises each task once; it keeps that JSON with the task (for the first
    read of the list) only while the live list is short. A list of 100,000 tasks kept 65 MB of JSON nobody reads."""
    import time as clock

    from pixlift.core.views import KEEP_JSON_UP_TO, Submitted

    for listed, kept in ((10, True), (KEEP_JSON_UP_TO + 1, False)):
        tasks = [Task(task_id=f"t{i}", batch_id="b", path=f"/p/{i}.png", name=f"{i}.png", profile="local",
                      bytes_total=10) for i in range(3)]
        reply = Submitted("b", tasks, clock.time, listed).to_json(lazy=True)
        sent = orjson.loads(b"".join(bytes(c) for c in reply["tasks"].chunks()))
        assert [t["task_id"] for t in sent] == ["t0", "t1", "t2"]
        assert all((t.wire is not None) is kept for t in tasks), listed
