"""Live progress against the real daemon: versions and ``since``, expiry, Server-Sent Events and WebSocket.

Each test starts the daemon as a subprocess (the embedded local store unless it says otherwise) and reads it
as a client would: plain JSON-RPC for ``since``, aiohttp's client for the event stream and the WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import Daemon, Home, RpcFailure, make_image, wait_until
from pixlift.api.web_push import MAX_STREAMS

Factory = Callable[..., Daemon]


def images(home: Home, n: int, size: int = 20_000, prefix: str = "img") -> list[str]:
    return [str(make_image(home.pictures / f"{prefix}-{i}.jpg", size, seed=hash((prefix, i)) & 0xFFFF))
            for i in range(n)]


def bearer(home: Home) -> dict[str, str]:
    return {"Authorization": f"Bearer {home.token}"}


# -- versions, since, removed, full ------------------------------------------------------------------------------
def test_since_returns_exactly_what_changed_and_what_was_cleared(home: Home, daemon: Daemon) -> None:
    first = daemon.rpc("upload_images", {"paths": images(home, 3, prefix="a")})
    daemon.wait_batch(first["batch_id"])
    base = daemon.rpc("get_all_upload_progress")
    assert len(base["tasks"]) == 3 and all(t["version"] <= base["version"] for t in base["tasks"])

    quiet = daemon.rpc("get_all_upload_progress", {"since": base["version"]})
    assert quiet["tasks"] == [] and quiet["removed"] == [] and quiet["version"] == base["version"]
    assert quiet["summary"] == base["summary"]  # the summary always covers the whole list

    cleared = daemon.rpc("clear_upload_progress")["cleared"]
    second = daemon.rpc("upload_images", {"paths": images(home, 2, prefix="b")})
    daemon.wait_batch(second["batch_id"])
    later = daemon.rpc("get_all_upload_progress", {"since": base["version"]})
    assert cleared == 3
    assert sorted(later["removed"]) == sorted(t["task_id"] for t in first["tasks"])
    assert sorted(t["task_id"] for t in later["tasks"]) == sorted(t["task_id"] for t in second["tasks"])
    assert all(t["version"] > base["version"] and t["status"] == "completed" for t in later["tasks"])
    assert later["summary"]["total"] == 2 and later["version"] > base["version"]
    assert "full" not in later

    batch_only = daemon.rpc("get_all_upload_progress", {"since": base["version"], "batch_id": second["batch_id"]})
    assert sorted(t["task_id"] for t in batch_only["tasks"]) == sorted(t["task_id"] for t in second["tasks"])
    with pytest.raises(RpcFailure) as bad:
        daemon.rpc("get_all_upload_progress", {"since": -1})
    assert bad.value.code == -32602 and "since" in bad.value.error["message"]


def test_after_a_restart_old_versions_get_everything_with_full(home: Home, daemon_factory: Factory) -> None:
    d = daemon_factory()
    done = d.rpc("upload_images", {"paths": images(home, 2)})
    d.wait_batch(done["batch_id"])
    before = d.rpc("get_all_upload_progress")["version"]
    assert d.stop() == 0

    d = daemon_factory()
    again = d.rpc("get_all_upload_progress", {"since": before})
    assert again["full"] is True and len(again["tasks"]) == 2
    assert again["version"] >= before  # the counter never goes back, across restarts
    after = again["version"]
    more = d.rpc("upload_images", {"paths": images(home, 1, prefix="c")})
    d.wait_batch(more["batch_id"])
    incremental = d.rpc("get_all_upload_progress", {"since": after})
    assert "full" not in incremental and [t["task_id"] for t in incremental["tasks"]] == [more["tasks"][0]["task_id"]]
    assert incremental["tasks"][0]["version"] > before


# -- expiry --------------------------------------------------------------------------------------------------
def test_finished_tasks_expire_but_failed_ones_stay(home: Home, daemon_factory: Factory) -> None:
    home.write_config(transfers={"forget_finished_after_s": 2})
    d = daemon_factory()
    keep, gone = images(home, 2, prefix="expire")
    d.rpc("pause_upload")  # nothing runs until the failing file is set up
    batch = d.rpc("upload_images", {"paths": [keep, gone]})
    ok_id, bad_id = (t["task_id"] for t in batch["tasks"])
    d.rpc("pause_upload")
    os.unlink(gone)
    d.rpc("resume_upload")
    d.wait_batch(batch["batch_id"])
    assert d.rpc("get_upload_progress", {"task_id": bad_id})["status"] == "failed"
    version = d.rpc("get_all_upload_progress")["version"]
    wait_until(lambda: ok_id not in {t["task_id"] for t in d.rpc("get_all_upload_progress")["tasks"]}, 20,
               interval=0.2, message="the completed task to expire")
    listed = d.rpc("get_all_upload_progress", {"since": version})
    assert ok_id in listed["removed"] and bad_id not in listed["removed"]
    assert [t["task_id"] for t in d.rpc("get_all_upload_progress")["tasks"]] == [bad_id]
    assert d.rpc("get_upload_history")["items"][0]["task_id"] == ok_id  # history keeps every link


# -- Server-Sent Events ---------------------------------------------------------------------------------------
async def read_events(resp: aiohttp.ClientResponse, until: Callable[[list[dict[str, Any]]], bool],
                      timeout: float = 60) -> list[dict[str, Any]]:
    """Parse an event stream until ``until(events)``: each event is {"event", "id", "data"}."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if "data" in current:
                    events.append({"event": current.get("event", "message"), "id": int(current["id"]),
                                   "data": json.loads(current["data"])})
                    if until(events):
                        return events
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value[1:] if value.startswith(" ") else value
    return events


