"""Live progress pushed to clients: ``GET /events`` (Server-Sent Events) and ``GET /ws`` (JSON-RPC over WebSocket).

Both authenticate like ``/rpc`` (the gate's Host and Origin checks run first; then the Bearer token, or the
UI's session cookie from the daemon's own pages), and each client may hold a few streams at once. The feeds
themselves (replay, coalescing, bounds) are ``push.Feed``; this module only moves their messages.

WebSocket: each text frame is one JSON-RPC 2.0 message. Any ``/rpc`` method works, under the same limits,
plus ``subscribe {batch_id?, since?, interval_ms?}`` -> ``{"subscription"}`` and ``unsubscribe {subscription}``.
Subscriptions notify ``progress``, ``task`` and ``batch`` with the SSE event's data and ``subscription`` added.
A client that does not read: its unsent progress is replaced by the newest, and past a bound it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import Counter, deque
from typing import Any, cast

import orjson
from aiohttp import WSMsgType, web
from aiohttp_sse import EventSourceResponse

from ..application import Application
from ..errors import InvalidParams, NotFound, PixliftError, RateLimited
from .gate import Client, Gate
from .push import DEFAULT_INTERVAL_MS, Feed, FeedOverflow, interval_ms
from .rpc import Call, Dispatcher

log = logging.getLogger(__name__)
MAX_STREAMS = 64  # SSE streams and WebSockets per client (every app using the token is one client)
MAX_OUTBOX = 1000  # notifications waiting to be written to one WebSocket
MAX_BUFFERED = 1024 * 1024  # bytes a WebSocket's transport may hold before its writer waits
HEARTBEAT_S = 15.0


class PushRoutes:
    def __init__(self, app: Application, gate: Gate, dispatcher: Dispatcher) -> None:
        self.app = app
        self.gate = gate
        self.dispatcher = dispatcher
        self._open: Counter[str] = Counter()
        self._handlers: set[asyncio.Task[Any]] = set()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/events", self.events)
        app.router.add_get("/ws", self.websocket)
        app.on_shutdown.append(self._close_all)

    async def _close_all(self, _: web.Application) -> None:
        """Shutdown: streams never end by themselves, so end them (clients reconnect with Last-Event-ID)."""
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    def _held(self, client: Client) -> contextlib.AbstractContextManager[None]:
        """Count a stream against its client's cap, and let shutdown end it."""
        task = asyncio.current_task()
        assert task is not None

        @contextlib.contextmanager
        def held() -> Any:
            self._open[client.id] += 1
            self._handlers.add(task)
            try:
                yield
            finally:
                self._open[client.id] -= 1
                self._handlers.discard(task)

        return held()

    def _admit(self, client: Client) -> None:
        if self._open[client.id] >= MAX_STREAMS:
            raise web.HTTPTooManyRequests(
                text=json.dumps({"error": {"status": 429, "message": f"At most {MAX_STREAMS} event streams per "
                                           "client; close one first."}}), content_type="application/json")

    # -- Server-Sent Events ----------------------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        client = self.gate.require(request, stream=True)
        self._admit(client)
        q = request.query
        try:
            since_raw = q.get("since") or request.headers.get("Last-Event-ID") or None
            since = _whole(since_raw, "since") if since_raw is not None else None
            interval = interval_ms(q.get("interval_ms", DEFAULT_INTERVAL_MS))
            self.app.charge_call(client.id)
        except ValueError as exc:
            return _json_error(400, str(exc))
        except RateLimited as exc:
            return _json_error(429, exc.message)
        def abort() -> None:  # the client stopped reading: drop the connection, it resumes with Last-Event-ID
            if request.transport is not None:
                request.transport.close()

        try:
            feed = Feed(self.app, batch_id=q.get("batch_id") or None, since=since, interval_ms=interval,
                        on_overflow=abort)
        except NotFound as exc:
            return _json_error(404, exc.message)
        # A comment line every 15 s keeps proxies and the browser from giving up on a quiet stream; a send that
        # cannot leave for 2 minutes (a client that stopped reading) ends it.
        sse = EventSourceResponse(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                                  ping_interval=HEARTBEAT_S, send_timeout=120)
        await sse.prepare(request)
        with self._held(client):
            try:
                while sse.is_connected():
                    # Everything due in one write; our JSON has no newlines, so each event is one data line.
                    await sse.write(b"".join(m.sse for m in await feed.next()))
            except (FeedOverflow, ConnectionResetError):
                log.info("an event stream fell behind or went away; closed")
            except asyncio.CancelledError:
                pass  # the daemon is stopping
            finally:
                feed.close()
                sse.stop_streaming()
        return sse

    # -- WebSocket -------------------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        client = self.gate.require(request, stream=True)
        self._admit(client)
        # timeout: how long a close waits for the client's answering close frame; a client that is not reading
        # must not hold up the daemon's shutdown. writer_limit: what one socket may buffer before sends wait.
        # compress=False: deflating every frame on loopback cost more CPU than all the rest of a subscription.
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=1024 * 1024, timeout=1.0,
                                   writer_limit=256 * 1024, compress=False)
        await ws.prepare(request)
        session = _Session(self.app, self.dispatcher, client, ws, request.transport)
        with self._held(client):
            try:
                await session.run()
            except asyncio.CancelledError:  # the daemon is stopping: say so to the client
                await ws.close(code=1001, message=b"pixlift is stopping")
            finally:
                session.close()
        return ws


