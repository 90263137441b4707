"""``pixlift.client.Client`` as a script uses it: find the daemon, upload, follow the batch to its end."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from conftest import Daemon, Home, make_image
from pixlift.client import Client, DaemonNotRunning, RpcError


def test_a_script_uploads_and_follows_its_batch_in_ten_lines(home: Home, daemon: Daemon) -> None:
    files = [make_image(home.pictures / f"cl{i}.jpg", 150_000, seed=500 + i) for i in range(3)]
    client = Client.discover(home.root)
    started = client.upload([str(f) for f in files], batch_size=2)
    events = list(client.watch(started["batch_id"]))
    assert events[-1]["event"] == "batch" and events[-1]["data"]["batch_id"] == started["batch_id"]
    done = {e["data"]["task_id"]: e["data"] for e in events if e["event"] == "task"}
    assert set(done) == {t["task_id"] for t in started["tasks"]}
    for task, f in zip(started["tasks"], files, strict=True):
        with urllib.request.urlopen(done[task["task_id"]]["url"]) as resp:
            assert resp.read() == f.read_bytes()
    again = list(client.watch(started["batch_id"]))  # a finished batch still reports its files and its end
    assert [e["event"] for e in again].count("task") == 3 and again[-1]["event"] == "batch"
    with pytest.raises(RpcError) as refused:
        client.upload(["/etc/hostname"])
    assert refused.value.code == -32001 and "outside the allowed folders" in refused.value.data[0]["reason"]


def test_discover_says_when_no_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning) as missing:
        Client.discover(tmp_path)
    assert "pixlift serve" in str(missing.value)