def batch_done(batch_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(e["event"] == "batch" and e["data"]["batch_id"] == batch_id for e in events)


async def test_sse_refuses_strangers(home: Home, daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/events") as resp:
            assert resp.status == 401
        async with http.get(f"{daemon.url}/events", headers={**bearer(home), "Origin": "https://evil.example"}) as resp:
            assert resp.status == 403
        async with http.get(f"{daemon.url}/events", headers={"Host": "evil.example"}) as resp:
            assert resp.status == 403
        async with http.get(f"{daemon.url}/events?interval_ms=5", headers=bearer(home)) as resp:
            assert resp.status == 400 and "interval_ms" in (await resp.json())["error"]["message"]
        async with http.get(f"{daemon.url}/events?batch_id=nope", headers=bearer(home)) as resp:
            assert resp.status == 404


async def test_sse_follows_a_batch_and_resumes_from_the_last_event_id(home: Home, daemon: Daemon) -> None:
    paths = images(home, 4, size=200_000)
    async with aiohttp.ClientSession() as http, \
            http.get(f"{daemon.url}/events?interval_ms=50", headers=bearer(home)) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        started = await asyncio.to_thread(daemon.rpc, "upload_images", {"paths": paths})
        done = batch_done(started["batch_id"])
        # The batch event comes as it happens; the progress of its last moments within interval_ms.
        events = await read_events(resp, lambda ev: done(ev) and any(
            e["event"] == "progress" and e["data"]["summary"]["completed"] == 4 for e in ev))
    ids = {t["task_id"] for t in started["tasks"]}
    kinds = [e["event"] for e in events]
    assert kinds.count("task") == 4 and kinds.count("batch") == 1 and "progress" in kinds
    assert {e["data"]["task_id"] for e in events if e["event"] == "task"} == ids
    assert all(e["data"]["status"] == "completed" and e["data"]["url"] for e in events if e["event"] == "task")
    progress = [e for e in events if e["event"] == "progress"]
    assert all(set(p["data"]) >= {"version", "tasks", "removed", "summary"} for p in progress)
    assert all(e["id"] == e["data"]["version"] for e in progress)
    assert next(e for e in events if e["event"] == "batch")["data"]["summary"]["completed"] == 4
    # task events of a batch come before its batch event
    assert max(i for i, e in enumerate(events) if e["event"] == "task") < kinds.index("batch")

    # A client that lost its connection before anything happened resumes by Last-Event-ID: the replay brings a
    # progress event with everything changed since, each finished task, then the batch.
    first = min(e["id"] for e in events) - 1
    headers = {**bearer(home), "Last-Event-ID": str(first)}
    async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/events", headers=headers) as resp:
        replay = await read_events(resp, batch_done(started["batch_id"]), timeout=20)
    kinds = [e["event"] for e in replay]
    assert kinds[0] == "progress" and kinds.count("task") == 4 and kinds[-1] == "batch"
    assert {t["task_id"] for t in replay[0]["data"]["tasks"]} >= ids


async def test_sse_with_the_session_cookie_from_the_daemons_own_page(home: Home, daemon: Daemon) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{daemon.url}/?token={home.token}", allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(f"{daemon.url}/events?since=0", headers={"Sec-Fetch-Site": "same-origin"}) as resp:
            assert resp.status == 200
        async with http.get(f"{daemon.url}/events", headers={"Sec-Fetch-Site": "cross-site"}) as resp:
            assert resp.status == 403
        async with http.get(f"{daemon.url}/events", headers={"Sec-Fetch-Site": "same-site"}) as resp:
            assert resp.status == 401  # the cookie counts only on the daemon's own pages


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_stops_reading_is_dropped_and_costs_no_memory(home: Home, daemon: Daemon) -> None:
    """An event stream whose reader stopped while 2,600 uploads finished: the daemon's memory stays flat (what
    waits is bounded: the newest progress, and finished-task events up to a limit past which the stream is
    closed), uploads go on, and the stream still delivers in order once the reader reads again."""
    paths = images(home, 2600, size=2_000, prefix="slow")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", daemon.port))
    sock.sendall(f"GET /events?interval_ms=50 HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
                 f"Authorization: Bearer {home.token}\r\n\r\n".encode())
    before = rss_kb(daemon.proc.pid)
    for i in range(0, len(paths), 500):
        daemon.rpc("upload_images", {"paths": paths[i:i + 500]})
    wait_until(lambda: daemon.rpc("get_all_upload_progress")["summary"]["completed"] == len(paths), 180,
               interval=0.5, message="every upload")
    grown = rss_kb(daemon.proc.pid) - before
    sock.settimeout(2)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass  # nothing more for now: the stream is idle (or the daemon closed it, which ends the loop too)
    sock.close()
    assert received.startswith(b"HTTP/1.1 200") and b"event: task" in received
    assert grown < 60_000, f"the daemon grew by {grown} kB"
    assert daemon.rpc("get_daemon_info")["pid"] == daemon.proc.pid  # and it serves on


# -- WebSocket ---------------------------------------------------------------------------------------------------
async def reply_to(ws: aiohttp.ClientWebSocketResponse, ident: int) -> dict[str, Any]:
    """The answer to call ``ident``; notifications that arrive before it are passed over."""
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive_json()
            if msg.get("id") == ident:
                return dict(msg)


async def test_websocket_calls_methods_and_pushes_a_batch(home: Home, daemon: Daemon) -> None:
    paths = images(home, 3, size=100_000, prefix="ws")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{daemon.url}/ws", headers=bearer(home)) as ws:
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                      "params": {"interval_ms": 50}}))
        sub = (await ws.receive_json(timeout=10))["result"]["subscription"]
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "upload_images",
                                      "params": {"paths": paths}}))
        notes: list[dict[str, Any]] = []
        started: dict[str, Any] = {}
        async with asyncio.timeout(60):
            while not any(n["method"] == "batch" for n in notes):
                msg = await ws.receive_json()
                if msg.get("id") == 2:
                    started = msg["result"]
                elif "method" in msg:
                    notes.append(msg)
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "get_upload_progress",
                                      "params": {"task_id": started["tasks"][0]["task_id"]}}))
        reply = await reply_to(ws, 3)
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "unsubscribe",
                                      "params": {"subscription": sub}}))
        gone = await reply_to(ws, 4)
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "unsubscribe",
                                      "params": {"subscription": sub}}))
        again = await reply_to(ws, 5)
    assert reply["result"]["status"] == "completed"
    assert gone["result"] == {"unsubscribed": True} and again["error"]["code"] == -32002
    tasks = [n["params"] for n in notes if n["method"] == "task"]
    assert {t["task_id"] for t in tasks} == {t["task_id"] for t in started["tasks"]}
    assert all(n["params"]["subscription"] == sub for n in notes)
    assert all(t["status"] == "completed" for t in tasks)
    batch = next(n["params"] for n in notes if n["method"] == "batch")
    assert batch["batch_id"] == started["batch_id"] and batch["summary"]["completed"] == 3


