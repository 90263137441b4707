"""Any S3-compatible store, through aioboto3.

We drive ``create_multipart_upload`` / ``upload_part`` / ``complete_multipart_upload`` ourselves rather than
aioboto3's ``upload_file``: its callback fires once per finished part and any error aborts the whole upload,
where we want byte progress and per-part retry. botocore's own retries are off so that the attempt count and
the backoff are ours. Links are SigV4-presigned (the legacy signer's links are refused by rclone and newer AWS
regions) unless the profile has a ``public_base_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aioboto3
import aiohttp
import botocore.exceptions as bce
from aiobotocore.config import AioConfig

from ..config import S3Profile, TransferSettings
from ..errors import (
    ConfigError,
    Interrupted,
    PermanentStorageError,
    SourceError,
    TransferError,
    TransientStorageError,
)
from ..sources import SliceReader, Source
from .base import MultipartState, ObjectStore, UploadGone, describe, public_url

_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                    "InternalError", "ServiceUnavailable", "RequestTimeoutException", "BadDigest"}


class S3Provider(ObjectStore):
    kind = "s3"

    def __init__(self, profile: S3Profile, transfers: TransferSettings) -> None:
        super().__init__(transfers)
        self.profile = profile
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    @property
    def _where(self) -> str:
        return self.profile.endpoint_url or "AWS S3"

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                p = self.profile
                session = aioboto3.Session(aws_access_key_id=p.access_key_id,
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
                    max_pool_connections=max(16, self.transfers.max_concurrent * self.transfers.part_concurrency),
                    # Third-party S3 stores choke on aws-chunked trailing checksums; ETags still guard parts.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = await self._stack.enter_async_context(
                    session.client("s3", endpoint_url=p.endpoint_url, config=config))
            return self._client

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def _call(self, op: str, **kwargs: Any) -> Any:
        client = await self.client()
        try:
            return await getattr(client, op)(Bucket=self.profile.bucket, **kwargs)
        except TransferError:
            raise
        except Exception as exc:
            raise self.translate(exc) from exc

    # -- primitives --------------------------------------------------------------------------------------
    async def _put_object(self, key: str, body: SliceReader, source: Source) -> None:
        await self._call("put_object", Key=key, Body=body, ContentLength=len(body), ContentType=source.content_type)

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

    async def _upload_part(self, key: str, upload_id: str, number: int, body: SliceReader,
                           source: Source) -> tuple[str, int | None]:
        resp = await self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=number, Body=body,
                                ContentLength=len(body))
        return str(resp["ETag"]), None

    async def _complete(self, key: str, upload_id: str, parts: dict[int, str], state: MultipartState,
                        source: Source) -> None:
        listed = [{"PartNumber": n, "ETag": e} for n, e in sorted(parts.items())]
        await self._call("complete_multipart_upload", Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})

    async def _abort(self, key: str, upload_id: str) -> None:
        await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    # -- links and checks --------------------------------------------------------------------------------
    async def link(self, key: str) -> str:
        if self.profile.public_base_url:
            return public_url(self.profile.public_base_url, key)
        client = await self.client()
        try:
            url = await client.generate_presigned_url(
                "get_object", Params={"Bucket": self.profile.bucket, "Key": key},
                ExpiresIn=self.profile.presign_expires_s)
        except Exception as exc:
            raise self.translate(exc) from exc
        return str(url)

    async def check(self) -> str:
        await self._call("list_objects_v2", MaxKeys=1)
        return f"bucket {self.profile.bucket!r} at {self._where} is reachable and the credentials work"

    # -- errors --------------------------------------------------------------------------------------------
    def translate(self, exc: BaseException) -> TransferError | ConfigError:
        """Turn a botocore/aiohttp exception into an error that says what to fix."""
        name, where, bucket = self.profile.name, self._where, self.profile.bucket
        cause = _find_cause(exc, (SourceError, Interrupted))
        if cause is not None:
            return cause
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return PermanentStorageError(
                f"No S3 credentials for profile {name!r}: set access_key_id and secret_access_key in "
                "[profiles.%s], or configure the AWS credential chain (AWS_ACCESS_KEY_ID, ~/.aws/credentials)."
                % name, code="no_credentials")
        if isinstance(exc, bce.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            msg = str(err.get("Message", "") or "")
            if code in ("InvalidAccessKeyId", "InvalidClientTokenId"):
                return PermanentStorageError(
                    f"{where} does not know the access key id of profile {name!r}. Check access_key_id.",
                    code="invalid_credentials")
            if code == "SignatureDoesNotMatch":
                return PermanentStorageError(
                    f"{where} refused the signature: the secret access key of profile {name!r} is wrong. "
                    "Check secret_access_key.", code="invalid_credentials")
            if code == "NoSuchBucket" or (status == 404 and code in ("404", "NotFound")):
                return PermanentStorageError(
                    f"Bucket {bucket!r} does not exist at {where}. Create it, or fix bucket in [profiles.{name}].",
                    code="bucket_not_found")
            if code == "NoSuchUpload":
                return UploadGone()
            if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
                return PermanentStorageError(
                    f"{where} denied access to bucket {bucket!r} for profile {name!r}: the credentials work but "
                    "lack permission (s3:PutObject and multipart actions are needed).", code="access_denied")
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return TransientStorageError(f"{where} answered {status} {code or ''}".strip() + "; it may be "
                                             "overloaded or restarting.", code="server_error")
            return PermanentStorageError(f"{where} refused the request: {code} {msg}".strip(), code="rejected")
        if isinstance(exc, bce.EndpointConnectionError | bce.ConnectionClosedError | bce.ConnectTimeoutError |
                      bce.ReadTimeoutError | bce.HTTPClientError | aiohttp.ClientError | asyncio.TimeoutError |
                      ConnectionError):
            return TransientStorageError(f"Could not reach {where} ({describe(exc)}). Check the network and "
                                         "endpoint_url.", code="network_error")
        if isinstance(exc, bce.ParamValidationError | ValueError):
            return ConfigError(f"Profile {name!r} is not usable: {describe(exc)}")
        return TransientStorageError(f"Unexpected error talking to {where}: {describe(exc)}", code="network_error")


def _find_cause(exc: BaseException, kind: tuple[type[TransferError], ...]) -> TransferError | None:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, kind):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None

