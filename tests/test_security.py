"""The attack suite: every way issue #3 says a hostile page, user or file could misuse the daemon, tried against
the real daemon over real HTTP, each asserting the refusal AND that nothing happened (no task queued, no object
in the bucket, no byte of the target file sent).

Requests are written byte by byte on a socket (``raw``), so that nothing normalizes them on the way: Host values,
duplicated headers, encoded paths and chunked bodies reach the daemon exactly as an attacker would send them.

Most cases share one daemon (``world``, module scope) whose call limit is raised so the table does not trip it;
the rate-limit cases get their own daemon with the default limits. The last test uploads normally through that
same shared daemon, after everything else has been thrown at it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    AK,
    PNG_1PX,
    SK,
    Daemon,
    Home,
    S3Server,
    make_image,
    pixlift_env,
    start_daemon,
)
from ossserver import OssServerThread, run_in_thread

WRONG_SK = "wrong-s3-secret-5e6f7a8b9c0d"
OSS_AK, OSS_SK = "oss-test-key-id-4711", "oss-test-secret-0815abcdef"
OSS_WRONG_SK = "wrong-oss-secret-a1b2c3d4"
MiB = 1024 * 1024
SVG_XSS = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


# -- raw HTTP ------------------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    all_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def raw(port: int, head: str, body: bytes = b"", timeout: float = 10) -> Reply:
    """Send exactly these bytes and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        return _read(sock, head.split(" ", 1)[0])


def _read(sock: socket.socket, method: str) -> Reply:
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    data = resp.read()
    pairs = resp.getheaders()
    return Reply(resp.status, {k.lower(): v for k, v in pairs}, data, pairs)


def request_head(method: str, target: str, headers: list[tuple[str, str]], length: int | None,
                 version: str = "HTTP/1.1") -> str:
    lines = [f"{method} {target} {version}", *(f"{k}: {v}" for k, v in headers)]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return "\r\n".join(lines) + "\r\n\r\n"


