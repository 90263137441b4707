"""A small synchronous JSON-RPC client for the CLI and scripts: finds the daemon through daemon.json + token."""

from __future__ import annotations

import itertools
import json
import os
import urllib.error
import urllib.request
from typing import Any

from .home import Home


class DaemonNotRunning(Exception):
    pass


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class Client:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._ids = itertools.count(1)

    @classmethod
    def from_home(cls, home: Home) -> Client:
        info = home.read_daemon_info()
        token = home.read_token()
        if info is None or token is None:
            raise DaemonNotRunning(f"pixlift is not running (no {home.daemon_file}). Start it with: pixlift serve")
        if not _alive(int(info.get("pid", 0))):
            # Left behind by a crash: whatever listens on that port now is not our daemon; never send it the token.
            raise DaemonNotRunning(f"pixlift is not running (its {home.daemon_file.name} is stale: process "
                                   f"{info.get('pid')} is gone). Start it with: pixlift serve")
        return cls(str(info["url"]), token)

    def call(self, method: str, **params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                "params": {k: v for k, v in params.items() if v is not None}}
        req = urllib.request.Request(
            f"{self.url}/rpc", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise RpcError(401, "The daemon refused the token. Was it rotated? Restart this command.") from exc
            raise RpcError(exc.code, f"HTTP {exc.code} from the daemon") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise DaemonNotRunning(f"pixlift does not answer at {self.url} ({exc}). Start it with: pixlift serve") \
                from exc
        if "error" in reply:
            err = reply["error"]
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return reply["result"]

    def login_url(self) -> str:
        return f"{self.url}/?token={self.token}"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists but belongs to another user: not our daemon
        return False
    return True
