"""A multipart upload as pixlift keeps it: what survives a pause, a retry or a restart, and how a file is cut."""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class MultipartState:
    """What survives a pause, a retry or a restart of a multipart upload: its id and its finished parts.

    A store that takes one file written in order and can go on at an offset (SFTP) keeps its temporary file's
    name in ``upload_id`` and the bytes written to it, in order and acknowledged, in ``held`` (no parts)."""

    key: str | None = None
    upload_id: str | None = None
    part_size: int = 0
    parts: dict[int, str] = field(default_factory=dict)  # part number -> ETag
    checksums: dict[int, int] = field(default_factory=dict)  # part number -> CRC64 where the store gives one
    verified: bool = False  # parts checked against the store in this process
    held: int = 0  # a stream upload: bytes the store acknowledged, in order from the first

    @property
    def started(self) -> bool:
        """A multipart upload exists at the store (and must be completed or aborted)."""
        return bool(self.upload_id)

    def bytes_done(self, size: int) -> int:
        if not self.upload_id:
            return 0
        if self.held:
            return min(self.held, size)
        if not self.part_size:
            return 0
        n_parts = max(1, -(-size // self.part_size))
        return sum(min(self.part_size, size - (n - 1) * self.part_size) for n in self.parts if n <= n_parts)

    def reset(self) -> None:
        self.key = self.upload_id = None
        self.part_size = self.held = 0
        self.parts.clear()
        self.checksums.clear()
        self.verified = False

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "upload_id": self.upload_id, "part_size": self.part_size,
                "parts": {str(k): v for k, v in self.parts.items()},
                "checksums": {str(k): v for k, v in self.checksums.items()}, "held": self.held}

    @classmethod
    def restored(cls, raw: dict[str, Any] | None) -> MultipartState | None:
        """A state the journal kept; None when there is none, or it is damaged: the upload then starts again from
        its first byte (nothing is lost but that time), instead of the daemon not starting."""
        try:
            return cls.from_json(raw) if raw else None
        except (ValueError, TypeError, AttributeError):
            return None

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> MultipartState:
        if not raw:
            return cls()
        return cls(key=raw.get("key"), upload_id=raw.get("upload_id"), part_size=int(raw.get("part_size") or 0),
                   parts={int(k): str(v) for k, v in (raw.get("parts") or {}).items()},
                   checksums={int(k): int(v) for k, v in (raw.get("checksums") or {}).items()},
                   held=int(raw.get("held") or 0))


def part_plan(size: int, part_size: int) -> list[tuple[int, int, int]]:
    """(part number, offset, length) for every part; S3 and OSS allow at most 10,000 parts."""
    part_size = max(part_size, -(-size // 10_000))
    return [(i + 1, off, min(part_size, size - off)) for i, off in enumerate(range(0, size, part_size))]


def temp_name(key: str) -> str:
    """Where a store that renames a whole file into place (WebDAV, SFTP) writes it first: hidden, beside the key,
    unique per upload, and recognisably pixlift's, so nobody loads half an image from the public URL."""
    return f".{posixpath.basename(key)}.{uuid.uuid4().hex[:12]}.pixlift-part"
