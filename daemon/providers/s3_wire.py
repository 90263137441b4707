"""PutObject and UploadPart, the two S3 requests that carry bytes, without botocore's per-call pipeline.

botocore builds every request through one generic pipeline: parameter validation, serialisation from the
service model, endpoint rules, event hooks and emitters. For a 100 KB image that costs more CPU than sending
it. These two requests differ only in their key, a few headers and the body, so the template is made once per
profile: the endpoint comes from the SDK's own resolution (one presigned URL made through the client, which
also gives the signing region and service), every request is signed with SigV4 as botocore's signer signs
it (tests hold the two equal, header for header), with the signing key (four HMACs) cached per day, and it
goes out on a pool of keep-alive connections of its own (``http1.py``), which watches the socket under the
body so progress stays exact. Links are signed the same way. Everything else (multipart control calls,
listing, deleting, checks) stays on the client.

A store that names another region (AWS: 301 ``PermanentRedirect``, 307, 400 ``AuthorizationHeaderMalformed``
with ``<Region>``, or ``x-amz-bucket-region``) raises ``WrongRegion``: the provider learns the region (from a
HEAD of the bucket before the first body, see ``head_bucket``), signs for it and builds this path again. A
redirect that names no region turns this path off for the profile: the client, which follows it, takes over.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, UNSIGNED_PAYLOAD
from botocore.exceptions import NoCredentialsError
from botocore.utils import parse_timestamp

from .acked import Body
from .base import StoreReply
from .dial import Proxy
from .http1 import Answer, Pool


class StoreRefused(Exception):
    """The store answered a lean request with an error; ``reply`` is what it said."""

    def __init__(self, reply: StoreReply) -> None:
        super().__init__(f"{reply.status} {reply.code}: {reply.message}")
        self.reply = reply


class Redirected(Exception):
    """The store sent the request elsewhere, naming no region: the client must make it."""


class WrongRegion(Exception):
    """The store says the bucket is in ``region``, not in the one the request was signed for."""

    def __init__(self, region: str) -> None:
        super().__init__(f"the bucket is in {region}")
        self.region = region


@dataclass(frozen=True)
class Endpoint:
    """Where a profile's objects live, and the scope their requests are signed for."""

    base: str  # an object's URL is this followed by its quoted key
    region: str
    service: str

    @classmethod
    def from_presigned(cls, url: str, key: str) -> Endpoint:
        """Read the endpoint out of a URL the SDK presigned for ``key`` (ValueError if it is not one)."""
        parts = urlsplit(url)
        quoted = object_path(key)
        if not parts.path.endswith(quoted):
            raise ValueError("the presigned URL does not end with its key")
        scope = parse_qs(parts.query)["X-Amz-Credential"][0].split("/")  # id/day/region/service/aws4_request
        if len(scope) < 5:
            raise ValueError("the presigned URL has no credential scope")
        return cls(f"{parts.scheme}://{parts.netloc}{parts.path[:-len(quoted)]}", scope[-3], scope[-2])

    def url(self, key: str, query: str = "") -> str:
        return self.base + object_path(key) + (f"?{query}" if query else "")

    @functools.cached_property
    def path(self) -> str:
        """The URL path before a key: ``/bucket/`` (path style) or ``/``."""
        return urlsplit(self.base).path

    @functools.cached_property
    def host(self) -> str:
        """The Host a signature covers: lower case, without the scheme's default port (as botocore has it)."""
        parts = urlsplit(self.base)
        default = {"http": 80, "https": 443}.get(parts.scheme)
        host = (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"
        return host if parts.port in (None, default) else f"{host}:{parts.port}"


def object_path(key: str) -> str:
    """A key as botocore puts it in a URL path (``{Key+}``: slashes and ``~`` kept)."""
    return quote(key, safe="/~")


@functools.lru_cache(maxsize=16)
def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's derived key: the same for every request of a day, so it is made once a day, not per request."""
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signed_put(endpoint: Endpoint, creds: Any, key: str, query: str, headers: dict[str, str],
               now: float | None = None, method: str = "PUT", path: str | None = None) -> dict[str, str]:
    """``headers`` and the SigV4 headers of a PUT (``query``: already canonical, its names sorted), as botocore's
    ``S3SigV4Auth`` adds them with the payload unsigned (``payload_signing_enabled = False``: TLS, or the
    Content-MD5 the store checks, guards the bytes). botocore's signer reads an ``AWSRequest``, parses its URL
    three times and builds the headers through ``email.message``: 33 us a request, where this takes 8. A test
    holds the two equal, header for header, with and without a session token, for a PUT and for a part."""
    stamp = _stamp(int(time.time() if now is None else now))
    out = dict(headers)
    out["X-Amz-Date"] = stamp
    if creds.token:
        out["X-Amz-Security-Token"] = creds.token
    out["X-Amz-Content-SHA256"] = UNSIGNED_PAYLOAD
    signed = {"host": endpoint.host}
    for name, value in out.items():
        low = name.lower()
        if low not in SIGNED_HEADERS_BLACKLIST:
            signed[low] = value if _trimmed(value) else " ".join(value.split())
    names = sorted(signed)
    listed = ";".join(names)
    canonical = "\n".join((method, endpoint.path + object_path(key) if path is None else path, query,
                           "".join([f"{n}:{signed[n]}\n" for n in names]), listed, UNSIGNED_PAYLOAD))
    scope = f"{stamp[:8]}/{endpoint.region}/{endpoint.service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    day_key = signing_key(creds.secret_key, stamp[:8], endpoint.region, endpoint.service)
    signature = hmac.digest(day_key, to_sign.encode(), "sha256").hex()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, SignedHeaders={listed}, "
                            f"Signature={signature}")
    return out


