"""Reading and checking ``<home>/config.toml``.

A missing file means the embedded default (one ``local`` profile). A broken file is refused as a whole with
a message naming the file, the key and what to write instead: the daemon never starts half-configured.
Secrets live only in the profile objects (``repr=False``) and never leave them except towards the SDKs.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

MiB = 1024 * 1024
DEFAULT_KEY_TEMPLATE = "{year}/{month}/{stem}-{hash8}{ext}"
DEFAULT_ROOTS = ("~/Pictures", "~/Desktop", "~/Downloads")
PROVIDERS = ("local", "s3", "oss")


@dataclass(frozen=True)
class ProfileBase:
    name: str
    key_template: str = DEFAULT_KEY_TEMPLATE
    public_base_url: str | None = None


@dataclass(frozen=True)
class LocalProfile(ProfileBase):
    provider: Literal["local"] = "local"
    root: Path | None = None  # None: <home>/files


@dataclass(frozen=True)
class S3Profile(ProfileBase):
    provider: Literal["s3"] = "s3"
    bucket: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: Literal["path", "virtual", "auto"] = "auto"
    presign_expires_s: int = 7 * 24 * 3600


@dataclass(frozen=True)
class OssProfile(ProfileBase):
    provider: Literal["oss"] = "oss"
    bucket: str = ""
    endpoint: str = ""
    access_key_id: str | None = field(default=None, repr=False)
    access_key_secret: str | None = field(default=None, repr=False)
    presign_expires_s: int = 7 * 24 * 3600


Profile = LocalProfile | S3Profile | OssProfile


@dataclass(frozen=True)
class TransferSettings:
    max_concurrent: int = 8
    attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    multipart_threshold: int = 5 * MiB
    part_size: int = 8 * MiB
    part_concurrency: int = 4
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0


@dataclass(frozen=True)
class SecuritySettings:
    allowed_roots: tuple[Path, ...] = ()
    images_only: bool = True
    max_file_size: int = 5 * 1024 * MiB
    calls_per_second: float = 20.0
    call_burst: int = 40
    files_per_minute: int = 10_000
    max_queued_files: int = 100_000


@dataclass(frozen=True)
class Settings:
    default_profile: str
    profiles: Mapping[str, Profile]
    transfers: TransferSettings
    security: SecuritySettings
    path: Path | None = None  # where they were read from; None: the embedded default

    def profile(self, name: str | None) -> Profile:
        chosen = name or self.default_profile
        try:
            return self.profiles[chosen]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(
                f"Unknown storage profile {chosen!r}. Configured profiles: {known}. "
                f"Add [profiles.{chosen}] to {self.path or 'config.toml'} or pick one of those.",
                data={"profile": chosen, "profiles": sorted(self.profiles)},
            ) from None


class SettingsBox:
    """The settings in force. Replaced whole when config.toml is saved, so readers never see a mix."""

    def __init__(self, settings: Settings) -> None:
        self.current = settings

    def replace(self, settings: Settings) -> None:
        self.current = settings


# Each section's keys: name -> (type, required). Types are checked; unknown keys are refused with a
# suggestion, because a typo ("bucket_name") silently ignored is a profile that uploads somewhere else.
_COMMON = {"provider": (str, True), "key_template": (str, False), "public_base_url": (str, False)}
_PROFILE_KEYS: dict[str, dict[str, tuple[type, bool]]] = {
    "local": {**_COMMON, "root": (str, False)},
    "s3": {
        **_COMMON,
        "bucket": (str, True),
        "endpoint_url": (str, False),
        "region": (str, False),
        "access_key_id": (str, False),
        "secret_access_key": (str, False),
        "session_token": (str, False),
        "addressing_style": (str, False),
        "presign_expires_s": (int, False),
    },
    "oss": {
        **_COMMON,
        "bucket": (str, True),
        "endpoint": (str, True),
        "access_key_id": (str, False),
        "access_key_secret": (str, False),
        "presign_expires_s": (int, False),
    },
}
_TRANSFER_KEYS: dict[str, tuple[type, bool]] = {
    "max_concurrent": (int, False),
    "attempts": (int, False),
    "backoff_base_s": (float, False),
    "backoff_max_s": (float, False),
    "multipart_threshold_mb": (float, False),
    "part_size_mb": (float, False),
    "part_concurrency": (int, False),
    "connect_timeout_s": (float, False),
    "read_timeout_s": (float, False),
}
_SECURITY_KEYS: dict[str, tuple[type, bool]] = {
    "allowed_roots": (list, False),
    "images_only": (bool, False),
    "max_file_size_mb": (float, False),
    "calls_per_second": (float, False),
    "call_burst": (int, False),
    "files_per_minute": (int, False),
    "max_queued_files": (int, False),
}
_TOP_KEYS = ("storage", "profiles", "transfers", "security")


class _Checker:
    """Validates one table and produces messages that say where and what to write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}. {fix}", data={"file": str(self.path), "key": where})

    def table(self, where: str, raw: Any, keys: Mapping[str, tuple[type, bool]]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(where, "is not a table", f"Write it as [{where}] followed by key = value lines.")
        for key, value in raw.items():
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(keys)}."
                raise self.fail(f"{where}.{key}", "unknown key", hint)
            want, _ = keys[key]
            if not _is_type(value, want):
                raise self.fail(
                    f"{where}.{key}", f"expected {_type_name(want)}, got {_type_name(type(value))}",
                    f"Write it as {key} = {_example(want)}.",
                )
        for key, (want, required) in keys.items():
            if required and key not in raw:
                raise self.fail(f"{where}", f"missing {key!r}", f"Add: {key} = {_example(want)}")
        return dict(raw)