# -- a TCP valve in front of the S3 server ----------------------------------------------------------------------
class Valve:
    """A proxy to the S3 server that can hold: while held, connections are accepted and left hanging (an upload
    blocks mid-request); releasing drops them and forwards every new connection to the real server, so a file
    the daemon sends after that lands in the real bucket."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.holding = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self.holding.set()

    def release(self) -> None:
        self.holding.clear()
        for conn in self.held:
            conn.close()
        self.held.clear()

    def close(self) -> None:
        self.release()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.holding.is_set():
                self.held.append(conn)
            else:
                threading.Thread(target=self._forward, args=(conn,), daemon=True).start()

    def _forward(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            conn.close()
            return
        for src, dst in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            s.close()


# -- the shared daemon and its surroundings ---------------------------------------------------------------------
@dataclass
class World:
    d: Daemon
    home: Home
    base: Path  # the daemon's $HOME: ~/Pictures is the one allowed root, ~/outside is not
    pictures: Path
    outside: Path
    s3: S3Server
    bucket: str
    oss: OssServerThread
    valve: Valve
    bait: Path  # a valid image inside the root: what every refused request asks to upload
    secret: Path  # a valid image outside the root: what an attacker wants published
    cookie: str = ""

    @property
    def port(self) -> int:
        return self.d.port

    @property
    def store(self) -> Path:
        return self.home.root / "files"

    def fill(self, text: str) -> str:
        return text.format(port=self.port, other=self.port + 1 if self.port < 65535 else 1024,
                           token=self.home.token, cookie=self.cookie, pictures=self.pictures, outside=self.outside,
                           base=self.base)

    def login(self) -> None:
        reply = raw(self.port, request_head("GET", f"/?token={self.home.token}",
                                            [("Host", f"127.0.0.1:{self.port}")], None))
        assert reply.status == 303, reply
        self.cookie = reply.headers["set-cookie"].split(";", 1)[0]

    def state(self) -> tuple[int, dict[str, bytes], list[str]]:
        """What an attack could have changed: tasks listed, objects in the bucket, files in the local store."""
        total = self.d.rpc("get_all_upload_progress")["summary"]["total"]
        objects = {k: p.read_bytes() for k, p in self.s3.objects(self.bucket).items()}
        stored = sorted(str(p.relative_to(self.store)) for p in self.store.rglob("*") if p.is_file())
        return total, objects, stored

    def nothing_happened(self, before: tuple[int, dict[str, bytes], list[str]], *targets: Path) -> None:
        time.sleep(0.05)  # a task queued by mistake would start at once; give it the chance to show
        after = self.state()
        assert after[0] == before[0], "a task was queued"
        assert after[1] == before[1], f"the bucket changed: {sorted(set(after[1]) - set(before[1]))}"
        assert after[2] == before[2], "the local store changed"
        new = [blob for key, blob in after[1].items() if before[1].get(key) != blob]
        for target in targets:
            content = target.read_bytes()
            assert not any(content[:64] in blob for blob in new), f"bytes of {target} were sent"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[World]:
    base = tmp_path_factory.mktemp("security")
    root, pictures, outside = base / "home", base / "Pictures", base / "outside"
    for folder in (root, pictures, outside):
        folder.mkdir()
    home = Home(root, pictures)
    bucket = f"sec{uuid.uuid4().hex[:10]}"
    s3_server.bucket(bucket)
    oss = run_in_thread(base / "oss", OSS_AK, OSS_SK, buckets=("test",))
    valve = Valve(s3_server.port)
    oss_profile = {"provider": "oss", "bucket": "test", "endpoint": oss.endpoint, "access_key_id": OSS_AK}
    home.write_config(
        {"s3": s3_server.profile(bucket),
         "held": s3_server.profile(bucket, endpoint_url=valve.endpoint),
         "badsecret": s3_server.profile(bucket, secret_access_key=WRONG_SK),
         "local": {"provider": "local"},
         "oss": {**oss_profile, "access_key_secret": OSS_SK},
         "ossbad": {**oss_profile, "access_key_secret": OSS_WRONG_SK}},
        default="s3", transfers={"attempts": 1},
        security={"allowed_roots": ["~/Pictures"], "calls_per_second": 10_000, "call_burst": 10_000,
                  "max_file_size_mb": 16})
    os.chmod(root, 0o755)  # as a user might have made it: the daemon must close it
    os.chmod(root / "config.toml", 0o644)

    bait = make_image(pictures / "bait.jpg", 4096, seed=1)
    secret = make_image(outside / "secret.jpg", 4096, seed=666)  # an image: only the roots rule may refuse it
    (pictures / "link-file.jpg").symlink_to(secret)
    (pictures / "link-dir").symlink_to(outside)
    (pictures / "link-proc").symlink_to("/proc/self/environ")
    (pictures / "link-dev").symlink_to("/dev/zero")
    os.mkfifo(pictures / "fifo.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(pictures / "sock.jpg"))
    (pictures / "folder.jpg").mkdir()
    (pictures / "empty.jpg").write_bytes(b"")
    (pictures / "notes.jpg").write_text("not an image at all\n")
    make_image(pictures / "big.jpg", 17 * MiB, seed=2)
    # Bait for /files/: links out of the local store, a hidden file and a folder.
    store = root / "files"
    (store / "2026").mkdir(parents=True)
    (store / "link-passwd").symlink_to("/etc/passwd")
    (store / "link-home").symlink_to(root)
    (store / ".hidden").write_text("hidden")

    d = start_daemon(home, env=pixlift_env(home, HOME=str(base)))
    w = World(d, home, base, pictures, outside, s3_server, bucket, oss, valve, bait, secret)
    w.login()
    try:
        yield w
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        valve.close()
        oss.stop()
        sock.close()


def upload_body(world: World, paths: list[str] | None = None, **params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "upload_images",
                       "params": {"paths": paths or [str(world.bait)], **params}}).encode()


# -- 1. the gate: Host, Origin, authentication, content type, size ----------------------------------------------
HOST = ("Host", "127.0.0.1:{port}")
AUTH = ("Authorization", "Bearer {token}")
JSON = ("Content-Type", "application/json")
OWN = ("Origin", "http://127.0.0.1:{port}")
FOREIGN = "Requests from other web pages are refused"
WRONG_HOST = "answers only to 127.0.0.1, localhost and [::1]"
NO_TOKEN = "Missing or wrong token"


@dataclass(frozen=True)
class Http:
    id: str
    headers: tuple[tuple[str, str], ...]
    status: int
    says: str
    method: str = "POST"
    target: str = "/rpc"
    body: str = "upload"  # upload | batch | unknown | notify | form | none
    version: str = "HTTP/1.1"


GATE_CASES = [
    # DNS rebinding: a hostile name resolved to 127.0.0.1 makes the browser send its own Host.
    Http("host-evil.com", (("Host", "evil.com:{port}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-nip.io", (("Host", "127.0.0.1.nip.io:{port}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-localhost-other-port", (("Host", "localhost:{other}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-without-port", (("Host", "127.0.0.1"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-0.0.0.0", (("Host", "0.0.0.0:{port}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-missing-http1.1", (AUTH, JSON), 400, "Host"),
    Http("host-missing-http1.0", (AUTH, JSON), 403, WRONG_HOST, version="HTTP/1.0"),
    Http("host-twice", (HOST, ("Host", "evil.com:{port}"), AUTH, JSON), 400, "Host"),
    # CSRF: a page elsewhere posting to us, with or without the token (a token can leak; the origin cannot lie).
    Http("origin-foreign", (HOST, AUTH, JSON, ("Origin", "http://evil.com")), 403, FOREIGN),
    Http("origin-null", (HOST, AUTH, JSON, ("Origin", "null")), 403, FOREIGN),
    Http("origin-localhost-other-port", (HOST, AUTH, JSON, ("Origin", "http://localhost:{other}")), 403, FOREIGN),
    Http("origin-https-self", (HOST, AUTH, JSON, ("Origin", "https://127.0.0.1:{port}")), 403, FOREIGN),
    Http("sec-fetch-site-cross-site", (HOST, AUTH, JSON, ("Sec-Fetch-Site", "cross-site")), 403, FOREIGN),
    Http("preflight-foreign", (HOST, ("Origin", "http://evil.com"), ("Access-Control-Request-Method", "POST"),
                               ("Access-Control-Request-Headers", "authorization,content-type")), 403, FOREIGN,
         method="OPTIONS", body="none"),
    Http("preflight-own-origin", (HOST, OWN, ("Access-Control-Request-Method", "POST")), 403,
         "No cross-origin access", method="OPTIONS", body="none"),
    Http("preflight-null-origin", (HOST, ("Origin", "null"), ("Access-Control-Request-Method", "POST")), 403,
         FOREIGN, method="OPTIONS", body="none"),
    # Authentication happens before any method runs: batches, notifications and unknown methods included.
    Http("no-token", (HOST, JSON), 401, NO_TOKEN),
    Http("wrong-token", (HOST, ("Authorization", "Bearer {token}x"), JSON), 401, NO_TOKEN),
    Http("token-prefix", (HOST, ("Authorization", "Bearer {token:.20}"), JSON), 401, NO_TOKEN),
    Http("empty-bearer", (HOST, ("Authorization", "Bearer "), JSON), 401, NO_TOKEN),
    Http("basic-auth", (HOST, ("Authorization", "Basic {token}"), JSON), 401, NO_TOKEN),
    Http("token-in-query", (HOST, JSON), 401, NO_TOKEN, target="/rpc?token={token}"),
    Http("no-token-batch", (HOST, JSON), 401, NO_TOKEN, body="batch"),
    Http("no-token-unknown-method", (HOST, JSON), 401, NO_TOKEN, body="unknown"),
    Http("no-token-notification", (HOST, JSON), 401, NO_TOKEN, body="notify"),
    Http("no-token-own-origin", (HOST, JSON, OWN), 401, NO_TOKEN),
    Http("no-token-upload-route", (HOST, ("Content-Type", "image/png")), 401, NO_TOKEN,
         target="/api/upload?name=x.png", body="png"),
    # The browser session: a cookie counts only with the daemon's own Origin.
    Http("cookie-without-origin", (HOST, JSON, ("Cookie", "{cookie}")), 401, NO_TOKEN),
    Http("cookie-foreign-origin", (HOST, JSON, ("Cookie", "{cookie}"), ("Origin", "http://evil.com")), 403, FOREIGN),
    Http("cookie-null-origin", (HOST, JSON, ("Cookie", "{cookie}"), ("Origin", "null")), 403, FOREIGN),
    Http("cookie-rebound-host", (("Host", "evil.com:{port}"), JSON, ("Cookie", "{cookie}"),
                                 ("Origin", "http://evil.com:{port}")), 403, WRONG_HOST),
    Http("cookie-forged", (HOST, JSON, OWN, ("Cookie", "pixlift_session=AAAAAAAAAAAAAAAAAAAAAA.deadbeef")), 401,
         NO_TOKEN),
    Http("cookie-upload-route-no-origin", (HOST, ("Cookie", "{cookie}"), ("Content-Type", "image/png")), 401,
         NO_TOKEN, target="/api/upload?name=x.png", body="png"),
    # "Simple" requests a page can send without a preflight are refused on /rpc even with a valid credential.
    Http("text-plain", (HOST, AUTH, ("Content-Type", "text/plain")), 415, "Content-Type: application/json"),
    Http("form-urlencoded", (HOST, AUTH, ("Content-Type", "application/x-www-form-urlencoded")), 415,
         "Content-Type: application/json", body="form"),
    Http("multipart-form", (HOST, AUTH, ("Content-Type", "multipart/form-data; boundary=x")), 415,
         "Content-Type: application/json"),
    Http("no-content-type", (HOST, AUTH), 415, "Content-Type: application/json"),
    Http("text-plain-cookie", (HOST, ("Content-Type", "text/plain"), ("Cookie", "{cookie}"), OWN), 415,
         "Content-Type: application/json"),
    Http("get-rpc", (HOST, AUTH), 405, "Method Not Allowed", method="GET", body="none"),
]


def _body(world: World, kind: str) -> bytes | None:
    call = {"jsonrpc": "2.0", "method": "upload_images", "params": {"paths": [str(world.bait)]}}
    return {
        "upload": upload_body(world),
        "batch": json.dumps([{**call, "id": 1}, {"jsonrpc": "2.0", "id": 2, "method": "pause_upload"}]).encode(),
        "unknown": b'{"jsonrpc": "2.0", "id": 1, "method": "no_such_method"}',
        "notify": json.dumps(call).encode(),
        "form": b"paths=" + str(world.bait).encode(),
        "png": PNG_1PX,
        "none": None,
    }[kind]


@pytest.mark.parametrize("case", GATE_CASES, ids=lambda c: c.id)
def test_gate_refuses(world: World, case: Http) -> None:
    before = world.state()
    body = _body(world, case.body)
    headers = [(k, world.fill(v)) for k, v in case.headers]
    reply = raw(world.port, request_head(case.method, world.fill(case.target), headers,
                                         None if body is None else len(body), case.version), body or b"")
    assert reply.status == case.status, reply
    assert case.says in reply.text, reply.text
    assert not [k for k, _ in reply.all_headers if k.lower().startswith("access-control-")], reply.all_headers
    assert "set-cookie" not in reply.headers
    world.nothing_happened(before, world.bait)


@pytest.mark.parametrize("headers", [
    (HOST, AUTH, JSON),
    (("Host", "localhost:{port}"), AUTH, JSON),
    (("Host", "[::1]:{port}"), AUTH, JSON),
    (HOST, ("Authorization", "bearer {token}"), JSON),
    (HOST, AUTH, ("Content-Type", "application/json; charset=utf-8"), ("Sec-Fetch-Site", "same-origin")),
    (HOST, JSON, OWN, ("Cookie", "{cookie}")),
    (HOST, JSON, ("Origin", "http://localhost:{port}"), ("Cookie", "{cookie}")),
], ids=["token", "localhost", "ipv6-host", "lower-case-scheme", "charset-and-fetch-metadata", "cookie",
        "cookie-localhost"])
def test_gate_lets_the_owner_in(world: World, headers: tuple[tuple[str, str], ...]) -> None:
    """The controls: the same request, correctly addressed and authenticated, works (no method is run here
    that changes anything, so these can sit between the refusal cases)."""
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "get_daemon_info"}'
    reply = raw(world.port, request_head("POST", "/rpc", [(k, world.fill(v)) for k, v in headers], len(body)), body)
    assert reply.status == 200, reply
    assert reply.json()["result"]["port"] == world.port


def test_token_link_sets_a_strict_cookie_and_leaves_no_token_behind(world: World) -> None:
    token = world.home.token
    reply = raw(world.port, request_head("GET", f"/?token={token}", [("Host", f"127.0.0.1:{world.port}")], None))
    assert reply.status == 303
    assert reply.headers["location"] == "/"
    assert token not in reply.text and not [v for _, v in reply.all_headers if token in v]
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert token not in cookie  # a nonce and its MAC, not the token
    assert reply.headers["cache-control"] == "no-store" and reply.headers["referrer-policy"] == "no-referrer"

    wrong = raw(world.port, request_head("GET", "/?token=guess", [("Host", f"127.0.0.1:{world.port}")], None))
    assert wrong.status == 303 and wrong.headers["location"] == "/" and "set-cookie" not in wrong.headers
    cross = raw(world.port, request_head("GET", f"/?token={token}", [("Host", f"127.0.0.1:{world.port}"),
                                                                     ("Sec-Fetch-Site", "cross-site")], None))
    assert cross.status == 403 and "set-cookie" not in cross.headers


def test_loopback_only(world: World) -> None:
    """The listening socket is bound to 127.0.0.1, nothing else (read from the kernel's socket table)."""
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) == world.port:
                    listening.append(addr)
    assert listening == ["0100007F"], listening


