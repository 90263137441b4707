"""The JSON-RPC 2.0 surface: methods registered as data, dispatched by jsonrpcserver.

Each method is an ``RpcMethod`` (name, params, help, handler) in ``REGISTRY``; parameter binding (by name or
position), validation, ``rpc.discover``'s OpenRPC document and the README's method table all come from it.
This is the only module that turns a ``PixliftError`` into a JSON-RPC error object, and no exception text or
traceback reaches a client unless it is one of ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jsonrpcserver import Error, Result, Success, async_dispatch

from . import __version__
from .errors import INTERNAL_ERROR, ConfigError, InvalidParams, PixliftError
from .sources import MAX_PATH_LEN, PathChecker

log = logging.getLogger(__name__)
MAX_PATHS = 10_000
MAX_BATCH = 100  # calls in one batch; each one is also charged to the rate limit
MAX_DEPTH = 16  # JSON nesting; a real request is at most 4 deep (batch > call > params > paths)
INVALID_REQUEST = -32600


class Services(Protocol):
    """What RPC handlers may use. The composition root provides it; handlers never reach further."""

    @property
    def engine(self) -> Any: ...

    def checker(self) -> PathChecker: ...

    def charge(self, client: str, files: int) -> None: ...

    def describe(self) -> dict[str, Any]: ...

    def profiles(self) -> list[dict[str, Any]]: ...

    async def check_profile(self, name: str | None) -> dict[str, Any]: ...

    async def check_profile_draft(self, name: str, fields: dict[str, Any]) -> dict[str, Any]: ...

    async def save_profile(self, name: str, fields: dict[str, Any]) -> dict[str, Any]: ...

    async def delete_profile(self, name: str) -> dict[str, Any]: ...

    async def set_default_profile(self, name: str) -> dict[str, Any]: ...


@dataclass
class Call:
    """Per-request context: the services and who is calling (for rate limits)."""

    services: Services
    client: str


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "string", "integer", "paths", "object"
    help: str
    required: bool = True
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None

    def schema(self) -> dict[str, Any]:
        if self.kind == "paths":
            return {"type": "array", "items": {"type": "string", "maxLength": MAX_PATH_LEN}, "minItems": 1,
                    "maxItems": MAX_PATHS}
        out: dict[str, Any] = {"type": self.kind}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.default is not None:
            out["default"] = self.default
        return out

    def validate(self, value: Any) -> Any:
        if self.kind == "paths":
            if not isinstance(value, list) or not value:
                raise InvalidParams(f"'{self.name}' must be a non-empty list of absolute file paths.",
                                    data={"param": self.name})
            if len(value) > MAX_PATHS:
                raise InvalidParams(f"'{self.name}' has {len(value)} paths; at most {MAX_PATHS} per call. "
                                    "Split the list.", data={"param": self.name})
            return value  # each path is judged by the path rules, which list every refusal
        if self.kind == "object":
            if not isinstance(value, dict) or len(value) > 64:
                # Never echo the value: a profile object carries secrets.
                got = f"{len(value)} fields" if isinstance(value, dict) else type(value).__name__
                raise InvalidParams(f"'{self.name}' must be an object of at most 64 fields, got {got}.",
                                    data={"param": self.name})
            return value
        if self.kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidParams(f"'{self.name}' must be a whole number, got {_show(value)}.",
                                    data={"param": self.name})
            lo, hi = self.minimum, self.maximum
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise InvalidParams(f"'{self.name}' must be from {lo} to {hi}, got {value}.",
                                    data={"param": self.name})
            return value
        if not isinstance(value, str) or not value or len(value) > 512:
            raise InvalidParams(f"'{self.name}' must be a non-empty string, got {_show(value)}.",
                                data={"param": self.name})
        return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


Handler = Callable[[Call, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class RpcMethod:
    name: str
    help: str
    result: str
    handler: Handler
    params: tuple[Param, ...] = field(default=())

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Named or positional params, checked against the registry; -32602 says which and why."""
        if args and kwargs:
            raise InvalidParams("params must be either a list or an object, not both.")
        names = [p.name for p in self.params]
        if len(args) > len(self.params):
            raise InvalidParams(f"{self.name} takes at most {len(self.params)} params ({', '.join(names) or 'none'}),"
                                f" got {len(args)}.")
        raw = dict(zip(names, args, strict=False)) if args else dict(kwargs)
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise InvalidParams(f"Unknown param {unknown[0]!r} for {self.name}; it takes: "
                                f"{', '.join(names) or 'none'}.", data={"param": unknown[0]})
        bound: dict[str, Any] = {}
        for p in self.params:
            if p.name in raw and raw[p.name] is not None:
                bound[p.name] = p.validate(raw[p.name])
            elif p.required:
                raise InvalidParams(f"Missing param {p.name!r}: {p.help}", data={"param": p.name})
            else:
                bound[p.name] = p.default
        return bound

    def openrpc(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.help,
                "params": [{"name": p.name, "required": p.required, "description": p.help, "schema": p.schema()}
                           for p in self.params],
                "result": {"name": "result", "description": self.result, "schema": {}}}


REGISTRY: dict[str, RpcMethod] = {}


