"""PutObject and UploadPart, the two S3 requests that carry bytes, without botocore's per-call pipeline.

botocore builds every request through one generic pipeline: parameter validation, serialisation from the
service model, endpoint rules, event hooks and emitters. For a 100 KB image that costs more CPU than sending
it. These two requests differ only in their key, a few headers and the body, so the template is made once per
profile: the endpoint comes from the SDK's own resolution (one presigned URL made through the client, which
also gives the signing region and service), every request is signed by botocore's own SigV4 signers
(``botocore.auth``), with the signing key (four HMACs) cached per day, and it goes out on a pool of keep-alive
connections of its own (``http1.py``), which watches the socket under the body so progress stays exact. Links
are signed the same way. Everything else (multipart control calls, listing, deleting, checks) stays on the
client.

A store that answers with a redirect (an AWS bucket in another region) turns this path off for the profile:
the client, which follows region redirects, takes over.
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

from botocore.auth import SIGNED_HEADERS_BLACKLIST, S3SigV4Auth
from botocore.exceptions import NoCredentialsError

from .acked import Body
from .base import StoreReply
from .http1 import Pool


class StoreRefused(Exception):
    """The store answered a lean request with an error; ``reply`` is what it said."""

    def __init__(self, reply: StoreReply) -> None:
        super().__init__(f"{reply.status} {reply.code}: {reply.message}")
        self.reply = reply


class Redirected(Exception):
    """The store sent the request elsewhere (another region): the client must make it."""


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


class _CachedKey:
    """botocore's SigV4 signature with the day's derived key from the cache (the rest is the SDK's signer)."""

    credentials: Any
    _region_name: str
    _service_name: str

    def signature(self, string_to_sign: str, request: Any) -> str:
        key = signing_key(self.credentials.secret_key, request.context["timestamp"][:8], self._region_name,
                          self._service_name)
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


class HeaderSigner(_CachedKey, S3SigV4Auth):  # type: ignore[misc]
    """botocore's S3 SigV4 header signer, reading a ``Request`` whose host and canonical query are known: its
    generic versions parse the URL three times and build the headers through ``email.message``, which cost
    more than the signature itself. Everything else (canonical request, string to sign, scope, signature,
    headers set) is the SDK's own; a test holds the result equal to ``S3SigV4Auth`` on an ``AWSRequest``."""

    def headers_to_sign(self, request: Request) -> _Signed:
        signed = _Signed((name.lower(), value) for name, value in request.headers.items()
                         if name.lower() not in SIGNED_HEADERS_BLACKLIST)
        signed.setdefault("host", request.host)
        return signed

    def canonical_query_string(self, request: Request) -> str:
        return request.query


class _Signed(dict[str, str]):
    """The headers to sign, as botocore's canonical_headers reads them (one value per name)."""

    def get_all(self, name: str) -> list[str]:
        return [self[name]]


class Request:
    """What botocore's signer reads of a request; the headers a plain dict, written with the SDK's spelling."""

    __slots__ = ("body", "context", "headers", "host", "method", "params", "query", "url")

    def __init__(self, method: str, url: str, host: str, query: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.host, self.query, self.headers = method, url, host, query, headers
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {}
        self.body = b""


class S3Wire:
    """The lean requests of one profile, sent on connections of their own."""

    def __init__(self, endpoint: Endpoint, credentials: Callable[[], Awaitable[Any]], config: Any, *,
                 connections: int, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.endpoint = endpoint
        self._credentials = credentials
        self._config = config  # the client's: payload_signing_enabled = False makes the payload UNSIGNED
        self._pool = Pool(endpoint.base, limit=connections, connect_timeout_s=connect_timeout_s,
                          read_timeout_s=read_timeout_s)

    async def close(self) -> None:
        await self._pool.close()

    async def frozen(self) -> Any:
        creds = await self._credentials()
        if creds is None:
            raise NoCredentialsError()
        return await creds.get_frozen_credentials()

    async def put(self, key: str, body: Body, headers: dict[str, str], query: str = "") -> str:
        """PUT ``body`` to ``key``; the ETag. Raises StoreRefused, Redirected, ConnectionError or TimeoutError.

        A store that does not check Content-MD5 (moto does not, for parts) still says what it received: its
        ETag is the MD5 of the bytes, unless it encrypted them with a key of its own (SSE-KMS, SSE-C). An ETag
        that is an MD5 and not the one sent is refused here as the store would have refused it (BadDigest)."""
        e = self.endpoint
        target = e.path + object_path(key) + (f"?{query}" if query else "")
        request = Request("PUT", e.url(key, query), e.host, query, dict(headers))
        request.context["client_config"] = self._config
        HeaderSigner(await self.frozen(), e.service, e.region).add_auth(request)
        answer = await self._pool.request("PUT", target, {"Host": e.host, **request.headers}, body)
        if answer.status == 200:
            etag = answer.headers.get("etag", "")
            md5 = headers.get("Content-MD5")
            if md5 and not _md5_hidden(answer.headers) and _received_other(etag, md5):
                raise StoreRefused(StoreReply("BadDigest", 400, "the ETag is not the MD5 of what was sent"))
            return etag
        if answer.status in (301, 302, 307, 308):
            raise Redirected(answer.headers.get("location", ""))
        raise StoreRefused(reply_of(answer.status, answer.body))

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
        signature = hmac.new(day_key, to_sign.encode(), hashlib.sha256).hexdigest()
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


def _received_other(etag: str, md5_b64: str) -> bool:
    """An ETag that is a plain MD5 (32 hex digits) and not the MD5 of the bytes sent."""
    tag = etag.strip('"').lower()
    if len(tag) != 32 or any(c not in "0123456789abcdef" for c in tag):
        return False
    return tag != base64.b64decode(md5_b64).hex()


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
