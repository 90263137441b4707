"""The S3-compatible profile: its settings, how config.toml's table becomes one, and the settings page's form.

Kept apart from the provider (s3.py) so that reading the settings never loads aioboto3 and botocore (about
30 MB): a daemon whose profiles do not use S3 does not pay for its SDK.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core.config import Checker, ProfileBase, secret_field
from .base import Provider
from .kind import BuildContext, FormField, ProviderKind

WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True)
class S3Profile(ProfileBase):
    provider: str = "s3"
    bucket: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = secret_field()
    secret_access_key: str | None = secret_field()
    session_token: str | None = secret_field()
    addressing_style: str = "auto"  # "path", "virtual" or "auto"
    presign_expires_s: int = WEEK_S
    # The network, with botocore's meaning (providers/network.py); None: as the environment and the AWS config
    # file say. A proxy URL may hold credentials: it is a secret, never shown or logged.
    proxy: str | None = secret_field()  # "": no proxy, whatever HTTP(S)_PROXY say
    ca_bundle: str | None = None  # a PEM file of the authorities to trust, instead of AWS_CA_BUNDLE and certifi
    verify: bool = True  # false: certificates are not checked

    def secrets(self) -> list[str | None]:
        """The secret fields, and the proxy's password and ``Proxy-Authorization`` on their own (logs)."""
        out = super().secrets()
        parts = urlsplit(self.proxy or "")
        if parts.password:
            user, password = unquote(parts.username or ""), unquote(parts.password)
            out += [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
        return out


def parse(check: Checker, where: str, common: dict[str, Any], t: dict[str, Any]) -> S3Profile:
    style = t.get("addressing_style", "auto")
    if style not in ("path", "virtual", "auto"):
        raise check.fail(f"{where}.addressing_style", f"{style!r} is not a style",
                         'Write addressing_style = "path" (MinIO, rclone, most self-hosted) or "virtual".')
    if ("access_key_id" in t) != ("secret_access_key" in t):
        raise check.fail(where, "has only one of access_key_id / secret_access_key",
                         "Set both, or neither to use the standard AWS credential chain.")
    proxy = t.get("proxy")
    if proxy:
        check.url(f"{where}.proxy", proxy)
    ca_bundle = t.get("ca_bundle")
    if ca_bundle is not None and not Path(ca_bundle).expanduser().exists():
        raise check.fail(f"{where}.ca_bundle", f"{ca_bundle!r} does not exist",
                         "Write the path of a PEM file holding the certificate authorities to trust.")
    return S3Profile(
        **common, bucket=check.bucket(where, t["bucket"]), proxy=proxy, ca_bundle=ca_bundle,
        verify=t.get("verify", True),
        endpoint_url=check.url(f"{where}.endpoint_url", t.get("endpoint_url")),
        region=t.get("region"), access_key_id=t.get("access_key_id"), secret_access_key=t.get("secret_access_key"),
        session_token=t.get("session_token"), addressing_style=style,
        presign_expires_s=check.ranged(f"{where}.presign_expires_s", t.get("presign_expires_s", WEEK_S), 1, WEEK_S))


def summary(p: S3Profile, files_root: Path) -> str:
    keys = "keys saved" if p.access_key_id else "AWS credential chain"
    via = " · no proxy" if p.proxy == "" else " · through a proxy" if p.proxy else ""
    return f"Bucket {p.bucket} at {p.endpoint_url or 'AWS S3'} · {keys}{via}"


def build(p: S3Profile, ctx: BuildContext) -> Provider:
    from .s3 import S3Provider  # the SDK is loaded by the first profile that uses it

    return S3Provider(p, ctx.transfers, in_flight=ctx.in_flight)


KIND = ProviderKind(
    name="s3", label="S3-compatible (AWS, R2, MinIO…)", legend="S3", profile_type=S3Profile,
    keys={"bucket": (str, True), "endpoint_url": (str, False), "region": (str, False),
          "access_key_id": (str, False), "secret_access_key": (str, False), "session_token": (str, False),
          "addressing_style": (str, False), "presign_expires_s": (int, False), "proxy": (str, False),
          "ca_bundle": (str, False), "verify": (bool, False)},
    parse=parse, build=build, summary=summary,
    form=(FormField("bucket", "Bucket"),
          FormField("endpoint_url", "Endpoint URL", "url", "https://… (empty for AWS)"),
          FormField("region", "Region", placeholder="us-east-1"),
          FormField("addressing_style", "Addressing style", "select",
                    choices=(("", "auto"), ("path", "path"), ("virtual", "virtual"))),
          FormField("access_key_id", "Access key ID"),
          FormField("secret_access_key", "Secret access key", "password")),
)
