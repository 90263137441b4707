"""The Aliyun OSS profile: its settings, how config.toml's table becomes one, and the settings page's form.

Kept apart from the provider (oss.py) so that reading the settings never loads oss2 (with requests and the
Aliyun SDK core, about 30 MB): a daemon whose profiles do not use OSS does not pay for its SDK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import Checker, ProfileBase, secret_field
from .base import Provider
from .kind import BuildContext, FormField, ProviderKind

WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True)
class OssProfile(ProfileBase):
    provider: str = "oss"
    bucket: str = ""
    endpoint: str = ""
    access_key_id: str | None = secret_field()
    access_key_secret: str | None = secret_field()
    presign_expires_s: int = WEEK_S


def parse(check: Checker, where: str, common: dict[str, Any], t: dict[str, Any]) -> OssProfile:
    bucket = check.bucket(where, t["bucket"])
    endpoint = check.url(f"{where}.endpoint", t["endpoint"])
    key_id = t.get("access_key_id") or os.environ.get("OSS_ACCESS_KEY_ID")
    secret = t.get("access_key_secret") or os.environ.get("OSS_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        raise check.fail(where, "has no OSS credentials",
                         "Set access_key_id and access_key_secret, or OSS_ACCESS_KEY_ID and "
                         "OSS_ACCESS_KEY_SECRET in the daemon's environment.")
    return OssProfile(**common, bucket=bucket, endpoint=endpoint or "", access_key_id=key_id,
                      access_key_secret=secret,
                      presign_expires_s=check.ranged(f"{where}.presign_expires_s",
                                                     t.get("presign_expires_s", WEEK_S), 1, 10 * 365 * 86400))


def summary(p: OssProfile, files_root: Path) -> str:
    return f"Bucket {p.bucket} at {p.endpoint} · keys saved"


def build(p: OssProfile, ctx: BuildContext) -> Provider:
    from .oss import OssProvider  # the SDK is loaded by the first profile that uses it

    return OssProvider(p, ctx.transfers, in_flight=ctx.in_flight)


KIND = ProviderKind(
    name="oss", label="Aliyun OSS", legend="OSS", profile_type=OssProfile,
    keys={"bucket": (str, True), "endpoint": (str, True), "access_key_id": (str, False),
          "access_key_secret": (str, False), "presign_expires_s": (int, False)},
    parse=parse, build=build, summary=summary,
    form=(FormField("bucket", "Bucket"),
          FormField("endpoint", "Endpoint", "url", "https://oss-cn-hangzhou.aliyuncs.com"),
          FormField("access_key_id", "Access key ID"),
          FormField("access_key_secret", "Access key secret", "password")),
)
