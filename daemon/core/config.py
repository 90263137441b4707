"""The settings pixlift runs with, and the checker every table of ``config.toml`` goes through.

This module knows no storage provider: each provider module declares its own profile type (a subclass of
``ProfileBase``) and registers it (``providers/registry.py``); ``settings/config_file.py`` reads the file through that
registry. Secrets live only in the profile objects (``repr=False``, marked ``secret`` in the field's metadata,
so the list of secret fields is declared once, where the field is) and never leave them except towards SDKs.
"""

from __future__ import annotations

import dataclasses
import difflib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MiB = 1024 * 1024
DEFAULT_KEY_TEMPLATE = "{year}/{month}/{stem}-{hash8}{ext}"
DEFAULT_ROOTS = ("~/Pictures", "~/Desktop", "~/Downloads")
SECRET: Mapping[str, Any] = {"secret": True}  # dataclass field metadata: write-only, never shown or logged


def secret_field() -> Any:
    """A profile field that holds a credential."""
    return field(default=None, repr=False, metadata=SECRET)


@dataclass(frozen=True)
class ProfileBase:
    """What every storage profile has; a provider's profile type adds its own fields."""

    name: str
    key_template: str = DEFAULT_KEY_TEMPLATE
    public_base_url: str | None = None
    provider: str = ""

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("secret"))

    def secrets(self) -> list[str | None]:
        return [getattr(self, name) for name in self.secret_fields()]


SMALL_FILE = 1024 * 1024  # a file this size or smaller is sent as one request from memory
SMALL_AT_ONCE = 64  # small files in flight at once when max_concurrent is not set (each is mostly round trips)


@dataclass(frozen=True)
class TransferSettings:
    max_concurrent: int = 8  # files in flight at once; when not set, up to SMALL_AT_ONCE small files
    max_concurrent_set: bool = False  # the user chose max_concurrent: it then bounds every file
    attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    multipart_threshold: int = 5 * MiB
    part_size: int = 5 * MiB  # the smallest S3 allows: a pause or a crash loses at most part_concurrency of these
    part_concurrency: int = 4
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    forget_finished_after_s: int = 3600  # completed and cancelled tasks leave the live list; 0 keeps them
    max_bytes_in_flight: int = 64 * MiB  # the most bytes on their way at once (providers/inflight.py)
    outage_tolerance_s: float = 600.0  # a store that cannot be reached is waited for this long, then the task fails

    @property
    def slots(self) -> int:
        """How much may be in flight at once, in the units of ``slots_of``."""
        return self.max_concurrent if self.max_concurrent_set else SMALL_AT_ONCE

    def slots_of(self, size: int) -> int:
        """What one file of ``size`` bytes takes of ``slots``: by default a small file takes one, a larger one
        as many as keep ``max_concurrent`` of them at once; with ``max_concurrent`` set, every file takes one."""
        if self.max_concurrent_set or size <= SMALL_FILE:
            return 1
        return max(1, SMALL_AT_ONCE // self.max_concurrent)


@dataclass(frozen=True)
class ImageSettings:
    """``[images]``, and ``[profiles.NAME.images]`` over it: what happens to a picture on its way up."""

    strip_metadata: str = "location"  # "location", "all" or "none" (images/metadata.py)
    dedup: bool = True  # the same bytes already uploaded to this profile: reuse that object and its link
    convert_to: str = ""  # "", "webp", "avif", "jpeg" or "png": re-encoded before upload (images/convert.py)
    quality: int = 85  # for the lossy targets
    max_dimension: int = 0  # > 0: scaled down so that neither side is longer (re-encodes)


@dataclass(frozen=True)
class SecuritySettings:
    allowed_roots: tuple[Path, ...] = ()
    images_only: bool = True
    max_file_size: int = 5 * 1024 * MiB
    calls_per_second: float = 20.0
    call_burst: int = 40
    files_per_minute: int = 10_000
    max_queued_files: int = 100_000
    allow_private_urls: bool = False  # upload_urls may fetch from loopback, private and link-local addresses


EDITOR_ORIGINS = ("typora://app",)  # Typora's window on Windows and Linux (README, "PicGo-compatible server")


@dataclass(frozen=True)
class IntegrationSettings:
    """``[integrations]``: the PicGo-compatible server that Typora, Obsidian and PicList's clients call."""

    picgo_server: bool = False
    picgo_port: int = 36677
    picgo_key: str | None = field(default=None, repr=False, metadata=SECRET)  # ``?key=`` must match when set
    picgo_origins: tuple[str, ...] = EDITOR_ORIGINS  # app origins allowed besides requests with no Origin


@dataclass(frozen=True)
class Settings:
    default_profile: str
    profiles: Mapping[str, ProfileBase]
    transfers: TransferSettings
    security: SecuritySettings
    path: Path | None = None  # where they were read from; None: the embedded default
    images: ImageSettings = ImageSettings()
    profile_images: Mapping[str, ImageSettings] = field(default_factory=dict)  # [profiles.NAME.images]
    integrations: IntegrationSettings = IntegrationSettings()

    def images_for(self, profile: str) -> ImageSettings:
        return self.profile_images.get(profile, self.images)

    def profile(self, name: str | None) -> ProfileBase:
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

    def secrets(self) -> list[str | None]:
        return [s for p in self.profiles.values() for s in p.secrets()] + [self.integrations.picgo_key]


class SettingsBox:
    """The settings in force. Replaced whole when config.toml is saved, so readers never see a mix."""

    def __init__(self, settings: Settings) -> None:
        self.current = settings

    def replace(self, settings: Settings) -> None:
        self.current = settings


Keys = Mapping[str, tuple[type, bool]]  # a table's keys: name -> (type, required)


class Checker:
    """Validates one table and produces messages that say where and what to write.

    Unknown keys are refused with a suggestion, because a typo ("bucket_name") silently ignored is a profile
    that uploads somewhere else."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}. {fix}", data={"file": str(self.path), "key": where})

    def table(self, where: str, raw: Any, keys: Keys) -> dict[str, Any]:
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

    def ranged(self, where: str, value: Any, lo: float, hi: float) -> Any:
        if not lo <= value <= hi:
            raise self.fail(where, f"{value} is out of range", f"Use a value from {lo} to {hi}.")
        return value

    def url(self, where: str, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise self.fail(where, f"{value!r} is not an http(s) URL", 'Write it with its scheme, e.g. "https://...".')
        try:
            parts = urllib.parse.urlsplit(value)
            _ = parts.port  # raises for a port that is not a number or out of range
        except ValueError:
            raise self.fail(where, f"{value!r} is not a valid URL (its host or port cannot be read)",
                            'Write it as scheme://host[:port], e.g. "http://127.0.0.1:9000".') from None
        if not parts.hostname:
            raise self.fail(where, f"{value!r} has no host", 'Write it as scheme://host[:port].')
        return value.rstrip("/")

    def folder(self, where: str, value: str) -> str:
        if "\x00" in value:
            raise self.fail(where, "contains a NUL character", "Write the folder's path as plain text.")
        return value

    def bucket(self, where: str, value: str) -> str:
        if not value.strip():
            raise self.fail(f"{where}.bucket", "is empty", 'Write the bucket name, e.g. bucket = "photos".')
        return value


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