async def test_websocket_refuses_strangers_and_frees_its_streams(home: Home, daemon_factory: Factory) -> None:
    home.write_config(security={"calls_per_second": 1000, "call_burst": 1000})  # 200 subscribes in a second
    daemon = daemon_factory()
    async with aiohttp.ClientSession() as http:
        for headers, status in (({}, 401), ({**bearer(home), "Origin": "https://evil.example"}, 403)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{daemon.url}/ws", headers=headers)
            assert refused.value.status == status
        for _ in range(3):  # subscriptions end with their socket: the per-client cap never fills up
            sockets = [await http.ws_connect(f"{daemon.url}/ws", headers=bearer(home)) for _ in range(MAX_STREAMS)]
            for ws in sockets:
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {}}))
                assert "subscription" in (await ws.receive_json(timeout=10))["result"]
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await http.ws_connect(f"{daemon.url}/ws", headers=bearer(home))
            assert full.value.status == 429
            for ws in sockets:
                await ws.close()
            await asyncio.sleep(0.3)
        async with http.ws_connect(f"{daemon.url}/ws", headers=bearer(home)) as ws:
            await ws.send_str("not json")
            assert (await ws.receive_json(timeout=10))["error"]["code"] == -32700
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "subscribe",
                                          "params": {"interval_ms": 1}}))
            bad = await ws.receive_json(timeout=10)
            assert bad["error"]["code"] == -32602 and "interval_ms" in bad["error"]["message"]
    time.sleep(0)


async def test_sigterm_ends_open_streams_and_exits_promptly(home: Home, daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        stream = await http.get(f"{daemon.url}/events", headers=bearer(home))
        ws = await http.ws_connect(f"{daemon.url}/ws", headers=bearer(home))
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {}}))
        assert "subscription" in (await ws.receive_json(timeout=10))["result"]
        t0 = time.monotonic()
        code = await asyncio.to_thread(daemon.stop)
        assert code == 0 and time.monotonic() - t0 < 8
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert await asyncio.wait_for(stream.content.read(), 10) is not None  # the stream ended, not hung
        stream.release()
