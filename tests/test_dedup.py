"""A re-upload costs nothing: the same bytes to the same profile reuse the stored object, confirmed with the
store first; a copy that is gone is sent again. Through the real daemon, S3 and OSS behind a byte-counting proxy,
and the local store."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import AK, SK, Daemon, Home, make_image
from test_uploads import Store, configure, store  # noqa: F401 - the S3 and OSS stores behind a proxy

KiB = 1024


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def delete_behind_its_back(store: Store, key: str) -> None:  # noqa: F811
    """Through the store's own API (rclone serve s3 caches its listing: a file removed on disk stays visible)."""
    p = store.profile
    if store.kind == "s3":
        import boto3

        boto3.client("s3", endpoint_url=p["endpoint_url"], aws_access_key_id=AK, aws_secret_access_key=SK,
                     region_name="us-east-1").delete_object(Bucket=p["bucket"], Key=key)
    else:
        import oss2

        oss2.Bucket(oss2.Auth(AK, SK), p["endpoint"], p["bucket"]).delete_object(key)


def upload(d: Daemon, *paths: Path) -> list[dict[str, Any]]:
    done = d.wait_batch(d.rpc("upload_images", {"paths": [str(p) for p in paths]})["batch_id"])
    assert all(t["status"] == "completed" for t in done["tasks"]), done["tasks"]
    return list(done["tasks"])


def test_the_same_bytes_again_send_nothing_and_add_no_history(home: Home, store: Store,  # noqa: F811
                                                              daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store)
    d = daemon_factory()
    photo = make_image(home.pictures / "cat.jpg", 300 * KiB, seed=1)
    first = upload(d, photo)[0]
    assert first["deduplicated"] is False
    copy = home.pictures / "copy of cat.jpg"
    shutil.copy(photo, copy)
    sent = store.proxy.bytes_up
    again, moved = upload(d, photo, copy)
    assert store.proxy.bytes_up - sent < 8 * KiB, "no body was sent again (a HEAD each, nothing more)"
    for task in (again, moved):
        assert task["deduplicated"] is True
        assert task["key"] == first["key"] and task["bytes_uploaded"] == task["bytes_total"]
        assert fetch(task["url"]) == photo.read_bytes()
    history = d.rpc("get_upload_history", {"limit": 10})
    assert history["total"] == 1 and history["items"][0]["key"] == first["key"]

    # The stored copy is deleted behind pixlift's back: the store says so, and the bytes go up again.
    delete_behind_its_back(store, first["key"])
    sent = store.proxy.bytes_up
    back = upload(d, photo)[0]
    assert back["deduplicated"] is False and store.proxy.bytes_up - sent > 300 * KiB
    assert fetch(back["url"]) == photo.read_bytes()
    assert d.rpc("get_upload_history", {"limit": 10})["total"] == 2


def test_dedup_is_per_profile_and_can_be_turned_off(home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"one": {"provider": "local", "root": str(home.root / "one")},
                       "two": {"provider": "local", "root": str(home.root / "two")}}, default="one")
    config = home.root / "config.toml"
    config.write_text(config.read_text() + '\n[profiles.two.images]\ndedup = false\n')
    d = daemon_factory()
    photo = make_image(home.pictures / "dog.jpg", 40 * KiB, seed=2)
    assert upload(d, photo)[0]["deduplicated"] is False
    assert upload(d, photo)[0]["deduplicated"] is True  # the same profile
    for _ in range(2):  # another profile, with dedup off: sent each time
        started = d.rpc("upload_images", {"paths": [str(photo)], "profile": "two"})
        task = d.wait_batch(started["batch_id"])["tasks"][0]
        assert task["status"] == "completed" and task["deduplicated"] is False
    assert d.rpc("get_upload_history", {"limit": 10})["total"] == 3

    # After a restart the daemon still knows what the profile holds (its history), and sends nothing again.
    assert d.stop() == 0
    d = daemon_factory()
    assert upload(d, photo)[0]["deduplicated"] is True
    fresh = make_image(home.pictures / "new.jpg", 40 * KiB, seed=3)
    assert upload(d, fresh)[0]["deduplicated"] is False
    assert d.rpc("get_upload_history", {"limit": 10})["total"] == 4