def _is_type(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _type_name(t: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
            dict: "a table"}.get(t, t.__name__)


def _example(t: type) -> str:
    return {str: '"..."', int: "5", float: "5", bool: "true", list: '["..."]'}.get(t, "...")


def default_settings(home: Path) -> Settings:
    """The embedded default: one local profile, the standard picture folders."""
    return Settings(
        default_profile="local",
        profiles={"local": LocalProfile(name="local")},
        transfers=TransferSettings(),
        security=SecuritySettings(allowed_roots=_roots(DEFAULT_ROOTS, home)),
    )


def _roots(raw: tuple[str, ...] | list[str], home: Path) -> tuple[Path, ...]:
    # A root is resolved once here, so that a symlinked ~/Pictures is compared by its real location.
    return tuple(Path(os.path.expanduser(r)).resolve() for r in raw)


def load_settings(path: Path, home: Path) -> Settings:
    """Read and check config.toml; a missing file is the embedded default."""
    if not path.exists():
        return default_settings(home)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}). Fix that line; strings need quotes, e.g. bucket = \"photos\".",
            data={"file": str(path)},
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).", data={"file": str(path)}) from exc
    return parse_settings(raw, path, home)


def parse_settings(raw: Mapping[str, Any], path: Path, home: Path) -> Settings:
    check = _Checker(path)
    for key in raw:
        if key not in _TOP_KEYS:
            close = difflib.get_close_matches(key, _TOP_KEYS, n=1)
            hint = f"Did you mean [{close[0]}]?" if close else f"Known sections: {', '.join(_TOP_KEYS)}."
            raise check.fail(key, "unknown section", hint)

    profiles: dict[str, Profile] = {}
    raw_profiles = raw.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise check.fail("profiles", "is not a table", "Write each profile as [profiles.NAME].")
    for name, table in raw_profiles.items():
        where = f"profiles.{name}"
        if not isinstance(table, dict):
            raise check.fail(where, "is not a table", f"Write it as [{where}] followed by provider = \"...\".")
        provider = table.get("provider")
        if provider not in PROVIDERS:
            raise check.fail(
                f"{where}.provider",
                f"unknown or missing provider {provider!r}" if provider else "missing 'provider'",
                'Write provider = "local", "s3" or "oss".',
            )
        profiles[name] = _profile(check, where, name, check.table(where, table, _PROFILE_KEYS[provider]))
    if not profiles:
        profiles["local"] = LocalProfile(name="local")

    storage = check.table("storage", raw.get("storage", {}), {"default": (str, False)})
    default = storage.get("default") or ("local" if "local" in profiles else next(iter(profiles)))
    if default not in profiles:
        raise check.fail(
            "storage.default", f"names the profile {default!r}, which is not defined",
            f"Add [profiles.{default}] or set default to one of: {', '.join(sorted(profiles))}.",
        )

    t = check.table("transfers", raw.get("transfers", {}), _TRANSFER_KEYS)
    transfers = TransferSettings(
        max_concurrent=_ranged(check, "transfers.max_concurrent", t.get("max_concurrent", 8), 1, 100),
        attempts=_ranged(check, "transfers.attempts", t.get("attempts", 3), 1, 20),
        backoff_base_s=float(t.get("backoff_base_s", 0.5)),
        backoff_max_s=float(t.get("backoff_max_s", 8.0)),
        multipart_threshold=int(_ranged(check, "transfers.multipart_threshold_mb",
                                        t.get("multipart_threshold_mb", 5), 5, 5 * 1024) * MiB),
        part_size=int(_ranged(check, "transfers.part_size_mb", t.get("part_size_mb", 8), 5, 5 * 1024) * MiB),
        part_concurrency=_ranged(check, "transfers.part_concurrency", t.get("part_concurrency", 4), 1, 32),
        connect_timeout_s=float(t.get("connect_timeout_s", 10.0)),
        read_timeout_s=float(t.get("read_timeout_s", 60.0)),
    )

    s = check.table("security", raw.get("security", {}), _SECURITY_KEYS)
    roots = s.get("allowed_roots", list(DEFAULT_ROOTS))
    if not all(isinstance(r, str) and r for r in roots):
        raise check.fail("security.allowed_roots", "must be a list of folder paths",
                         'Write allowed_roots = ["~/Pictures", "~/Desktop"].')
    security = SecuritySettings(
        allowed_roots=_roots(roots, home),
        images_only=bool(s.get("images_only", True)),
        max_file_size=int(_ranged(check, "security.max_file_size_mb", s.get("max_file_size_mb", 5120),
                                  0.001, 5 * 1024 * 1024) * MiB),
        calls_per_second=float(_ranged(check, "security.calls_per_second", s.get("calls_per_second", 20), 0.1,
                                       10_000)),
        call_burst=_ranged(check, "security.call_burst", s.get("call_burst", 40), 1, 100_000),
        files_per_minute=_ranged(check, "security.files_per_minute", s.get("files_per_minute", 10_000), 1,
                                 10_000_000),
        max_queued_files=_ranged(check, "security.max_queued_files", s.get("max_queued_files", 100_000), 1,
                                 10_000_000),
    )
    return Settings(default_profile=default, profiles=profiles, transfers=transfers, security=security,
                    path=path)