def _trimmed(value: str) -> bool:
    """A header value SigV4 signs as it is: no runs of spaces, tabs or line breaks, nothing to strip."""
    return "  " not in value and "\t" not in value and "\n" not in value and value == value.strip()


class S3Wire:
    """The lean requests of one profile, sent on connections of their own."""

    def __init__(self, endpoint: Endpoint, credentials: Callable[[], Awaitable[Any]], *, connections: int,
                 connect_timeout_s: float, read_timeout_s: float, tls: Any = True, proxy: Proxy | None = None) -> None:
        self.endpoint = endpoint
        self.etag_checks = True  # a part's ETag shows what the store received (an MD5): no Content-MD5 needed
        self._credentials = credentials
        self._pool = Pool(endpoint.base, limit=connections, connect_timeout_s=connect_timeout_s,
                          read_timeout_s=read_timeout_s, tls=tls, proxy=proxy)

    async def close(self) -> None:
        await self._pool.close()

    async def frozen(self) -> Any:
        creds = await self._credentials()
        if creds is None:
            raise NoCredentialsError()
        return await creds.get_frozen_credentials()

    async def put(self, key: str, body: Body, headers: dict[str, str], query: str = "",
                  md5: Awaitable[str] | None = None) -> str:
        """PUT ``body`` to ``key``; the ETag. Raises StoreRefused, Redirected, ConnectionError or TimeoutError.

        A store that does not check Content-MD5 (moto does not, for parts) still says what it received: its
        ETag is the MD5 of the bytes, unless it encrypted them with a key of its own (SSE-KMS, SSE-C). An ETag
        that is an MD5 and not the one sent is refused here as the store would have refused it (BadDigest).
        ``md5``: the body's MD5 (base64), still being computed while the body goes, for a request that carries
        no Content-MD5 (a part: the ETag is checked against it once the store answers)."""
        e = self.endpoint
        where = e.path + object_path(key)
        signed = signed_put(e, await self.frozen(), key, query, headers, path=where)
        target = where + (f"?{query}" if query else "")
        answer = await self._pool.request("PUT", target, {"Host": e.host, **signed}, body)
        if answer.status == 200:
            etag = answer.headers.get("etag", "")
            sent = headers.get("Content-MD5")
            if sent is None and md5 is not None:
                sent = await md5
                if not e.base.startswith("https:") and (_md5_hidden(answer.headers) or not _is_md5(etag)):
                    self.etag_checks = False  # nothing showed the bytes arrived intact: from now on, Content-MD5
                    raise StoreRefused(StoreReply("PixliftUnchecked", 400, "the ETag is not an MD5"))
            if sent and not _md5_hidden(answer.headers) and _received_other(etag, sent):
                raise StoreRefused(StoreReply("BadDigest", 400, "the ETag is not the MD5 of what was sent"))
            return etag
        raise refusal(answer, e.region)

    async def head_bucket(self) -> Answer:
        """HEAD the bucket (AWS's HeadBucket): its status, and the region it is in (``x-amz-bucket-region``,
        which AWS sends whatever the status). No body goes, so nothing is sent twice to learn the region."""
        e = self.endpoint
        path = e.path.rstrip("/") or "/"  # path style: /bucket; virtual hosted: /
        signed = signed_put(e, await self.frozen(), "", "", {}, method="HEAD", path=path)
        return await self._pool.request("HEAD", path, {"Host": e.host, **signed})

    async def presign_get(self, key: str, expires_s: int, now: datetime | None = None) -> str:
        """A link that GETs ``key`` for ``expires_s`` seconds: what ``generate_presigned_url`` makes (a test
        holds the two together), with the day's cached key and none of the SDK's generic request handling."""
        creds = await self.frozen()
        stamp = _stamp(int((now or datetime.now(UTC)).timestamp()))
        e = self.endpoint
        scope = f"{stamp[:8]}/{e.region}/{e.service}/aws4_request"
        query, listed = _link_query(creds.access_key, creds.token, scope, stamp, expires_s)
        path = object_path(key)
        canonical = f"GET\n{e.path}{path}\n{query}\nhost:{e.host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        day_key = signing_key(creds.secret_key, stamp[:8], e.region, e.service)
        signature = hmac.digest(day_key, to_sign.encode(), "sha256").hex()
        return f"{e.base}{path}?{listed}&X-Amz-Signature={signature}"


