"""The attack suite, 2: limits on input. Deeply nested JSON, oversized batches and path lists, wrong parameter
types, unparsable bodies, and bodies over the size limits by Content-Length, by endless chunks and by a streamed
browser upload; each refusal asserts that nothing happened.

The harness (raw HTTP, the shared daemon ``World``) is in security_harness.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import PNG_1PX, S3Server
from security_harness import (
    MiB,
    World,
    open_world,
    owner_still_uploads,
    raw,
    read_reply,
    request_head,
    upload_body,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[World]:
    with open_world(tmp_path_factory, s3_server) as w:
        yield w


# -- limits on input -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limit:
    id: str
    body: Callable[[World], bytes]
    code: int
    says: str


def _nested(depth: int) -> Callable[[World], bytes]:
    return lambda w: b"[" * depth + b"]" * depth


def _call(params: dict[str, Any], method: str = "upload_images") -> Callable[[World], bytes]:
    return lambda w: json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {
        k: (str(w.bait) if v == "BAIT" else v) for k, v in params.items()}}).encode()


LIMIT_CASES = [
    Limit("nested-1000-arrays", _nested(1000), -32600, "nested more than 16 levels"),
    Limit("nested-100-in-params", lambda w: upload_body(w)[:-2] + b', "x": ' + b"[" * 100 + b"]" * 100 + b"}}",
          -32600, "nested more than 16 levels"),
    Limit("nested-objects-500", lambda w: b'{"a":' * 500 + b"1" + b"}" * 500, -32600, "nested more than 16"),
    Limit("batch-of-101", lambda w: json.dumps([json.loads(upload_body(w))] * 101).encode(), -32600,
          "at most 100 per batch"),
    Limit("10001-paths", lambda w: upload_body(w, [str(w.bait)] * 10_001), -32602, "at most 10000 per call"),
    Limit("paths-not-a-list", _call({"paths": "BAIT"}), -32602, "must be a non-empty list"),
    Limit("paths-empty", _call({"paths": []}), -32602, "must be a non-empty list"),
    Limit("batch-size-0", _call({"paths": ["BAIT"], "batch_size": 0}, "upload_images_batch"), -32602,
          "must be from 1 to 100"),
    Limit("batch-size-huge", _call({"paths": ["BAIT"], "batch_size": 10**30}, "upload_images_batch"), -32602,
          "must be from 1 to 100"),
    Limit("batch-size-true", _call({"paths": ["BAIT"], "batch_size": True}, "upload_images_batch"), -32602,
          "whole number"),
    Limit("unknown-param", _call({"paths": ["BAIT"], "dest": "/tmp"}), -32602, "Unknown param 'dest'"),
    Limit("profile-not-string", _call({"paths": ["BAIT"], "profile": {"provider": "s3"}}), -32602,
          "non-empty string"),
    Limit("unknown-profile", _call({"paths": ["BAIT"], "profile": "../../etc"}), -32004, "Unknown storage profile"),
    Limit("not-json", lambda w: b"{paths: [", -32700, "Parse error"),
    Limit("huge-number", lambda w: b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "get_daemon_info"}',
          -32700, "Parse error"),
    Limit("not-an-object", lambda w: b'"upload_images"', -32600, "Invalid request"),
]


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda c: c.id)
def test_input_limits(world: World, case: Limit) -> None:
    before = world.state()
    status, _, body = world.d.post("/rpc", case.body(world))
    assert status == 200, body
    reply = json.loads(body)
    error = (reply[0] if isinstance(reply, list) else reply)["error"]
    assert error["code"] == case.code, error
    assert case.says in error["message"], error
    world.nothing_happened(before, world.bait)


def test_body_over_1mib_by_content_length_is_refused_unread(world: World) -> None:
    """A Content-Length of 1 GiB with no body sent: the answer comes at once, so nothing waited for the body."""
    before = world.state()
    for route, ctype in (("/rpc", "application/json"), ("/api/upload?name=big.png", "image/png")):
        head = request_head("POST", route, [("Host", f"127.0.0.1:{world.port}"),
                                            ("Authorization", f"Bearer {world.home.token}"),
                                            ("Content-Type", ctype)], 1 << 30)
        started = time.monotonic()
        reply = raw(world.port, head, b"", timeout=5)
        assert reply.status == 413, reply
        assert "Maximum request body size" in reply.text
        assert time.monotonic() - started < 2
    world.nothing_happened(before)


def test_chunked_body_over_1mib_is_refused_without_the_rest(world: World) -> None:
    """1.1 MiB of chunks and no end: the 413 arrives although the body never finished."""
    before = world.state()
    head = ("POST /rpc HTTP/1.1\r\n" f"Host: 127.0.0.1:{world.port}\r\nAuthorization: Bearer {world.home.token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" * 65536
    with socket.create_connection(("127.0.0.1", world.port), timeout=10) as sock:
        sock.sendall(head.encode())
        for _ in range(18):  # 1,179,648 bytes
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        reply = read_reply(sock, "POST")
    assert reply.status == 413, reply
    assert "Maximum request body size 1048576 exceeded" in reply.text
    world.nothing_happened(before)


def test_browser_upload_over_the_file_limit(world: World) -> None:
    """A streamed upload bigger than max_file_size (16 MiB here) stops with 413 and leaves nothing in the spool."""
    before = world.state()
    head = ("POST /api/upload?name=huge.png HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{world.port}\r\nAuthorization: Bearer {world.home.token}\r\n"
            "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = PNG_1PX + bytes(MiB - len(PNG_1PX))
    with socket.create_connection(("127.0.0.1", world.port), timeout=20) as sock:
        sock.sendall(head.encode())
        with contextlib.suppress(OSError):  # the daemon may stop reading once it has refused
            for _ in range(20):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        reply = read_reply(sock, "POST")
    assert reply.status == 413, reply
    spool = world.home.root / "spool"
    assert not spool.exists() or not any(spool.iterdir())
    world.nothing_happened(before)


# -- after all that: the owner still uploads, by API, by browser session and by CLI --------------------------------
def test_daemon_still_uploads_normally(world: World) -> None:
    owner_still_uploads(world)