def rpc(name: str, help: str, result: str, *params: Param) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY[name] = RpcMethod(name=name, help=help, result=result, handler=fn, params=params)
        return fn
    return register


# -- the methods ---------------------------------------------------------------------------------------------
PATHS = Param("paths", "paths", "absolute paths of the files to upload, inside the allowed folders")
PROFILE = Param("profile", "string", "storage profile name; the default profile when omitted", required=False)
TASK_ID = Param("task_id", "string", "a task id from upload_images")
OPT_TASK_ID = Param("task_id", "string", "a task id; every task when omitted", required=False)


async def _upload(call: Call, paths: list[str], profile: str | None, batch_size: int) -> dict[str, Any]:
    s = call.services
    s.charge(call.client, len(paths))
    checked = await asyncio.to_thread(s.checker().check_all, paths)
    batch_id, tasks = s.engine.submit(checked, profile=profile, batch_size=batch_size)
    now = s.engine.clock()
    return {"batch_id": batch_id, "tasks": [t.snapshot(now) for t in tasks]}


@rpc("upload_images", "Queue files for upload as one batch; returns at once with a task per file, in input order.",
     '{"batch_id", "tasks": [Task]}', PATHS, PROFILE)
async def upload_images(call: Call, p: dict[str, Any]) -> Any:
    # Ask the profile first so that a bad profile name is a config error even when a path is also bad.
    call.services.engine.config.current.profile(p["profile"])
    limit = call.services.engine.config.current.transfers.max_concurrent
    return await _upload(call, p["paths"], p["profile"], limit)


@rpc("upload_images_batch", "Like upload_images, with at most batch_size files of this batch in flight at once.",
     '{"batch_id", "tasks": [Task]}', PATHS,
     Param("batch_size", "integer", "files of this batch in flight at once", required=False, default=5, minimum=1,
           maximum=100), PROFILE)
async def upload_images_batch(call: Call, p: dict[str, Any]) -> Any:
    call.services.engine.config.current.profile(p["profile"])
    return await _upload(call, p["paths"], p["profile"], p["batch_size"])


@rpc("get_upload_progress", "One task's progress.", "Task", TASK_ID)
async def get_upload_progress(call: Call, p: dict[str, Any]) -> Any:
    engine = call.services.engine
    return engine.get(p["task_id"]).snapshot(engine.clock())


@rpc("get_all_upload_progress", "Every listed task (or one batch's) and a summary.",
     '{"tasks": [Task], "summary": Summary}',
     Param("batch_id", "string", "only this batch's tasks", required=False))
async def get_all_upload_progress(call: Call, p: dict[str, Any]) -> Any:
    engine = call.services.engine
    tasks = engine.tasks(p["batch_id"])
    now = engine.clock()
    return {"tasks": [t.snapshot(now) for t in tasks], "summary": engine.summary(tasks)}


@rpc("cancel_upload", "Cancel a queued, uploading or paused task; a started multipart upload is aborted.", "Task",
     TASK_ID)
async def cancel_upload(call: Call, p: dict[str, Any]) -> Any:
    engine = call.services.engine
    return engine.cancel(p["task_id"]).snapshot(engine.clock())


@rpc("retry_upload", "Queue a failed or cancelled task again, under the same task_id.", "Task", TASK_ID)
async def retry_upload(call: Call, p: dict[str, Any]) -> Any:
    engine = call.services.engine
    return engine.retry(p["task_id"], call.services.checker()).snapshot(engine.clock())


@rpc("clear_upload_progress", "Remove finished tasks (completed, failed, cancelled) from the list; history keeps "
     "every link.", '{"cleared": int}')
async def clear_upload_progress(call: Call, p: dict[str, Any]) -> Any:
    return {"cleared": call.services.engine.clear()}


@rpc("pause_upload", "Pause one task, or everything queued and uploading. Finished multipart parts are kept.",
     '{"paused": int}', OPT_TASK_ID)
async def pause_upload(call: Call, p: dict[str, Any]) -> Any:
    return {"paused": call.services.engine.pause(p["task_id"])}


@rpc("resume_upload", "Resume one paused task, or every paused task; multipart uploads continue from their last "
     "whole part.", '{"resumed": int}', OPT_TASK_ID)
async def resume_upload(call: Call, p: dict[str, Any]) -> Any:
    return {"resumed": call.services.engine.resume(p["task_id"])}


@rpc("get_upload_history", "Every uploaded link, newest first; kept across restarts.",
     '{"items": [{"task_id", "name", "url", "size", "profile", "key", "uploaded_at"}], "total": int}',
     Param("limit", "integer", "items per page", required=False, default=50, minimum=1, maximum=1000),
     Param("offset", "integer", "items to skip", required=False, default=0, minimum=0, maximum=10**9),
     Param("query", "string", "only names containing this text", required=False))
async def get_upload_history(call: Call, p: dict[str, Any]) -> Any:
    items, total = call.services.engine.history(p["limit"], p["offset"], p["query"])
    return {"items": items, "total": total}


@rpc("list_profiles", "The storage profiles (never their secrets) and which is the default.",
     '{"default": str, "profiles": [{"name", "provider", "bucket", "endpoint", ...}]}')
