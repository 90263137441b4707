"""Any S3-compatible store, through aioboto3.

We drive ``create_multipart_upload`` / ``upload_part`` / ``complete_multipart_upload`` ourselves rather than
aioboto3's ``upload_file``: its callback fires once per finished part and any error aborts the whole upload,
where we want byte progress and per-part retry. botocore's own retries are off so that the attempt count and
the backoff are ours. Links are SigV4-presigned (the legacy signer's links are refused by rclone and newer AWS
regions) unless the profile has a ``public_base_url``.

PUTs and parts take the lean path (``s3_wire.py``: botocore's signer, pixlift's own connections), where each
body learns the socket that carries it and reports only what the store has acknowledged. When that path is
off (S3 Express, an https:// proxy, a store that redirects elsewhere), the client sends them, with the body as
a payload of our own (``WiredBody``) that aiohttp writes with the connection's own writer, to the same effect.

Both paths cross the same network: the proxies and certificate authorities botocore decides for the client
(``network.py``). Before the first body, the lean path HEADs the bucket: that learns the bucket's region (a
bucket in another region than the profile says is then signed for its own, and remembered), and it is also
what ``pixlift config check`` does, so the check goes the way the uploads go.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aioboto3
import aiohttp
import botocore.exceptions as bce
from aiobotocore.config import AioConfig

from ..core.config import TransferSettings
from ..errors import ConfigError, PermanentStorageError, TransferError
from ..files.sources import Source
from .acked import Body
from .base import ObjectStore, StoreReply, UploadGone, public_url
from .inflight import InFlight
from .multipart import MultipartState
from .network import AWS, Network, NetworkSession, client_args, shown, tls_context, trust_of
from .s3_body import WiredBody
from .s3_errors import S3_ERRORS, reply_of, special
from .s3_wire import Endpoint, Redirected, S3Wire, StoreRefused, WrongRegion, region_named

if TYPE_CHECKING:
    from .s3_kind import S3Profile  # the provider is built from it; the kind imports this module

log = logging.getLogger(__name__)

PROBE_KEY = "pixlift-endpoint-probe"
# (endpoint_url, bucket) -> the region the store said the bucket is in: learned once, for every provider the
# daemon builds for that bucket (a profile saved again, a check), for as long as it runs.
REGIONS: dict[tuple[str | None, str], str] = {}


class S3Provider(ObjectStore):
    kind = "s3"
    digests = frozenset({"md5"})  # Content-MD5 of a small file, from the read that loads it
    part_digest = "md5"  # and of each part

    errors = S3_ERRORS
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
        self.network: Network | None = None  # what botocore decided for the client, once it is built
        self.region = REGIONS.get((profile.endpoint_url, profile.bucket), profile.region)
        self._probed = False  # the lean path has asked the store where the bucket is
        self._retired: list[Any] = []  # clients and wires of a region left behind: closed with the provider

    @property
    def connections(self) -> int:
        t = self.transfers
        return max(t.slots, t.max_concurrent * t.part_concurrency)

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                await self._open_client()
            return self._client

    async def _open_client(self) -> None:
        """Build the client for ``self.region`` (the lock is held)."""
        p = self.profile
        session = self._session = aioboto3.Session(aws_access_key_id=p.access_key_id,
                                                   aws_secret_access_key=p.secret_access_key,
                                                   aws_session_token=p.session_token, region_name=self.region)
        proxies, verify = client_args(p)
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
            proxies=proxies,  # None: botocore reads HTTP(S)_PROXY and NO_PROXY
            http_session_cls=functools.partial(NetworkSession, decided=self._decided),
        )
        self._client = await self.guarded(self._stack.enter_async_context(  # a bad region: ConfigError
            session.client("s3", endpoint_url=p.endpoint_url, verify=verify, config=config)))

    def _decided(self, proxies: dict[str, str], verify: bool | str) -> Any:
        """botocore's decisions for the client being built, kept for the lean path; the one TLS context."""
        try:
            tls = tls_context(verify)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Profile {self.profile_name!r}: the certificate authorities in {verify} cannot be "
                              f"read ({exc}); they come from {trust_of(self.profile, verify)}.") from exc
        self.network = Network(self.profile_name, proxies, verify, trust_of(self.profile, verify), tls)
        return tls

    async def wire(self) -> S3Wire | None:
        """The lean path for PUTs and parts (``s3_wire.py``), built once from the client; None when it is off."""
        wire = self._wire
        if wire is None and self._lean:
            wire = await self._build_wire()
        return wire if self._lean else None

    async def _build_wire(self) -> S3Wire | None:
        client = await self.client()
        async with self._lock:
            if self._wire is None and self._lean:
                wire = await self._make_wire(self._client or client)
                if wire is not None and not self._probed:
                    region = await self._probe(wire)
                    if region is not None:
                        await wire.close()
                        await self._relocate(region)
                        wire = await self._make_wire(self._client)
                self._wire = wire
        return self._wire

    async def _make_wire(self, client: Any) -> S3Wire | None:
        url = await self.guarded(client.generate_presigned_url(
            "put_object", Params={"Bucket": self.profile.bucket, "Key": PROBE_KEY}, ExpiresIn=60))
        try:
            endpoint = Endpoint.from_presigned(str(url), PROBE_KEY)
        except (ValueError, KeyError, IndexError):
            log.info("profile %r: the SDK's endpoint is not a plain URL; using the client for every request",
                     self.profile_name)
            self._lean = False
            return None
        net = self.network
        proxy = net.proxy_for(endpoint.base) if net is not None else None
        if proxy is not None:
            log.info("profile %r: %s goes through the proxy %s", self.profile_name, endpoint.base, proxy.shown)
            if proxy.scheme != "http":  # TLS to the proxy, and TLS inside it: the client's path does that
                self._lean = False
                return None
        t = self.transfers
        return S3Wire(endpoint, self._session.get_credentials, connections=self.connections,
                      connect_timeout_s=t.connect_timeout_s, read_timeout_s=t.read_timeout_s,
                      tls=net.tls if net is not None else True, proxy=proxy)

    async def _probe(self, wire: S3Wire) -> str | None:
        """HEAD the bucket: the region the store names if not the one signed for (refusals are left to uploads)."""
        try:
            answer = await wire.head_bucket()
        except Exception as exc:
            raise self.translate(exc) from exc
        self._probed = True
        named = region_named(answer)
        return named if named and named != wire.endpoint.region else None

    async def _relocate(self, region: str) -> None:
        """Sign for ``region``: a new client and wire; the old ones stay open for requests on them (lock held)."""
        log.info("%s says bucket %r is in region %s, not %s as profile %r has it; signing for %s",
                 self.where, self.profile.bucket, region, self.region or "(none set)", self.profile_name, region)
        REGIONS[(self.profile.endpoint_url, self.profile.bucket)] = region
        self.region = region
        if self._wire is not None:
            self._retired.append(self._wire)
            self._wire = None
        if self._client is not None:
            self._retired.append(self._stack)
            self._stack = contextlib.AsyncExitStack()
            self._client = None
        await self._open_client()

    @property
    def region_note(self) -> str | None:
        """Says when the profile's region is not the bucket's (pixlift signs for the bucket's all the same)."""
        if not self.region or self.profile.region == self.region:
            return None
        return (f"bucket {self.profile.bucket!r} is in region {self.region}, not {self.profile.region or 'the default'}"
                f': set region = "{self.region}" in [profiles.{self.profile_name}] (uploads sign for it meanwhile)')

    async def _lean_put(self, key: str, body: Body, headers: dict[str, str], query: str = "",
                        md5: Awaitable[str] | None = None) -> str | None:
        """PUT on the lean path: the ETag, or None when that path is off (the caller then uses the client)."""
        for _ in range(2):
            wire = await self.wire()
            if wire is None:
                return None
            try:
                return await wire.put(key, body, headers, query, md5)
            except WrongRegion as exc:  # the HEAD before the first body said otherwise: a bucket that moved
                async with self._lock:
                    if exc.region != self.region:
                        await self._relocate(exc.region)
            except Redirected as exc:
                log.info("%s redirects profile %r's requests (%s); using the client, which follows redirects",
                         self.where, self.profile_name, exc)
                self._lean = False
                return None
            except Exception as exc:
                raise self.translate(exc) from exc
        raise PermanentStorageError(f"{self.where} keeps naming another region for {self.bucket!r}.", code="rejected")

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.close()
            self._wire = None
        for old in self._retired:
            await old.close() if isinstance(old, S3Wire) else await old.aclose()
        self._retired.clear()
        await self._stack.aclose()
        self._client = None

    async def _bucket_client(self) -> Any:
        """The client, once the lean path has learned the bucket's region: requests and links signed for it."""
        if self._lean and not self._probed:
            await self.wire()
        return await self.client()

    async def _call(self, op: str, **kwargs: Any) -> Any:
        client = await self._bucket_client()
        return await self.guarded(getattr(client, op)(Bucket=self.profile.bucket, **kwargs))

    # -- primitives --------------------------------------------------------------------------------------
    async def _put_object(self, key: str, body: Body, source: Source) -> None:
        # Content-MD5: over plain http the payload is unsigned, and this is what makes the store refuse bytes
        # damaged on the way (BadDigest: the part is sent again) instead of keeping them.
        md5 = await _md5(body)
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
        # A part carries no Content-MD5 on the lean path: its MD5 is taken on a thread while the part goes, and
        # the ETag the store answers must be that MD5 (s3_wire.py), or the part goes again. The store then hashes
        # each part once, not twice (rclone's CPU per GiB: 1.8 s less). A part is not in the object until it is
        # completed with its ETag, so a damaged one is never seen. A store that will not replace a part it holds
        # (rclone: 501 NotImplemented) has its upload aborted, and the file starts again (UploadGone).
        query = f"partNumber={number}&uploadId={quote(upload_id, safe='-_.~')}"
        wire = await self.wire()
        if wire is not None and wire.etag_checks:
            md5 = asyncio.ensure_future(_md5(body))
            try:
                etag = await self._lean_put(key, body, {}, query, md5)
            except TransferError as exc:
                if isinstance(exc.__cause__, StoreRefused) and exc.__cause__.reply.code == "NotImplemented":
                    with contextlib.suppress(TransferError):
                        await self._abort(key, upload_id)
                    raise UploadGone() from None
                raise
            finally:
                md5.cancel()
            if etag is not None:
                return etag, None
        md5_b64 = await _md5(body)
        etag = await self._lean_put(key, body, {"Content-MD5": md5_b64}, query)
        if etag is None:
            resp = await self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=number,
                                    Body=WiredBody(body), ContentLength=len(body), ContentMD5=md5_b64)
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
        client = await self._bucket_client()
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
        client = await self._bucket_client()
        url = await self.guarded(client.generate_presigned_url(
            "get_object", Params={"Bucket": self.profile.bucket, "Key": key}, ExpiresIn=self.profile.presign_expires_s))
        return str(url)

    async def delete_object(self, key: str) -> None:
        await self._call("delete_object", Key=key)

    async def stored_size(self, key: str) -> int | None:
        client = await self._bucket_client()
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
        """The way uploads go: the lean path's HEAD of the bucket (proxy, certificates, region), then a listing
        through the client."""
        await self.wire()
        await self._call("list_objects_v2", MaxKeys=1)
        proxy = self.network.proxy_url(self.profile.endpoint_url or AWS) if self.network else None
        via = f" through the proxy {shown(proxy)}" if proxy else ""
        message = f"bucket {self.profile.bucket!r} at {self.where} is reachable{via} and the credentials work"
        note = self.region_note
        return f"{message}; but {note}" if note else message

    # -- errors (s3_errors.py) -----------------------------------------------------------------------------
    def reply_of(self, exc: BaseException) -> StoreReply | None:
        return reply_of(exc)

    def special(self, exc: BaseException) -> TransferError | ConfigError | None:
        return special(exc, self.where, self.profile_name, self.network, self.profile.endpoint_url or AWS)


async def _md5(body: Body) -> str:
    """The body's MD5 for Content-MD5 (base64): known already, or taken on a worker thread."""
    return body.md5_base64() if body.md5_known() else await asyncio.to_thread(body.md5_base64)
