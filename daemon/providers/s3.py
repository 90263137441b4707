"""Any S3-compatible store, through aioboto3.

We drive ``create_multipart_upload`` / ``upload_part`` / ``complete_multipart_upload`` ourselves rather than
aioboto3's ``upload_file``: its callback fires once per finished part and any error aborts the whole upload,
where we want byte progress and per-part retry. botocore's own retries are off so that the attempt count and
the backoff are ours. Links are SigV4-presigned (the legacy signer's links are refused by rclone and newer AWS
regions) unless the profile has a ``public_base_url``.

PUTs and parts take the lean path (``s3_wire.py``: botocore's signer, pixlift's own connections), where each
body learns the socket that carries it and reports only what the store has acknowledged. When that path is
off (S3 Express, a store that redirects), the client sends them, with the body as a payload of our own
(``WiredBody``) that aiohttp writes with the connection's own writer, to the same effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aioboto3
import aiohttp
import botocore.exceptions as bce
from aiobotocore.config import AioConfig
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from ..core.config import TransferSettings
from ..errors import Interrupted, PermanentStorageError, TransferError
from ..files.sources import Source
from .acked import Body, held_by_transport
from .base import ObjectStore, StoreReply, public_url, rule
from .inflight import InFlight
from .multipart import MultipartState
from .s3_wire import Endpoint, Redirected, S3Wire, StoreRefused

if TYPE_CHECKING:
    from .s3_kind import S3Profile  # the provider is built from it; the kind imports this module

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
PROBE_KEY = "pixlift-endpoint-probe"


class S3Provider(ObjectStore):
    kind = "s3"
    digests = frozenset({"md5"})  # Content-MD5 of a small file, from the read that loads it
    part_digest = "md5"  # and of each part

    errors = (
        rule("invalid_credentials", "{where} does not know the access key id of profile {name!r}. Check "
             "access_key_id.", "InvalidAccessKeyId", "InvalidClientTokenId"),
        rule("invalid_credentials", "{where} refused the signature: the secret access key of profile {name!r} is "
             "wrong. Check secret_access_key.", "SignatureDoesNotMatch"),
        rule("bucket_not_found", "Bucket {bucket!r} does not exist at {where}. Create it, or fix bucket in "
             "[profiles.{name}].", "NoSuchBucket", "404", "NotFound"),
        rule("upload_gone", "", "NoSuchUpload"),
        rule("checksum_mismatch", "{where} received different bytes than were sent (Content-MD5 mismatch); "
             "sending them again.", "BadDigest", "InvalidDigest", transient=True),
        rule("access_denied", "{where} denied access to bucket {bucket!r} for profile {name!r}: the credentials "
             "work but lack permission (s3:PutObject and multipart actions are needed).",
             "AccessDenied", "AllAccessDisabled", "403", statuses=(403,)),
        rule("server_error", "{where} answered {status} {code}; it may be overloaded or restarting.",
             "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
             "InternalError", "ServiceUnavailable", "RequestTimeoutException", statuses=(429,),
             any_5xx=True, transient=True),
    )
    network_errors = (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ConnectTimeoutError,
                      bce.ReadTimeoutError, bce.HTTPClientError, aiohttp.ClientError, asyncio.TimeoutError,
                      ConnectionError)
    config_errors = (bce.ParamValidationError, ValueError)
    endpoint_key = "endpoint_url"

    def __init__(self, profile: S3Profile, transfers: TransferSettings, in_flight: InFlight | None = None) -> None:
        super().__init__(transfers, profile_name=profile.name, where=profile.endpoint_url or "AWS S3",
                         bucket=profile.bucket, in_flight=in_flight)
        self.profile = profile
        self._client: Any = None
        self._session: Any = None
        self._wire: S3Wire | None = None
        self._lean = not profile.bucket.endswith("--x-s3")  # S3 Express signs with sessions of its own
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    @property
    def connections(self) -> int:
        t = self.transfers
        return max(t.slots, t.max_concurrent * t.part_concurrency)

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                p = self.profile
                session = self._session = aioboto3.Session(aws_access_key_id=p.access_key_id,
                                           aws_secret_access_key=p.secret_access_key,
                                           aws_session_token=p.session_token, region_name=p.region)
                config = AioConfig(
                    signature_version="s3v4",
                    # Over plain http botocore would read and SHA-256 every body before sending it: progress would
                    # run ahead and snap back, and the hashing cost ~40% of the daemon's CPU on large files. Over
                    # https S3 payloads are unsigned anyway (TLS guards them); TCP checksums and ETags remain.
                    s3={"addressing_style": p.addressing_style, "payload_signing_enabled": False},
                    retries={"total_max_attempts": 1},
                    connect_timeout=self.transfers.connect_timeout_s,
                    read_timeout=self.transfers.read_timeout_s,
                    max_pool_connections=self.connections,
                    # Third-party S3 stores choke on aws-chunked trailing checksums; ETags still guard parts.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = await self.guarded(self._stack.enter_async_context(  # a bad region: ConfigError
                    session.client("s3", endpoint_url=p.endpoint_url, config=config)))
            return self._client

    async def wire(self) -> S3Wire | None:
        """The lean path for PUTs and parts (``s3_wire.py``), built once from the client; None when it is off."""
        if self._wire is None and self._lean:
            client = await self.client()
            async with self._lock:
                if self._wire is None:
                    url = await self.guarded(client.generate_presigned_url(
                        "put_object", Params={"Bucket": self.profile.bucket, "Key": PROBE_KEY}, ExpiresIn=60))
                    try:
                        endpoint = Endpoint.from_presigned(str(url), PROBE_KEY)
                    except (ValueError, KeyError, IndexError):
                        log.info("profile %r: the SDK's endpoint is not a plain URL; using the client for every "
                                 "request", self.profile_name)
                        self._lean = False
                        return None
                    t = self.transfers
                    self._wire = S3Wire(endpoint, self._session.get_credentials, connections=self.connections,
                                        connect_timeout_s=t.connect_timeout_s, read_timeout_s=t.read_timeout_s)
        return self._wire

    async def _lean_put(self, key: str, body: Body, headers: dict[str, str], query: str = "") -> str | None:
        """PUT on the lean path: the ETag, or None when that path is off (the caller then uses the client)."""
        wire = await self.wire()
        if wire is None:
            return None
        try:
            return await wire.put(key, body, headers, query)
        except Redirected as exc:
            log.info("%s redirects profile %r's requests (%s); using the client, which follows redirects",
                     self.where, self.profile_name, exc)
            self._lean = False
            return None
        except Exception as exc:
            raise self.translate(exc) from exc

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.close()
            self._wire = None
        await self._stack.aclose()
        self._client = None

    async def _call(self, op: str, **kwargs: Any) -> Any:
        client = await self.client()
        return await self.guarded(getattr(client, op)(Bucket=self.profile.bucket, **kwargs))

    # -- primitives --------------------------------------------------------------------------------------
    async def _put_object(self, key: str, body: Body, source: Source) -> None:
        # Content-MD5: over plain http the payload is unsigned, and this is what makes the store refuse bytes
        # damaged on the way (BadDigest: the part is sent again) instead of keeping them.
        md5 = body.md5_base64() if body.md5_known() else await asyncio.to_thread(body.md5_base64)
        if await self._lean_put(key, body, {"Content-Type": source.content_type, "Content-MD5": md5}) is None:
            await self._call("put_object", Key=key, Body=WiredBody(body), ContentLength=len(body),
                             ContentType=source.content_type, ContentMD5=md5)

    async def _create_multipart(self, key: str, source: Source) -> str:
        resp = await self._call("create_multipart_upload", Key=key, ContentType=source.content_type)
        return str(resp["UploadId"])

    async def _list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        parts: dict[int, str] = {}
        marker = 0
        while True:
            resp = await self._call("list_parts", Key=key, UploadId=upload_id, PartNumberMarker=marker)
            for part in resp.get("Parts", []):
                parts[int(part["PartNumber"])] = str(part["ETag"])
            if not resp.get("IsTruncated"):
                return parts
            marker = int(resp["NextPartNumberMarker"])

    async def _upload_part(self, key: str, upload_id: str, number: int, body: Body,
                           source: Source) -> tuple[str, int | None]:
        md5 = body.md5_base64() if body.md5_known() else await asyncio.to_thread(body.md5_base64)
        query = f"partNumber={number}&uploadId={quote(upload_id, safe='-_.~')}"
        etag = await self._lean_put(key, body, {"Content-MD5": md5}, query)
        if etag is None:
            resp = await self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=number,
                                    Body=WiredBody(body), ContentLength=len(body), ContentMD5=md5)
            etag = str(resp["ETag"])
        return etag, None

    async def _complete(self, key: str, upload_id: str, parts: dict[int, str], state: MultipartState,
                        source: Source) -> None:
        listed = [{"PartNumber": n, "ETag": e} for n, e in sorted(parts.items())]
        await self._call("complete_multipart_upload", Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})

    async def _abort(self, key: str, upload_id: str) -> None:
        await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    # -- links and checks --------------------------------------------------------------------------------
    async def presign_put(self, key: str, content_type: str, expires_s: int) -> str | None:
        client = await self.client()
        url = await self.guarded(client.generate_presigned_url(
            "put_object", Params={"Bucket": self.profile.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_s))
        return str(url)

    @property
    def link_lifetime(self) -> int | None:
        return None if self.profile.public_base_url else self.profile.presign_expires_s

    async def link(self, key: str) -> str:
        if self.profile.public_base_url:
            return public_url(self.profile.public_base_url, key)
        wire = await self.wire()
        if wire is not None:
            return await self.guarded(wire.presign_get(key, self.profile.presign_expires_s))
        client = await self.client()
        url = await self.guarded(client.generate_presigned_url(
            "get_object", Params={"Bucket": self.profile.bucket, "Key": key}, ExpiresIn=self.profile.presign_expires_s))
        return str(url)

    async def delete_object(self, key: str) -> None:
        await self._call("delete_object", Key=key)

    async def stored_size(self, key: str) -> int | None:
        client = await self.client()
        try:
            head = await client.head_object(Bucket=self.profile.bucket, Key=key)
        except bce.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self.translate(exc) from exc
        except Exception as exc:
            raise self.translate(exc) from exc
        return int(head["ContentLength"])

    async def check(self) -> str:
        await self._call("list_objects_v2", MaxKeys=1)
        return f"bucket {self.profile.bucket!r} at {self.where} is reachable and the credentials work"

    # -- errors --------------------------------------------------------------------------------------------
    def reply_of(self, exc: BaseException) -> StoreReply | None:
        if isinstance(exc, StoreRefused):
            return exc.reply
        if not isinstance(exc, bce.ClientError):
            return None
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return StoreReply(str(err.get("Code", "")), status, str(err.get("Message", "") or ""))

    def special(self, exc: BaseException) -> TransferError | None:
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            name = self.profile_name
            return PermanentStorageError(
                f"No S3 credentials for profile {name!r}: set access_key_id and secret_access_key in "
                f"[profiles.{name}], or configure the AWS credential chain (AWS_ACCESS_KEY_ID, ~/.aws/credentials).",
                code="no_credentials")
        return None


class WiredBody(Payload):
    """A body aiohttp writes straight onto its connection, so that the body can watch the connection's socket.

    botocore takes it for a stream (it has ``read``), and aiobotocore hands anything that is not an ``io.IOBase``
    to aiohttp untouched; aiohttp then calls ``write_with_length`` with the connection's writer (again, from
    the first byte, if it resends the request on a fresh connection). Bytes count as written the moment they
    enter the transport: from then on the transport's buffer or the socket holds them until the store has them.
    """

    def __init__(self, body: Body) -> None:
        super().__init__(body)
        self._body = body
        self._size = self._length = len(body)
        self._written = 0
        body.counts_writes(lambda: self._written)

    # what botocore looks at
    def read(self, n: int = -1) -> bytes:
        return self._body.read(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._body.seek(pos, whence)

    def tell(self) -> int:
        return self._body.tell()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file's bytes are not text")

    # what aiohttp calls
    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        transport = getattr(writer, "transport", None)
        if transport is not None:
            self._body.on_wire(transport.get_extra_info("socket"), functools.partial(held_by_transport, transport))
        self._body.seek(0)
        self._written = 0
        end = self._length if content_length is None else min(content_length, self._length)
        view = self._body.view()
        if view is not None:  # a small file, in memory: one write, and the transport holds what the socket cannot
            if self._body.stopped():
                raise Interrupted("upload interrupted")
            self._written = end
            await writer.write(view[:end])
            return
        loop = asyncio.get_running_loop()
        while self._written < end:
            chunk = await loop.run_in_executor(None, self._body.read, min(CHUNK, end - self._written))
            self._written += len(chunk)  # no await before the write puts it in the transport
            await writer.write(chunk)