# -- 2. limits on input -----------------------------------------------------------------------------------------
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
        reply = _read(sock, "POST")
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
        reply = _read(sock, "POST")
    assert reply.status == 413, reply
    spool = world.home.root / "spool"
    assert not spool.exists() or not any(spool.iterdir())
    world.nothing_happened(before)


# -- 3. path rules ----------------------------------------------------------------------------------------------
OUTSIDE = "outside the allowed folders"
NOT_REGULAR = "not a regular file"


@dataclass(frozen=True)
class PathCase:
    id: str
    path: str
    says: str


PATH_CASES = [
    PathCase("outside-root", "{outside}/secret.jpg", OUTSIDE),
    PathCase("dotdot", "{pictures}/../outside/secret.jpg", OUTSIDE),
    PathCase("dotdot-deep", "{pictures}/./bait.jpg/../../../../../../etc/passwd", OUTSIDE),
    PathCase("tilde-outside", "~/outside/secret.jpg", OUTSIDE),
    PathCase("tilde-dotdot", "~/Pictures/../outside/secret.jpg", OUTSIDE),
    PathCase("tilde-alone", "~", OUTSIDE),
    PathCase("tilde-user", "~root/.bashrc", OUTSIDE),
    PathCase("symlink-to-file-outside", "{pictures}/link-file.jpg", OUTSIDE),
    PathCase("symlink-via-tilde", "~/Pictures/link-file.jpg", OUTSIDE),
    PathCase("symlinked-folder", "{pictures}/link-dir/secret.jpg", OUTSIDE),
    PathCase("proc-self-environ", "/proc/self/environ", OUTSIDE),
    PathCase("symlink-to-proc", "{pictures}/link-proc", OUTSIDE),
    PathCase("symlink-to-dev-zero", "{pictures}/link-dev", OUTSIDE),
    PathCase("etc-passwd", "/etc/passwd", OUTSIDE),
    PathCase("percent-encoded-dotdot", "{pictures}/%2e%2e/outside/secret.jpg", "no such file"),
    PathCase("double-encoded-dotdot", "{pictures}/%252e%252e/outside/secret.jpg", "no such file"),
    PathCase("backslash-dotdot", "{pictures}/..\\outside\\secret.jpg", "no such file"),
    PathCase("relative", "Pictures/bait.jpg", "relative path"),
    PathCase("relative-backslash", "..\\outside\\secret.jpg", "relative path"),
    PathCase("fifo", "{pictures}/fifo.jpg", NOT_REGULAR),
    PathCase("unix-socket", "{pictures}/sock.jpg", NOT_REGULAR),
    PathCase("folder", "{pictures}/folder.jpg", NOT_REGULAR),
    PathCase("empty-file", "{pictures}/empty.jpg", "empty"),
    PathCase("not-an-image", "{pictures}/notes.jpg", "not an image"),
    PathCase("over-max-file-size", "{pictures}/big.jpg", "too large"),
    PathCase("path-too-long", "{pictures}/" + "a" * 5000, "the limit is 4096"),
    PathCase("nul-byte", "{pictures}/bait.jpg\x00.png", "NUL byte"),
    PathCase("missing", "{pictures}/missing.jpg", "no such file"),
]


