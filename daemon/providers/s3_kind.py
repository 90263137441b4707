"""The S3-compatible profile: its settings, how config.toml's table becomes one, and the settings page's form.

Kept apart from the provider (s3.py) so that reading the settings never loads aioboto3 and botocore (about
30 MB): a daemon whose profiles do not use S3 does not pay for its SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def parse(check: Checker, where: str, common: dict[str, Any], t: dict[str, Any]) -> S3Profile:
    style = t.get("addressing_style", "auto")
    if style not in ("path", "virtual", "auto"):
        raise check.fail(f"{where}.addressing_style", f"{style!r} is not a style",
                         'Write addressing_style = "path" (MinIO, rclone, most self-hosted) or "virtual".')
    if ("access_key_id" in t) != ("secret_access_key" in t):
        raise check.fail(where, "has only one of access_key_id / secret_access_key",
                         "Set both, or neither to use the standard AWS credential chain.")
    return S3Profile(
        **common, bucket=check.bucket(where, t["bucket"]),
        endpoint_url=check.url(f"{where}.endpoint_url", t.get("endpoint_url")),
        region=t.get("region"), access_key_id=t.get("access_key_id"), secret_access_key=t.get("secret_access_key"),
        session_token=t.get("session_token"), addressing_style=style,
        presign_expires_s=check.ranged(f"{where}.presign_expires_s", t.get("presign_expires_s", WEEK_S), 1, WEEK_S))


def summary(p: S3Profile, files_root: Path) -> str:
    keys = "keys saved" if p.access_key_id else "AWS credential chain"
    return f"Bucket {p.bucket} at {p.endpoint_url or 'AWS S3'} · {keys}"


def build(p: S3Profile, ctx: BuildContext) -> Provider:
    from .s3 import S3Provider  # the SDK is loaded by the first profile that uses it

    return S3Provider(p, ctx.transfers, in_flight=ctx.in_flight)


KIND = ProviderKind(
    name="s3", label="S3-compatible (AWS, R2, MinIO…)", legend="S3", profile_type=S3Profile,
    keys={"bucket": (str, True), "endpoint_url": (str, False), "region": (str, False),
          "access_key_id": (str, False), "secret_access_key": (str, False), "session_token": (str, False),
          "addressing_style": (str, False), "presign_expires_s": (int, False)},
    parse=parse, build=build, summary=summary,
    form=(FormField("bucket", "Bucket"),
          FormField("endpoint_url", "Endpoint URL", "url", "https://… (empty for AWS)"),
          FormField("region", "Region", placeholder="us-east-1"),
          FormField("addressing_style", "Addressing style", "select",
                    choices=(("", "auto"), ("path", "path"), ("virtual", "virtual"))),
          FormField("access_key_id", "Access key ID"),
          FormField("secret_access_key", "Secret access key", "password")),
)
