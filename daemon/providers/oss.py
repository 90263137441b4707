"""Aliyun OSS, through oss2.

oss2 is synchronous, so every call runs on this provider's own thread pool (the default executor has only a
handful of threads on a small machine). Cancellation crosses into the worker thread through the source's stop
flag: the next read raises and the request dies.

Progress: http.client writes each block of a body to the socket in the thread that read it, so a connection
class of our own (mounted on oss2's session) tells the body this thread is sending which socket carries it,
and the body reports only what the store has acknowledged (``acked.py``).
CRC64 checking is on: every PUT, part and completed object is compared with the store's checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import oss2
import oss2.exceptions as ossx
import requests
import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..core.config import TransferSettings
from ..errors import TransferError, TransientStorageError
from ..files.sources import Source
from .acked import Body
from .base import ObjectStore, StoreReply, public_url, rule
from .inflight import InFlight
from .multipart import MultipartState, part_plan

if TYPE_CHECKING:
    from .oss_kind import OssProfile  # the provider is built from it; the kind imports this module

T = TypeVar("T")
# oss2 logs request headers (signatures included) at DEBUG; never let that reach a handler.
logging.getLogger("oss2").setLevel(logging.WARNING)


class OssProvider(ObjectStore):
    kind = "oss"

    errors = (
        rule("invalid_credentials", "{where} does not know the access key id of profile {name!r}. Check "
             "access_key_id.", "InvalidAccessKeyId"),
        rule("invalid_credentials", "{where} refused the signature: the access key secret of profile {name!r} is "
             "wrong. Check access_key_secret.", "SignatureDoesNotMatch"),
        rule("bucket_not_found", "Bucket {bucket!r} does not exist at {where}. Create it, or fix bucket in "
             "[profiles.{name}].", "NoSuchBucket"),
        rule("upload_gone", "", "NoSuchUpload"),
        rule("access_denied", "{where} denied access to bucket {bucket!r} for profile {name!r}: the key lacks "
             "permission (oss:PutObject is needed).", "AccessDenied", statuses=(403,)),
        rule("server_error", "{where} answered {status} {code}; it may be overloaded or restarting.",
             "RequestTimeout", "ServiceUnavailable", statuses=(429,), any_5xx=True, transient=True),
    )
    network_errors = (ossx.RequestError, requests.RequestException, ConnectionError, TimeoutError)

    def __init__(self, profile: OssProfile, transfers: TransferSettings, in_flight: InFlight | None = None) -> None:
        super().__init__(transfers, profile_name=profile.name, where=profile.endpoint, bucket=profile.bucket,
                         in_flight=in_flight)
        self.profile = profile
        auth = oss2.Auth(profile.access_key_id, profile.access_key_secret)
        size = max(transfers.slots, transfers.max_concurrent * transfers.part_concurrency)  # a connection per thread
        session = oss2.Session(adapter=_WatchedAdapter(pool_connections=size, pool_maxsize=size))
        self._bucket = oss2.Bucket(auth, profile.endpoint, profile.bucket, enable_crc=True,
                                   connect_timeout=transfers.connect_timeout_s, session=session)
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"oss-{profile.name}")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: Any, source: Source | None = None, **kwargs: Any) -> T:
        """Run an oss2 call on our pool. If the awaiting task is cancelled, stop the source's readers and wait
        for the thread to let go of the request before re-raising, so an abort never races a part."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            return await self.guarded(asyncio.shield(fut))
        except asyncio.CancelledError:
            if source is not None:
                source.stop.set()
            with contextlib.suppress(BaseException):  # the thread's outcome no longer matters
                await asyncio.wait_for(asyncio.shield(fut), timeout=self.transfers.read_timeout_s)
            raise

    # -- primitives --------------------------------------------------------------------------------------
    async def _put_object(self, key: str, body: Body, source: Source) -> None:
        await self._run(_sending, body, self._bucket.put_object, key, body,
                        headers={"Content-Type": source.content_type}, source=source)

    async def _create_multipart(self, key: str, source: Source) -> str:
        result = await self._run(self._bucket.init_multipart_upload, key,
                                 headers={"Content-Type": source.content_type})
        return str(result.upload_id)

    async def _list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        def list_all() -> dict[int, str]:
            return {p.part_number: p.etag for p in oss2.PartIterator(self._bucket, key, upload_id)}

        return await self._run(list_all)

    async def _upload_part(self, key: str, upload_id: str, number: int, body: Body,
                           source: Source) -> tuple[str, int | None]:
        result = await self._run(_sending, body, self._bucket.upload_part, key, upload_id, number, body,
                                 source=source)
        return str(result.etag), result.crc

    async def _complete(self, key: str, upload_id: str, parts: dict[int, str], state: MultipartState,
                        source: Source) -> None:
        sizes = {n: length for n, _, length in part_plan(source.size, state.part_size)}
        # With every part's CRC64 known, oss2 also checks the whole object's CRC against the store's.
        infos = [oss2.models.PartInfo(n, e, size=sizes[n], part_crc=state.checksums.get(n))
                 for n, e in sorted(parts.items())]
        await self._run(self._bucket.complete_multipart_upload, key, upload_id, infos)

    async def _abort(self, key: str, upload_id: str) -> None:
        await self._run(self._bucket.abort_multipart_upload, key, upload_id)

    # -- links and checks --------------------------------------------------------------------------------
    async def presign_put(self, key: str, content_type: str, expires_s: int) -> str | None:
        return str(await self._run(self._bucket.sign_url, "PUT", key, expires_s,
                                   headers={"Content-Type": content_type}, slash_safe=True))

    @property
    def link_lifetime(self) -> int | None:
        return None if self.profile.public_base_url else self.profile.presign_expires_s

    async def link(self, key: str) -> str:
        if self.profile.public_base_url:
            return public_url(self.profile.public_base_url, key)
        return str(await self._run(self._bucket.sign_url, "GET", key, self.profile.presign_expires_s,
                                   slash_safe=True))

    async def delete_object(self, key: str) -> None:
        await self._run(self._bucket.delete_object, key)

    async def stored_size(self, key: str) -> int | None:
        def head() -> int | None:
            try:
                return int(self._bucket.head_object(key).content_length)
            except (ossx.NoSuchKey, ossx.NotFound):
                return None

        return await self._run(head)

    async def check(self) -> str:
        def probe() -> None:
            next(iter(oss2.ObjectIterator(self._bucket, max_keys=1)), None)

        await self._run(probe)
        return f"bucket {self.profile.bucket!r} at {self.profile.endpoint} is reachable and the credentials work"

    # -- errors --------------------------------------------------------------------------------------------
    def reply_of(self, exc: BaseException) -> StoreReply | None:
        if not isinstance(exc, ossx.ServerError):
            return None
        return StoreReply(str(exc.code or ""), int(exc.status or 0), str(exc.message or ""))

    def special(self, exc: BaseException) -> TransferError | None:
        if isinstance(exc, ossx.InconsistentError):
            return TransientStorageError(f"{self.where} stored different bytes than were sent (CRC64 mismatch); "
                                         "resending.", code="checksum_mismatch")
        return None


# -- which socket carries the body a worker thread is sending ---------------------------------------------------
_local = threading.local()


def _sending(body: Body, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an oss2 call that sends ``body`` (on a worker thread), letting its connection find the body."""
    _local.body = body
    try:
        return fn(*args, **kwargs)
    finally:
        _local.body = None


class _Watched:
    """http.client sends a request's head, then each block of its body as soon as it has read it, in the calling
    thread. After each send, the body that thread is sending learns its socket (the first send connects) and
    that everything read so far is in that socket: a block being sent counts once it is all there."""

    sock: Any

    def send(self, data: Any) -> None:
        super().send(data)  # type: ignore[misc]
        body = getattr(_local, "body", None)
        if isinstance(body, Body) and self.sock is not None:
            body.on_wire(self.sock)
            body.sent_what_was_read()


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