async def list_profiles(call: Call, p: dict[str, Any]) -> Any:
    return {"default": call.services.engine.config.current.default_profile, "profiles": call.services.profiles()}


@rpc("check_profile", "Test a profile's connection and credentials; says exactly what is wrong.",
     '{"profile", "ok": bool, "message"}', PROFILE)
async def check_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.services.check_profile(p["profile"])


@rpc("get_daemon_info", "Version, pid, limits and profile names of the running daemon.", "object")
async def get_daemon_info(call: Call, p: dict[str, Any]) -> Any:
    return call.services.describe()


@rpc("rpc.discover", "This API described as an OpenRPC document.", "OpenRPC document")
async def discover(call: Call, p: dict[str, Any]) -> Any:
    return openrpc_document()


PROFILE_NAME = Param("name", "string", "the profile's name: 1 to 64 letters, digits, '-' or '_'")
PROFILE_FIELDS = Param("profile", "object", 'the profile\'s settings as in config.toml, e.g. {"provider": "s3", '
                       '"bucket": "photos", ...}; a secret field left out or empty keeps the saved secret')
PROFILE_LIST = '{"default": str, "profiles": [...]} as list_profiles'


@rpc("save_profile", "Add a storage profile or replace one's settings in config.toml (checked first, written "
     "atomically, in force at once). Secret fields left out or empty keep the saved secret.", PROFILE_LIST,
     PROFILE_NAME, PROFILE_FIELDS)
async def save_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.services.save_profile(p["name"], p["profile"])


@rpc("delete_profile", "Delete a storage profile from config.toml. The default profile, the last profile and a "
     "profile that active uploads use cannot be deleted.", PROFILE_LIST, PROFILE_NAME)
async def delete_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.services.delete_profile(p["name"])


@rpc("set_default_profile", "Make a profile the default (storage.default in config.toml).", PROFILE_LIST,
     PROFILE_NAME)
async def set_default_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.services.set_default_profile(p["name"])


@rpc("check_profile_draft", "Test settings for a profile before saving them (as save_profile would store them); "
     "writes nothing.", '{"profile", "ok": bool, "message"}', PROFILE_NAME, PROFILE_FIELDS)
async def check_profile_draft(call: Call, p: dict[str, Any]) -> Any:
    return await call.services.check_profile_draft(p["name"], p["profile"])


def openrpc_document() -> dict[str, Any]:
    return {"openrpc": "1.2.6", "info": {"title": "pixlift", "version": __version__},
            "methods": [m.openrpc() for m in REGISTRY.values()]}


# -- dispatch ------------------------------------------------------------------------------------------------
def _error(exc: PixliftError) -> Result:
    if exc.data is None:
        return Error(exc.rpc_code, exc.message)
    return Error(exc.rpc_code, exc.message, exc.data)


def _adapter(method: RpcMethod, before_call: Callable[[Call], None]) -> Callable[..., Awaitable[Result]]:
    async def call(ctx: Call, *args: Any, **kwargs: Any) -> Result:
        try:
            before_call(ctx)
            bound = method.bind(args, kwargs)
            return Success(await method.handler(ctx, bound))
        except PixliftError as exc:
            return _error(exc)
        except Exception:
            log.exception("%s failed", method.name)
            return Error(INTERNAL_ERROR, "Internal error; the daemon's log has the details.")
    return call


class Dispatcher:
    def __init__(self, before_call: Callable[[Call], None]) -> None:
        self._methods = {name: _adapter(m, before_call) for name, m in REGISTRY.items()}

    async def dispatch(self, body: str, ctx: Call) -> str:
        try:
            doc = json.loads(body)
        except RecursionError:  # the C decoder gives up near 1,000 levels: say so instead of "Parse error"
            return _invalid_request(f"the JSON is nested more than {MAX_DEPTH} levels deep.", "depth", MAX_DEPTH)
        except ValueError:
            # Not JSON: jsonrpcserver answers with its Parse error.
            return await async_dispatch(body, methods=self._methods, context=ctx)  # type: ignore[no-any-return]
        if isinstance(doc, list) and len(doc) > MAX_BATCH:
            return _invalid_request(f"the batch has {len(doc)} calls; at most {MAX_BATCH} per batch. Split it.",
                                    "batch", MAX_BATCH)
        if _deeper_than(doc, MAX_DEPTH):
            return _invalid_request(f"the JSON is nested more than {MAX_DEPTH} levels deep.", "depth", MAX_DEPTH)
        return await async_dispatch(body, methods=self._methods, context=ctx,  # type: ignore[no-any-return]
                                    deserializer=lambda _: doc)


def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than ``limit`` levels; iterative, so no input can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _invalid_request(message: str, limit: str, value: int) -> str:
    """A whole request refused by a limit, before any method runs: one JSON-RPC Invalid Request error."""
    return json.dumps({"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": f"Invalid request: {message}",
                                                   "data": {"limit": limit, "max": value}}, "id": None})


__all__ = ["REGISTRY", "Call", "ConfigError", "Dispatcher", "openrpc_document"]
