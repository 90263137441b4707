"""EXIF is a TIFF structure: the directories of one, edited where they lie (metadata.py, metadata_heif.py).

Rebuilding the directories would move maker notes, whose private offsets then point at the wrong bytes; so
a directory is blanked in place (its entries and the values they point to zeroed, its count 0) and its
pointer dropped from IFD0 (the later entries move up 12 bytes): every other byte stays where it was.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

GPS_TAG, ORIENTATION_TAG = 0x8825, 0x0112
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
IPTC_PLACES = (26, 27, 90, 92, 95, 100, 101)  # IPTC IIM 2:xx datasets: location code/name, city, ... country
PLACE_MARKERS = (b"exif:GPS", b"GPSLatitude", b"GPSLongitude", b"photoshop:City", b"photoshop:State",
                  b"photoshop:Country", b"Iptc4xmpCore:Location", b"Iptc4xmpExt:LocationShown",
                  b"Iptc4xmpExt:LocationCreated", b"Iptc4xmpCore:CountryCode")


def edit_exif(tiff: bytes, mode: str) -> tuple[bytes | None, list[str]]:
    """The EXIF to keep (None: drop it) and what was removed from it."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        raise ValueError("not a TIFF header")
    order = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    entries = dict(_entries(tiff, order, ifd0))
    if mode == "all":
        if set(entries) <= {ORIENTATION_TAG}:
            return tiff, []  # the orientation alone: nothing to remove
        return minimal_exif(order, _short(tiff, order, entries.get(ORIENTATION_TAG))), ["exif"]
    if GPS_TAG not in entries:
        return tiff, []
    out = bytearray(tiff)
    gps = struct.unpack_from(order + "I", tiff, entries[GPS_TAG] + 8)[0]
    _blank_ifd(out, order, gps)
    _drop_entry(out, order, ifd0, GPS_TAG)
    return bytes(out), ["gps"]


def _entries(tiff: bytes, order: str, ifd: int) -> Iterator[tuple[int, int]]:
    """(tag, offset of its 12-byte entry) of one directory."""
    count = struct.unpack_from(order + "H", tiff, ifd)[0]
    for i in range(count):
        at = ifd + 2 + 12 * i
        yield struct.unpack_from(order + "H", tiff, at)[0], at


def _short(tiff: bytes, order: str, entry: int | None) -> int | None:
    if entry is None:
        return None
    kind, count = struct.unpack_from(order + "HI", tiff, entry + 2)
    return int(struct.unpack_from(order + "H", tiff, entry + 8)[0]) if kind == 3 and count == 1 else None


def _blank_ifd(out: bytearray, order: str, ifd: int) -> None:
    """Zero a directory's entries and every value they point to; it then holds nothing."""
    if not 0 < ifd < len(out) - 2:
        return
    for _, at in list(_entries(bytes(out), order, ifd)):
        _blank_value(out, order, at)
        out[at:at + 12] = bytes(12)
    struct.pack_into(order + "H", out, ifd, 0)


def _blank_value(out: bytearray, order: str, at: int) -> None:
    """Zero the value an entry points to (one of more than 4 bytes lies outside the entry)."""
    kind, count = struct.unpack_from(order + "HI", out, at + 2)
    size = TYPE_SIZES.get(kind, 1) * count
    if size > 4:
        offset = struct.unpack_from(order + "I", out, at + 8)[0]
        if offset + size <= len(out):
            out[offset:offset + size] = bytes(size)


def _drop_entry(out: bytearray, order: str, ifd: int, tag: int) -> None:
    """Remove one entry from a directory in place: the later entries and the next-IFD offset move up 12 bytes."""
    count = struct.unpack_from(order + "H", out, ifd)[0]
    end = ifd + 2 + 12 * count + 4
    for i in range(count):
        at = ifd + 2 + 12 * i
        if struct.unpack_from(order + "H", out, at)[0] == tag:
            out[at:end - 12] = out[at + 12:end]
            out[end - 12:end] = bytes(12)
            struct.pack_into(order + "H", out, ifd, count - 1)
            return


def blank_all_but_orientation(tiff: bytes) -> bytes:
    """Every tag blanked where it lies but the orientation, the length kept (for containers with offsets)."""
    order = "<" if tiff[:2] == b"II" else ">"
    out = bytearray(tiff)
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    for tag, at in list(_entries(tiff, order, ifd0)):
        if tag in (0x8769, GPS_TAG):  # the Exif and GPS directories, and what they point to
            sub_ifd = struct.unpack_from(order + "I", tiff, at + 8)[0]
            for inner, inner_at in list(_entries(tiff, order, sub_ifd)) if 0 < sub_ifd < len(tiff) - 2 else []:
                if inner == 0xA005:  # interoperability directory
                    _blank_ifd(out, order, struct.unpack_from(order + "I", tiff, inner_at + 8)[0])
            _blank_ifd(out, order, sub_ifd)
    count = struct.unpack_from(order + "H", tiff, ifd0)[0]
    next_at = ifd0 + 2 + 12 * count
    _blank_ifd(out, order, struct.unpack_from(order + "I", tiff, next_at)[0])  # IFD1: the thumbnail's tags
    struct.pack_into(order + "I", out, next_at, 0)
    for tag, at in list(_entries(bytes(out), order, ifd0)):
        if tag != ORIENTATION_TAG:
            _blank_value(out, order, at)
    for tag, _ in list(_entries(bytes(out), order, ifd0)):
        if tag != ORIENTATION_TAG:
            _drop_entry(out, order, ifd0, tag)
    return bytes(out)


def minimal_exif(order: str, orientation: int | None) -> bytes | None:
    """An EXIF holding only the orientation (None when there is none to keep)."""
    if orientation is None:
        return None
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    return head + struct.pack(order + "HHHIHHI", 1, ORIENTATION_TAG, 3, 1, orientation, 0, 0)


def names_a_place(packet: bytes) -> bool:
    return any(marker in packet for marker in PLACE_MARKERS)


def iptc_has_place(block: bytes) -> bool:
    return any(b"\x1c\x02" + bytes([n]) in block for n in IPTC_PLACES)