@pytest.mark.parametrize("case", PATH_CASES, ids=lambda c: c.id)
def test_path_refused(world: World, case: PathCase) -> None:
    before = world.state()
    path = world.fill(case.path)
    started = time.monotonic()
    status, reply = world.d.call_raw({"jsonrpc": "2.0", "id": 1, "method": "upload_images",
                                      "params": {"paths": [path]}})
    assert time.monotonic() - started < 3, "the handler blocked"
    assert status == 200
    error = reply["error"]
    assert error["code"] == -32001, error
    assert "nothing was queued" in error["message"]
    assert error["data"] == [{"path": path, "reason": error["data"][0]["reason"]}]
    assert case.says in error["data"][0]["reason"], error
    world.nothing_happened(before, world.secret, world.bait)


def test_one_bad_path_refuses_the_whole_call(world: World) -> None:
    before = world.state()
    paths = [str(world.bait), str(world.secret), str(world.pictures / "fifo.jpg")]
    _, reply = world.d.call_raw({"jsonrpc": "2.0", "id": 1, "method": "upload_images_batch",
                                 "params": {"paths": paths, "batch_size": 2}})
    assert reply["error"]["code"] == -32001
    assert [r["path"] for r in reply["error"]["data"]] == paths[1:]
    world.nothing_happened(before, world.bait, world.secret)


