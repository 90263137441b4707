"""Byte progress is what the store has acknowledged, not what was handed to a socket.

Each store is reached through a slow link that behaves like one (tests/slowlink.py): the backlog stays in the
daemon's sockets, and the link counts the body bytes it has forwarded to the store. Counting bytes as they are
handed to the SDK runs ahead of that count by the kernel's send buffers (megabytes per connection); counting
what the peer has acknowledged stays within a few KiB of it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import AK, SK, Daemon, Home, S3Server, make_image, oss_profile
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
    bytes the link has forwarded to the store. Counting bytes handed to the socket is megabytes ahead."""
    configure(home, linked, part_concurrency=4)
    d = daemon_factory()
    size = 16 * MiB
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
    assert samples >= 40, "the upload should take seconds through a 2 MiB/s link"
    assert linked.link.body >= size
    print(f"{linked.kind}: {samples} readings, at most {worst_ahead // KiB} KiB ahead and "
          f"{worst_behind // KiB} KiB behind the store (bound {bound // KiB} KiB)")
