"""The one small interface every storage provider implements.

The engine hands a provider an opened ``Source``, a key, an ``on_bytes`` callback and a ``MultipartState``;
the provider sends the bytes and calls ``on_bytes(delta)`` **on the event loop** as the store acknowledges
them (negative deltas when a request fails and its bytes must be sent again). Everything SDK-specific, threads
included, stays below this line, and every SDK exception is translated here into the ``errors`` hierarchy.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, TypeVar
from urllib.parse import quote

from ..core.config import TransferSettings
from ..core.retry import Backoff
from ..errors import (
    ConfigError,
    Interrupted,
    PermanentStorageError,
    SourceError,
    TransferError,
    TransientStorageError,
)
from ..files.sources import Source
from .acked import Body, Ticker
from .inflight import InFlight
from .multipart import MultipartState, part_plan

log = logging.getLogger(__name__)

OnBytes = Callable[[int], None]
MAX_RETRY_AFTER_S = 300.0  # a store's Retry-After is honoured up to this
T = TypeVar("T")


def public_url(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/{quote(key, safe='/')}"


class UploadGone(PermanentStorageError):
    """The multipart upload no longer exists at the store (expired, or aborted elsewhere)."""

    def __init__(self) -> None:
        super().__init__("The store no longer has this multipart upload.", code="upload_gone")


# -- what a store answered, and what pixlift tells the user about it --------------------------------------------
@dataclass(frozen=True)
class StoreReply:
    """A refusal read out of an SDK's exception: the store's error code, HTTP status and message."""

    code: str
    status: int
    message: str = ""
    retry_after_s: float | None = None  # the store's Retry-After, if it said when to come back


@dataclass(frozen=True)
class Rule:
    """One row of a provider's error table: which replies it matches, and the error the task then carries.

    ``text`` is formatted with ``where`` (endpoint), ``name`` (profile), ``bucket``, ``code``, ``status`` and
    ``message``. ``error`` is the task's ``error.code``; ``upload_gone`` raises ``UploadGone`` instead."""

    error: str
    text: str
    codes: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    any_5xx: bool = False
    transient: bool = False

    def matches(self, reply: StoreReply) -> bool:
        return reply.code in self.codes or reply.status in self.statuses or (self.any_5xx and reply.status >= 500)


def rule(error: str, text: str, *codes: str, statuses: tuple[int, ...] = (), any_5xx: bool = False,
         transient: bool = False) -> Rule:
    return Rule(error, text, frozenset(codes), frozenset(statuses), any_5xx, transient)


def chain(exc: BaseException, limit: int = 10) -> Iterator[BaseException]:
    """``exc`` and what caused it (``__cause__``, ``__context__``, or an SDK's wrapped ``exception``)."""
    cur: BaseException | None = exc
    for _ in range(limit):
        if cur is None:
            return
        yield cur
        inner = getattr(cur, "exception", None)  # oss2.RequestError keeps the requests exception here
        cur = cur.__cause__ or cur.__context__ or (inner if isinstance(inner, BaseException) else None)