class _Session:
    """One WebSocket: its calls, its subscriptions, and the one writer that sends their messages."""

    def __init__(self, app: Application, dispatcher: Dispatcher, client: Client, ws: web.WebSocketResponse,
                 transport: asyncio.BaseTransport | None) -> None:
        self.app, self.dispatcher, self.client, self.ws = app, dispatcher, client, ws
        # duck-typed: uvloop's transports are not asyncio.WriteTransport subclasses
        self.transport = cast(asyncio.WriteTransport, transport) if hasattr(transport, "write") else None
        self.feeds: dict[str, tuple[Feed, asyncio.Task[None]]] = {}
        self.outbox: deque[tuple[str | None, str | bytes]] = deque()  # (subscription of a progress message, text)
        self.ready = asyncio.Event()
        self.ids = itertools.count(1)
        self.writer = asyncio.create_task(self._write())

    async def run(self) -> None:
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT:
                if msg.type is WSMsgType.BINARY:
                    self.send(None, _error_reply(None, -32600, "Invalid request: send JSON-RPC as text frames."))
                continue
            reply = await self.handle(msg.data)
            if reply:
                self.send(None, reply)

    async def handle(self, text: str) -> str:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict) and doc.get("method") in ("subscribe", "unsubscribe"):
            return self.local(doc)
        return await self.dispatcher.dispatch(text, Call(self.app, self.client.id))

    def local(self, doc: dict[str, Any]) -> str:
        ident = doc.get("id")
        params = doc.get("params") or {}
        try:
            self.app.charge_call(self.client.id)
            if not isinstance(params, dict):
                raise InvalidParams("params must be an object.")
            result = self.subscribe(params) if doc["method"] == "subscribe" else self.unsubscribe(params)
        except PixliftError as exc:
            return _error_reply(ident, exc.rpc_code, exc.message, exc.data)
        except ValueError as exc:
            return _error_reply(ident, -32602, str(exc), {"param": "interval_ms"})
        return "" if "id" not in doc else orjson.dumps({"jsonrpc": "2.0", "id": ident, "result": result}).decode()

    def subscribe(self, p: dict[str, Any]) -> dict[str, str]:
        unknown = sorted(set(p) - {"batch_id", "since", "interval_ms"})
        if unknown:
            raise InvalidParams(f"Unknown param {unknown[0]!r} for subscribe; it takes: batch_id, since, "
                                "interval_ms.", data={"param": unknown[0]})
        batch_id = p.get("batch_id")
        if batch_id is not None and not isinstance(batch_id, str):
            raise InvalidParams("'batch_id' must be a string.", data={"param": "batch_id"})
        since = p.get("since")
        if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
            raise InvalidParams("'since' must be a whole number from 0.", data={"param": "since"})
        if len(self.feeds) >= MAX_OUTBOX // 100:
            raise RateLimited("Too many subscriptions on this connection; unsubscribe first.", 1.0)
        interval = interval_ms(p.get("interval_ms", DEFAULT_INTERVAL_MS))
        sub = f"s{next(self.ids)}"
        feed = Feed(self.app, batch_id=batch_id, since=since, interval_ms=interval, on_overflow=self.overflow)
        self.feeds[sub] = (feed, asyncio.create_task(self._pump(sub, feed)))
        return {"subscription": sub}

    def unsubscribe(self, p: dict[str, Any]) -> dict[str, bool]:
        sub = p.get("subscription")
        found = self.feeds.pop(sub, None) if isinstance(sub, str) else None
        if found is None:
            raise NotFound(f"No subscription {sub!r} on this connection.", data={"subscription": sub})
        found[0].close()
        found[1].cancel()
        return {"unsubscribed": True}

    async def _pump(self, sub: str, feed: Feed) -> None:
        with contextlib.suppress(FeedOverflow):
            while True:
                for message in await feed.next():
                    self.send(sub if message.event == "progress" else None, message.notification(sub))

    def send(self, progress_of: str | None, text: str | bytes) -> None:
        """Queue a text frame; an unsent progress of the same subscription is replaced by the newest."""
        if progress_of is not None:
            for i, (sub, _) in enumerate(self.outbox):
                if sub == progress_of:
                    self.outbox[i] = (progress_of, text)
                    return
        if len(self.outbox) >= MAX_OUTBOX:
            self.overflow()
            return
        self.outbox.append((progress_of, text))
        self.ready.set()

    def overflow(self) -> None:
        log.info("a WebSocket client fell behind; closing it")
        self.outbox.clear()
        asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"too slow: reconnect with since"))

    async def _write(self) -> None:
        """Send what is queued: every frame due in one write to the socket. A subscription's delivery is often
        hundreds of notifications at once; one ``send_str`` each (a frame, a write, a system call) cost more
        CPU than everything else a subscriber needs. Frames are built here as RFC 6455 has them (text, final,
        unmasked from a server, uncompressed as this socket never negotiates compression); a write is whole, so
        aiohttp's own pings and closes never land inside one."""
        transport = self.transport
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await self.ready.wait()
                self.ready.clear()
                while self.outbox:
                    if transport is None or transport.is_closing():
                        return
                    if transport.get_write_buffer_size() > MAX_BUFFERED:
                        await asyncio.sleep(0.05)  # the client reads slowly: wait (the outbox is bounded)
                        continue
                    frames = []
                    while self.outbox:
                        text = self.outbox.popleft()[1]
                        frames.append(_text_frame(text if isinstance(text, bytes) else text.encode()))
                    transport.write(b"".join(frames))

    def close(self) -> None:
        for feed, pump in self.feeds.values():
            feed.close()
            pump.cancel()
        self.feeds.clear()
        self.writer.cancel()


def _text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def _error_reply(ident: Any, code: int, message: str, data: Any = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return orjson.dumps({"jsonrpc": "2.0", "id": ident, "error": error}).decode()


def _whole(raw: str, name: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"{name} must be a version: a whole number from 0")
    return int(raw)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)
