"""The JSON-RPC 2.0 machinery: params, the method registry, limits and dispatch (jsonrpcserver).

Each method is an ``RpcMethod`` (name, params, help, handler) in ``REGISTRY`` (filled by ``methods.py``);
parameter binding (by name or position), validation, ``rpc.discover``'s OpenRPC document and the README's
method table all come from it. This is the only module that turns a ``PixliftError`` into a JSON-RPC error
object, and no exception text or traceback reaches a client unless it is one of ours.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonrpcserver import Error, Result, Success, async_dispatch

from ... import __version__
from ...application import Application
from ...core.views import JsonArray
from ...errors import INTERNAL_ERROR, InvalidParams, PixliftError
from ...files.paths import MAX_PATH_LEN

log = logging.getLogger(__name__)
MAX_PATHS = 10_000
MAX_URLS = 100  # each is a download the daemon makes before the call returns
MAX_BATCH = 100  # calls in one batch; each one is also charged to the rate limit
MAX_DEPTH = 16  # JSON nesting; a real request is at most 4 deep (batch > call > params > paths)
INVALID_REQUEST = -32600
PARSE_ERROR = -32700


@dataclass
class Call:
    """Per-request context: the application and who is calling (for rate limits)."""

    app: Application
    client: str


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "string", "integer", "boolean", "paths", "urls", "list", "object"
    help: str
    required: bool = True
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None

    def schema(self) -> dict[str, Any]:
        if self.kind == "paths":
            return {"type": "array", "items": {"type": "string", "maxLength": MAX_PATH_LEN}, "minItems": 1,
                    "maxItems": MAX_PATHS}
        if self.kind == "list":
            return {"type": "array", "minItems": 1, "maxItems": MAX_URLS}
        if self.kind == "urls":
            return {"type": "array", "items": {"type": "string", "format": "uri", "maxLength": MAX_PATH_LEN},
                    "minItems": 1, "maxItems": MAX_URLS}
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
        if self.kind == "list":
            if not isinstance(value, list) or not 0 < len(value) <= MAX_URLS:
                raise InvalidParams(f"'{self.name}' must be a list of 1 to {MAX_URLS} items.",
                                    data={"param": self.name})
            return value
        if self.kind == "urls":
            if not isinstance(value, list) or not value or len(value) > MAX_URLS or not all(
                    isinstance(u, str) and 0 < len(u) <= MAX_PATH_LEN for u in value):
                raise InvalidParams(f"'{self.name}' must be a list of 1 to {MAX_URLS} URLs (strings).",
                                    data={"param": self.name})
            return value
        if self.kind == "object":
            if not isinstance(value, dict) or len(value) > 64:
                # Never echo the value: a profile object carries secrets.
                got = f"{len(value)} fields" if isinstance(value, dict) else type(value).__name__
                raise InvalidParams(f"'{self.name}' must be an object of at most 64 fields, got {got}.",
                                    data={"param": self.name})
            return value
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise InvalidParams(f"'{self.name}' must be true or false, got {_show(value)}.",
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
        if not _is_text(value):
            raise InvalidParams(f"'{self.name}' is not valid text (it holds a lone surrogate or a NUL).",
                                data={"param": self.name})
        return value


def _is_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \ud800 escapes can carry
        return False
    return True


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


def openrpc_document() -> dict[str, Any]:
    return {"openrpc": "1.2.6", "info": {"title": "pixlift", "version": __version__},
            "methods": [m.openrpc() for m in REGISTRY.values()]}


# -- dispatch ------------------------------------------------------------------------------------------------
def _error(exc: PixliftError) -> Result:
    if exc.data is None:
        return Error(exc.rpc_code, exc.message)
    return Error(exc.rpc_code, exc.message, exc.data)


def _adapter(method: RpcMethod, before_call: Callable[[Call], None]) -> Callable[..., Awaitable[Result]]:
    # ctx is positional-only, so a param a client names "ctx" is judged like any other unknown param.
    async def call(ctx: Call, /, *args: Any, **kwargs: Any) -> Result:
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
    """Every registered method, each call charged to the caller's rate limit before it runs."""

    def __init__(self) -> None:
        self._methods = {name: _adapter(m, lambda call: call.app.charge_call(call.client))
                         for name, m in REGISTRY.items()}

    async def dispatch(self, body: str | bytes, ctx: Call) -> str:
        return await self._dispatch(body, ctx, dumps)  # type: ignore[return-value]

    async def dispatch_streamed(self, body: str | bytes, ctx: Call) -> str | Streamed:
        """As ``dispatch``, but a reply with a long list of tasks comes as a ``Streamed``, to send in parts."""
        return await self._dispatch(body, ctx, _streamed_or_dumps)

    async def _dispatch(self, body: str | bytes, ctx: Call, serializer: Callable[[Any], str | Streamed]) \
            -> str | Streamed:
        try:
            doc = strict_json(body)
        except RecursionError:  # the C decoder gives up near 1,000 levels: say so instead of "Parse error"
            return _invalid_request(f"the JSON is nested more than {MAX_DEPTH} levels deep.", "depth", MAX_DEPTH)
        except ValueError as exc:
            return _parse_error(str(exc) if isinstance(exc, NotJson) else "the body is not valid JSON.")
        if isinstance(doc, list) and len(doc) > MAX_BATCH:
            return _invalid_request(f"the batch has {len(doc)} calls; at most {MAX_BATCH} per batch. Split it.",
                                    "batch", MAX_BATCH)
        if _deeper_than(doc, MAX_DEPTH):
            return _invalid_request(f"the JSON is nested more than {MAX_DEPTH} levels deep.", "depth", MAX_DEPTH)
        return await async_dispatch(body, methods=self._methods, context=ctx,  # type: ignore[no-any-return]
                                    deserializer=lambda _: doc, validator=valid_request,
                                    serializer=serializer)  # type: ignore[arg-type]