class Provider(abc.ABC):
    """The interface the engine sees: upload with progress, abort, make a link, check the connection."""

    kind: str
    digests: ClassVar[frozenset[str]] = frozenset()  # what it needs of a whole file (Source.digest), made early
    # A failed task keeps its unfinished upload for a retry to go on from: S3's and OSS's parts, which nobody
    # sees. A store whose unfinished upload is a file in the user's folder (WebDAV's and SFTP's temporary file)
    # says False: it is removed (through the clean-up) as soon as the task fails for good.
    keeps_failed_uploads: ClassVar[bool] = True

    def part_checksums(self, size: int) -> list[tuple[str, int, int]]:
        """(digest, offset, length) of the parts a file of ``size`` is sent in that go with a checksum."""
        return []

    @abc.abstractmethod
    async def upload(self, source: Source, key: str, *, on_bytes: OnBytes, state: MultipartState,
                     on_part: Callable[[], None]) -> None:
        """Send ``source`` to ``key``, calling ``on_bytes(delta)`` on the event loop as the store acknowledges bytes.

        Progress is what the store has, never what was merely handed to the network: a request that fails takes
        back every byte it reported (a negative delta). Resumes ``state`` if it holds a multipart upload for this
        key, and calls ``on_part`` after each finished part so the caller can persist ``state``.

        Kept parts are the caller's to show: before calling, the caller counts ``state.bytes_done(source.size)``
        as uploaded, and the provider never reports those bytes again. If the store turns out not to have some
        kept parts, the provider reports their bytes as a negative delta; if the whole multipart upload is gone
        (it starts again from byte 0), it takes back all of them. Raises TransferError subclasses (or
        ConfigError) only.
        """

    async def abort_upload(self, key: str, upload_id: str) -> None:  # noqa: B027 - stores without multipart
        """Abort a multipart upload, leaving no parts behind; an upload the store no longer has is fine. Raises
        TransferError when the store could not be told (it is then asked again later)."""

    @abc.abstractmethod
    async def link(self, key: str) -> str:
        """A URL that fetches the object: ``public_base_url`` + key, or a signed GET URL."""

    @abc.abstractmethod
    async def check(self) -> str:
        """Check credentials and bucket; return a one-line description, raise StorageError/ConfigError."""

    @abc.abstractmethod
    async def delete_object(self, key: str) -> None:
        """Remove the object at ``key`` from the store (one already gone is fine); TransferError says why not."""

    @abc.abstractmethod
    async def stored_size(self, key: str) -> int | None:
        """The size of the object at ``key``, or None when the store has none there (a HEAD or its like);
        raises TransferError when the store could not say."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def served_file(self, key: str) -> int | None:
        """A stored object the daemon itself serves at its link (the embedded store), opened read-only (the
        caller closes it); None for a remote store or no such file."""
        return None

    async def presign_put(self, key: str, content_type: str, expires_s: int) -> str | None:
        """A URL an app can PUT the object to itself (with Content-Type); None when the store has none (the
        daemon then offers a one-time URL of its own)."""
        return None

    @property
    def link_lifetime(self) -> int | None:
        """Seconds a link from ``link`` works (a presigned one); None when it does not expire."""
        return None


class ObjectStore(Provider):
    """An object store with single PUTs and multipart uploads (S3, OSS).

    ``upload`` is written once here: a single PUT below the multipart threshold, otherwise a multipart upload
    that resumes from ``state``, sends parts concurrently and retries each part on its own. Subclasses supply
    the primitives, each translating its SDK's exceptions into the ``errors`` hierarchy.
    """

    errors: ClassVar[tuple[Rule, ...]]  # the provider's error table, matched in order
    network_errors: ClassVar[tuple[type[BaseException], ...]]  # the SDK's "could not reach the store"
    config_errors: ClassVar[tuple[type[BaseException], ...]] = (ValueError,)
    endpoint_key: ClassVar[str] = "endpoint"  # the profile key to check when the store cannot be reached
    part_digest: ClassVar[str | None] = None  # what each part is sent with (Source.digest of the part)

    def part_checksums(self, size: int) -> list[tuple[str, int, int]]:
        if self.part_digest is None or size < self.transfers.multipart_threshold:
            return []
        return [(self.part_digest, off, n) for _, off, n in part_plan(size, self.transfers.part_size)]

    def __init__(self, transfers: TransferSettings, *, profile_name: str, where: str, bucket: str,
                 in_flight: InFlight | None = None) -> None:
        self.transfers = transfers
        self.part_backoff = Backoff(transfers.attempts, transfers.backoff_base_s, transfers.backoff_max_s)
        self.profile_name, self.where, self.bucket = profile_name, where, bucket
        self.ticker = Ticker()
        # Shared by every provider of the daemon (the pool passes one); a provider built alone bounds itself.
        self.in_flight = in_flight or InFlight.of(transfers)

    # -- one call path, one translation --------------------------------------------------------------------------
    async def guarded(self, call: Awaitable[T]) -> T:
        """Await an SDK call; whatever it raises leaves as one of pixlift's errors."""
        try:
            return await call
        except TransferError:
            raise
        except Exception as exc:
            raise self.translate(exc) from exc

    def reply_of(self, exc: BaseException) -> StoreReply | None:
        """The store's answer inside an SDK exception, or None when the store did not answer."""
        return None

    def special(self, exc: BaseException) -> TransferError | ConfigError | None:
        """SDK-specific cases the table cannot express (missing credentials, a checksum mismatch)."""
        return None

    def translate(self, exc: BaseException) -> TransferError | ConfigError:
        """Turn an SDK exception into an error that says what to fix."""
        for cur in chain(exc):
            if isinstance(cur, SourceError | Interrupted):
                return cur
        found = self.special(exc)
        if found is not None:
            return found
        reply = self.reply_of(exc)
        if reply is not None:
            return self.from_reply(reply)
        if isinstance(exc, self.network_errors):
            cause = getattr(exc, "exception", None)
            return TransientStorageError(
                f"Could not reach {self.where} ({describe(cause if isinstance(cause, BaseException) else exc)}). "
                f"Check the network and {self.endpoint_key}.", code="network_error")
        if isinstance(exc, self.config_errors):
            return ConfigError(f"Profile {self.profile_name!r} is not usable: {describe(exc)}")
        return TransientStorageError(f"Unexpected error talking to {self.where}: {describe(exc)}",
                                     code="network_error")

    def from_reply(self, reply: StoreReply) -> TransferError:
        values = {"where": self.where, "name": self.profile_name, "bucket": self.bucket, "code": reply.code,
                  "status": reply.status, "message": reply.message}
        for row in self.errors:
            if row.matches(reply):
                if row.error == "upload_gone":
                    return UploadGone()
                text = re.sub(r" +([;.,])", r"\1", row.text.format(**values))  # an empty {code}
                if row.transient:
                    return TransientStorageError(text, code=row.error, retry_after_s=reply.retry_after_s)
                return PermanentStorageError(text, code=row.error)
        return PermanentStorageError(f"{self.where} refused the request: {reply.code} {reply.message}".strip(),
                                     code="rejected")

    async def upload(self, source: Source, key: str, *, on_bytes: OnBytes, state: MultipartState,
                     on_part: Callable[[], None]) -> None:
        if source.size < self.transfers.multipart_threshold and not state.upload_id:
            body = Body(source, 0, source.size, on_bytes)
            async with self.in_flight.hold(source.size):
                await self.ticker.send(body, self._put_object(key, body, source))
            return
        await self._multipart(source, key, state, on_bytes, on_part)

    async def _multipart(self, source: Source, key: str, state: MultipartState, on_bytes: OnBytes,
                         on_part: Callable[[], None]) -> None:
        kept = state.bytes_done(source.size)  # already shown by the caller
        if state.upload_id and state.key == key and not state.verified:
            try:
                held = await self._list_parts(key, state.upload_id)
            except UploadGone:
                state.reset()
            else:  # keep only the parts the store really has, with the same ETag
                state.parts = {n: e for n, e in state.parts.items() if held.get(n) == e}
                state.verified = True
        if not state.upload_id or state.key != key:
            state.reset()
            state.key = key
            state.part_size = self.transfers.part_size
            state.upload_id = await self._create_multipart(key, source)
            state.verified = True
            on_part()
        lost = kept - state.bytes_done(source.size)
        if lost:
            on_bytes(-lost)  # kept parts the store turned out not to have
        plan = part_plan(source.size, state.part_size)
        upload_id = state.upload_id
        sem = asyncio.Semaphore(self.transfers.part_concurrency)

        async def send(number: int, offset: int, length: int) -> None:
            async with sem, self.in_flight.hold(length):
                for attempt in range(1, self.part_backoff.attempts + 1):
                    body = Body(source, offset, length, on_bytes)
                    try:
                        etag, checksum = await self.ticker.send(
                            body, self._upload_part(key, upload_id, number, body, source))
                        state.parts[number] = etag
                        if checksum is not None:
                            state.checksums[number] = checksum
                        on_part()
                        return
                    except TransferError as exc:  # the ticker took back what the failed request reported
                        if not exc.retryable or attempt == self.part_backoff.attempts:
                            raise
                        log.info("part %d of %s failed (%s); retrying", number, key, exc.message)
                        asked = min(getattr(exc, "retry_after_s", None) or 0.0, MAX_RETRY_AFTER_S)
                        await asyncio.sleep(max(self.part_backoff.delay(attempt), asked))

        try:
            async with asyncio.TaskGroup() as tg:
                for number, offset, length in plan:
                    if number not in state.parts:
                        tg.create_task(send(number, offset, length))
            await self._complete(key, upload_id, {n: state.parts[n] for n, _, _ in plan}, state, source)
        except* TransferError as group:
            first = _first(group)
            if isinstance(first, UploadGone):  # worth one more attempt, from the first byte
                on_bytes(-state.bytes_done(source.size))  # no part of it is kept any more
                state.reset()
                raise TransientStorageError("The store forgot the multipart upload; starting the file again.",
                                            code="upload_expired") from None
            raise first from None

    async def abort_upload(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(UploadGone):
            await self._abort(key, upload_id)

    # -- primitives ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def _put_object(self, key: str, body: Body, source: Source) -> None: ...

    @abc.abstractmethod
    async def _create_multipart(self, key: str, source: Source) -> str: ...

    @abc.abstractmethod
    async def _list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        """The parts the store holds; raises UploadGone if the upload no longer exists."""

    @abc.abstractmethod
    async def _upload_part(self, key: str, upload_id: str, number: int, body: Body,
                           source: Source) -> tuple[str, int | None]:
        """Send one part; return its ETag and, where the store gives one, its CRC64.

        Here and in ``_put_object``, tell the body which socket carries it (``Body.on_wire``): without that its
        progress is the bytes handed to the SDK, which run ahead of the store by the socket's buffers."""

    @abc.abstractmethod
    async def _complete(self, key: str, upload_id: str, parts: dict[int, str], state: MultipartState,
                        source: Source) -> None: ...

    @abc.abstractmethod
    async def _abort(self, key: str, upload_id: str) -> None: ...


def _first(group: BaseExceptionGroup[TransferError]) -> TransferError:
    """The error to report from a failed set of parts: a real failure beats an interruption."""
    errors = list(_leaves(group))
    gone = next((e for e in errors if isinstance(e, UploadGone)), None)
    return gone or next((e for e in errors if not isinstance(e, Interrupted)), errors[0])


def _leaves(group: BaseExceptionGroup[TransferError]) -> Iterator[TransferError]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def describe(exc: BaseException) -> str:
    """An exception as a short phrase for a message a person reads."""
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
