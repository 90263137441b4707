"""What the OSS test server holds: objects as plain files under ``root/<bucket>/<key>``, their metadata, and
multipart uploads in progress (each part a file under ``root/.uploads/<upload id>/``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .wire import MIN_PART_SIZE, OssError, crc64, read_chunks


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


class Store:
    def __init__(self, root: Path, buckets: Iterable[str]) -> None:
        self.root = root
        self._meta: dict[tuple[str, str], ObjectMeta] = {}
        self._uploads: dict[str, Upload] = {}
        for name in (*buckets, ".tmp", ".uploads"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- objects
    def path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if len(key.encode()) > 1023 or any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise OssError(400, "InvalidObjectName",
                           "The test server stores keys as paths: no empty, '.' or '..' segment.")
        return self.root.joinpath(bucket, *parts)

    def objects(self, bucket: str) -> dict[str, Path]:
        """Every stored object of ``bucket``: key -> path of the file holding its bytes."""
        base = self.root / bucket
        return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*")) if p.is_file()}

    def temp(self) -> Path:
        return self.root / ".tmp" / secrets.token_hex(8)

    def install(self, tmp: Path, bucket: str, key: str, meta: ObjectMeta) -> None:
        dest = self.path(bucket, key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            meta.mtime = dest.stat().st_mtime
        except OSError:
            raise OssError(409, "InvalidObjectName", "The test server stores keys as paths, and this key "
                           "collides with an existing object or prefix.") from None
        self._meta[(bucket, key)] = meta

    def object_meta(self, bucket: str, key: str) -> tuple[Path, ObjectMeta]:
        path = self.path(bucket, key)
        if not path.is_file():
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        meta, stat = self._meta.get((bucket, key)), path.stat()
        if meta is None or (meta.size, meta.mtime) != (stat.st_size, stat.st_mtime):  # placed by hand
            md5, crc = hashlib.md5(), crc64()
            for chunk in read_chunks(path):
                md5.update(chunk)
                crc.update(chunk)
            meta = ObjectMeta(stat.st_size, f'"{md5.hexdigest().upper()}"', int(crc.crcValue),
                              stat.st_mtime, {"Content-Type": "application/octet-stream"})
            self._meta[(bucket, key)] = meta
        return path, meta

    def delete(self, bucket: str, key: str) -> None:
        path = self.path(bucket, key)
        if path.is_file():
            path.unlink()
        self._meta.pop((bucket, key), None)
        base = self.root / bucket
        for parent in path.parents:  # prune directories the key's prefix left behind
            if parent == base or not parent.is_relative_to(base):
                break
            with contextlib.suppress(OSError):
                parent.rmdir()

    # ---------------------------------------------------------------- multipart uploads
    def uploads(self, bucket: str, prefix: str = "") -> list[Upload]:
        return [u for u in list(self._uploads.values()) if u.bucket == bucket and u.key.startswith(prefix)]

    def upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        return upload

    def begin_upload(self, bucket: str, key: str, headers: dict[str, str]) -> Upload:
        self.path(bucket, key)
        upload_id = uuid.uuid4().hex.upper()
        upload = self._uploads[upload_id] = Upload(bucket, key, upload_id, time.time(), headers)
        (self.root / ".uploads" / upload_id).mkdir()
        return upload

    def add_part(self, upload: Upload, number: str, tmp: Path, size: int, md5: bytes, crc: int) -> Part:
        if upload.upload_id not in self._uploads:  # aborted while the part was in flight
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        os.replace(tmp, self.root / ".uploads" / upload.upload_id / number)
        part = upload.parts[int(number)] = Part(size, md5, crc, time.time())
        return part

    def complete(self, upload: Upload, wanted: list[tuple[int, str]]) -> ObjectMeta:
        """Join the ``(part number, ETag)`` listed into the object, as CompleteMultipartUpload does."""
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
        tmp, crc, size = self.temp(), crc64(), 0
        try:
            with tmp.open("wb") as out:
                for number, _ in wanted:
                    for chunk in read_chunks(self.root / ".uploads" / upload.upload_id / str(number)):
                        out.write(chunk)
                        crc.update(chunk)
                        size += len(chunk)
            digest = hashlib.md5(b"".join(upload.parts[n].md5 for n, _ in wanted)).hexdigest().upper()
            meta = ObjectMeta(size, f'"{digest}-{len(wanted)}"', int(crc.crcValue), time.time(),
                              upload.headers, multipart=True)
            self.install(tmp, upload.bucket, upload.key, meta)
        finally:
            tmp.unlink(missing_ok=True)
        self.discard(upload)
        return meta

    def discard(self, upload: Upload) -> None:
        self._uploads.pop(upload.upload_id, None)
        shutil.rmtree(self.root / ".uploads" / upload.upload_id, ignore_errors=True)
