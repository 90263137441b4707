"""HTTP routes: ``/rpc``, the UI (``/`` and ``/static/``), pasted links (``/files/``, ``/local/``), browser
uploads, and the local store's one-time upload URLs (``/presigned/``, the one route with CORS).

Handlers are thin: they authenticate through the gate, then hand over to the RPC dispatcher or the application
layer.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import weakref
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ..application import Application
from ..errors import FileRefused, JournalUnavailable, PixliftError, RateLimited
from ..files.paths import open_served
from ..files.spool import safe_name
from .gate import COOKIE, Gate
from .rpc import Call, Dispatcher
from .web_push import PushRoutes

RPC_MAX_BODY = 1024 * 1024
# User files are served from our origin, so they must never run script there (an uploaded SVG or HTML).
FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
UI_CSP = ("default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self' 'unsafe-inline'; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_FD_DIR = Path("/proc/self/fd") if Path("/proc/self/fd").is_dir() else Path("/dev/fd")  # an open file's path
_ORIGIN = re.compile(r"null|[a-z][a-z0-9+.-]*://[\w.:\[\]-]{1,253}")  # what browsers send, nothing else
_HEADER_LIST = re.compile(r"[A-Za-z0-9-]*(?:\s*,\s*[A-Za-z0-9-]+){0,20}")


def ui_dir() -> Path:
    return Path(str(resources.files("pixlift.ui")))


class Routes:
    def __init__(self, app: Application, gate: Gate) -> None:
        self.app = app
        self.gate = gate
        self.dispatcher = Dispatcher()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_post("/rpc", self.rpc)
        app.router.add_post("/api/upload", self.browser_upload)
        app.router.add_put("/presigned/{token}", self.presigned_upload)
        app.router.add_route("OPTIONS", "/presigned/{token}", self.presigned_preflight)
        app.router.add_get("/files/{key:.+}", self.serve_file)
        app.router.add_get("/local/{profile}/{key:.+}", self.serve_profile_file)
        PushRoutes(self.app, self.gate, self.dispatcher).install(app)
        app.router.add_static("/static/", ui_dir(), show_index=False, follow_symlinks=False)
        app.on_response_prepare.append(_headers)

    # -- /rpc ------------------------------------------------------------------------------------------
    async def rpc(self, request: web.Request) -> web.StreamResponse:
        client = self.gate.require(request)
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="POST /rpc needs Content-Type: application/json.")
        if request.content_length is not None and request.content_length > RPC_MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=RPC_MAX_BODY, actual_size=request.content_length)
        # Bytes, not text: JSON is UTF-8 whatever charset the header claims, and a body that is not is a
        # JSON-RPC parse error, not a server error. The app's client_max_size caps chunked bodies too.
        body = await request.read()
        out = await self.dispatcher.dispatch_streamed(body, Call(self.app, client.id))
        if not out:
            return web.Response(status=204)
        if isinstance(out, str):
            return web.Response(text=out, content_type="application/json")
        resp = web.StreamResponse()  # a long list of tasks, serialised as it goes (chunked)
        resp.content_type, resp.charset = "application/json", "utf-8"
        await resp.prepare(request)
        for chunk in out.chunks():
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    # -- the UI ------------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token")
        if token is not None:
            # Jupyter-style login: trade the token for a cookie, then drop it from the address bar.
            resp = web.HTTPSeeOther("/")
            if self.gate.token_ok(token):
                resp.set_cookie(COOKIE, self.gate.session_cookie(), httponly=True, samesite="Strict", path="/",
                                max_age=30 * 24 * 3600)
            resp.headers["Cache-Control"] = "no-store"
            resp.headers["Referrer-Policy"] = "no-referrer"
            raise resp
        return web.FileResponse(ui_dir() / "index.html", headers={"Cache-Control": "no-cache"})

    # -- pasted links of the local store -----------------------------------------------------------------
    async def serve_file(self, request: web.Request) -> web.StreamResponse:
        # aiohttp has percent-decoded the path once (%2e%2e is "..", %252e stays "%2e"); what is left is judged
        # as a path: no dot-parts, no NUL, only a regular file under the folder, opened beneath it.
        key = request.match_info["key"]
        return _file_response(open_served(self.app.home.files, key) if _plain(key) else None, key)

    async def serve_profile_file(self, request: web.Request) -> web.StreamResponse:
        """A local profile's own folder: its provider opens the file a key names, inside that folder only."""
        key = request.match_info["key"]
        fd = self.app.profiles.served_file(request.match_info["profile"], key) if _plain(key) else None
        return _file_response(fd, key)

    # -- the local store's one-time URLs (create_upload_urls) -------------------------------------------------
    async def presigned_upload(self, request: web.Request) -> web.StreamResponse:
        """The token is the permission, as a presigned URL's signature is: the page of any app the URL was
        handed to may PUT here, and reads the answer (CORS for its origin, the ETag exposed, as S3 does)."""
        cors = _cors(request)
        digest = hashlib.md5(usedforsecurity=False)  # S3's ETag of a single PUT, which Uppy waits to read

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(256 * 1024):
                digest.update(chunk)
                yield chunk

        try:
            await self.app.presigned.receive(request.match_info["token"], body())
        except FileRefused as exc:
            return web.json_response({"error": exc.to_dict()}, status=exc.http_status, headers=cors)
        except PixliftError as exc:
            return web.json_response({"error": exc.to_dict()}, status=404 if exc.code == "not_found" else 400,
                                     headers=cors)
        return web.Response(status=200, headers={**cors, "ETag": f'"{digest.hexdigest()}"'})

    async def presigned_preflight(self, request: web.Request) -> web.StreamResponse:
        """The browser's CORS preflight of a PUT to a one-time URL, answered for the origin that asks (as S3
        answers for a bucket whose CORS rules allow the app); anything but a PUT gets no CORS at all."""
        cors = _cors(request)
        asked = request.headers.get("Access-Control-Request-Headers", "")
        method = request.headers.get("Access-Control-Request-Method")
        if not cors or method != "PUT" or not _HEADER_LIST.fullmatch(asked):
            return web.json_response({"error": {"status": 403, "message": "Only a PUT may be sent here."}},
                                     status=403)
        headers = {**cors, "Access-Control-Allow-Methods": "PUT", "Access-Control-Max-Age": "600"}
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        if request.headers.get("Access-Control-Request-Private-Network") == "true":  # a public page, a local URL
            headers["Access-Control-Allow-Private-Network"] = "true"
        return web.Response(status=204, headers=headers)

    # -- browser uploads: bytes streamed into the spool, then a task like any other -----------------------
    async def browser_upload(self, request: web.Request) -> web.StreamResponse:
        client = self.gate.require(request)
        limit = self.app.config.current.security.max_file_size
        if request.content_length is not None and request.content_length > limit:  # refuse before reading a byte
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        try:
            self.app.charge_call(client.id)
            name = safe_name(request.query.get("name", ""))
            batch_id = request.query.get("batch_id") or None
            if batch_id is not None and not re.fullmatch(r"[0-9a-f]{32}", batch_id):
                raise web.HTTPBadRequest(text="batch_id must be 32 lower-case hex digits.")
            try:
                batch_size = int(request.query.get("batch_size", "5"))
            except ValueError:
                batch_size = 0
            if not 1 <= batch_size <= 100:
                raise web.HTTPBadRequest(text="batch_size must be a whole number from 1 to 100.")
            submitted = await self.app.submit_stream(client.id, name, request.content.iter_chunked(256 * 1024),
                                                     profile=request.query.get("profile") or None,
                                                     batch_id=batch_id, batch_size=batch_size,
                                                     from_clipboard=request.query.get("source") == "clipboard")
        except RateLimited as exc:
            return web.json_response({"error": exc.to_dict() | {"data": exc.data}}, status=429,
                                     headers={"Retry-After": str(max(1, round(exc.retry_after_s)))})
        except FileRefused as exc:
            return web.json_response({"error": exc.to_dict()}, status=exc.http_status)
        except JournalUnavailable as exc:
            return web.json_response({"error": exc.to_dict()}, status=507)
        except PixliftError as exc:
            return web.json_response({"error": exc.to_dict()}, status=400)
        return web.json_response({"batch_id": submitted.batch_id, "task": submitted.tasks[0].to_json()})