def test_file_swapped_after_the_check_is_never_sent(world: World) -> None:
    """Queue a large file whose upload is held mid-request, pause it, replace the file, resume: the new attempt
    sees a different file behind the path and fails; not one byte of the new file reaches the bucket."""
    target = make_image(world.pictures / "swap.jpg", 6 * MiB, seed=7)
    before = world.state()
    world.valve.hold()
    task = world.d.rpc("upload_images", {"paths": [str(target)], "profile": "held"})["tasks"][0]
    tid = task["task_id"]
    world.d.wait_task(tid, "uploading", timeout=10)
    assert world.d.rpc("pause_upload", {"task_id": tid}) == {"paused": 1}
    world.d.wait_task(tid, "paused", timeout=10)

    replacement = make_image(world.pictures / "swap.tmp", 6 * MiB, seed=8)
    os.replace(replacement, target)  # a new file behind the same name, as an attacker racing us would do
    world.valve.release()  # from here on anything the daemon sends reaches the real bucket
    assert world.d.rpc("resume_upload", {"task_id": tid}) == {"resumed": 1}
    failed = world.d.wait_task(tid, timeout=20)
    assert failed["status"] == "failed", failed
    assert "changed after it was queued" in failed["error"]["message"]
    assert failed["url"] is None
    new_bytes = target.read_bytes()
    objects = {k: p.read_bytes() for k, p in world.s3.objects(world.bucket).items()}
    assert objects == before[1], "an object was written"
    assert not any(new_bytes[:4096] in blob for blob in objects.values())

    # The control: through the same valve, an unchanged file uploads.
    ok = world.d.rpc("upload_images", {"paths": [str(world.bait)], "profile": "held"})["tasks"][0]
    done = world.d.wait_task(ok["task_id"], timeout=30)
    assert done["status"] == "completed", done
    assert world.bait.read_bytes() in [p.read_bytes() for p in world.s3.objects(world.bucket).values()]


