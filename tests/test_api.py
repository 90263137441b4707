"""The JSON-RPC surface and the CLI against the real daemon on the embedded local store."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PNG_1PX, Daemon, Home, RpcFailure, make_image, pixlift_env, start_daemon

CONTRACT_METHODS = {"upload_images", "upload_images_batch", "get_upload_progress", "get_all_upload_progress",
                    "cancel_upload", "retry_upload", "clear_upload_progress", "pause_upload", "resume_upload",
                    "get_upload_history"}
TASK_FIELDS = {"task_id", "batch_id", "path", "name", "status", "bytes_total", "bytes_uploaded", "percent",
               "speed_bps", "eta_s", "attempts", "url", "error", "created_at", "started_at", "finished_at"}
SUMMARY_FIELDS = {"total", "queued", "uploading", "paused", "completed", "failed", "cancelled", "bytes_total",
                  "bytes_uploaded", "percent", "speed_bps"}


def error_of(d: Daemon, method: str, params: Any = None) -> RpcFailure:
    with pytest.raises(RpcFailure) as info:
        d.rpc(method, params)
    return info.value


def test_embedded_default_works_with_no_config_at_all(tmp_path: Path) -> None:
    user_home = tmp_path / "user"
    pictures = user_home / "Pictures"
    pictures.mkdir(parents=True)
    px_home = Home(tmp_path / "px", pictures)  # no config.toml written: the embedded default
    px_home.root.mkdir()
    env = pixlift_env(px_home, HOME=str(user_home))
    d = start_daemon(px_home, env=env)
    try:
        info = json.loads((px_home.root / "daemon.json").read_text())
        assert info == {"url": f"http://127.0.0.1:{d.port}", "port": d.port, "pid": d.proc.pid, "version": "0.1.0"}
        for name in ("token", "daemon.json"):
            assert stat.S_IMODE((px_home.root / name).stat().st_mode) == 0o600
        img = pictures / "shot.png"
        img.write_bytes(PNG_1PX)
        task = d.rpc("upload_images", {"paths": [str(img)]})["tasks"][0]
        done = d.wait_task(task["task_id"])
        assert done["status"] == "completed" and done["profile"] == "local"
        with urllib.request.urlopen(done["url"]) as resp:
            assert resp.read() == PNG_1PX
            assert resp.headers["Content-Type"] == "image/png"
        assert done["url"].startswith(f"http://127.0.0.1:{d.port}/files/")
        # ~/Pictures is allowed by default; the rest of the home folder is not.
        outside = user_home / "secret.png"
        outside.write_bytes(PNG_1PX)
        assert error_of(d, "upload_images", {"paths": [str(outside)]}).code == -32001
    finally:
        assert d.stop() == 0
    assert not (px_home.root / "daemon.json").exists()


def test_shapes_and_every_contract_method(home: Home, daemon: Daemon) -> None:
    files = [make_image(home.pictures / f"p{i}.jpg", 2_000 + i, seed=i) for i in range(3)]
    started = daemon.rpc("upload_images", [[str(f) for f in files]])  # positional params work too
    assert set(started) == {"batch_id", "tasks"}
    assert [t["name"] for t in started["tasks"]] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    for t in started["tasks"]:
        assert set(t) >= TASK_FIELDS
    done = daemon.wait_batch(started["batch_id"])
    assert set(done["summary"]) >= SUMMARY_FIELDS
    assert done["summary"]["total"] == 3 and done["summary"]["completed"] == 3
    one = daemon.rpc("get_upload_progress", {"task_id": started["tasks"][0]["task_id"]})
    assert one["status"] == "completed" and one["url"] and one["finished_at"] >= one["started_at"]
    assert daemon.rpc("pause_upload") == {"paused": 0}
    assert daemon.rpc("resume_upload") == {"resumed": 0}
    fourth = make_image(home.pictures / "p3.jpg", 2_003, seed=3)  # new bytes: the same ones would be deduplicated
    batch = daemon.rpc("upload_images_batch", {"paths": [str(fourth)], "batch_size": 1})
    daemon.wait_batch(batch["batch_id"])
    assert daemon.rpc("clear_upload_progress") == {"cleared": 4}
    assert daemon.rpc("get_all_upload_progress")["tasks"] == []
    history = daemon.rpc("get_upload_history", {"limit": 2})
    assert history["total"] == 4 and len(history["items"]) == 2
    assert set(history["items"][0]) == {"history_id", "task_id", "name", "url", "size", "profile", "key",
                                        "uploaded_at", "deleted_at", "url_expires_at"}
    assert history["items"][0]["task_id"] == batch["tasks"][0]["task_id"]  # newest first
    page2 = daemon.rpc("get_upload_history", {"limit": 2, "offset": 2})
    assert {i["task_id"] for i in page2["items"]}.isdisjoint({i["task_id"] for i in history["items"]})
    assert daemon.rpc("get_upload_history", {"query": "p2"})["total"] == 1
    discovered = daemon.rpc("rpc.discover")
    names = {m["name"] for m in discovered["methods"]}
    assert names >= CONTRACT_METHODS
    batch_method = next(m for m in discovered["methods"] if m["name"] == "upload_images_batch")
    size = next(p for p in batch_method["params"] if p["name"] == "batch_size")
    assert size["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}


def test_every_error_code_says_what_and_why(home: Home, daemon: Daemon) -> None:
    good = make_image(home.pictures / "good.jpg", 1_000)
    text = home.pictures / "notes.txt"
    text.write_text("not an image")
    (home.pictures / "folder").mkdir()
    empty = home.pictures / "empty.png"
    empty.write_bytes(b"")
    # -32001: every refused path is listed with its reason, and nothing is queued.
    missing, folder = str(home.pictures / "missing.png"), str(home.pictures / "folder")
    err = error_of(daemon, "upload_images", {"paths": [str(good), str(text), "/etc/passwd", "relative.png", missing,
                                                       folder, str(empty)]})
    assert err.code == -32001
    reasons = {item["path"]: item["reason"] for item in err.data}
    assert set(reasons) == {str(text), "/etc/passwd", "relative.png", str(home.pictures / "missing.png"),
                            str(home.pictures / "folder"), str(empty)}
    assert "not an image" in reasons[str(text)]
    assert "outside the allowed folders" in reasons["/etc/passwd"]
    assert "absolute" in reasons["relative.png"]
    assert "no such file" in reasons[str(home.pictures / "missing.png")]
    assert "not a regular file" in reasons[str(home.pictures / "folder")]
    assert "empty" in reasons[str(empty)]
    assert daemon.rpc("get_all_upload_progress")["summary"]["total"] == 0
    # -32002: no such task or batch.
    assert error_of(daemon, "get_upload_progress", {"task_id": "nope"}).code == -32002
    assert error_of(daemon, "get_all_upload_progress", {"batch_id": "nope"}).code == -32002
    # -32003: the state does not allow it.
    task = daemon.rpc("upload_images", {"paths": [str(good)]})["tasks"][0]
    daemon.wait_task(task["task_id"])
    err = error_of(daemon, "retry_upload", {"task_id": task["task_id"]})
    assert err.code == -32003 and "completed" in err.error["message"]
    assert error_of(daemon, "cancel_upload", {"task_id": task["task_id"]}).code == -32003
    # -32004: configuration errors, before anything is queued.
    err = error_of(daemon, "upload_images", {"paths": [str(good)], "profile": "nope"})
    assert err.code == -32004 and "nope" in err.error["message"] and "local" in err.error["message"]
    # -32602: which param, and why.
    for params, needle in [({"paths": [str(good)], "batch_size": 0}, "batch_size"),
                           ({"paths": [str(good)], "batch_size": 101}, "batch_size"),
                           ({"paths": [str(good)], "batch_size": "5"}, "batch_size"),
                           ({"paths": str(good)}, "paths"), ({"paths": []}, "paths"),
                           ({"paths": [str(good)], "colour": "red"}, "colour"), ({}, "paths")]:
        err = error_of(daemon, "upload_images_batch", params)
        assert err.code == -32602 and needle in err.error["message"], (params, err.error)
    assert daemon.rpc("get_all_upload_progress")["summary"]["total"] == 1


def test_json_rpc_protocol_errors_batches_and_notifications(daemon: Daemon) -> None:
    status, _, body = daemon.post("/rpc", b"{not json")
    assert status == 200 and json.loads(body)["error"]["code"] == -32700
    status, reply = daemon.call_raw({"jsonrpc": "2.0", "id": 1, "method": "no_such_method"})
    assert reply["error"]["code"] == -32601
    status, reply = daemon.call_raw({"id": 1, "method": "get_upload_history"})
    assert reply["error"]["code"] == -32600
    status, reply = daemon.call_raw([])
    assert reply["error"]["code"] == -32600
    status, reply = daemon.call_raw([
        {"jsonrpc": "2.0", "id": 1, "method": "get_upload_history", "params": {"limit": 1}},
        {"jsonrpc": "2.0", "id": 2, "method": "get_upload_progress", "params": {"task_id": "x"}},
        {"jsonrpc": "2.0", "method": "clear_upload_progress"},  # a notification: no reply
    ])
    assert status == 200
    by_id = {r["id"]: r for r in reply}
    assert set(by_id) == {1, 2}
    assert by_id[1]["result"]["total"] == 0
    assert by_id[2]["error"]["code"] == -32002
    status, _, body = daemon.post("/rpc", json.dumps({"jsonrpc": "2.0", "method": "pause_upload"}).encode())
    assert status == 204 and body == b""


def test_cli_upload_status_history_and_config_check(home: Home, daemon: Daemon) -> None:
    env = pixlift_env(home)
    files = [make_image(home.pictures / f"c{i}.jpg", 5_000 + i, seed=i) for i in range(3)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pixlift", *args], env=env, capture_output=True, text=True,
                              timeout=60, cwd=home.pictures)

    out = cli("upload", "c2.jpg", "c0.jpg", str(files[1]))  # relative paths resolve from the CLI's cwd
    assert out.returncode == 0, out.stderr
    links = out.stdout.split()
    assert len(links) == 3
    for link, f in zip(links, [files[2], files[0], files[1]], strict=True):
        with urllib.request.urlopen(link) as resp:
            assert resp.read() == f.read_bytes()
    md = cli("upload", "--format", "markdown", "c0.jpg")
    assert md.stdout.strip() == f"![c0.jpg]({links[1]})"
    folder = home.pictures / "trip"
    trip = [make_image(folder / f"{n}.jpg", 2_000, seed=10 + i) for i, n in enumerate("ba")]
    make_image(folder / "day2" / "c.jpg", 2_000, seed=20)
    (folder / "notes.txt").write_text("not an image")
    whole = cli("upload", str(folder))
    assert whole.returncode == 0, whole.stderr
    assert "skipped 1 file that is not an image" in whole.stderr
    got = [urllib.request.urlopen(link).read() for link in whole.stdout.split()]
    assert got == [trip[1].read_bytes(), trip[0].read_bytes(), (folder / "day2" / "c.jpg").read_bytes()]
    bad = cli("upload", "c0.jpg", "/etc/hostname")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "/etc/hostname: outside the allowed folders" in bad.stderr
    status = cli("status")
    assert status.returncode == 0 and f"127.0.0.1:{daemon.port}" in status.stdout and "7 completed" in status.stdout
    hist = cli("history", "--limit", "1")
    assert hist.stdout.strip() in whole.stdout.split()  # the newest upload came from the folder
    check = cli("config", "check")
    assert check.returncode == 0 and "ok" in check.stdout and "local" in check.stdout


def test_cli_config_check_names_the_broken_profile(home: Home, s3_server: Any) -> None:
    s3_server.bucket("present")
    home.write_config({"good": s3_server.profile("present"),
                       "badkey": {**s3_server.profile("present"), "secret_access_key": "Sekr3t-Wr0ng"},
                       "nobucket": s3_server.profile("absent")}, default="good")
    out = subprocess.run([sys.executable, "-m", "pixlift", "config", "check"], env=pixlift_env(home),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = {line.split()[1].rstrip(":"): line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert lines["good"].lstrip().startswith("ok")
    assert "FAIL" in lines["badkey"] and "secret_access_key" in lines["badkey"]
    assert "FAIL" in lines["nobucket"] and "absent" in lines["nobucket"] and "does not exist" in lines["nobucket"]
    assert "Sekr3t-Wr0ng" not in out.stdout + out.stderr


@pytest.mark.parametrize(("config", "needles"), [
    ("[profiles.x]\nprovider = 's3'\nbucket = \n", ["config.toml", "line 3", "not valid TOML"]),
    ("[profiles.x]\nprovider = 'ftp'\n", ["profiles.x.provider", "'ftp'", 'Write provider = "local", "s3", ']),
    ("[profiles.x]\nprovider = 's3'\n", ["profiles.x", "missing 'bucket'", 'bucket = "..."']),
    ("[profiles.x]\nprovider = 's3'\nbucket = 'b'\nbucket_name = 'c'\n", ["bucket_name", "Did you mean 'bucket'"]),
    ("[storage]\ndefault = 'cloud'\n", ["storage.default", "'cloud'", "not defined"]),
    ("[transfers]\nmax_concurrent = 500\n", ["transfers.max_concurrent", "from 1 to 100"]),
])
def test_a_broken_config_stops_the_daemon_with_the_key_and_the_fix(home: Home, config: str,
                                                                   needles: list[str]) -> None:
    (home.root / "config.toml").write_text(config)
    out = subprocess.run([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"],
                         env=pixlift_env(home), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)
    assert not (home.root / "daemon.json").exists()


def test_oss_credentials_come_from_the_environment(home: Home, oss_server: Any,
                                                   daemon_factory: Callable[..., Daemon]) -> None:
    from conftest import AK, SK, oss_profile

    profile = oss_profile(oss_server)
    del profile["access_key_id"], profile["access_key_secret"]
    home.write_config({"ali": profile}, default="ali")
    d = daemon_factory(env=pixlift_env(home, OSS_ACCESS_KEY_ID=AK, OSS_ACCESS_KEY_SECRET=SK))
    f = make_image(home.pictures / "env.jpg", 4_000)
    t = d.wait_task(d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"])
    assert t["status"] == "completed", t["error"]
    assert oss_server.server.objects("test")[t["key"]].read_bytes() == f.read_bytes()


def test_sigint_and_sigterm_stop_cleanly(home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        d = daemon_factory()
        assert d.stop(sig) == 0
        assert not (home.root / "daemon.json").exists()
        assert "stopped" in d.log()


def test_same_file_same_key_and_different_files_never_collide(home: Home, daemon: Daemon) -> None:
    a = make_image(home.pictures / "a" / "photo.jpg", 3_000, seed=1)
    b = make_image(home.pictures / "b" / "photo.jpg", 3_000, seed=2)
    r = daemon.rpc("upload_images", {"paths": [str(a), str(b), str(a)]})
    done = daemon.wait_batch(r["batch_id"])["tasks"]
    assert done[0]["key"] == done[2]["key"] != done[1]["key"]
    for t, f in zip(done, (a, b, a), strict=True):
        with urllib.request.urlopen(t["url"]) as resp:
            assert resp.read() == f.read_bytes()



def test_a_stale_daemon_json_never_hands_the_token_to_whoever_took_the_port(home: Home, daemon: Daemon) -> None:
    import socket
    import threading

    daemon.proc.kill()  # a crash: daemon.json stays behind
    daemon.proc.wait(10)
    assert (home.root / "daemon.json").exists()
    received: list[bytes] = []
    with socket.socket() as squatter:  # another program grabs the freed port
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", daemon.port))
        squatter.listen()
        squatter.settimeout(3)

        def accept() -> None:
            try:
                conn, _ = squatter.accept()
                received.append(conn.recv(65536))
                conn.close()
            except OSError:
                pass

        t = threading.Thread(target=accept)
        t.start()
        out = subprocess.run([sys.executable, "-m", "pixlift", "status"], env=pixlift_env(home), capture_output=True,
                             text=True, timeout=30)
        t.join()
    assert out.returncode == 3
    assert "stale" in out.stderr and "pixlift serve" in out.stderr
    assert not received or home.token.encode() not in received[0]
    assert received == []


def test_a_long_list_of_tasks_comes_in_parts_and_whole_the_same(home: Home, daemon: Daemon) -> None:
    """A reply with more than 1,000 tasks (a call of many paths, a read of the whole list) is sent in parts as it
    is serialised (chunked), so its JSON is never whole in the daemon's memory; it reads the same as the reply
    made whole (inside a JSON-RPC batch) and as a short one."""
    files = [make_image(home.pictures / f"many{i:04d}.png", 300 + i % 50, seed=i) for i in range(1_100)]
    payload = {"jsonrpc": "2.0", "id": 7, "method": "upload_images_batch",
               "params": {"paths": [str(f) for f in files], "batch_size": 50}}
    status, headers, body = daemon.post("/rpc", json.dumps(payload).encode())
    assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
    started = json.loads(body)
    assert started["id"] == 7 and started["jsonrpc"] == "2.0"
    assert [t["name"] for t in started["result"]["tasks"]] == [f.name for f in files]
    assert all(set(t) >= TASK_FIELDS for t in started["result"]["tasks"])
    daemon.wait_batch(started["result"]["batch_id"])
    read = {"jsonrpc": "2.0", "id": 8, "method": "get_all_upload_progress", "params": {"since": 0}}
    status, headers, body = daemon.post("/rpc", json.dumps(read).encode())
    assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
    streamed = json.loads(body)["result"]
    _, whole = daemon.call_raw([read])  # a batch's replies are made whole
    assert streamed == whole[0]["result"]
    assert len(streamed["tasks"]) == 1_100 and streamed["removed"] == []
    assert {t["status"] for t in streamed["tasks"]} == {"completed"}
    assert streamed["summary"]["completed"] == 1_100
    one = daemon.rpc("get_all_upload_progress", {"since": streamed["version"] - 1})  # a short read: as before
    assert len(one["tasks"]) == 1 and one["tasks"][0] == streamed["tasks"][-1]
