"""What an S3 store's refusals and the failures on the way to it mean, in words a person can act on.

``S3_ERRORS`` maps the store's error codes to pixlift's (``base.rule``); ``reply_of`` reads the refusal out of
either path (the lean path's ``StoreRefused``, botocore's ``ClientError``); ``special`` names what no error
code says: a certificate not trusted, a proxy that wants credentials, credentials missing altogether.
"""

from __future__ import annotations

import botocore.exceptions as bce

from ..errors import CertificateUntrusted, ConfigError, PermanentStorageError, TransferError
from .base import StoreReply, chain, rule
from .dial import ProxyRefused
from .network import Network, certificate_failure
from .s3_wire import StoreRefused, retry_after

S3_ERRORS = (
    rule("invalid_credentials", "{where} does not know the access key id of profile {name!r}. Check "
         "access_key_id.", "InvalidAccessKeyId", "InvalidClientTokenId"),
    rule("invalid_credentials", "{where} refused the signature: the secret access key of profile {name!r} is "
         "wrong. Check secret_access_key.", "SignatureDoesNotMatch"),
    rule("bucket_not_found", "Bucket {bucket!r} does not exist at {where}. Create it, or fix bucket in "
         "[profiles.{name}].", "NoSuchBucket", "404", "NotFound"),
    rule("upload_gone", "", "NoSuchUpload"),
    rule("checksum_mismatch", "{where} received different bytes than were sent (Content-MD5 mismatch); "
         "sending them again.", "BadDigest", "InvalidDigest", transient=True),
    # a part's ETag that is not an MD5 cannot show the part arrived intact over plain http: sent again with
    # Content-MD5 (s3_wire.py)
    rule("checksum_mismatch", "{where} answered with an ETag that does not show what it received; sending the "
         "part again with Content-MD5.", "PixliftUnchecked", transient=True),
    rule("access_denied", "{where} denied access to bucket {bucket!r} for profile {name!r}: the credentials "
         "work but lack permission (s3:PutObject and multipart actions are needed).",
         "AccessDenied", "AllAccessDisabled", "403", statuses=(403,)),
    rule("server_error", "{where} answered {status} {code}; it may be overloaded or restarting.",
         "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
         "InternalError", "ServiceUnavailable", "RequestTimeoutException", statuses=(429,),
         any_5xx=True, transient=True),
)


def reply_of(exc: BaseException) -> StoreReply | None:
    if isinstance(exc, StoreRefused):
        return exc.reply
    if not isinstance(exc, bce.ClientError):
        return None
    err = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode", 0) or 0)
    after = retry_after((meta.get("HTTPHeaders") or {}).get("retry-after"))
    return StoreReply(str(err.get("Code", "")), status, str(err.get("Message", "") or ""), after)


def special(exc: BaseException, where: str, profile: str, network: Network | None,
            endpoint: str) -> TransferError | ConfigError | None:
    """What ``exc`` means when no error code of the store says it; None when the rules decide."""
    for cur in chain(exc):
        if isinstance(cur, ConfigError):
            return cur
        found = _untrusted(cur, where, network, endpoint)
        if found is not None:
            return found
        if isinstance(cur, ProxyRefused) and cur.status in (403, 407):
            return PermanentStorageError(
                f"{cur} for {where}: {'it wants credentials' if cur.status == 407 else 'it refuses'}. Put "
                f"the proxy's user and password in its URL (proxy in [profiles.{profile}], or "
                "HTTPS_PROXY / HTTP_PROXY), or ask its administrators to allow the store.", code="rejected")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return PermanentStorageError(
            f"No S3 credentials for profile {profile!r}: set access_key_id and secret_access_key in "
            f"[profiles.{profile}], or configure the AWS credential chain (AWS_ACCESS_KEY_ID, ~/.aws/credentials).",
            code="no_credentials")
    return None


def _untrusted(exc: BaseException, where: str, network: Network | None, endpoint: str) -> CertificateUntrusted | None:
    """A certificate the TLS context refused, on either path: which host, and which settings decide trust."""
    found = certificate_failure(exc)
    if found is None:
        return None
    host, error = found
    host = host or where
    if network is None:
        return CertificateUntrusted(f"The TLS certificate of {host} is not trusted ({error.verify_message}).")
    return CertificateUntrusted(network.untrusted(host, error, endpoint))
