"""The OSS test server's HTTP side: ``OssServer`` routes oss2's requests (path-style or virtual-host-style) to
put/get/head/delete, listings, bucket info and multipart uploads, answers in OSS's XML, sends
``x-oss-hash-crc64ecma`` so oss2's CRC checks run, and has a few attributes that let tests inject faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import pathlib
import time
import uuid
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

from aiohttp import web

from .signing import Verifier
from .store import ObjectMeta, Store, Upload
from .wire import (
    CHUNK,
    RESPONSE_OVERRIDES,
    SUBRESOURCES,
    Dropped,
    OssError,
    crc64,
    iso8601,
    parse_range,
    read_chunks,
    stored_headers,
    xml,
)

# aiohttp >= 3.13 wants typed request-storage keys; older releases only have plain strings.
REQUEST_ID: Any = web.RequestKey("request_id", str) if hasattr(web, "RequestKey") else "request_id"


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
        self._verifier = Verifier(access_key_id, access_key_secret, public_read_buckets)
        self.public_read_buckets = self._verifier.public_read_buckets
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
        self._store = Store(self.root, self.buckets)
        self._runner: web.AppRunner | None = None
        self._created = time.time()

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
        return self._store.objects(bucket)

    def pending_uploads(self, bucket: str) -> list[str]:
        return [u.upload_id for u in self._store.uploads(bucket)]

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
            self._verifier.authenticate(request, bucket, key)
            resp = await self._dispatch(request, bucket, key)
        except Dropped:
            return web.Response(status=499)  # never reaches the client: the transport is gone
        except OssError as e:
            body = xml("Error", [("Code", e.code), ("Message", e.message), ("RequestId", request_id),
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

    async def _drain(self, request: web.Request) -> None:
        with contextlib.suppress(Exception):
            while await request.content.read(CHUNK):
                pass

    def _crc_header(self, crc: int) -> dict[str, str]:
        if self.corrupt_crc_next > 0:
            self.corrupt_crc_next -= 1
            crc ^= 1
        return {"x-oss-hash-crc64ecma": str(crc)}

    async def _receive(self, request: web.Request, dest: pathlib.Path) -> tuple[int, bytes, int]:
        """Stream the body into ``dest``; returns (size, md5 digest, crc64)."""
        md5, crc, size = hashlib.md5(), crc64(), 0
        with dest.open("wb") as f:
            while chunk := await request.content.read(CHUNK):
                if self.die_after_bytes is not None:
                    self.die_after_bytes -= len(chunk)
                    if self.die_after_bytes < 0:
                        self.die_after_bytes = None
                        if request.transport is not None:
                            request.transport.abort()
                        raise Dropped
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
            upload = self._store.upload(bucket, key, query["uploadId"])
            if method == "POST":
                return await self._complete(request, upload)
            if method == "GET":
                return self._list_parts(upload, query)
            if method == "DELETE":
                self._store.discard(upload)
                return web.Response(status=204)
        if method in ("GET", "HEAD"):
            return await self._get_object(request, bucket, key)
        if method == "DELETE":
            self._store.delete(bucket, key)
            return web.Response(status=204)
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    # ---------------------------------------------------------------- objects
    async def _put_object(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        self._store.path(bucket, key)  # validate before reading the body
        tmp = self._store.temp()
        try:
            size, md5, crc = await self._receive(request, tmp)
            meta = ObjectMeta(size, f'"{md5.hex().upper()}"', crc, time.time(), stored_headers(request))
            self._store.install(tmp, bucket, key, meta)
        finally:
            tmp.unlink(missing_ok=True)
        return web.Response(headers={"ETag": meta.etag, "Content-MD5": base64.b64encode(md5).decode(),
                                     **self._crc_header(crc)})

    async def _get_object(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        path, meta = self._store.object_meta(bucket, key)
        headers = {**meta.headers, "ETag": meta.etag, "Last-Modified": formatdate(meta.mtime, usegmt=True),
                   "Accept-Ranges": "bytes", "x-oss-object-type": "Multipart" if meta.multipart else "Normal",
                   "x-oss-storage-class": "Standard", **self._crc_header(meta.crc)}
        for param, header in RESPONSE_OVERRIDES.items():
            if param in request.query:
                headers[header] = request.query[param]
        start, end, status = 0, meta.size - 1, 200
        byte_range = parse_range(request.headers.get("Range", ""), meta.size)
        if byte_range is not None:
            start, end, status = *byte_range, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = end - start + 1
        await resp.prepare(request)
        if request.method == "GET":
            for chunk in read_chunks(path, start, end + 1):
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    def _list_objects(self, bucket: str, query: Mapping[str, str]) -> web.Response:
        prefix, marker = query.get("prefix", ""), query.get("marker", "")
        delimiter = query.get("delimiter", "")
        max_keys = int(query.get("max-keys") or 100)
        encode = query.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="")) if encode else (lambda s: s)
        contents: list[tuple[str, Any]] = []
        prefixes: list[str] = []
        next_marker, truncated = "", False
        for key in sorted(self._store.objects(bucket)):
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
            _, meta = self._store.object_meta(bucket, key)
            contents.append(("Contents", [
                ("Key", enc(key)), ("LastModified", iso8601(meta.mtime)), ("ETag", meta.etag),
                ("Type", "Multipart" if meta.multipart else "Normal"), ("Size", meta.size),
                ("StorageClass", "Standard")]))
            next_marker = key
        body = xml("ListBucketResult", [
            ("Name", bucket), ("Prefix", enc(prefix)), ("Marker", enc(marker)), ("MaxKeys", max_keys),
            ("Delimiter", enc(delimiter)), ("EncodingType", "url" if encode else None),
            ("IsTruncated", truncated), ("NextMarker", enc(next_marker) if truncated else None),
            *contents, *[("CommonPrefixes", [("Prefix", enc(p))]) for p in prefixes]])
        return web.Response(body=body, content_type="application/xml")

    def _bucket_info(self, bucket: str) -> web.Response:
        acl = "public-read" if bucket in self.public_read_buckets else "private"
        host = self.endpoint.removeprefix("http://")
        body = xml("BucketInfo", [("Bucket", [
            ("Name", bucket), ("CreationDate", iso8601(self._created)), ("StorageClass", "Standard"),
            ("ExtranetEndpoint", host), ("IntranetEndpoint", host), ("Location", f"oss-{self.region}"),
            ("Owner", [("DisplayName", "test"), ("ID", "test")]), ("AccessControlList", [("Grant", acl)])])])
        return web.Response(body=body, content_type="application/xml")

    # ---------------------------------------------------------------- multipart
    def _init_upload(self, request: web.Request, bucket: str, key: str) -> web.Response:
        upload = self._store.begin_upload(bucket, key, stored_headers(request))
        body = xml("InitiateMultipartUploadResult",
                   [("Bucket", bucket), ("Key", key), ("UploadId", upload.upload_id)])
        return web.Response(body=body, content_type="application/xml")

    async def _upload_part(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        upload = self._store.upload(bucket, key, request.query["uploadId"])
        number = request.query.get("partNumber", "")
        if not number.isdigit() or not 1 <= int(number) <= 10000:
            raise OssError(400, "InvalidArgument", "Part number must be an integer between 1 and 10000.")
        tmp = self._store.temp()
        try:
            size, md5, crc = await self._receive(request, tmp)
            part = self._store.add_part(upload, number, tmp, size, md5, crc)
        finally:
            tmp.unlink(missing_ok=True)
        return web.Response(headers={"ETag": part.etag, **self._crc_header(crc)})

    def _list_parts(self, upload: Upload, query: Mapping[str, str]) -> web.Response:
        marker = int(query.get("part-number-marker") or 0)
        max_parts = int(query.get("max-parts") or 1000)
        numbers = [n for n in sorted(upload.parts) if n > marker]
        shown, truncated = numbers[:max_parts], len(numbers) > max_parts
        body = xml("ListPartsResult", [
            ("Bucket", upload.bucket), ("Key", upload.key), ("UploadId", upload.upload_id),
            ("PartNumberMarker", marker), ("NextPartNumberMarker", shown[-1] if shown else marker),
            ("MaxParts", max_parts), ("IsTruncated", truncated),
            *[("Part", [("PartNumber", n), ("LastModified", iso8601(upload.parts[n].mtime)),
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
        meta = self._store.complete(upload, wanted)
        body = xml("CompleteMultipartUploadResult", [
            ("Location", f"{self.endpoint}/{upload.bucket}/{quote(upload.key)}"), ("Bucket", upload.bucket),
            ("Key", upload.key), ("ETag", meta.etag)])
        return web.Response(body=body, content_type="application/xml",
                            headers={"ETag": meta.etag, **self._crc_header(meta.crc)})

    def _list_uploads(self, bucket: str, query: Mapping[str, str]) -> web.Response:
        prefix = query.get("prefix", "")
        uploads = sorted(self._store.uploads(bucket, prefix), key=lambda u: (u.key, u.initiated))
        body = xml("ListMultipartUploadsResult", [
            ("Bucket", bucket), ("KeyMarker", ""), ("UploadIdMarker", ""), ("NextKeyMarker", ""),
            ("NextUploadIdMarker", ""), ("Prefix", prefix), ("MaxUploads", 1000), ("IsTruncated", False),
            *[("Upload", [("Key", u.key), ("UploadId", u.upload_id), ("StorageClass", "Standard"),
                          ("Initiated", iso8601(u.initiated))]) for u in uploads]])
        return web.Response(body=body, content_type="application/xml")
