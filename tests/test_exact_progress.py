"""Byte progress is what the store has acknowledged, not what was handed to a socket.

Each store is reached through a slow link that behaves like one (tests/slowlink.py): the backlog stays in the
daemon's sockets, and the link counts the body bytes it has forwarded to the store. Counting bytes as they are
handed to the SDK runs ahead of that count by the kernel's send buffers (megabytes per connection); counting
what the peer has acknowledged stays within a few KiB of it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import AK, SK, Daemon, Home, S3Server, make_image, oss_profile, wait_until
from ossserver import OssServerThread, run_in_thread
from slowlink import SlowLink

MiB = 1024 * 1024
KiB = 1024


@dataclass
class Linked:
    kind: str
    link: SlowLink
    profile: dict[str, Any]


@pytest.fixture(params=["s3", "oss"])
def linked(request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path) -> Iterator[Linked]:
    oss: OssServerThread | None = None
    if request.param == "s3":
        bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-b"
        s3_server.bucket(bucket)
        link = SlowLink(s3_server.port, 2 * MiB).start()
        profile = {**s3_server.profile(bucket), "endpoint_url": link.endpoint}
    else:
        oss = run_in_thread(tmp_path / "oss", AK, SK, buckets=("test",))
        link = SlowLink(oss.server.port, 2 * MiB).start()
        profile = {**oss_profile(oss), "endpoint": link.endpoint}
    yield Linked(request.param, link, profile)
    link.stop()
    if oss is not None:
        oss.stop()


def configure(home: Home, linked: Linked, **transfers: Any) -> None:
    home.write_config({"cloud": linked.profile}, default="cloud",
                      transfers={"backoff_base_s": 0.05, "backoff_max_s": 0.2, "multipart_threshold_mb": 5,
                                 "part_size_mb": 5, **transfers})


def progress(d: Daemon, task_id: str) -> dict[str, Any]:
    return dict(d.rpc("get_upload_progress", {"task_id": task_id}))


def test_bytes_uploaded_is_what_the_store_has_received(home: Home, linked: Linked,
                                                       daemon_factory: Callable[..., Daemon]) -> None:
    """Four parts in flight through 2 MiB/s: at every reading, within 1% of the file (or 64 KiB) of the
    bytes the link has forwarded to the store. Counting bytes handed to the socket is megabytes ahead.

    Part of what the link has acknowledged it has not forwarded yet (up to ~40 KiB per connection, in its
    kernel and its reader): that shows here as progress ahead of the store, and it is why the file has four
    whole parts, so that 1% of it (205 KiB) leaves room for it."""
    configure(home, linked, part_concurrency=4)
    d = daemon_factory()
    size = 20 * MiB
    bound = max(size // 100, 64 * KiB)
    f = make_image(home.pictures / "big.jpg", size)
    task_id = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
    worst_ahead = worst_behind = 0
    samples = 0
    while True:
        before = linked.link.body
        t = progress(d, task_id)
        after = linked.link.body
        if t["status"] != "uploading":
            if t["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
            continue
        samples += 1
        got = t["bytes_uploaded"]
        worst_ahead = max(worst_ahead, got - after)
        worst_behind = max(worst_behind, before - got)
        assert got <= after + bound, f"{got} reported, the store had {after}: {(got - after) // KiB} KiB ahead"
        assert got >= before - bound, f"{got} reported, the store had {before}: {(before - got) // KiB} KiB behind"
        time.sleep(0.1)
    assert t["status"] == "completed", t["error"]
    assert t["bytes_uploaded"] == size
    assert samples >= 50, "the upload should take seconds through a 2 MiB/s link"
    assert linked.link.body >= size
    print(f"{linked.kind}: {samples} readings, at most {worst_ahead // KiB} KiB ahead and "
          f"{worst_behind // KiB} KiB behind the store (bound {bound // KiB} KiB)")


def test_kept_parts_show_while_paused_and_resume_never_dips_below_them(
        home: Home, linked: Linked, daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, linked, part_concurrency=1)
    linked.link.set_rate(4 * MiB)
    d = daemon_factory()
    size = 16 * MiB + 3
    f = make_image(home.pictures / "big.jpg", size)
    task_id = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
    wait_until(lambda: progress(d, task_id)["bytes_uploaded"] > 6 * MiB, 30, message="a whole part and some")
    assert d.rpc("pause_upload", {"task_id": task_id}) == {"paused": 1}
    kept = progress(d, task_id)["bytes_uploaded"]
    assert kept >= 5 * MiB and kept % (5 * MiB) == 0
    for _ in range(10):  # while paused, every read shows the kept parts
        t = progress(d, task_id)
        assert t["status"] == "paused" and t["bytes_uploaded"] == kept
        time.sleep(0.05)
    start = linked.link.body
    bound = max(size // 100, 64 * KiB)
    assert d.rpc("resume_upload", {"task_id": task_id}) == {"resumed": 1}
    readings = []
    while (t := progress(d, task_id))["status"] not in ("completed", "failed"):
        readings.append(t["bytes_uploaded"])
        sent = linked.link.body - start
        # Never below the kept parts (no dip to 0 until the store confirms them), never above what was kept plus
        # what the store has received since (the kept parts are not counted twice).
        assert t["bytes_uploaded"] >= kept, f"dipped to {t['bytes_uploaded']} below the kept {kept}"
        assert t["bytes_uploaded"] <= kept + sent + bound, f"{t['bytes_uploaded']} > kept {kept} + sent {sent}"
        time.sleep(0.06)  # under the daemon's 20 calls a second
    assert t["status"] == "completed", t["error"]
    assert len(readings) >= 10


# -- the provider's side of kept parts, against a store of our own -------------------------------------------------
def kept_store(held: dict[int, str] | None) -> Any:
    """An ObjectStore whose store holds ``held`` parts of upload ``u1`` (or has forgotten it: ``held`` None)."""
    from pixlift.core.config import TransferSettings
    from pixlift.providers.base import ObjectStore, UploadGone

    class Store(ObjectStore):
        kind = "fake"
        errors = ()
        network_errors = ()

        async def _put_object(self, key: str, body: Any, source: Any) -> None:
            raise AssertionError("a multipart upload was expected")

        async def _create_multipart(self, key: str, source: Any) -> str:
            return "u2"

        async def _list_parts(self, key: str, upload_id: str) -> dict[int, str]:
            if held is None:
                raise UploadGone()
            return dict(held)

        async def _upload_part(self, key: str, upload_id: str, number: int, body: Any,
                               source: Any) -> tuple[str, int | None]:
            body.read()
            return f"e{number}", None

        async def _complete(self, *args: Any) -> None:
            pass

        async def _abort(self, key: str, upload_id: str) -> None:
            pass

        async def link(self, key: str) -> str:
            return key

        async def check(self) -> str:
            return "ok"

        async def stored_size(self, key: str) -> int | None:
            return None

        async def delete_object(self, key: str) -> None:
            pass

    return Store(TransferSettings(multipart_threshold=1, part_size=5, part_concurrency=1),
                 profile_name="p", where="here", bucket="b")


@pytest.mark.parametrize(("held", "first"), [({1: "a", 2: "b"}, None), ({1: "a"}, -5), (None, -10)],
                         ids=["all-kept", "one-lost", "upload-gone"])
async def test_kept_parts_are_never_reported_again_only_taken_back(
        tmp_path: Path, held: dict[int, str] | None, first: int | None) -> None:
    from pixlift.files.sources import Source
    from pixlift.providers.multipart import MultipartState

    path = tmp_path / "f"
    path.write_bytes(b"x" * 12)  # parts of 5, 5 and 2 bytes
    fd = os.open(path, os.O_RDONLY)
    source = Source(fd, 12, "f", "image/jpeg")
    state = MultipartState(key="k", upload_id="u1", part_size=5, parts={1: "a", 2: "b"})
    shown = state.bytes_done(12)  # what the engine shows before the attempt: 10
    deltas: list[int] = []
    try:
        await kept_store(held).upload(source, "k", on_bytes=deltas.append, state=state, on_part=lambda: None)
    finally:
        source.close()
    assert shown + sum(deltas) == 12
    assert all(d > 0 for d in deltas[1:])
    if first is None:
        assert deltas == [2]  # only the part that was never sent
    else:
        assert deltas[0] == first  # the kept parts the store turned out not to have, taken back first