@functools.lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))


@functools.lru_cache(maxsize=16)
def _link_query(access_key: str, token: str | None, scope: str, stamp: str, expires_s: int) -> tuple[str, str]:
    """A link's query: sorted for the signature, and in botocore's order for the URL (the same each second)."""
    params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{access_key}/{scope}",
              "X-Amz-Date": stamp, "X-Amz-Expires": str(expires_s), "X-Amz-SignedHeaders": "host"}
    if token:
        params["X-Amz-Security-Token"] = token
    return ("&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items())),
            "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items()))


def _enc(value: str) -> str:
    return quote(value, safe="-_.~")


def _md5_hidden(headers: Any) -> bool:
    """The store encrypted the object with a key of its own or the caller's: its ETag is then not an MD5."""
    return (headers.get("x-amz-server-side-encryption", "").startswith("aws:kms")
            or "x-amz-server-side-encryption-customer-algorithm" in headers)


def _is_md5(etag: str) -> bool:
    tag = etag.strip('"').lower()
    return len(tag) == 32 and all(c in "0123456789abcdef" for c in tag)


def _received_other(etag: str, md5_b64: str) -> bool:
    """An ETag that is a plain MD5 (32 hex digits) and not the MD5 of the bytes sent."""
    return _is_md5(etag) and etag.strip('"').lower() != base64.b64decode(md5_b64).hex()


def refusal(answer: Answer, region: str) -> Exception:
    """What a lean request's answer other than 200 means: WrongRegion, Redirected or StoreRefused."""
    named = region_named(answer)
    if named and named != region:
        return WrongRegion(named)
    if answer.status in (301, 302, 307, 308):
        return Redirected(answer.headers.get("location", ""))
    reply = reply_of(answer.status, answer.body)
    after = retry_after(answer.headers.get("retry-after"))
    return StoreRefused(StoreReply(reply.code, reply.status, reply.message, after) if after else reply)


def region_named(answer: Answer) -> str | None:
    """The region an answer says the bucket is in, as AWS says it: ``x-amz-bucket-region`` on a redirect or an
    error, or ``<Region>`` in a 301/307 or an ``AuthorizationHeaderMalformed`` document."""
    if answer.status in (200, 204):
        return None
    named = answer.headers.get("x-amz-bucket-region")
    if named:
        return named.strip()
    if answer.status in (301, 307, 400) and answer.body.strip():
        try:
            root = ET.fromstring(answer.body)
        except ET.ParseError:
            return None
        if answer.status != 400 or (root.findtext("Code") or "") == "AuthorizationHeaderMalformed":
            return (root.findtext("Region") or "").strip() or None
    return None


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date); None when absent or unread."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, float(parse_timestamp(value).timestamp()) - time.time())
    except (ValueError, TypeError):
        return None


def reply_of(status: int, body: bytes) -> StoreReply:
    """The error code and message of an S3 error document (an empty code when there is none, as for a HEAD)."""
    code = message = ""
    try:
        root = ET.fromstring(body) if body.strip() else None
    except ET.ParseError:
        root = None
    if root is not None:
        code = (root.findtext("Code") or "").strip()
        message = (root.findtext("Message") or "").strip()
    return StoreReply(code or str(status), status, message)