def _plain(key: str) -> bool:
    """A key as the stores write them: no dot-parts (hidden or temporary files, ``..``), no NUL, not too long."""
    return len(key) <= 1024 and "\x00" not in key and not any(p.startswith(".") for p in Path(key).parts)


def _file_response(fd: int | None, key: str) -> web.StreamResponse:
    if fd is None:
        raise web.HTTPNotFound(text="No such file.")
    ctype = mimetypes.guess_type(key.rsplit("/", 1)[-1])[0] or "application/octet-stream"
    return _OpenFileResponse(fd, headers={"Content-Type": ctype, "Content-Security-Policy": FILE_CSP,
                                          "Cache-Control": "public, max-age=31536000, immutable"})


class _OpenFileResponse(web.FileResponse):
    """An opened file, sent by aiohttp's FileResponse (ranges, conditional requests, sendfile) through the
    descriptor's own path, which reopens exactly that file: nothing is looked up by name again. The descriptor
    is closed once the response is sent, or when the response is dropped unsent."""

    def __init__(self, fd: int, headers: dict[str, str]) -> None:
        super().__init__(_FD_DIR / str(fd), headers=headers)
        self._close = weakref.finalize(self, os.close, fd)  # runs once, whichever comes first

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            return await super().prepare(request)
        finally:
            self._close()


def _cors(request: web.Request) -> dict[str, str]:
    """CORS headers that let the page of ``Origin`` read the answer; none without one (or with a malformed one)."""
    origin = request.headers.get("Origin", "")
    if not _ORIGIN.fullmatch(origin):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "ETag", "Vary": "Origin"}


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith(("/files/", "/local/")):
        response.headers.setdefault("Content-Security-Policy", UI_CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")