# -- 4. served files --------------------------------------------------------------------------------------------
FILE_URLS = [
    "/files/..%2ftoken", "/files/%2e%2e/token", "/files/%2e%2e%2ftoken", "/files/%2E%2E/token",
    "/files/2026/..%2f..%2ftoken", "/files/%252e%252e/token", "/files/%252e%252e%252ftoken",
    "/files/..%5ctoken", "/files/%5c..%5ctoken", "/files/..\\token", "/files/....//token", "/files/.%2e/token",
    "/files/%c0%ae%c0%ae/token", "/files/..%c0%aftoken", "/files//etc/passwd", "/files/%2fetc%2fpasswd",
    "/files/link-passwd", "/files/link-home/token", "/files/.hidden", "/files/", "/files/2026", "/files/2026/",
    "/files/a%00b", "/files/" + "a" * 5000, "/files/" + "a/" * 2000 + "b", "/files/../token",
    "/static/", "/static/..%2f..%2ftoken", "/static/%2e%2e/%2e%2e/token", "/static/%252e%252e/token",
    "/token", "/daemon.json", "/config.toml", "/journal.sqlite3", "/pixlift.log", "/files/~/token",
]


@pytest.mark.parametrize("url", FILE_URLS)
def test_served_files_refuse_traversal_and_listing(world: World, url: str) -> None:
    reply = raw(world.port, request_head("GET", url, [("Host", f"127.0.0.1:{world.port}")], None))
    assert reply.status in (400, 403, 404), (reply.status, reply.body[:200])
    assert world.home.token.encode() not in reply.body
    assert b"root:" not in reply.body and b"access_key" not in reply.body and b"<a href" not in reply.body
    assert reply.headers.get("x-content-type-options") == "nosniff"