def _ranged(check: _Checker, where: str, value: Any, lo: float, hi: float) -> Any:
    if not lo <= value <= hi:
        raise check.fail(where, f"{value} is out of range", f"Use a value from {lo} to {hi}.")
    return value


def _profile(check: _Checker, where: str, name: str, t: dict[str, Any]) -> Profile:
    common: dict[str, Any] = {"name": name, "key_template": t.get("key_template", DEFAULT_KEY_TEMPLATE),
                              "public_base_url": _url(check, f"{where}.public_base_url", t.get("public_base_url"))}
    from .keys import validate_template  # late: keys imports nothing from here, but keep config standalone

    try:
        validate_template(common["key_template"])
    except ValueError as exc:
        raise check.fail(f"{where}.key_template", str(exc), "See the README for the placeholders.") from exc
    provider = t["provider"]
    if provider == "local":
        root = t.get("root")
        return LocalProfile(**common, root=Path(os.path.expanduser(root)) if root else None)
    if not t["bucket"].strip():
        raise check.fail(f"{where}.bucket", "is empty", 'Write the bucket name, e.g. bucket = "photos".')
    if provider == "s3":
        style = t.get("addressing_style", "auto")
        if style not in ("path", "virtual", "auto"):
            raise check.fail(f"{where}.addressing_style", f"{style!r} is not a style",
                             'Write addressing_style = "path" (MinIO, rclone, most self-hosted) or "virtual".')
        if ("access_key_id" in t) != ("secret_access_key" in t):
            raise check.fail(where, "has only one of access_key_id / secret_access_key",
                             "Set both, or neither to use the standard AWS credential chain.")
        return S3Profile(
            **common, bucket=t["bucket"], endpoint_url=_url(check, f"{where}.endpoint_url", t.get("endpoint_url")),
            region=t.get("region"), access_key_id=t.get("access_key_id"),
            secret_access_key=t.get("secret_access_key"), session_token=t.get("session_token"),
            addressing_style=style, presign_expires_s=_ranged(check, f"{where}.presign_expires_s",
                                                              t.get("presign_expires_s", 604800), 1, 604800),
        )
    endpoint = _url(check, f"{where}.endpoint", t["endpoint"])
    key_id = t.get("access_key_id") or os.environ.get("OSS_ACCESS_KEY_ID")
    secret = t.get("access_key_secret") or os.environ.get("OSS_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        raise check.fail(where, "has no OSS credentials",
                         "Set access_key_id and access_key_secret, or OSS_ACCESS_KEY_ID and "
                         "OSS_ACCESS_KEY_SECRET in the daemon's environment.")
    return OssProfile(**common, bucket=t["bucket"], endpoint=endpoint or "", access_key_id=key_id,
                      access_key_secret=secret,
                      presign_expires_s=_ranged(check, f"{where}.presign_expires_s",
                                                t.get("presign_expires_s", 604800), 1, 10 * 365 * 86400))


def _url(check: _Checker, where: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise check.fail(where, f"{value!r} is not an http(s) URL", 'Write it with its scheme, e.g. "https://...".')
    return value.rstrip("/")
