"""Hostile files, built byte by byte: the ones issue 21 measured, and a slow one for the time budget."""

from __future__ import annotations

import struct
from pathlib import Path


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def heic_billion_items() -> bytes:
    """54 bytes: a HEIC whose iloc box (version 2) announces 0xFFFFFFFF items."""
    ftyp = box(b"ftyp", b"heic" + b"\x00\x00\x00\x00" + b"mif1heic")
    iloc = box(b"iloc", b"\x02\x00\x00\x00" + b"\x44\x40" + struct.pack(">I", 0xFFFFFFFF))
    data = ftyp + box(b"meta", b"\x00\x00\x00\x00" + iloc)
    assert len(data) == 54, len(data)
    return data


def heic_empty_extents(items: int = 65_535, extents: int = 65_535) -> bytes:
    """About 512 KiB: a HEIC whose iloc (version 1, every field size 0) lists ``items`` items of ``extents``
    zero-size extents each: four billion extents that take no byte."""
    ftyp = box(b"ftyp", b"heic" + b"\x00\x00\x00\x00" + b"mif1heic")
    entries = b"".join(struct.pack(">HHHH", i + 1, 0, 0, extents) for i in range(items))
    iloc = box(b"iloc", b"\x01\x00\x00\x00" + b"\x00\x00" + struct.pack(">H", items) + entries)
    return ftyp + box(b"meta", b"\x00\x00\x00\x00" + iloc)


def tiff_shared_gps_value(entries: int = 65_535, value: int = 16 * 1024 * 1024) -> bytes:
    """About 17 MiB: a TIFF whose GPS directory holds ``entries`` entries all pointing at one ``value``-byte
    value (blanking them one by one costs entries x value)."""
    gps_at = 8 + 2 + 12 * 2 + 4
    value_at = gps_at + 2 + 12 * entries + 4
    ifd0 = struct.pack("<H", 2) + struct.pack("<HHII", 0x0100, 4, 1, 1) + struct.pack("<HHII", 0x8825, 4, 1, gps_at)
    ifd0 += struct.pack("<I", 0)
    gps = struct.pack("<H", entries) + b"".join(struct.pack("<HHII", 1 + i % 30, 1, value, value_at)
                                                for i in range(entries)) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd0 + gps + b"\x00" * value


def gif_tiny_subblocks(size: int = 60 * 1024 * 1024) -> bytes:
    """A GIF whose image data comes in one-byte sub-blocks: valid, and slow to walk (one step per two bytes),
    so reading it runs into the time budget."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02"
    blocks = b"\x01\x00" * ((size - len(head) - len(image) - 2) // 2)
    return head + image + blocks + b"\x00\x3b"


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path
