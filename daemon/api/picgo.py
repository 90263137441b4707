"""The PicGo-compatible server: what Typora, Obsidian's Image Auto Upload and PicList's clients call.

PicGo's own server answers any web page. This one listens on its own loopback port (``[integrations]
picgo_port``, off until ``picgo_server = true``) and lets through only what an editor sends (the README records
each client's request, from its source or documentation):

- ``Host`` is 127.0.0.1, localhost or [::1] on this port (no DNS rebinding);
- a request with an ``Origin`` (``null`` included) is refused unless it is an editor's own origin
  (``picgo_origins``, by default Typora's ``typora://app``); a web page cannot choose its Origin;
- a request without one must not say it comes from a page: ``Sec-Fetch-Site`` absent or ``none``;
- with ``picgo_key`` set, ``?key=`` must match; calls and files count against the rate limits;
- a body is JSON (``application/json``), ``multipart/form-data`` or empty; a ``text/plain`` or form-encoded
  body, which a page could send without asking, is refused.

``POST /upload`` queues the files through the application layer like every other upload (path rules, limits,
history), waits for them, and answers ``{"success": true, "result": [urls in input order], "fullResult": [...]}``
or ``{"success": false, "message": ...}``. ``POST /delete`` takes PicList's ``{"list": [fullResult items]}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..application import Application
from ..core.tasks import TaskSource, TaskStatus
from ..core.views import TaskView
from ..errors import PixliftError, RateLimited
from ..files.spool import safe_name
from ..intake import clipboard
from .gate import loopback_hosts

log = logging.getLogger(__name__)
CLIENT = "picgo"  # rate limits: every editor shares one budget
MAX_JSON = 1024 * 1024
MAX_FILES = 1000
WAIT_S = 300.0  # an editor waits for its links; after this it is told where they will be
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"success": False, "message": message}, status=status, headers=headers)


class Refused(Exception):
    """A request this server will not act on: answered in PicGo's shape (with the editor's CORS headers)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class PicgoServer:
    def __init__(self, app: Application) -> None:
        self.app = app
        self._runner: web.AppRunner | None = None
        self._bound: tuple[bool, int] = (False, 0)
        self._lock = asyncio.Lock()
        self._closing = asyncio.Event()  # set while the server stops: waiting calls answer at once

    # -- lifecycle: follows [integrations] ------------------------------------------------------------------
    async def start(self) -> None:
        self.app.integrations.apply = self.apply
        await self.apply()

    async def stop(self) -> None:
        self.app.integrations.apply = None
        async with self._lock:
            await self._close()

    async def apply(self) -> None:
        """Listen, move or stop as ``[integrations]`` now says."""
        settings = self.app.config.current.integrations
        want = (settings.picgo_server, settings.picgo_port)
        state = self.app.integrations
        async with self._lock:
            if want == self._bound and (self._runner is not None or not want[0]):
                return
            await self._close()
            state.error = None
            if not settings.picgo_server:
                return
            runner = web.AppRunner(self._web_app(), access_log=None, handle_signals=False)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", settings.picgo_port, shutdown_timeout=5).start()
            except OSError as exc:
                await runner.cleanup()
                state.error = (f"Port {settings.picgo_port} cannot be used ({exc.strerror}); PicGo or PicList may "
                               "be running. Quit it, or choose another picgo_port and point the editor at it.")
                log.warning("PicGo-compatible server: %s", state.error)
                return
            self._runner, self._bound, state.listening = runner, want, True
            log.info("PicGo-compatible server listening on http://127.0.0.1:%d/upload", settings.picgo_port)

    async def _close(self) -> None:
        if self._runner is not None:
            self._closing.set()
            await self._runner.cleanup()
            self._closing = asyncio.Event()
        self._runner, self._bound, self.app.integrations.listening = None, (False, 0), False

    def _web_app(self) -> web.Application:
        web_app = web.Application(client_max_size=MAX_JSON, middlewares=[self._wall])
        web_app.router.add_post("/upload", self.upload)
        web_app.router.add_post("/delete", self.delete)
        web_app.router.add_post("/heartbeat", self.heartbeat)
        return web_app

    # -- the wall: only an editor gets through ----------------------------------------------------------------
    @web.middleware
    async def _wall(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = self.app.config.current.integrations
        port = settings.picgo_port
        if request.headers.get("Host") not in loopback_hosts(port):
            return answer(403, f"This server answers only to 127.0.0.1:{port} (or localhost).")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in settings.picgo_origins:
            log.warning("PicGo-compatible server: refused a request from origin %r", origin[:100])
            return answer(403, f"Requests from web pages are refused (Origin {origin[:100]}). If this is your "
                               "editor, add its origin to [integrations] picgo_origins.")
        if origin is None and request.headers.get("Sec-Fetch-Site", "none") != "none":
            return answer(403, "Requests from web pages are refused.")
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
        if request.method == "OPTIONS":  # an editor's window asking before its JSON POST
            if not origin or request.headers.get("Access-Control-Request-Method") != "POST":
                return answer(403, "No cross-origin access.")
            cors |= {"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type"}
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                cors["Access-Control-Allow-Private-Network"] = "true"
            return web.Response(status=204, headers=cors)
        if settings.picgo_key is not None and not hmac.compare_digest(
                request.query.get("key", "").encode(), settings.picgo_key.encode()):
            return answer(401, "Wrong or missing key: add ?key=<picgo_key> to the upload URL in the editor.", **cors)
        try:
            self.app.charge_call(CLIENT)
            response = await handler(request)
        except RateLimited as exc:
            response = answer(429, exc.message, **{"Retry-After": str(max(1, round(exc.retry_after_s)))})
        except Refused as exc:
            response = answer(exc.status, exc.message)
        except PixliftError as exc:  # a path outside the allowed folders, not an image, an empty clipboard
            response = answer(getattr(exc, "http_status", 400), exc.message)
        except Exception:
            log.exception("PicGo-compatible server: %s %s failed", request.method, request.path)
            response = answer(500, "pixlift could not do that; its log (pixlift logs) says why.")
        response.headers.update(cors)
        return response

    # -- the routes ----------------------------------------------------------------------------------------------
    async def heartbeat(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"success": True, "result": "alive"})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        ctype = request.headers.get("Content-Type")
        if not request.body_exists and ctype is None:
            sent = await self._clipboard()
        elif request.content_type == "application/json":
            sent = (await self.app.submit_paths(CLIENT, await _list(request, str), profile=None)).tasks
        elif request.content_type == "multipart/form-data":
            sent = await self._form(request)
        else:
            return answer(415, "Send the files as JSON {\"list\": [paths]} (Content-Type: application/json), as "
                               "multipart/form-data, or an empty body for the clipboard image.")
        return _result(sent, await self._settled([t.task_id for t in sent]))

    async def _settled(self, task_ids: list[str]) -> list[TaskView | None]:
        """The tasks once done, or as they are when the server stops (the uploads go on without it)."""
        waiting = asyncio.ensure_future(self.app.settled(task_ids, WAIT_S))
        closing = asyncio.ensure_future(self._closing.wait())
        await asyncio.wait({waiting, closing}, return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        return await self.app.settled(task_ids, 0)

    async def _clipboard(self) -> list[TaskView]:
        image = await asyncio.to_thread(clipboard.read_image)
        return [await self.app.submit_bytes(CLIENT, image.name(), image.data, source=TaskSource.CLIPBOARD)]

    async def _form(self, request: web.Request) -> list[TaskView]:
        """The posted files, each queued as it arrives; a body that is not well-formed multipart is refused
        (400, in words), whichever of aiohttp's parsers finds the fault."""
        try:
            return await self._parts(request)
        except (PixliftError, Refused):
            raise
        except (ValueError, LookupError, AssertionError, RuntimeError, aiohttp.ClientError,
                HttpProcessingError) as exc:
            log.info("PicGo-compatible server: refused a malformed multipart body (%s)", type(exc).__name__)
            raise Refused(400, "The multipart/form-data body is malformed (its boundary, headers or parts do not "
                               "parse); send each image as a file field of a well-formed form.") from None

    async def _parts(self, request: web.Request) -> list[TaskView]:
        reader = await request.multipart()
        batch_id: str | None = None
        tasks: list[TaskView] = []
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.filename is None:
                raise Refused(400, "Every form field must be a file.")
            if len(tasks) >= MAX_FILES:
                raise Refused(413, f"At most {MAX_FILES} files per call.")
            chunks = _chunks(part)
            got = await self.app.submit_stream(CLIENT, safe_name(part.filename), chunks, profile=None,
                                               batch_id=batch_id, batch_size=self.app.config.current.transfers.slots)
            batch_id = got.batch_id
            tasks += got.tasks
        if batch_id is None:
            raise Refused(400, "The form holds no file.")
        return tasks

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """PicList's /delete: each item is a ``fullResult`` entry from /upload (our ``id``, or its ``imgUrl``)."""
        if request.content_type != "application/json":
            return answer(415, 'Send {"list": [items from fullResult]} as application/json.')
        items = await _list(request, dict)
        done, failed = 0, []
        for item in items:
            try:
                if isinstance(item.get("id"), str):
                    await self.app.delete_upload(task_id=item["id"])
                elif isinstance(item.get("imgUrl"), str):
                    await self.app.delete_link(item["imgUrl"])
                else:
                    failed.append("an item without its id or imgUrl")
                    continue
                done += 1
            except PixliftError as exc:
                failed.append(exc.message)
        message = f"delete success: {done}, fail: {len(failed)}" + "".join(f"; {m}" for m in failed)
        return web.json_response({"success": done > 0 and not failed, "message": message})


async def _list(request: web.Request, kind: type) -> list[Any]:
    """``{"list": [...]}``, nothing else, with at least one item of ``kind``."""
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "The body is not JSON.") from None
    items = body.get("list") if isinstance(body, dict) and set(body) == {"list"} else None
    if not isinstance(items, list) or not items or not all(isinstance(i, kind) for i in items):
        what = "paths" if kind is str else "items"
        raise Refused(400, f'Send {{"list": [{what}]}} with at least one entry and nothing else.')
    if len(items) > MAX_FILES:
        raise Refused(413, f"At most {MAX_FILES} files per call.")
    return items


async def _chunks(part: BodyPartReader) -> Any:
    while chunk := await part.read_chunk(256 * 1024):
        yield chunk


def _result(queued: list[TaskView], views: list[TaskView | None]) -> web.Response:
    urls, full, problems = [], [], []
    for sent, view in zip(queued, views, strict=True):
        if view is not None and view.status is TaskStatus.COMPLETED and view.url:
            urls.append(view.url)
            full.append({"imgUrl": view.url, "fileName": view.name, "id": view.task_id, "type": "pixlift"})
        elif view is None:
            problems.append(f"{sent.name}: cleared before it finished")
        elif view.status.finished:
            problems.append(f"{view.name}: {view.error['message'] if view.error else view.status}")
        else:
            why = f" ({view.error['message']})" if view.error else ""
            problems.append(f"{view.name}: not uploaded yet{why}; pixlift goes on with it, and its link will be in "
                            "the History")
    if problems:
        done = f" The other {len(urls)} were uploaded (see pixlift's History)." if urls else ""
        return web.json_response({"success": False, "message": "; ".join(problems) + "." + done})
    return web.json_response({"success": True, "result": urls, "fullResult": full})