def test_uploaded_svg_and_html_cannot_run_script_in_our_origin(world: World) -> None:
    svg = world.pictures / "xss.svg"
    svg.write_bytes(SVG_XSS)
    task = world.d.rpc("upload_images", {"paths": [str(svg)], "profile": "local"})["tasks"][0]
    svg_url = world.d.wait_task(task["task_id"], timeout=20)["url"]
    # An HTML page behind an image's first bytes, named .html, streamed in as the browser would.
    html = PNG_1PX + b"<html><script>fetch('/rpc')</script></html>"
    status, _, body = world.d.post("/api/upload?name=evil.html&profile=local", html,
                                   headers={"Content-Type": "application/octet-stream"})
    assert status == 200, body
    html_url = world.d.wait_task(json.loads(body)["task"]["task_id"], timeout=20)["url"]
    for url, content in ((svg_url, SVG_XSS), (html_url, html)):
        assert url.startswith(world.d.url + "/files/")
        reply = raw(world.port, request_head("GET", url.removeprefix(world.d.url),
                                             [("Host", f"127.0.0.1:{world.port}")], None))
        assert reply.status == 200 and reply.body == content
        csp = reply.headers["content-security-policy"]
        assert csp.split(";")[0].strip() == "sandbox", csp  # no allow-scripts, no allow-same-origin
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert not [k for k, _ in reply.all_headers if k.lower().startswith("access-control-")]


# -- 5. secrets --------------------------------------------------------------------------------------------------
def test_token_rotation_ends_old_credentials(world: World) -> None:
    old_token, old_cookie = world.home.token, world.cookie
    env = pixlift_env(world.home)
    out = subprocess.run([sys.executable, "-m", "pixlift", "token", "--rotate"], env=env, capture_output=True,
                         text=True, timeout=30, check=True)
    assert world.home.token != old_token
    assert old_token not in out.stdout + out.stderr and world.home.token not in out.stdout + out.stderr
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "get_daemon_info"}'
    assert world.d.post("/rpc", body, token=old_token)[0] == 401
    assert world.d.post("/rpc", body, token=None, headers={"Cookie": old_cookie, "Origin": world.d.url})[0] == 401
    assert world.d.post("/rpc", body)[0] == 200
    world.login()
    assert world.d.post("/rpc", body, token=None, headers={"Cookie": world.cookie, "Origin": world.d.url})[0] == 200


