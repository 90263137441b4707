"""Aliyun OSS, through oss2.

oss2 is synchronous, so every call runs on this provider's own thread pool (the default executor has only a
handful of threads on a small machine). Bytes are counted by our reader as oss2 pulls them, and cancellation
crosses into the worker thread through the source's stop flag: the next read raises and the request dies.
CRC64 checking is on: every PUT, part and completed object is compared with the store's checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import oss2
import oss2.exceptions as ossx
import requests

from ..config import OssProfile, TransferSettings
from ..errors import (
    ConfigError,
    Interrupted,
    PermanentStorageError,
    SourceError,
    TransferError,
    TransientStorageError,
)
from ..sources import SliceReader, Source
from .base import MultipartState, ObjectStore, UploadGone, describe, part_plan, public_url

T = TypeVar("T")
# oss2 logs request headers (signatures included) at DEBUG; never let that reach a handler.
logging.getLogger("oss2").setLevel(logging.WARNING)


class OssProvider(ObjectStore):
    kind = "oss"

    def __init__(self, profile: OssProfile, transfers: TransferSettings) -> None:
        super().__init__(transfers)
        self.profile = profile
        auth = oss2.Auth(profile.access_key_id, profile.access_key_secret)
        self._bucket = oss2.Bucket(auth, profile.endpoint, profile.bucket, enable_crc=True,
                                   connect_timeout=transfers.connect_timeout_s, session=oss2.Session())
        self._pool = ThreadPoolExecutor(max_workers=max(8, transfers.max_concurrent * transfers.part_concurrency),
                                        thread_name_prefix=f"oss-{profile.name}")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: Any, source: Source | None = None, **kwargs: Any) -> T:
        """Run an oss2 call on our pool. If the awaiting task is cancelled, stop the source's readers and wait
        for the thread to let go of the request before re-raising, so an abort never races a part."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if source is not None:
                source.stop.set()
            with contextlib.suppress(BaseException):  # the thread's outcome no longer matters
                await asyncio.wait_for(asyncio.shield(fut), timeout=self.transfers.read_timeout_s)
            raise
        except TransferError:
            raise
        except Exception as exc:
            raise self.translate(exc) from exc

    # -- primitives --------------------------------------------------------------------------------------
    async def _put_object(self, key: str, body: SliceReader, source: Source) -> None:
        await self._run(self._bucket.put_object, key, body, headers={"Content-Type": source.content_type},
                        source=source)

    async def _create_multipart(self, key: str, source: Source) -> str:
        result = await self._run(self._bucket.init_multipart_upload, key,
                                 headers={"Content-Type": source.content_type})
        return str(result.upload_id)

    async def _list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        def list_all() -> dict[int, str]:
            return {p.part_number: p.etag for p in oss2.PartIterator(self._bucket, key, upload_id)}

        return await self._run(list_all)

    async def _upload_part(self, key: str, upload_id: str, number: int, body: SliceReader,
                           source: Source) -> tuple[str, int | None]:
        result = await self._run(self._bucket.upload_part, key, upload_id, number, body, source=source)
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
    async def link(self, key: str) -> str:
        if self.profile.public_base_url:
            return public_url(self.profile.public_base_url, key)
        return str(await self._run(self._bucket.sign_url, "GET", key, self.profile.presign_expires_s,
                                   slash_safe=True))

    async def check(self) -> str:
        def probe() -> None:
            next(iter(oss2.ObjectIterator(self._bucket, max_keys=1)), None)

        await self._run(probe)
        return f"bucket {self.profile.bucket!r} at {self.profile.endpoint} is reachable and the credentials work"

    # -- errors --------------------------------------------------------------------------------------------
    def translate(self, exc: BaseException) -> TransferError | ConfigError:
        name, where, bucket = self.profile.name, self.profile.endpoint, self.profile.bucket
        for cur in _chain(exc):
            if isinstance(cur, SourceError | Interrupted):
                return cur
        if isinstance(exc, ossx.InconsistentError):
            return TransientStorageError(f"{where} stored different bytes than were sent (CRC64 mismatch); "
                                         "resending.", code="checksum_mismatch")
        if isinstance(exc, ossx.RequestError):
            return TransientStorageError(f"Could not reach {where} ({describe(exc.exception)}). Check the network "
                                         "and endpoint.", code="network_error")
        if isinstance(exc, ossx.ServerError):
            code, status = str(exc.code or ""), int(exc.status or 0)
            if code == "InvalidAccessKeyId":
                return PermanentStorageError(f"{where} does not know the access key id of profile {name!r}. "
                                             "Check access_key_id.", code="invalid_credentials")
            if code == "SignatureDoesNotMatch":
                return PermanentStorageError(f"{where} refused the signature: the access key secret of profile "
                                             f"{name!r} is wrong. Check access_key_secret.",
                                             code="invalid_credentials")
            if code == "NoSuchBucket":
                return PermanentStorageError(f"Bucket {bucket!r} does not exist at {where}. Create it, or fix "
                                             f"bucket in [profiles.{name}].", code="bucket_not_found")
            if code == "NoSuchUpload":
                return UploadGone()
            if code == "AccessDenied" or status == 403:
                return PermanentStorageError(f"{where} denied access to bucket {bucket!r} for profile {name!r}: "
                                             "the key lacks permission (oss:PutObject is needed).",
                                             code="access_denied")
            if status >= 500 or status == 429 or code in ("RequestTimeout", "ServiceUnavailable"):
                return TransientStorageError(f"{where} answered {status} {code}; it may be overloaded or "
                                             "restarting.", code="server_error")
            return PermanentStorageError(f"{where} refused the request: {code} {exc.message}".strip(),
                                         code="rejected")
        if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError):
            return TransientStorageError(f"Could not reach {where} ({describe(exc)}).", code="network_error")
        if isinstance(exc, ValueError):
            return ConfigError(f"Profile {name!r} is not usable: {describe(exc)}")
        return TransientStorageError(f"Unexpected error talking to {where}: {describe(exc)}", code="network_error")


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < 10:
        out.append(cur)
        inner = getattr(cur, "exception", None)  # oss2.RequestError keeps the requests exception here
        cur = cur.__cause__ or cur.__context__ or (inner if isinstance(inner, BaseException) else None)
    return out

