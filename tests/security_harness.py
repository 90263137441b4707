"""The attack suite's harness (test_security_*.py): raw HTTP on a socket, a TCP valve in front of the S3 server,
and the ``World`` a hostile page, user or file attacks: the real daemon, its home, an S3 bucket, an OSS server and
bait files (symlinks out of the allowed root, a FIFO, a socket, an oversized image, links out of the local store).

Requests are written byte by byte on a socket (``raw``), so that nothing normalizes them on the way: Host values,
duplicated headers, encoded paths and chunked bodies reach the daemon exactly as an attacker would send them.

Each test file that attacks the shared daemon opens one ``World`` for its module (``open_world``), with the call
limit raised so the tables do not trip it, and ends with ``owner_still_uploads``: after everything that file threw
at it, the daemon still uploads normally.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PNG_1PX,
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
        return read_reply(sock, head.split(" ", 1)[0])


def read_reply(sock: socket.socket, method: str) -> Reply:
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


@contextlib.contextmanager
def open_world(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[World]:
    """Start the daemon under attack in a fresh home with its bait; a test module wraps this in its ``world``
    fixture (module scope)."""
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


def owner_still_uploads(world: World) -> None:
    """After all that: the owner still uploads, by API, by browser session and by CLI."""
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
