"""Reading and checking ``<home>/config.toml``.

A missing file means the embedded default (one ``local`` profile). A broken file is refused as a whole with a
message naming the file, the key and what to write instead: the daemon never starts half-configured. Each
profile table is checked against its provider's keys and parsed by its provider's kind (the registry), so a
new provider brings its own settings without touching this file.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.config import (
    DEFAULT_KEY_TEMPLATE,
    DEFAULT_ROOTS,
    EDITOR_ORIGINS,
    Checker,
    ImageSettings,
    IntegrationSettings,
    Keys,
    MiB,
    ProfileBase,
    SecuritySettings,
    Settings,
    TransferSettings,
)
from ..core.keys import validate_template
from ..errors import ConfigError
from ..images.convert import CHOICES
from ..images.metadata import MODES
from ..providers.registry import KINDS

COMMON_PROFILE_KEYS: Keys = {"provider": (str, True), "key_template": (str, False),
                             "public_base_url": (str, False)}
TRANSFER_KEYS: Keys = {
    "max_concurrent": (int, False),
    "attempts": (int, False),
    "backoff_base_s": (float, False),
    "backoff_max_s": (float, False),
    "multipart_threshold_mb": (float, False),
    "part_size_mb": (float, False),
    "part_concurrency": (int, False),
    "connect_timeout_s": (float, False),
    "read_timeout_s": (float, False),
    "forget_finished_after_s": (int, False),
    "outage_tolerance_s": (float, False),
    "max_bytes_in_flight_mb": (float, False),
}
SECURITY_KEYS: Keys = {
    "allowed_roots": (list, False),
    "images_only": (bool, False),
    "max_file_size_mb": (float, False),
    "calls_per_second": (float, False),
    "call_burst": (int, False),
    "files_per_minute": (int, False),
    "max_queued_files": (int, False),
    "allow_private_urls": (bool, False),
}
IMAGE_KEYS: Keys = {"strip_metadata": (str, False), "dedup": (bool, False), "convert_to": (str, False),
                    "quality": (int, False), "max_dimension": (int, False)}
INTEGRATION_KEYS: Keys = {"picgo_server": (bool, False), "picgo_port": (int, False), "picgo_key": (str, False),
                          "picgo_origins": (list, False)}
TOP_KEYS = ("storage", "profiles", "transfers", "security", "images", "integrations")
_APP_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]+\Z")


def profile_keys(provider: str) -> Keys:
    """Every key a profile of this provider may have."""
    return {**COMMON_PROFILE_KEYS, **KINDS[provider].keys}


def default_settings(home: Path) -> Settings:
    """The embedded default: one local profile, the standard picture folders."""
    return Settings(
        default_profile="local",
        profiles={"local": KINDS["local"].default_profile("local")},
        transfers=TransferSettings(),
        security=SecuritySettings(allowed_roots=_roots(DEFAULT_ROOTS)),
    )


def _roots(raw: tuple[str, ...] | list[str]) -> tuple[Path, ...]:
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
    check = Checker(path)
    for key in raw:
        if key not in TOP_KEYS:
            close = difflib.get_close_matches(key, TOP_KEYS, n=1)
            hint = f"Did you mean [{close[0]}]?" if close else f"Known sections: {', '.join(TOP_KEYS)}."
            raise check.fail(key, "unknown section", hint)
    images = _images(check, "images", raw.get("images", {}), ImageSettings())
    profile_images: dict[str, ImageSettings] = {}
    profiles = _profiles(check, raw.get("profiles", {}), images, profile_images)
    storage = check.table("storage", raw.get("storage", {}), {"default": (str, False)})
    default = storage.get("default") or ("local" if "local" in profiles else next(iter(profiles)))
    if default not in profiles:
        raise check.fail(
            "storage.default", f"names the profile {default!r}, which is not defined",
            f"Add [profiles.{default}] or set default to one of: {', '.join(sorted(profiles))}.",
        )
    return Settings(default_profile=default, profiles=profiles,
                    transfers=_transfers(check, raw.get("transfers", {})),
                    security=_security(check, raw.get("security", {})), path=path, images=images,
                    profile_images=profile_images, integrations=_integrations(check, raw.get("integrations", {})))


def _images(check: Checker, where: str, raw: Any, base: ImageSettings) -> ImageSettings:
    t = check.table(where, raw, IMAGE_KEYS)
    mode = t.get("strip_metadata", base.strip_metadata)
    if mode not in MODES:
        raise check.fail(f"{where}.strip_metadata", f"{mode!r} is not a choice",
                         'Write "location" (GPS and place tags, the default), "all" (every tag but orientation '
                         'and colour profile) or "none".')
    to = t.get("convert_to", base.convert_to)
    if to not in CHOICES:
        raise check.fail(f"{where}.convert_to", f"{to!r} is not a format pixlift writes",
                         'Write "webp", "avif", "jpeg", "png", or "" to keep each file\'s own format.')
    size = check.ranged(f"{where}.max_dimension", t.get("max_dimension", base.max_dimension), 0, 100_000)
    if 0 < size < 16:
        raise check.fail(f"{where}.max_dimension", f"{size} pixels is too small", "Write 0 (no scaling) or 16 or more.")
    return ImageSettings(strip_metadata=mode, dedup=bool(t.get("dedup", base.dedup)), convert_to=to,
                         quality=check.ranged(f"{where}.quality", t.get("quality", base.quality), 1, 100),
                         max_dimension=size)


def _profiles(check: Checker, raw_profiles: Any, images: ImageSettings,
              profile_images: dict[str, ImageSettings]) -> dict[str, ProfileBase]:
    if not isinstance(raw_profiles, dict):
        raise check.fail("profiles", "is not a table", "Write each profile as [profiles.NAME].")
    profiles: dict[str, ProfileBase] = {}
    for name, table in raw_profiles.items():
        where = f"profiles.{name}"
        if not isinstance(table, dict):
            raise check.fail(where, "is not a table", f"Write it as [{where}] followed by provider = \"...\".")
        provider = table.get("provider")
        if not isinstance(provider, str) or provider not in KINDS:
            known = [f'"{k}"' for k in sorted(KINDS, key=lambda k: k != "local")]  # the embedded default first
            names = ", ".join(known[:-1]) + f" or {known[-1]}"
            raise check.fail(
                f"{where}.provider",
                f"unknown or missing provider {provider!r}" if provider else "missing 'provider'",
                f"Write provider = {names}.",
            )
        if "images" in table:  # [profiles.NAME.images]: over the top-level [images]
            profile_images[name] = _images(check, f"{where}.images", table["images"], images)
            table = {k: v for k, v in table.items() if k != "images"}
        t = check.table(where, table, profile_keys(provider))
        template = t.get("key_template", DEFAULT_KEY_TEMPLATE)
        try:
            validate_template(template)
        except ValueError as exc:
            raise check.fail(f"{where}.key_template", str(exc), "See the README for the placeholders.") from exc
        common: dict[str, Any] = {"name": name, "key_template": template,
                                  "public_base_url": check.url(f"{where}.public_base_url", t.get("public_base_url"))}
        profiles[name] = KINDS[provider].parse(check, where, common, t)
    if not profiles:
        profiles["local"] = KINDS["local"].default_profile("local")
    return profiles


def _transfers(check: Checker, raw: Any) -> TransferSettings:
    t = check.table("transfers", raw, TRANSFER_KEYS)
    return TransferSettings(
        max_concurrent=check.ranged("transfers.max_concurrent", t.get("max_concurrent", 8), 1, 100),
        max_concurrent_set="max_concurrent" in t,
        attempts=check.ranged("transfers.attempts", t.get("attempts", 3), 1, 20),
        backoff_base_s=float(t.get("backoff_base_s", 0.5)),
        backoff_max_s=float(t.get("backoff_max_s", 8.0)),
        multipart_threshold=int(check.ranged("transfers.multipart_threshold_mb",
                                             t.get("multipart_threshold_mb", 5), 5, 5 * 1024) * MiB),
        part_size=int(check.ranged("transfers.part_size_mb", t.get("part_size_mb", 5), 5, 5 * 1024) * MiB),
        part_concurrency=check.ranged("transfers.part_concurrency", t.get("part_concurrency", 4), 1, 32),
        connect_timeout_s=float(t.get("connect_timeout_s", 10.0)),
        read_timeout_s=float(t.get("read_timeout_s", 60.0)),
        max_bytes_in_flight=int(check.ranged("transfers.max_bytes_in_flight_mb",
                                             t.get("max_bytes_in_flight_mb", 64), 5, 10 * 1024) * MiB),
        outage_tolerance_s=float(check.ranged("transfers.outage_tolerance_s", t.get("outage_tolerance_s", 600), 0,
                                              7 * 86400)),
        forget_finished_after_s=check.ranged("transfers.forget_finished_after_s",
                                             t.get("forget_finished_after_s", 3600), 0, 10 * 365 * 86400),
    )


def _security(check: Checker, raw: Any) -> SecuritySettings:
    s = check.table("security", raw, SECURITY_KEYS)
    roots = s.get("allowed_roots", list(DEFAULT_ROOTS))
    if not all(isinstance(r, str) and r for r in roots):
        raise check.fail("security.allowed_roots", "must be a list of folder paths",
                         'Write allowed_roots = ["~/Pictures", "~/Desktop"].')
    return SecuritySettings(
        allowed_roots=_roots(roots),
        images_only=bool(s.get("images_only", True)),
        max_file_size=int(check.ranged("security.max_file_size_mb", s.get("max_file_size_mb", 5120),
                                       0.001, 5 * 1024 * 1024) * MiB),
        calls_per_second=float(check.ranged("security.calls_per_second", s.get("calls_per_second", 20), 0.1,
                                            10_000)),
        call_burst=check.ranged("security.call_burst", s.get("call_burst", 40), 1, 100_000),
        files_per_minute=check.ranged("security.files_per_minute", s.get("files_per_minute", 10_000), 1,
                                      10_000_000),
        max_queued_files=check.ranged("security.max_queued_files", s.get("max_queued_files", 100_000), 1,
                                      10_000_000),
        allow_private_urls=bool(s.get("allow_private_urls", False)),
    )


def _integrations(check: Checker, raw: Any) -> IntegrationSettings:
    t = check.table("integrations", raw, INTEGRATION_KEYS)
    key = t.get("picgo_key") or None
    if key is not None and (len(key) < 8 or not key.isprintable() or " " in key):
        raise check.fail("integrations.picgo_key", "must be at least 8 printable characters without spaces",
                         'Write a long random word, e.g. the output of "python3 -c \'import secrets; '
                         'print(secrets.token_urlsafe(16))\'", or leave it out.')
    origins = t.get("picgo_origins", list(EDITOR_ORIGINS))
    for origin in origins:
        if not isinstance(origin, str) or not _APP_ORIGIN.match(origin):
            raise check.fail("integrations.picgo_origins", f"{origin!r} is not an origin",
                             'Write an app\'s origin as scheme://host, e.g. "typora://app".')
        if origin.startswith(("http://", "https://")):
            raise check.fail("integrations.picgo_origins", f"{origin!r} is a web page's origin",
                             "Web pages may never use this server; a web app should call the JSON-RPC API with "
                             "the token instead. List only editors' own origins, e.g. \"typora://app\".")
    return IntegrationSettings(
        picgo_server=bool(t.get("picgo_server", False)),
        picgo_port=check.ranged("integrations.picgo_port", t.get("picgo_port", 36677), 1024, 65535),
        picgo_key=key, picgo_origins=tuple(origins))
