"""Object keys from a profile's ``key_template``.

Placeholders: ``{year} {month} {day} {hour} {minute} {second}`` (UTC, zero-padded), ``{stem}`` (the file name
without extension, made URL-safe), ``{ext}`` (with its dot, lower case), ``{name}`` (``{stem}{ext}``),
``{hash8}`` / ``{hash}`` (SHA-256 of the content, 8 or 64 hex digits), ``{uuid}``, ``{task_id}`` and
``{profile}``. The default ``{year}/{month}/{stem}-{hash8}{ext}`` never puts two different files under the same
key, and puts the same file twice under the same key.
"""

from __future__ import annotations

import functools
import posixpath
import re
import string
import unicodedata
import uuid
from datetime import datetime

PLACEHOLDERS = frozenset(
    {"year", "month", "day", "hour", "minute", "second", "stem", "ext", "name", "hash8", "hash", "uuid",
     "task_id", "profile"}
)
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def validate_template(template: str) -> None:
    """Raise ValueError naming the first unknown placeholder or an unsafe shape."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    for f in fields:
        if f not in PLACEHOLDERS:
            known = " ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{f}}}; known: {known}")
    if not fields or template.startswith("/") or ".." in template.split("/"):
        raise ValueError("a key template must contain a placeholder, and no leading '/' or '..'")


def needs_hash(template: str) -> bool:
    return "{hash" in template


def safe_stem(stem: str) -> str:
    """A stem safe in a key and a URL: letters (any script), digits, ``.-_``; everything else becomes ``-``."""
    stem = unicodedata.normalize("NFC", stem)
    cleaned = _UNSAFE.sub("-", stem).strip("-.")
    return cleaned[:120] or "file"


_DATE = {"year": ("year", 4), "month": ("month", 2), "day": ("day", 2), "hour": ("hour", 2),
         "minute": ("minute", 2), "second": ("second", 2)}  # a placeholder: its datetime field, and its width


@functools.lru_cache(maxsize=64)
def _pieces(template: str) -> tuple[tuple[str, str | None], ...] | None:
    """The template as (literal, placeholder) pairs; None when a placeholder has a format spec or a conversion
    (``str.format`` then renders it)."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if spec or conversion:
            return None
        out.append((literal, name))
    return tuple(out)


def _value(name: str, stem: str, ext: str, digest: str | None, when: datetime, task_id: str, profile: str) -> str:
    """What one placeholder stands for."""
    date = _DATE.get(name)
    if date is not None:
        return str(getattr(when, date[0])).zfill(date[1])
    if name == "stem":
        return stem
    if name == "ext":
        return ext
    if name == "name":
        return stem + ext
    if name == "hash8":
        return (digest or "")[:8]
    if name == "hash":
        return digest or ""
    if name == "uuid":
        return uuid.uuid4().hex
    if name == "task_id":
        return task_id
    if name == "profile":
        return safe_stem(profile)
    raise KeyError(name)


def render_key(template: str, *, filename: str, digest: str | None, when: datetime, task_id: str,
               profile: str) -> str:
    """The key of one file: each placeholder the template names, and only those, filled in (every upload names
    its object here). A key that could hold an empty, ``.`` or ``..`` segment is made a clean relative one."""
    p = posixpath.basename(filename.replace("\\", "/"))
    dot = p.rfind(".")
    suffix = p[dot:] if 0 < dot < len(p) - 1 else ""  # PurePosixPath's suffix, without building paths
    ext = suffix.lower() if 1 < len(suffix) <= 10 and _UNSAFE.search(suffix[1:]) is None else ""
    stem = safe_stem(p[: len(p) - len(suffix)] if ext else p)
    pieces = _pieces(template)
    if pieces is None:  # a placeholder with a format spec: str.format renders it, every value at hand
        key = template.format(**{name: _value(name, stem, ext, digest, when, task_id, profile)
                                 for name in PLACEHOLDERS})
    else:
        key = "".join([literal if name is None else literal + _value(name, stem, ext, digest, when, task_id, profile)
                       for literal, name in pieces])
    if "/." not in key and "//" not in key and not key.startswith(("/", ".")) and not key.endswith("/"):
        return key
    parts = [s for s in key.split("/") if s not in ("", ".", "..")]
    return "/".join(parts)
