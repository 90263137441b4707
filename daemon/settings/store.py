"""Changing ``config.toml`` from the settings page: add, edit and delete profiles, choose the default.

Every change is a read-modify-write of the whole file under one lock:

1. read the file as it is now (a hand edit made since the daemon started counts);
2. change one table;
3. check the result with ``config.parse_settings``, the same checker the daemon starts with, so a bad profile
   is refused with the checker's own message and nothing is written;
4. write it atomically (temp file + rename, mode 0600; other sections are kept);
5. swap the new settings into the ``SettingsBox``, so they take effect without a restart.

Saving a profile patches its table (see ``merge_profile``). What config.toml may say, the API may not always
set: a provider's kind can guard settings (a local profile's folder, which the daemon publishes) that only a
hand edit may choose; a value already in the file, left as it is, counts as the user's. Secret fields are
write-only: a secret left out or empty keeps the one already saved, so a client that was never shown it can
still edit the rest.
Comments in a hand-written file are not kept: the file is rewritten from its parsed values.

The standard library reads TOML but does not write it; ``dumps`` writes the subset our schema uses (tables,
strings, integers, floats, booleans and lists of those).
"""

from __future__ import annotations

import asyncio
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.config import ProfileBase, Settings, SettingsBox
from ..errors import ConfigError, InvalidParams
from ..providers.registry import KINDS, SECRET_KEYS
from .config_file import parse_settings
from .home import write_private

INTEGRATION_FIELDS = {"picgo_server", "picgo_port", "picgo_key"}
PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
MAX_FIELD_LEN = 4096

Raw = dict[str, Any]


class SettingsStore:
    """The one writer of config.toml."""

    def __init__(self, path: Path, home: Path, box: SettingsBox) -> None:
        self.path = path
        self.home = home
        self.box = box
        self._lock = asyncio.Lock()

    # -- the changes ----------------------------------------------------------------------------------------
    async def save_profile(self, name: str, fields: Mapping[str, Any]) -> Settings:
        """Add the profile ``name``, or replace its fields (keeping saved secrets that ``fields`` leaves out)."""
        check_name(name)

        saved: list[Raw | None] = []

        def edit(raw: Raw) -> None:
            profiles = raw["profiles"]
            saved.append(profiles.get(name))
            profiles[name] = merge_profile(profiles.get(name), fields)

        def guard(raw: Raw, settings: Settings) -> None:
            self._guard(name, saved[-1], raw["profiles"][name], settings)

        return await self._change(edit, guard)

    async def delete_profile(self, name: str) -> Settings:
        def edit(raw: Raw) -> None:
            profiles = raw["profiles"]
            if name not in profiles:
                raise ConfigError(f"There is no profile {name!r} to delete. Profiles: {', '.join(profiles)}.",
                                  data={"profile": name})
            if len(profiles) == 1:
                raise ConfigError(f"{name!r} is the only profile; add another before deleting it.",
                                  data={"profile": name})
            if raw["storage"]["default"] == name:
                raise ConfigError(f"{name!r} is the default profile; make another profile the default first.",
                                  data={"profile": name})
            del profiles[name]

        return await self._change(edit)

    async def set_default(self, name: str) -> Settings:
        def edit(raw: Raw) -> None:
            if name not in raw["profiles"]:
                raise ConfigError(f"There is no profile {name!r}. Profiles: {', '.join(raw['profiles'])}.",
                                  data={"profile": name})
            raw["storage"]["default"] = name

        return await self._change(edit)

    async def save_integrations(self, fields: Mapping[str, Any]) -> Settings:
        """Patch ``[integrations]``: a field left out keeps its value; ``picgo_key`` given ``""`` keeps the saved
        key (the client never saw it) and given null removes it."""
        unknown = set(fields) - INTEGRATION_FIELDS
        if unknown:
            raise InvalidParams(f"Unknown integration setting {sorted(unknown)[0]!r}; known: "
                                f"{', '.join(sorted(INTEGRATION_FIELDS))}.", data={"param": "integrations"})

        def edit(raw: Raw) -> None:
            table = raw.setdefault("integrations", {})
            for key, value in fields.items():
                if key == "picgo_key" and value == "":
                    continue
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value.strip() if isinstance(value, str) else value

        return await self._change(edit)

    def draft(self, name: str, fields: Mapping[str, Any]) -> ProfileBase:
        """The profile ``fields`` would make, checked like a save, without writing anything."""
        check_name(name)
        raw = self._read()
        saved = raw["profiles"].get(name)
        raw["profiles"][name] = merge_profile(saved, fields)
        settings = parse_settings(raw, self.path, self.home)
        self._guard(name, saved, raw["profiles"][name], settings)
        return settings.profile(name)

    def _guard(self, name: str, saved: Raw | None, table: Raw, settings: Settings) -> None:
        profile = settings.profile(name)
        kind = KINDS[profile.provider]
        if kind.api_guard is not None:
            kind.api_guard(profile, saved, table, settings.security, self.home)

    # -- the machinery -------------------------------------------------------------------------------------
    async def _change(self, edit: Callable[[Raw], None],
                      guard: Callable[[Raw, Settings], None] | None = None) -> Settings:
        async with self._lock:
            settings = await asyncio.to_thread(self._change_file, edit, guard)
            self.box.replace(settings)
            return settings

    def _change_file(self, edit: Callable[[Raw], None], guard: Callable[[Raw, Settings], None] | None) -> Settings:
        raw = self._read()
        edit(raw)
        settings = parse_settings(raw, self.path, self.home)
        if guard is not None:
            guard(raw, settings)
        write_private(self.path, dumps(raw))
        return settings

    def _read(self) -> Raw:
        """The file's tables, with what the daemon assumes when they are absent written out explicitly."""
        try:
            with self.path.open("rb") as fh:
                raw: Raw = tomllib.load(fh)
        except FileNotFoundError:
            raw = {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.path}: not valid TOML ({exc}); fix it by hand before saving settings here.",
                              data={"file": str(self.path)}) from exc
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read ({exc.strerror}).", data={"file": str(self.path)}) from exc
        current = parse_settings(raw, self.path, self.home)  # refuse to build on a file that is already broken
        if not raw.get("profiles"):
            raw["profiles"] = {"local": {"provider": "local"}}  # the embedded default, made explicit
        storage = raw.setdefault("storage", {})
        storage.setdefault("default", current.default_profile)  # pin it: adding a profile must not move it
        return raw


