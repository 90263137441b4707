"""Who may make a request: oss2's V1 and V4 signatures (headers and presigned URLs), checked as OSS does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from aiohttp import web

from .wire import MAX_SKEW_S, SUBRESOURCES, OssError, parse_time


def _v4_quote(text: str, keep_slash: bool) -> str:
    return quote(text, safe="/~" if keep_slash else "~")


class Verifier:
    """Checks a request's signature against one key pair; anonymous reads pass on public-read buckets."""

    def __init__(self, access_key_id: str, access_key_secret: str, public_read_buckets: Iterable[str] = ()) -> None:
        self.access_key_id, self.access_key_secret = access_key_id, access_key_secret
        self.public_read_buckets = set(public_read_buckets)

    def authenticate(self, request: web.Request, bucket: str | None, key: str) -> None:
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
            if not expires.isdigit() or parse_time(date) + int(expires) < time.time():
                raise OssError(403, "AccessDenied", "Request has expired.")
            signed = {k: v for k, v in query.items() if k != "x-oss-signature"}
            self._check_v4(request, bucket, key, query.get("x-oss-credential", ""),
                           query.get("x-oss-signature", ""), query.get("x-oss-additional-headers", ""),
                           date, signed_query=signed)
        elif not (bucket in self.public_read_buckets and request.method in ("GET", "HEAD")):
            raise OssError(403, "AccessDenied", "You have no right to access this object.")

    def _check_date(self, value: str) -> None:
        if abs(parse_time(value) - time.time()) > MAX_SKEW_S:
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
