"""Links that last: a presigned link read with under a tenth of its lifetime left comes back signed again, and
says when it ends. Through the real daemon, with a 4-second lifetime, on S3 (rclone serve s3) and OSS."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import AK, SK, Daemon, Home, S3Server, make_image, oss_profile

LIFETIME_S = 4


def fetch(url: str) -> bytes | int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code


def left_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - time.time()


@pytest.fixture(params=["s3", "oss"])
def profile(request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "s3":
        s3_server.bucket("links")
        yield {**s3_server.profile("links"), "presign_expires_s": LIFETIME_S}
    else:
        from ossserver import run_in_thread

        server = run_in_thread(tmp_path / "oss", AK, SK, buckets=("test",))
        yield {**oss_profile(server), "presign_expires_s": LIFETIME_S}
        server.stop()


def test_a_link_read_after_it_expired_comes_back_signed_again(home: Home, profile: dict[str, Any],
                                                             daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"cloud": profile, "public": {**profile, "public_base_url": "https://img.example.com"}},
                      default="cloud")
    d = daemon_factory()
    photo = make_image(home.pictures / "sunset.jpg", 50_000, seed=3)
    task = d.wait_batch(d.rpc("upload_images", {"paths": [str(photo)]})["batch_id"])["tasks"][0]
    item = d.rpc("get_upload_history")["items"][0]
    assert 0 < left_s(item["url_expires_at"]) <= LIFETIME_S and 0 < left_s(task["url_expires_at"]) <= LIFETIME_S
    assert fetch(item["url"]) == photo.read_bytes()

    time.sleep(LIFETIME_S + 1)
    assert fetch(item["url"]) in (400, 403), "the first link has expired at the store"
    fresh = d.rpc("get_upload_history")["items"][0]
    assert fresh["url"] != item["url"] and left_s(fresh["url_expires_at"]) > LIFETIME_S - 1.5
    assert fetch(fresh["url"]) == photo.read_bytes()
    now = d.rpc("get_upload_progress", {"task_id": task["task_id"]})
    assert now["url"] != task["url"] and fetch(now["url"]) == photo.read_bytes()
    assert left_s(now["url_expires_at"]) > LIFETIME_S - 1.5

    # A public link does not expire, and says so.
    public = d.wait_batch(d.rpc("upload_images", {"paths": [str(make_image(home.pictures / "b.jpg", 9_000, seed=4))],
                                                  "profile": "public"})["batch_id"])["tasks"][0]
    assert public["url"].startswith("https://img.example.com/") and public["url_expires_at"] is None
    assert d.rpc("get_upload_history", {"query": "b.jpg"})["items"][0]["url_expires_at"] is None