def check_name(name: str) -> None:
    if not PROFILE_NAME.match(name):
        raise InvalidParams(f"Profile name {name!r} is not usable: use 1 to 64 letters, digits, '-' or '_'.",
                            data={"param": "name"})


def merge_profile(old: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> Raw:
    """The profile's new table: ``old`` patched with ``fields``.

    A field given a value sets it; a field given empty (``""`` or null) removes it, except a secret, which
    keeps its saved value (the client never saw it). Fields left out keep their saved value, so settings a
    client does not know about (``presign_expires_s`` written by hand) survive an edit. A changed provider
    starts from an empty table: the old provider's keys would not fit the new one.
    """
    same = old is not None and fields.get("provider", old.get("provider")) == old.get("provider")
    table: Raw = dict(old) if old is not None and same else {}
    for key, value in fields.items():
        if key == "images" and isinstance(value, Mapping):  # [profiles.NAME.images], patched the same way
            images = merge_profile(table.get("images") if isinstance(table.get("images"), Mapping) else {}, value)
            if images:
                table["images"] = images
            else:
                table.pop("images", None)
            continue
        if not isinstance(key, str):
            raise InvalidParams("Profile field names must be strings.", data={"param": "profile"})
        if isinstance(value, str):
            value = value.strip()
            if len(value) > MAX_FIELD_LEN or not _encodable(value):
                raise InvalidParams(f"Profile field {key!r} is too long or not valid text.",
                                    data={"param": "profile", "key": key})
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidParams(f"Profile field {key!r} must be a string, a number or true/false.",
                                data={"param": "profile", "key": key})
        if value is None or value == "":
            if key not in SECRET_KEYS:
                table.pop(key, None)
            continue
        table[key] = value
    return table


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON
        return False
    return True


# -- a TOML writer for our schema ----------------------------------------------------------------------------
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dumps(doc: Mapping[str, Any]) -> str:
    """TOML text for ``doc``: nested tables become ``[a.b]`` headers; arrays of tables are not supported."""
    lines: list[str] = []
    _table(lines, (), doc)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    values = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (values or not tables):  # a table holding only tables is defined by their headers
        lines += ["", "[" + ".".join(_key(p) for p in path) + "]"]
    for key, value in values:
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, sub in tables:
        _table(lines, (*path, key), sub)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # repr is always a valid TOML float: 5.0, 1e+16, 0.001
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        if any(isinstance(v, Mapping) for v in value):
            raise TypeError("arrays of tables are not supported")
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
