"""``pixlift.client``: a small synchronous client for scripts and the CLI, with nothing of the daemon's internals.

It finds the daemon through ``daemon.json`` + ``token`` (``Client.discover()``), calls its JSON-RPC methods
(``call``), uploads (``upload``) and follows live events (``watch``, over ``GET /events``)::

    from pixlift.client import Client

    client = Client.discover()
    started = client.upload(["/home/me/Pictures/cat.png"])
    for event in client.watch(started["batch_id"]):
        if event["event"] == "task":
            print(event["data"]["name"], event["data"]["status"], event["data"]["url"])
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .settings.home import Home


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
    def discover(cls, home: str | os.PathLike[str] | None = None) -> Client:
        """The running daemon of ``home`` (default: ``PIXLIFT_HOME``, else the platform's data folder);
        DaemonNotRunning when there is none."""
        return cls.from_home(Home(Path(home).expanduser().resolve()) if home is not None else Home.locate())

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

    def upload(self, paths: list[str], profile: str | None = None, batch_size: int = 5) -> Any:
        """Queue files (absolute paths, inside the allowed folders) as one batch: ``{"batch_id", "tasks"}``.
        Returns at once; ``watch(batch_id)`` follows it. RpcError (-32001) lists every refused path."""
        return self.call("upload_images_batch", paths=[os.path.abspath(p) for p in paths], profile=profile,
                         batch_size=batch_size)

    def upload_bytes(self, name: str, data: bytes, profile: str | None = None, clipboard: bool = False) -> Any:
        """Send bytes held in memory (``clipboard``: an image from the clipboard) as a one-file batch:
        ``{"batch_id", "task"}``. RpcError says why they were refused (empty, too large, not an image)."""
        query = {"name": name, **({"profile": profile} if profile else {}), **({"source": "clipboard"} if clipboard
                                                                                 else {})}
        req = urllib.request.Request(f"{self.url}/api/upload?{urllib.parse.urlencode(query)}", data=data,
                                     method="POST", headers={"Authorization": f"Bearer {self.token}",
                                                             "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RpcError(exc.code, _message(exc) or f"HTTP {exc.code} from the daemon") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise DaemonNotRunning(f"pixlift does not answer at {self.url} ({exc}). Start it with: pixlift serve") \
                from exc

    def watch(self, batch_id: str | None = None, since: int = 0) -> Iterator[dict[str, Any]]:
        """The daemon's live events, ``{"event": "progress" | "task" | "batch", "id": version, "data": {...}}``.

        Opens the stream with ``since`` (0: everything the daemon still lists, so a batch that finished before
        the call still reports its tasks and its end), reconnects from the last event after a dropped connection,
        and returns after the batch's ``batch`` event; with no batch it follows everything until stopped."""
        last = since
        while True:
            query = {"since": str(last), **({"batch_id": batch_id} if batch_id else {})}
            req = urllib.request.Request(f"{self.url}/events?{urllib.parse.urlencode(query)}", headers={
                "Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # a comment arrives every 15 s
                    for event in _events(resp):
                        last = max(last, int(event["id"]))
                        yield event
                        if batch_id and event["event"] == "batch" and event["data"].get("batch_id") == batch_id:
                            return
            except urllib.error.HTTPError as exc:
                detail = _message(exc)
                if exc.code == 401:
                    raise RpcError(401, "The daemon refused the token. Was it rotated? Restart this command.") \
                        from exc
                raise RpcError(exc.code, detail or f"HTTP {exc.code} from the daemon") from exc
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                raise DaemonNotRunning(f"pixlift does not answer at {self.url} ({exc}). Start it with: "
                                       "pixlift serve") from exc
            # the stream ended (the daemon closed it, e.g. we read too slowly): pick up from the last event

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


def _events(resp: Any) -> Iterator[dict[str, Any]]:
    """Parse a text/event-stream body into events."""
    fields: dict[str, str] = {}
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            continue
        if "data" in fields:
            yield {"event": fields.get("event", "message"), "id": int(fields.get("id") or 0),
                   "data": json.loads(fields["data"])}
        fields = {}


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return ""
