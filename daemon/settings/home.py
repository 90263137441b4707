"""The one folder pixlift owns: ``PIXLIFT_HOME`` or the platform's user folder.

Third-party apps find the daemon the way Jupyter clients find a kernel: ``daemon.json`` says where it listens
and ``token`` holds the credential. Both are 0600 and written atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

ENV_HOME = "PIXLIFT_HOME"


def write_private(path: Path, data: str) -> None:
    """Write a file readable by its owner only, atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lock(fd: int) -> None:
    """An exclusive, non-blocking lock on an open file; OSError when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def locate(cls) -> Home:
        env = os.environ.get(ENV_HOME)
        root = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("pixlift", appauthor=False))
        return cls(root.resolve())

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def daemon_file(self) -> Path:
        return self.root / "daemon.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.sqlite3"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def spool(self) -> Path:
        """Where bytes streamed in by the browser wait for their upload."""
        return self.root / "spool"

    @property
    def log_file(self) -> Path:
        return self.root / "pixlift.log"

    @property
    def lock_file(self) -> Path:
        return self.root / "daemon.lock"

    # -- one daemon per home --------------------------------------------------------------------------------
    def lock(self) -> int | None:
        """Take the home's lock for this process's lifetime: the descriptor, or None when another process holds
        it. The operating system drops it when the process ends, however it ends (kill -9 included)."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return None
        return fd

    # -- token ---------------------------------------------------------------------------------------
    def read_token(self) -> str | None:
        """Read on every request (so a new token counts at once), by the descriptor: ``Path.read_text`` left a few
        objects alive per read, which then kept the heap pages of the tasks made around them."""
        try:
            fd = os.open(self.token_file, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            chunks = []
            while chunk := os.read(fd, 4096):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8").strip() or None

    def ensure_token(self) -> str:
        token = self.read_token()
        if token is None:
            token = self.rotate_token()
        else:
            os.chmod(self.token_file, 0o600)  # repair a copy made with a loose umask
        return token

    def rotate_token(self) -> str:
        token = secrets.token_urlsafe(32)
        write_private(self.token_file, token + "\n")
        return token

    # -- daemon.json ------------------------------------------------------------------------------------
    def write_daemon_info(self, *, port: int, pid: int, version: str) -> None:
        info = {"url": f"http://127.0.0.1:{port}", "port": port, "pid": pid, "version": version}
        write_private(self.daemon_file, json.dumps(info) + "\n")

    def read_daemon_info(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self.daemon_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def remove_daemon_info(self, pid: int) -> None:
        info = self.read_daemon_info()
        if info is not None and info.get("pid") == pid:
            self.daemon_file.unlink(missing_ok=True)
