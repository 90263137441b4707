"""The attack suite, 4: rate limits. Calls past the burst are refused with a retry time and nothing they asked
for is queued; the browser upload route answers 429; files per minute are capped. Each test runs its own daemon
with the limits under test, not the shared ``World`` of the other security files.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import PNG_1PX, Daemon, Home, S3Server, make_image


# -- rate limits (their own daemons) -------------------------------------------------------------------------------
def _rate_daemon(home: Home, factory: Callable[..., Daemon], s3: S3Server, **security: Any) -> tuple[Daemon, str]:
    bucket = f"rate{uuid.uuid4().hex[:10]}"
    s3.bucket(bucket)
    home.write_config({"s3": s3.profile(bucket)}, default="s3", security=security)
    return factory(), bucket


def test_call_limit_defaults_refuse_a_burst_then_recover(home: Home, daemon_factory: Callable[..., Daemon],
                                                         s3_server: S3Server) -> None:
    """The default limit (20 calls/s, bursts of 40). One batch is charged call by call as fast as the daemon
    runs, so the calls past the burst, the upload at its end among them, are refused."""
    d, bucket = _rate_daemon(home, daemon_factory, s3_server)
    bait = make_image(home.pictures / "bait.jpg", 2048, seed=3)
    upload = {"jsonrpc": "2.0", "id": "up", "method": "upload_images", "params": {"paths": [str(bait)]}}
    probe = [{"jsonrpc": "2.0", "id": i, "method": "get_all_upload_progress"} for i in range(80)]

    _, replies = d.call_raw([*probe, upload])
    ok = [r for r in replies if "result" in r]
    limited = [r["error"] for r in replies if "error" in r]
    assert 40 <= len(ok) < 60, len(ok)  # the burst, and what refilled while the batch ran
    assert {e["code"] for e in limited} == {-32029}
    assert all("Too many calls" in e["message"] and "20 per second (bursts of 40)" in e["message"] for e in limited)
    assert all(0 < e["data"]["retry_after_s"] <= 0.06 for e in limited)  # one call's worth of refill at most
    refused = next(r for r in replies if r["id"] == "up")["error"]
    assert ok[0]["result"]["summary"]["total"] == 0

    # Waiting exactly retry_after_s is enough, and the refused upload was not queued.
    time.sleep(refused["data"]["retry_after_s"])
    assert d.rpc("get_all_upload_progress")["summary"]["total"] == 0, "the refused upload was queued"
    assert s3_server.objects(bucket) == {}

    # After retry_after_s, the very call that was refused succeeds.
    _, replies = d.call_raw([*probe, upload])
    time.sleep(next(r for r in replies if r["id"] == "up")["error"]["data"]["retry_after_s"])
    _, reply = d.call_raw(upload)
    assert "result" in reply, reply
    time.sleep(40 / 20)  # a full bucket again for the polling below
    assert d.wait_task(reply["result"]["tasks"][0]["task_id"])["status"] == "completed"
    assert [o.read_bytes() for o in s3_server.objects(bucket).values()] == [bait.read_bytes()]


def test_upload_route_answers_429_and_files_are_capped(home: Home, daemon_factory: Callable[..., Daemon],
                                                      s3_server: S3Server) -> None:
    """A slow refill (1 call/s, bursts of 5) so that the bucket is surely still empty when the next request
    arrives; and a cap of 3 files a minute."""
    d, bucket = _rate_daemon(home, daemon_factory, s3_server, calls_per_second=1, call_burst=5, files_per_minute=3)
    d.call_raw([{"jsonrpc": "2.0", "id": i, "method": "get_daemon_info"} for i in range(6)])
    status, headers, body = d.post("/api/upload?name=pasted.png", PNG_1PX, headers={"Content-Type": "image/png"})
    assert status == 429, body
    error = json.loads(body)["error"]
    assert error["code"] == "rate_limited" and "Too many calls" in error["message"]
    assert 0 < error["data"]["retry_after_s"] <= 1.01
    assert int(headers["Retry-After"]) >= 1
    spool = home.root / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "the refused upload was spooled"

    time.sleep(error["data"]["retry_after_s"])
    status, _, body = d.post("/api/upload?name=pasted.png", PNG_1PX, headers={"Content-Type": "image/png"})
    assert status == 200, body
    time.sleep(1.0)
    assert d.rpc("get_all_upload_progress")["summary"]["total"] == 1, "the refused browser upload was queued"

    # Files per minute (3 here): one is queued; three more are refused together, and none of them is queued.
    others = [str(make_image(home.pictures / f"more{i}.jpg", 2048, seed=10 + i)) for i in range(3)]
    time.sleep(1.0)
    _, reply = d.call_raw({"jsonrpc": "2.0", "id": 1, "method": "upload_images", "params": {"paths": others}})
    assert reply["error"]["code"] == -32029 and "Too many files queued" in reply["error"]["message"], reply
    assert reply["error"]["data"]["retry_after_s"] > 0
    time.sleep(1.0)
    assert d.rpc("get_all_upload_progress")["summary"]["total"] == 1
    objects = s3_server.objects(bucket)
    assert not any(Path(o).read_bytes() in [p.read_bytes() for p in objects.values()] for o in others)
