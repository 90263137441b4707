"""A small Aliyun-OSS-protocol server for the test suite (no OSS emulator exists).

It speaks enough of OSS for ``oss2`` to work against it unmodified: path-style (and virtual-host
style) addressing, V1 header signatures, V1 presigned URLs, V4 (``OSS4-HMAC-SHA256``) headers,
put/get/head/delete, multipart uploads, ListObjects, ListMultipartUploads and GetBucketInfo.
Signatures are verified, replies carry ``x-oss-hash-crc64ecma`` so oss2's CRC checks run, and a few
attributes let tests inject faults. Objects live as plain files under ``root/<bucket>/<key>``.

Run standalone: ``python tests/ossserver.py --port 9000 --root DIR --ak AK --sk SK --bucket test``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import calendar
import contextlib
import hashlib
import hmac
import os
import pathlib
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import crcmod  # type: ignore[import-untyped]
from aiohttp import web

CHUNK = 64 * 1024
MAX_SKEW_S = 15 * 60
MIN_PART_SIZE = 100 * 1024
STORED_HEADERS = ("Content-Type", "Cache-Control", "Content-Disposition", "Content-Encoding", "Expires")
# Query parameters that a V1 signature covers (copied from oss2 2.19 auth.ProviderAuth._subresource_key_set);
# every other query parameter (prefix, marker, max-keys, encoding-type, ...) is unsigned.
SUBRESOURCES = frozenset([
    "accessPoint", "accessPointPolicy", "acl", "append", "asyncFetch", "bucketArchiveDirectRead",
    "bucketInfo", "callback", "callback-var", "cname", "comp", "continuation-token", "cors", "delete",
    "encryption", "endTime", "group", "httpsConfig", "inventory", "inventoryId", "lifecycle", "link",
    "live", "location", "logging", "metaQuery", "objectInfo", "objectMeta", "partNumber", "policy",
    "position", "publicAccessBlock", "qos", "qosInfo", "qosRequester", "redundancyTransition", "referer",
    "regionList", "replication", "replicationLocation", "replicationProgress", "requesterQosInfo",
    "requestPayment", "resourceGroup", "resourcePool", "resourcePoolBuckets", "resourcePoolInfo",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "restore", "security-token",
    "sequential", "startTime", "stat", "status", "style", "styleName", "symlink", "tagging",
    "transferAcceleration", "uploadId", "uploads", "versionId", "versioning", "versions", "vod", "website",
    "worm", "wormExtend", "wormId", "x-oss-ac-forward-allow", "x-oss-ac-source-ip", "x-oss-ac-subnet-mask",
    "x-oss-ac-vpc-id", "x-oss-access-point-name", "x-oss-async-process", "x-oss-process",
    "x-oss-redundancy-transition-taskid", "x-oss-request-payer", "x-oss-target-redundancy-type",
    "x-oss-traffic-limit", "x-oss-write-get-object-response",
])
# aiohttp >= 3.13 wants typed request-storage keys; older releases only have plain strings.
REQUEST_ID: Any = web.RequestKey("request_id", str) if hasattr(web, "RequestKey") else "request_id"
RESPONSE_OVERRIDES = {f"response-{h.lower()}": h for h in (*STORED_HEADERS, "Content-Language")}


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message or code


class _Dropped(Exception):
    """The connection was aborted on purpose (die_after_bytes)."""


def _crc64() -> Any:
    # Same parameters as oss2.utils.Crc64 (CRC-64/ECMA-182, reflected, as OSS reports it).
    return crcmod.Crc(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


def _iso8601(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _v4_quote(text: str, keep_slash: bool) -> str:
    return quote(text, safe="/~" if keep_slash else "~")


def _xml(tag: str, children: Iterable[tuple[str, Any]]) -> bytes:
    """Build ``<tag>...</tag>``; a child value may be a scalar, None (omitted) or a nested list."""

    def add(parent: ElementTree.Element, items: Iterable[tuple[str, Any]]) -> None:
        for name, value in items:
            if value is None:
                continue
            child = ElementTree.SubElement(parent, name)
            if isinstance(value, list):
                add(child, value)
            else:
                child.text = str(value).lower() if isinstance(value, bool) else str(value)

    root = ElementTree.Element(tag)
    add(root, children)
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


@dataclass
class ObjectMeta:
    size: int
    etag: str  # quoted, as sent in the ETag header
    crc: int
    mtime: float
    headers: dict[str, str]  # Content-Type, Cache-Control, ... and x-oss-meta-*
    multipart: bool = False


@dataclass
class Part:
    size: int
    md5: bytes
    crc: int
    mtime: float

    @property
    def etag(self) -> str:
        return f'"{self.md5.hex().upper()}"'


@dataclass
class Upload:
    bucket: str
    key: str
    upload_id: str
    initiated: float
    headers: dict[str, str]
    parts: dict[int, Part] = field(default_factory=dict)


class OssServer:
    def __init__(
        self,
        root: pathlib.Path,
        access_key_id: str,
        access_key_secret: str,
        buckets: Iterable[str] = ("test",),
        *,
        public_read_buckets: Iterable[str] = (),
        region: str = "cn-hangzhou",
    ) -> None:
        self.root = pathlib.Path(root)
        self.access_key_id, self.access_key_secret = access_key_id, access_key_secret
        self.buckets = list(buckets)
        self.public_read_buckets = set(public_read_buckets)
        self.region = region
        # Fault injection; plain attributes so another thread may set them.
        self.fail_next = 0  # the next N object/part PUTs answer 503 ServiceUnavailable
        self.die_after_bytes: int | None = None  # byte budget across PUT bodies; when exceeded the
        # connection is aborted mid-body and the attribute resets to None (one shot)
        self.put_delay_s = 0.0  # sleep this long per 64 KiB of PUT body received
        self.corrupt_crc_next = 0  # the next N replies carrying a CRC64 send a wrong one
        self.requests: list[tuple[str, str, str]] = []  # (method, path, query) of every request
        self.port = 0
        self.endpoint = ""
        self._meta: dict[tuple[str, str], ObjectMeta] = {}
        self._uploads: dict[str, Upload] = {}
        self._runner: web.AppRunner | None = None
        self._created = time.time()
        for name in (*self.buckets, ".tmp", ".uploads"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- lifecycle and test helpers
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._stamp)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        self.endpoint = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def objects(self, bucket: str) -> dict[str, pathlib.Path]:
        """Every stored object of ``bucket``: key -> path of the file holding its bytes."""
        base = self.root / bucket
        return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*")) if p.is_file()}

    def pending_uploads(self, bucket: str) -> list[str]:
        return [u.upload_id for u in list(self._uploads.values()) if u.bucket == bucket]

    # ---------------------------------------------------------------- request plumbing
    @staticmethod
    async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-oss-request-id"] = request[REQUEST_ID]
        response.headers["Server"] = "AliyunOSS"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.query_string))
        request_id = request[REQUEST_ID] = uuid.uuid4().hex[:24].upper()
        try:
            bucket, key = self._locate(request)
            self._authenticate(request, bucket, key)
            resp = await self._dispatch(request, bucket, key)
        except _Dropped:
            return web.Response(status=499)  # never reaches the client: the transport is gone
        except OssError as e:
            body = _xml("Error", [("Code", e.code), ("Message", e.message), ("RequestId", request_id),
                                  ("HostId", request.host)])
            if request.method == "HEAD":  # no body on HEAD: OSS puts the error XML in x-oss-err
                resp = web.Response(status=e.status, headers={"x-oss-err": base64.b64encode(body).decode()})
            else:
                resp = web.Response(status=e.status, body=body, content_type="application/xml")
            if request.can_read_body and not request.content.at_eof():
                await self._drain(request)
        return resp

    def _locate(self, request: web.Request) -> tuple[str | None, str]:
        """Bucket and (decoded) key of a path-style or virtual-host-style request."""
        raw = request.rel_url.raw_path.lstrip("/")
        hostname = request.host.rsplit(":", 1)[0]
        label = hostname.split(".", 1)[0]
        if "." in hostname and label in self.buckets and not hostname.replace(".", "").isdigit():
            bucket: str | None = label
            key = unquote(raw)
        else:
            bucket_raw, _, key_raw = raw.partition("/")
            bucket, key = (unquote(bucket_raw) or None), unquote(key_raw)
        if bucket is not None and bucket not in self.buckets:
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        return bucket, key

    def _path(self, bucket: str, key: str) -> pathlib.Path:
        parts = key.split("/")
        if len(key.encode()) > 1023 or any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise OssError(400, "InvalidObjectName",
                           "The test server stores keys as paths: no empty, '.' or '..' segment.")
        return self.root.joinpath(bucket, *parts)

    async def _drain(self, request: web.Request) -> None:
        with contextlib.suppress(Exception):
            while await request.content.read(CHUNK):
                pass

    def _crc_header(self, crc: int) -> dict[str, str]:
        if self.corrupt_crc_next > 0:
            self.corrupt_crc_next -= 1
            crc ^= 1
        return {"x-oss-hash-crc64ecma": str(crc)}

    # ---------------------------------------------------------------- authentication
    def _authenticate(self, request: web.Request, bucket: str | None, key: str) -> None:
        auth = request.headers.get("Authorization", "")
        query = request.query
        if auth.startswith("OSS "):
            key_id, _, signature = auth[4:].partition(":")
            self._check_date(request.headers.get("x-oss-date") or request.headers.get("Date") or "")
            self._check_v1(request, bucket, key, key_id, signature, date=None)
        elif auth.startswith("OSS4-HMAC-SHA256 "):
            fields = dict(f.strip().split("=", 1) for f in auth[17:].split(",") if "=" in f)
            date = request.headers.get("x-oss-date", "")
            self._check_date(date)
            self._check_v4(request, bucket, key, fields.get("Credential", ""), fields.get("Signature", ""),
                           fields.get("AdditionalHeaders", ""), date, signed_query=dict(query))
        elif "Signature" in query and "OSSAccessKeyId" in query:
            expires = query.get("Expires", "")
            if not expires.isdigit() or int(expires) < time.time():
                raise OssError(403, "AccessDenied", "Request has expired.")
            self._check_v1(request, bucket, key, query["OSSAccessKeyId"], query["Signature"], date=expires)
        elif query.get("x-oss-signature-version") == "OSS4-HMAC-SHA256":
            date, expires = query.get("x-oss-date", ""), query.get("x-oss-expires", "")
            if not expires.isdigit() or _parse_time(date) + int(expires) < time.time():
                raise OssError(403, "AccessDenied", "Request has expired.")
            signed = {k: v for k, v in query.items() if k != "x-oss-signature"}
            self._check_v4(request, bucket, key, query.get("x-oss-credential", ""),
                           query.get("x-oss-signature", ""), query.get("x-oss-additional-headers", ""),
                           date, signed_query=signed)
        elif not (bucket in self.public_read_buckets and request.method in ("GET", "HEAD")):
            raise OssError(403, "AccessDenied", "You have no right to access this object.")

    def _check_date(self, value: str) -> None:
        if abs(_parse_time(value) - time.time()) > MAX_SKEW_S:
            raise OssError(403, "RequestTimeTooSkewed", "The difference between the request time and "
                           "the current time is too large.")

    def _check_key_id(self, key_id: str) -> None:
        if key_id != self.access_key_id:
            raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist.")

    def _check_v1(self, request: web.Request, bucket: str | None, key: str, key_id: str, signature: str,
                  date: str | None) -> None:
        self._check_key_id(key_id)
        headers = request.headers
        oss_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-oss-"))
        sub = sorted((k, v) for k, v in request.query.items() if k in SUBRESOURCES)
        resource = "/" if bucket is None else f"/{bucket}/{key}"
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        if date is None:
            date = headers.get("x-oss-date") or headers.get("Date") or ""
        string_to_sign = "\n".join([request.method, headers.get("Content-MD5", ""),
                                    headers.get("Content-Type", ""), date,
                                    "".join(f"{k}:{v}\n" for k, v in oss_headers) + resource])
        digest = hmac.new(self.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
            raise OssError(403, "SignatureDoesNotMatch",
                           f"The signature we calculated does not match. StringToSign: {string_to_sign!r}")

    def _check_v4(self, request: web.Request, bucket: str | None, key: str, credential: str, signature: str,
                  additional: str, date: str, signed_query: Mapping[str, str]) -> None:
        key_id, _, scope = credential.partition("/")
        self._check_key_id(key_id)
        day, _, rest = scope.partition("/")
        region, _, product = rest.partition("/")
        product = product.removesuffix("/aliyun_v4_request")
        extra = sorted(h.strip().lower() for h in additional.split(";") if h.strip())
        signed_headers = sorted(
            (k.lower(), v) for k, v in request.headers.items()
            if k.lower().startswith("x-oss-") or k.lower() in ("content-type", "content-md5", *extra))
        canonical_query = "&".join(
            f"{k}={v}" if v else k
            for k, v in sorted((_v4_quote(k, False), _v4_quote(v, False)) for k, v in signed_query.items()))
        uri = _v4_quote("/" if bucket is None else f"/{bucket}/{key}", True)
        canonical = "\n".join([request.method, uri, canonical_query,
                               "".join(f"{k}:{v}\n" for k, v in signed_headers), ";".join(extra),
                               request.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")])
        string_to_sign = "\n".join(["OSS4-HMAC-SHA256", date, scope,
                                    hashlib.sha256(canonical.encode()).hexdigest()])
        signing_key = ("aliyun_v4" + self.access_key_secret).encode()
        for part in (day, region, product, "aliyun_v4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise OssError(403, "SignatureDoesNotMatch",
                           f"The signature we calculated does not match. CanonicalRequest: {canonical!r}")

    # ---------------------------------------------------------------- dispatch
    async def _dispatch(self, request: web.Request, bucket: str | None, key: str) -> web.StreamResponse:
        method, query = request.method, request.query
        if bucket is None:
            raise OssError(501, "NotImplemented", "Service-level operations are not implemented.")
        if not key:
            if method == "GET" and "uploads" in query:
                return self._list_uploads(bucket, query)
            if method == "GET" and "bucketInfo" in query:
                return self._bucket_info(bucket)
            if method == "GET" and not SUBRESOURCES.intersection(query):
                return self._list_objects(bucket, query)
            raise OssError(501, "NotImplemented", "This bucket operation is not implemented.")
        if method == "PUT":
            if "x-oss-copy-source" in request.headers:
                raise OssError(501, "NotImplemented", "CopyObject is not implemented.")
            if self.fail_next > 0:
                self.fail_next -= 1
                await self._drain(request)
                raise OssError(503, "ServiceUnavailable", "Injected failure (fail_next).")
            if "uploadId" in query:
                return await self._upload_part(request, bucket, key)
            return await self._put_object(request, bucket, key)
        if method == "POST" and "uploads" in query:
            return self._init_upload(request, bucket, key)
        if "uploadId" in query:
            upload = self._upload(bucket, key, query["uploadId"])
            if method == "POST":
                return await self._complete(request, upload)
            if method == "GET":
                return self._list_parts(upload, query)
            if method == "DELETE":
                self._discard_upload(upload)
                return web.Response(status=204)
        if method in ("GET", "HEAD"):
            return await self._get_object(request, bucket, key)
        if method == "DELETE":
            self._delete_object(bucket, key)
            return web.Response(status=204)
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    # ---------------------------------------------------------------- objects
    async def _receive(self, request: web.Request, dest: pathlib.Path) -> tuple[int, bytes, int]:
        """Stream the body into ``dest``; returns (size, md5 digest, crc64)."""
        md5, crc, size = hashlib.md5(), _crc64(), 0
        with dest.open("wb") as f:
            while chunk := await request.content.read(CHUNK):
                if self.die_after_bytes is not None:
                    self.die_after_bytes -= len(chunk)
                    if self.die_after_bytes < 0:
                        self.die_after_bytes = None
                        if request.transport is not None:
                            request.transport.abort()
                        raise _Dropped
                f.write(chunk)
                md5.update(chunk)
                crc.update(chunk)
                size += len(chunk)
                if self.put_delay_s:
                    await asyncio.sleep(self.put_delay_s * len(chunk) / CHUNK)
        sent_md5 = request.headers.get("Content-MD5")
        if sent_md5 is not None and sent_md5 != base64.b64encode(md5.digest()).decode():
            raise OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        return size, md5.digest(), int(crc.crcValue)

    def _temp(self) -> pathlib.Path:
        return self.root / ".tmp" / secrets.token_hex(8)

    def _install(self, tmp: pathlib.Path, bucket: str, key: str, meta: ObjectMeta) -> None:
        dest = self._path(bucket, key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            meta.mtime = dest.stat().st_mtime
        except OSError:
            raise OssError(409, "InvalidObjectName", "The test server stores keys as paths, and this key "
                           "collides with an existing object or prefix.") from None
        self._meta[(bucket, key)] = meta

    async def _put_object(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        self._path(bucket, key)  # validate before reading the body
        tmp = self._temp()
        try:
            size, md5, crc = await self._receive(request, tmp)
            meta = ObjectMeta(size, f'"{md5.hex().upper()}"', crc, time.time(), _stored_headers(request))
            self._install(tmp, bucket, key, meta)
        finally:
            tmp.unlink(missing_ok=True)
        return web.Response(headers={"ETag": meta.etag, "Content-MD5": base64.b64encode(md5).decode(),
                                     **self._crc_header(crc)})

    def _object_meta(self, bucket: str, key: str) -> tuple[pathlib.Path, ObjectMeta]:
        path = self._path(bucket, key)
        if not path.is_file():
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        meta, stat = self._meta.get((bucket, key)), path.stat()
        if meta is None or (meta.size, meta.mtime) != (stat.st_size, stat.st_mtime):  # placed by hand
            md5, crc = hashlib.md5(), _crc64()
            for chunk in _read_chunks(path):
                md5.update(chunk)
                crc.update(chunk)
            meta = ObjectMeta(stat.st_size, f'"{md5.hexdigest().upper()}"', int(crc.crcValue),
                              stat.st_mtime, {"Content-Type": "application/octet-stream"})
            self._meta[(bucket, key)] = meta
        return path, meta

    async def _get_object(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        path, meta = self._object_meta(bucket, key)
        headers = {**meta.headers, "ETag": meta.etag, "Last-Modified": formatdate(meta.mtime, usegmt=True),
                   "Accept-Ranges": "bytes", "x-oss-object-type": "Multipart" if meta.multipart else "Normal",
                   "x-oss-storage-class": "Standard", **self._crc_header(meta.crc)}
        for param, header in RESPONSE_OVERRIDES.items():
            if param in request.query:
                headers[header] = request.query[param]
        start, end, status = 0, meta.size - 1, 200
        byte_range = _parse_range(request.headers.get("Range", ""), meta.size)
        if byte_range is not None:
            start, end, status = *byte_range, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = end - start + 1
        await resp.prepare(request)
        if request.method == "GET":
            for chunk in _read_chunks(path, start, end + 1):
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    def _delete_object(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        if path.is_file():
            path.unlink()
        self._meta.pop((bucket, key), None)
        base = self.root / bucket
        for parent in path.parents:  # prune directories the key's prefix left behind
            if parent == base or not parent.is_relative_to(base):
                break
            with contextlib.suppress(OSError):
                parent.rmdir()

    def _list_objects(self, bucket: str, query: Mapping[str, str]) -> web.Response:
        prefix, marker = query.get("prefix", ""), query.get("marker", "")
        delimiter = query.get("delimiter", "")
        max_keys = int(query.get("max-keys") or 100)
        encode = query.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="")) if encode else (lambda s: s)
        contents: list[tuple[str, Any]] = []
        prefixes: list[str] = []
        next_marker, truncated = "", False
        for key in sorted(self.objects(bucket)):
            if not key.startswith(prefix) or key <= marker:
                continue
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            common = key[: cut + len(delimiter)] if cut >= 0 else None
            if common is not None and (common <= marker or (prefixes and prefixes[-1] == common)):
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                next_marker = common
                continue
            _, meta = self._object_meta(bucket, key)
            contents.append(("Contents", [
                ("Key", enc(key)), ("LastModified", _iso8601(meta.mtime)), ("ETag", meta.etag),
                ("Type", "Multipart" if meta.multipart else "Normal"), ("Size", meta.size),
                ("StorageClass", "Standard")]))
            next_marker = key
        body = _xml("ListBucketResult", [
            ("Name", bucket), ("Prefix", enc(prefix)), ("Marker", enc(marker)), ("MaxKeys", max_keys),
            ("Delimiter", enc(delimiter)), ("EncodingType", "url" if encode else None),
            ("IsTruncated", truncated), ("NextMarker", enc(next_marker) if truncated else None),
            *contents, *[("CommonPrefixes", [("Prefix", enc(p))]) for p in prefixes]])
        return web.Response(body=body, content_type="application/xml")

    def _bucket_info(self, bucket: str) -> web.Response:
        acl = "public-read" if bucket in self.public_read_buckets else "private"
        host = self.endpoint.removeprefix("http://")
        body = _xml("BucketInfo", [("Bucket", [
            ("Name", bucket), ("CreationDate", _iso8601(self._created)), ("StorageClass", "Standard"),
            ("ExtranetEndpoint", host), ("IntranetEndpoint", host), ("Location", f"oss-{self.region}"),
            ("Owner", [("DisplayName", "test"), ("ID", "test")]), ("AccessControlList", [("Grant", acl)])])])
        return web.Response(body=body, content_type="application/xml")

    # ---------------------------------------------------------------- multipart
    def _upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        return upload

    def _init_upload(self, request: web.Request, bucket: str, key: str) -> web.Response:
        self._path(bucket, key)
        upload_id = uuid.uuid4().hex.upper()
        self._uploads[upload_id] = Upload(bucket, key, upload_id, time.time(), _stored_headers(request))
        (self.root / ".uploads" / upload_id).mkdir()
        body = _xml("InitiateMultipartUploadResult",
                    [("Bucket", bucket), ("Key", key), ("UploadId", upload_id)])
        return web.Response(body=body, content_type="application/xml")

    async def _upload_part(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        upload = self._upload(bucket, key, request.query["uploadId"])
        number = request.query.get("partNumber", "")
        if not number.isdigit() or not 1 <= int(number) <= 10000:
            raise OssError(400, "InvalidArgument", "Part number must be an integer between 1 and 10000.")
        tmp = self._temp()
        try:
            size, md5, crc = await self._receive(request, tmp)
            if upload.upload_id not in self._uploads:  # aborted while the part was in flight
                raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
            os.replace(tmp, self.root / ".uploads" / upload.upload_id / number)
        finally:
            tmp.unlink(missing_ok=True)
        part = upload.parts[int(number)] = Part(size, md5, crc, time.time())
        return web.Response(headers={"ETag": part.etag, **self._crc_header(crc)})

    def _list_parts(self, upload: Upload, query: Mapping[str, str]) -> web.Response:
        marker = int(query.get("part-number-marker") or 0)
        max_parts = int(query.get("max-parts") or 1000)
        numbers = [n for n in sorted(upload.parts) if n > marker]
        shown, truncated = numbers[:max_parts], len(numbers) > max_parts
        body = _xml("ListPartsResult", [
            ("Bucket", upload.bucket), ("Key", upload.key), ("UploadId", upload.upload_id),
            ("PartNumberMarker", marker), ("NextPartNumberMarker", shown[-1] if shown else marker),
            ("MaxParts", max_parts), ("IsTruncated", truncated),
            *[("Part", [("PartNumber", n), ("LastModified", _iso8601(upload.parts[n].mtime)),
                        ("ETag", upload.parts[n].etag), ("HashCrc64ecma", upload.parts[n].crc),
                        ("Size", upload.parts[n].size)]) for n in shown]])
        return web.Response(body=body, content_type="application/xml")

    async def _complete(self, request: web.Request, upload: Upload) -> web.Response:
        if request.headers.get("x-oss-complete-all", "").lower() == "yes":
            wanted = [(n, upload.parts[n].etag) for n in sorted(upload.parts)]
        else:
            try:
                root = ElementTree.fromstring(await request.read())
                wanted = [(int(p.findtext("PartNumber", "")), p.findtext("ETag", ""))
                          for p in root.iter("Part")]
            except (ElementTree.ParseError, ValueError):
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        if not wanted:
            raise OssError(400, "MalformedXML", "The completion XML names no part.")
        if [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            raise OssError(400, "InvalidPartOrder", "Parts must be listed in ascending order.")
        for i, (number, etag) in enumerate(wanted):
            part = upload.parts.get(number)
            if part is None or etag.strip('"').upper() != part.etag.strip('"'):
                raise OssError(400, "InvalidPart", f"Part {number} is missing or its ETag does not match.")
            if part.size < MIN_PART_SIZE and i < len(wanted) - 1:
                raise OssError(400, "EntityTooSmall", f"Part {number} is smaller than {MIN_PART_SIZE} bytes.")
        tmp, crc, size = self._temp(), _crc64(), 0
        try:
            with tmp.open("wb") as out:
                for number, _ in wanted:
                    for chunk in _read_chunks(self.root / ".uploads" / upload.upload_id / str(number)):
                        out.write(chunk)
                        crc.update(chunk)
                        size += len(chunk)
            digest = hashlib.md5(b"".join(upload.parts[n].md5 for n, _ in wanted)).hexdigest().upper()
            meta = ObjectMeta(size, f'"{digest}-{len(wanted)}"', int(crc.crcValue), time.time(),
                              upload.headers, multipart=True)
            self._install(tmp, upload.bucket, upload.key, meta)
        finally:
            tmp.unlink(missing_ok=True)
        self._discard_upload(upload)
        body = _xml("CompleteMultipartUploadResult", [
            ("Location", f"{self.endpoint}/{upload.bucket}/{quote(upload.key)}"), ("Bucket", upload.bucket),
            ("Key", upload.key), ("ETag", meta.etag)])
        return web.Response(body=body, content_type="application/xml",
                            headers={"ETag": meta.etag, **self._crc_header(meta.crc)})

    def _discard_upload(self, upload: Upload) -> None:
        self._uploads.pop(upload.upload_id, None)
        shutil.rmtree(self.root / ".uploads" / upload.upload_id, ignore_errors=True)

    def _list_uploads(self, bucket: str, query: Mapping[str, str]) -> web.Response:
        prefix = query.get("prefix", "")
        mine = [u for u in list(self._uploads.values()) if u.bucket == bucket and u.key.startswith(prefix)]
        uploads = sorted(mine, key=lambda u: (u.key, u.initiated))
        body = _xml("ListMultipartUploadsResult", [
            ("Bucket", bucket), ("KeyMarker", ""), ("UploadIdMarker", ""), ("NextKeyMarker", ""),
            ("NextUploadIdMarker", ""), ("Prefix", prefix), ("MaxUploads", 1000), ("IsTruncated", False),
            *[("Upload", [("Key", u.key), ("UploadId", u.upload_id), ("StorageClass", "Standard"),
                          ("Initiated", _iso8601(u.initiated))]) for u in uploads]])
        return web.Response(body=body, content_type="application/xml")


def _stored_headers(request: web.Request) -> dict[str, str]:
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-oss-meta-")}
    headers.update((name, request.headers[name]) for name in STORED_HEADERS if name in request.headers)
    headers.setdefault("Content-Type", "application/octet-stream")
    return headers


def _read_chunks(path: pathlib.Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        remaining = (end - start) if end is not None else None
        while remaining is None or remaining > 0:
            chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range; None (whole object) if absent or invalid, as OSS does."""
    spec = value.strip().removeprefix("bytes=")
    if not value.strip().startswith("bytes=") or "," in spec or "-" not in spec:
        return None
    first, _, last = spec.partition("-")
    try:
        if not first:
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
    return start, end


