"""Anything uploaded by mistake can be deleted from the store: by task id, by history id, by the link on the
command line; every history entry that points to the object is marked; a store that cannot be reached changes
nothing and says why. Through the real daemon, on S3, OSS and the local store."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from conftest import Daemon, Home, RpcFailure, make_image, pixlift_env
from test_uploads import Store, configure, store  # noqa: F401 - the S3 and OSS stores behind a proxy


def gone(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=30):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code in (403, 404)


def test_delete_removes_the_object_and_marks_every_entry(home: Home, store: Store,  # noqa: F811
                                                         daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store)
    d = daemon_factory()
    photo = make_image(home.pictures / "oops.jpg", 120_000, seed=1)
    other = make_image(home.pictures / "keep.jpg", 90_000, seed=2)
    first, kept = d.wait_batch(d.rpc("upload_images", {"paths": [str(photo), str(other)]})["batch_id"])["tasks"]
    again = d.wait_batch(d.rpc("upload_images", {"paths": [str(photo)]})["batch_id"])["tasks"][0]
    assert again["deduplicated"] and again["key"] == first["key"]

    # A store that cannot be reached: the call says why, and nothing changes.
    store.proxy.refuse = True
    store.proxy.cut()  # the connections already open too
    with pytest.raises(RpcFailure) as failed:
        d.rpc("delete_upload", {"task_id": again["task_id"]})
    assert failed.value.code == -32006 and "oops.jpg was not deleted" in str(failed.value)
    assert "Traceback" not in str(failed.value)
    store.proxy.refuse = False
    assert first["key"] in store.objects()
    assert all(i["deleted_at"] is None for i in d.rpc("get_upload_history")["items"])

    done = d.rpc("delete_upload", {"task_id": again["task_id"]})  # the deduplicated task: its object
    assert done["deleted"] is True and done["key"] == first["key"] and done["name"] == "oops.jpg"
    assert first["key"] not in store.objects() and kept["key"] in store.objects()
    assert gone(first["url"]) and not gone(kept["url"])
    history = d.rpc("get_upload_history")
    marked = {i["key"]: i["deleted_at"] for i in history["items"]}
    assert marked[first["key"]] is not None and marked[kept["key"]] is None
    assert d.rpc("get_upload_history", {"deleted": True})["total"] == 1
    assert d.rpc("get_upload_history", {"deleted": False})["items"][0]["key"] == kept["key"]

    # The same file again: the journal knows the object is gone, so it is sent, not deduplicated.
    back = d.wait_batch(d.rpc("upload_images", {"paths": [str(photo)]})["batch_id"])["tasks"][0]
    assert back["deduplicated"] is False and back["key"] in store.objects()


def test_delete_by_history_id_and_by_link_on_the_command_line(home: Home,
                                                               daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"local": {"provider": "local"}}, default="local")
    d = daemon_factory()
    a, b = (make_image(home.pictures / f"{n}.jpg", 30_000, seed=i) for i, n in enumerate(("a", "b")))
    d.wait_batch(d.rpc("upload_images", {"paths": [str(a), str(b)]})["batch_id"])
    items = {i["name"]: i for i in d.rpc("get_upload_history")["items"]}
    assert d.rpc("delete_upload", {"history_id": items["a.jpg"]["history_id"]})["deleted"] is True
    assert gone(items["a.jpg"]["url"])

    cli = subprocess.run([sys.executable, "-m", "pixlift", "delete", items["b.jpg"]["url"], "no-such-task"],
                         env=pixlift_env(home), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1  # one of the two could not be deleted
    assert cli.stdout.strip().startswith("deleted b.jpg from local")
    assert "no-such-task" in cli.stderr and "Traceback" not in cli.stderr
    assert gone(items["b.jpg"]["url"])
    assert d.rpc("get_upload_history", {"deleted": True})["total"] == 2
    with pytest.raises(RpcFailure) as both:
        d.rpc("delete_upload", {"task_id": "x", "history_id": 1})
    assert both.value.code == -32602
