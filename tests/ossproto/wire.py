"""What every part of the OSS test server shares: errors, protocol constants, XML replies, header parsing."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
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
RESPONSE_OVERRIDES = {f"response-{h.lower()}": h for h in (*STORED_HEADERS, "Content-Language")}


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message or code


class Dropped(Exception):
    """The connection was aborted on purpose (die_after_bytes)."""


def crc64() -> Any:
    # Same parameters as oss2.utils.Crc64 (CRC-64/ECMA-182, reflected, as OSS reports it).
    return crcmod.Crc(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


def iso8601(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def xml(tag: str, children: Iterable[tuple[str, Any]]) -> bytes:
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


def stored_headers(request: web.Request) -> dict[str, str]:
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-oss-meta-")}
    headers.update((name, request.headers[name]) for name in STORED_HEADERS if name in request.headers)
    headers.setdefault("Content-Type", "application/octet-stream")
    return headers


def read_chunks(path: Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
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


def parse_range(value: str, size: int) -> tuple[int, int] | None:
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


def parse_time(value: str) -> float:
    """Seconds since the epoch of an RFC 1123 date or a V4 ``20240102T030405Z`` stamp."""
    try:
        if value[:8].isdigit():
            return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise OssError(403, "AccessDenied", f"Missing or malformed date {value!r}.") from None