def test_secrets_never_leave_their_files(world: World) -> None:
    d = world.d
    # Give every path that might leak a chance to: wrong credentials, failed and finished uploads on S3 and OSS,
    # and malformed requests carrying the token (aiohttp logs a bad request's raw header lines).
    results: list[Any] = [d.rpc("list_profiles"), d.rpc("get_daemon_info")]
    results += [d.rpc("check_profile", {"profile": p}) for p in ("badsecret", "ossbad", "s3", "oss")]
    tasks = [d.rpc("upload_images", {"paths": [str(world.bait)], "profile": p})["tasks"][0]
             for p in ("badsecret", "ossbad", "s3", "oss")]
    finished = [d.wait_task(t["task_id"], timeout=30) for t in tasks]
    assert [t["status"] for t in finished] == ["failed", "failed", "completed", "completed"], finished
    results += finished
    token = world.home.token
    for head in (f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\nAuthorization: Bearer {token}\x01\r\n\r\n",
                 f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\nAuthorization Bearer {token}\r\n\r\n",
                 f"GET /?token={token}\x7f HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\n\r\n"):
        assert raw(world.port, head).status == 400
    results += [d.rpc("get_all_upload_progress"), d.rpc("get_upload_history")]
    time.sleep(0.2)  # let the log handlers flush

    secrets = {"token": token, "s3 secret": SK, "wrong s3 secret": WRONG_SK, "oss secret": OSS_SK,
               "wrong oss secret": OSS_WRONG_SK}
    key_ids = {"s3 key id": AK, "oss key id": OSS_AK}
    api = json.dumps(results)
    logs = {p.name: p.read_text(errors="replace") for p in world.home.root.glob("pixlift.log*")}
    assert logs, "no daemon log"
    texts = {"API results": api, "daemon stderr": d.log(), **logs,
             "daemon.json": (world.home.root / "daemon.json").read_text()}
    texts |= {p.name: p.read_bytes().decode("latin-1") for p in world.home.root.glob("journal.sqlite3*")}
    for where, text in texts.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} is in {where}"
        # A key id is not a secret, but it appears only where a presigned link must carry it.
        for what, key_id in key_ids.items():
            rest = re.sub(r"(X-Amz-Credential=|OSSAccessKeyId=)" + re.escape(key_id), "", text)
            assert key_id not in rest, f"the {what} is in {where}"
    assert "[redacted]" in "".join(logs.values())  # the malformed requests were logged, without the token

    modes = {p.name: p.stat().st_mode & 0o777 for p in world.home.root.iterdir()
             if p.name in ("token", "daemon.json", "config.toml") or p.name.startswith(("journal.", "pixlift.log"))}
    assert {"token", "daemon.json", "config.toml", "journal.sqlite3", "pixlift.log"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o600), modes
    assert world.home.root.stat().st_mode & 0o777 == 0o700


# -- 6. rate limits (their own daemons) ------------------------------------------------------------------------
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


# -- 7. after all that: the owner still uploads, by API, by browser session and by CLI ----------------------------
def test_daemon_still_uploads_normally(world: World) -> None:
    d = world.d
    fresh = make_image(world.pictures / "after.jpg", 300_000, seed=42)
    task = d.rpc("upload_images", {"paths": [str(fresh)]})["tasks"][0]
    done = d.wait_task(task["task_id"], timeout=30)
    assert done["status"] == "completed", done
    assert fresh.read_bytes() in [p.read_bytes() for p in world.s3.objects(world.bucket).values()]
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", world.s3.port, timeout=10)) as conn:
        conn.request("GET", done["url"].removeprefix(world.s3.endpoint))
        assert conn.getresponse().read() == fresh.read_bytes()

    # The UI's way in: the session cookie and the daemon's own Origin.
    status, _, body = d.post("/api/upload?name=pasted.png", PNG_1PX, token=None,
                             headers={"Content-Type": "image/png", "Cookie": world.cookie, "Origin": d.url})
    assert status == 200, body
    assert d.wait_task(json.loads(body)["task"]["task_id"], timeout=30)["status"] == "completed"

    # And the CLI.
    out = subprocess.run([sys.executable, "-m", "pixlift", "upload", "-q", str(world.bait)],
                         env=pixlift_env(world.home), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(world.s3.endpoint)
    assert d.proc.poll() is None