_REQUEST_KEYS = frozenset({"jsonrpc", "method", "id", "params"})


def _a_call(doc: Any) -> bool:
    if not isinstance(doc, dict) or not doc.keys() <= _REQUEST_KEYS or doc.get("jsonrpc") != "2.0":
        return False
    ident = doc.get("id")
    return (isinstance(doc.get("method"), str) and isinstance(doc.get("params", []), (list, dict))
            and (ident is None or (isinstance(ident, (str, int, float)) and not isinstance(ident, bool))))


def valid_request(doc: Any) -> Any:
    """jsonrpcserver's request schema (a call, or a non-empty list of calls: "jsonrpc" "2.0", a string "method",
    an id that is a string, a number or null, params that are a list or an object, no other key), checked by
    hand: its jsonschema validator cost more than the call, and left objects behind on every request."""
    if not (_a_call(doc) or (isinstance(doc, list) and doc and all(_a_call(d) for d in doc))):
        raise ValueError("not a JSON-RPC request")
    return doc


class NotJson(ValueError):
    """A body that is not strict JSON, said in words for the client (never Python's own text)."""


def _no_constant(name: str) -> Any:
    raise NotJson(f"the body is not valid JSON: {name} is not a JSON number.")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NotJson(f"the body is not valid JSON: the number {text[:40]} is out of range.")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 40:
        raise NotJson("the body is not valid JSON for pixlift: a number has more than 40 digits.")
    return int(text)


def strict_json(body: str | bytes) -> Any:
    """JSON as RFC 8259 has it: UTF-8, no NaN or Infinity, numbers that fit; NotJson says what is wrong."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NotJson("the body is not UTF-8 text; JSON-RPC bodies must be UTF-8 JSON.") from None
    return _DECODER.decode(body)


# One decoder for every request: ``json.loads`` with hooks made a decoder and its scanner per call, and a few of
# their objects outlived each, between the tasks' own, keeping heap pages of cleared tasks.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int)


def _parse_error(message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "error": {"code": PARSE_ERROR, "message": f"Parse error: {message}"},
                       "id": None})


def _whole(value: Any) -> Any:
    if isinstance(value, JsonArray):
        return value.fragment()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(doc: Any) -> str:
    """JSON for a reply: orjson (fast, and it embeds the tasks' cached JSON as is); the standard library for
    what orjson refuses (an id beyond 64 bits), with the cached fragments spelled out."""
    try:
        return orjson.dumps(doc, default=_whole).decode()
    except TypeError:
        return json.dumps(doc, default=lambda o: json.loads(orjson.dumps(o, default=_whole)))


STREAM_OVER = 1000  # tasks in a reply past which it is sent in parts (``Streamed``)


class Streamed:
    """A reply with a long list of tasks (a read of the whole list, a call of 10,000 paths), sent in parts: the
    reply around the list, then the list a slice at a time (``JsonArray``), so its JSON is never whole in memory.
    """

    __slots__ = ("_head", "_tail", "_tasks")
    _HOLE = b'"tasks":[]'

    def __init__(self, head: bytes, tasks: JsonArray[Any], tail: bytes) -> None:
        self._head, self._tasks, self._tail = head, tasks, tail

    @classmethod
    def of(cls, doc: Any) -> Streamed | None:
        """A reply whose result's ``tasks`` is a long ``JsonArray``, as parts; None for any other reply."""
        result = doc.get("result") if isinstance(doc, dict) else None
        tasks = result.get("tasks") if isinstance(result, dict) else None
        if not isinstance(doc, dict) or not isinstance(result, dict) or not isinstance(tasks, JsonArray) \
                or len(tasks) <= STREAM_OVER:
            return None
        try:  # the reply with an empty list: in its JSON, the first '"tasks":[]' is that list's (none is in a string)
            shell = orjson.dumps({**doc, "result": {**result, "tasks": orjson.Fragment(b"[]")}})
        except TypeError:
            return None  # an id beyond 64 bits: ``dumps`` spells it out
        at = shell.index(cls._HOLE) + len(cls._HOLE) - 2
        return cls(shell[:at], tasks, shell[at + 2:])

    def chunks(self) -> Iterator[bytes | memoryview]:
        yield self._head
        yield from self._tasks.chunks()
        yield self._tail


def _streamed_or_dumps(doc: Any) -> str | Streamed:
    return Streamed.of(doc) or dumps(doc)


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
        # Only containers nest: the 10,000 paths of a large call are looked at once each, not stacked.
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _invalid_request(message: str, limit: str, value: int) -> str:
    """A whole request refused by a limit, before any method runs: one JSON-RPC Invalid Request error."""
    return json.dumps({"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": f"Invalid request: {message}",
                                                   "data": {"limit": limit, "max": value}}, "id": None})


__all__ = ["REGISTRY", "Call", "Dispatcher", "Param", "openrpc_document", "rpc"]