def _parse_time(value: str) -> float:
    """Seconds since the epoch of an RFC 1123 date or a V4 ``20240102T030405Z`` stamp."""
    try:
        if value[:8].isdigit():
            return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise OssError(403, "AccessDenied", f"Missing or malformed date {value!r}.") from None


class OssServerThread:
    """An OssServer running on its own event loop in a daemon thread."""

    def __init__(self, server: OssServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ossserver", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(host, port), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        self.endpoint = server.endpoint

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> OssServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(root: pathlib.Path, ak: str, sk: str, buckets: Iterable[str] = ("test",),
                  **kwargs: Any) -> OssServerThread:
    return OssServerThread(OssServer(root, ak, sk, buckets, **kwargs))


def main() -> None:
    parser = argparse.ArgumentParser(description="Aliyun-OSS-protocol test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    parser.add_argument("--ak", required=True)
    parser.add_argument("--sk", required=True)
    parser.add_argument("--bucket", action="append", help="may be repeated (default: test)")
    parser.add_argument("--public-read", action="append", default=[], help="bucket readable anonymously")
    args = parser.parse_args()

    async def serve() -> None:
        server = OssServer(args.root, args.ak, args.sk, args.bucket or ["test"],
                           public_read_buckets=args.public_read)
        await server.start(args.host, args.port)
        print(f"ossserver listening on {server.endpoint}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
