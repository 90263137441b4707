"""Metadata a photo should not carry out of the house: its location (and, on request, every other tag).

Edited at the container level, so the image data is never decoded or re-encoded (the pixels stay identical):

- EXIF (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``): the GPS directory is blanked where it lies and its pointer
  dropped from IFD0, leaving every other byte in place. Rebuilding the directories would move maker notes,
  whose private offsets then point at the wrong bytes. ``all`` keeps a new EXIF holding the orientation only.
- XMP (JPEG APP1, PNG ``iTXt`` XML:com.adobe.xmp, WebP ``XMP ``) and IPTC (JPEG APP13): a packet that names a
  place (GPS, city, location shown or created) is dropped whole; ``all`` drops every packet, comment and text.
- The orientation and the colour profile (JPEG APP2 ICC, PNG ``iCCP``/``sRGB``/``gAMA``/``cHRM``, WebP ``ICCP``)
  always stay, so the picture looks the same.

``strip(fd, kind, mode, out)`` writes the edited file to ``out`` and returns the tag groups it removed, or
returns None (writing nothing) when there is nothing to remove. The source is read through ``mmap`` and the
image data copied a MiB at a time: a 200-megapixel JPEG costs page cache, not the daemon's memory. Other
formats (GIF, TIFF, JPEG XL...) are sent as they are, and ``NOT_EDITED`` says so. HEIC and AVIF:
``metadata_heif.py``.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from .metadata_heif import items

MODES = ("location", "all", "none")
EDITED = ("image/jpeg", "image/png", "image/webp", "image/avif", "image/heic")
NOT_EDITED = "pixlift does not edit this format's metadata yet; it was sent as it is"
GPS_TAG, ORIENTATION_TAG = 0x8825, 0x0112
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_PLACE_MARKERS = (b"exif:GPS", b"GPSLatitude", b"GPSLongitude", b"photoshop:City", b"photoshop:State",
                  b"photoshop:Country", b"Iptc4xmpCore:Location", b"Iptc4xmpExt:LocationShown",
                  b"Iptc4xmpExt:LocationCreated", b"Iptc4xmpCore:CountryCode")
_IPTC_PLACES = (26, 27, 90, 92, 95, 100, 101)  # IPTC IIM 2:xx datasets: location code/name, city, ... country
CHUNK = 1024 * 1024
Piece = bytes | tuple[int, int]  # new bytes, or a span [start, end) of the source copied as it is
JPEG_XMP = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")


class NotAnImage(Exception):
    """The bytes do not parse as the format they were sniffed as; the caller sends the file unchanged."""


def strip(fd: int, kind: str, mode: str, out: Path) -> list[str] | None:
    """Write the open file ``fd`` without the ``mode`` metadata to ``out``; the tag groups removed, or None
    (nothing written) when there is nothing to remove. Raises NotAnImage for bytes that do not parse."""
    if mode == "none" or kind not in EDITED:
        return None
    problem = None
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
        try:
            editor = {"image/jpeg": _jpeg, "image/png": _png, "image/webp": _webp}.get(kind, _heif)
            pieces, removed = editor(data, mode)
        except (IndexError, struct.error, ValueError) as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if not removed:
                return None
            with out.open("wb") as dst:
                for piece in pieces:
                    if isinstance(piece, bytes):
                        dst.write(piece)
                        continue
                    for at in range(piece[0], piece[1], CHUNK):  # spans of the source, copied a MiB at a time
                        dst.write(data[at:min(at + CHUNK, piece[1])])
    if problem is not None:
        raise NotAnImage(problem)
    return sorted(set(removed))


# -- EXIF (a TIFF structure) ----------------------------------------------------------------------------------
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
        kind, count = struct.unpack_from(order + "HI", out, at + 2)
        size = _TYPE_SIZES.get(kind, 1) * count
        if size > 4:
            offset = struct.unpack_from(order + "I", out, at + 8)[0]
            if offset + size <= len(out):
                out[offset:offset + size] = bytes(size)
        out[at:at + 12] = bytes(12)
    struct.pack_into(order + "H", out, ifd, 0)


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
            kind, n = struct.unpack_from(order + "HI", out, at + 2)
            size = _TYPE_SIZES.get(kind, 1) * n
            if size > 4:
                offset = struct.unpack_from(order + "I", out, at + 8)[0]
                if offset + size <= len(out):
                    out[offset:offset + size] = bytes(size)
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


def _names_a_place(packet: bytes) -> bool:
    return any(marker in packet for marker in _PLACE_MARKERS)


def _iptc_has_place(block: bytes) -> bool:
    return any(b"\x1c\x02" + bytes([n]) in block for n in _IPTC_PLACES)


# -- JPEG -------------------------------------------------------------------------------------------------------
def _jpeg(data: mmap.mmap, mode: str) -> tuple[list[Piece], list[str]]:
    pieces: list[Piece] = []
    removed: list[str] = []
    start = 0
    while start < len(data):
        end, head_pieces, head_removed = _jpeg_head(data, start, mode)
        pieces += head_pieces
        removed += head_removed
        eoi = data.find(b"\xff\xd9", end)  # in the entropy-coded data an 0xFF is always followed by 0x00 or RSTn
        stop = len(data) if eoi < 0 else eoi + 2
        pieces.append((end, stop))
        start = stop
        if data[start:start + 3] != b"\xff\xd8\xff":  # no embedded image follows (a preview, a depth map)
            pieces.append((start, len(data)))
            break
    return pieces, removed


def _jpeg_head(data: mmap.mmap, at: int, mode: str) -> tuple[int, list[Piece], list[str]]:
    """The segments before the scan of one JPEG starting at ``at``: where its scan starts, what to write, removed."""
    if data[at:at + 2] != b"\xff\xd8":
        raise ValueError("no JPEG start of image")
    pieces: list[Piece] = [b"\xff\xd8"]
    removed: list[str] = []
    pos = at + 2
    while True:
        if data[pos] != 0xFF:
            raise ValueError("a JPEG segment does not start with a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the image data follows
            return pos, pieces, removed
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pieces.append((pos, pos + 2))
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        body = data[pos + 4:pos + 2 + length]
        keep, what = _jpeg_segment(marker, body, mode)
        if what:
            removed += what
        if keep is body:
            pieces.append((pos, pos + 2 + length))
        elif keep is not None:
            pieces.append(b"\xff" + bytes([marker]) + struct.pack(">H", len(keep) + 2) + keep)
        pos += 2 + length


def _jpeg_segment(marker: int, body: bytes, mode: str) -> tuple[bytes | None, list[str]]:
    """What to keep of one segment (``body`` itself, new bytes, or None) and what was removed."""
    if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
        kept, what = edit_exif(body[6:], mode)
        if not what:
            return body, []
        return (b"Exif\x00\x00" + kept if kept else None), what
    if marker == 0xE1 and body.startswith(JPEG_XMP):
        return (None, ["xmp"]) if mode == "all" or _names_a_place(body) else (body, [])
    if marker == 0xED:  # APP13: Photoshop resources, IPTC among them
        return (None, ["iptc"]) if mode == "all" or _iptc_has_place(body) else (body, [])
    if mode == "all":
        if marker == 0xFE:
            return None, ["comment"]
        colour = (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00")) or marker in (0xE0, 0xEE)
        if 0xE1 <= marker <= 0xEF and not colour:
            return None, ["other"]
    return body, []


# -- PNG ----------------------------------------------------------------------------------------------------------
def _png(data: mmap.mmap, mode: str) -> tuple[list[Piece], list[str]]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    pieces: list[Piece] = [b"\x89PNG\r\n\x1a\n"]
    removed: list[str] = []
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        whole: Piece = (pos, pos + 12 + length)
        body = data[pos + 8:pos + 8 + length] if kind in (b"eXIf", b"iTXt", b"tEXt", b"zTXt") else b""
        if kind == b"eXIf":
            kept, what = edit_exif(body, mode)
            removed += what
            if what:
                whole = _png_chunk(b"eXIf", kept) if kept else b""
        elif kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00"):
            if mode == "all" or _names_a_place(body):
                removed.append("xmp")
                whole = b""
        elif kind in (b"tEXt", b"zTXt", b"iTXt", b"tIME") and mode == "all":
            removed.append("text")
            whole = b""
        if whole:
            pieces.append(whole)
        pos += 12 + length
        if kind == b"IEND":
            pieces.append((pos, len(data)))
            break
    return pieces, removed


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# -- WebP ---------------------------------------------------------------------------------------------------------
def _webp(data: mmap.mmap, mode: str) -> tuple[list[Piece], list[str]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("no RIFF WEBP header")
    chunks: list[tuple[bytes, Piece]] = []  # (fourcc, the whole chunk as written)
    removed: list[str] = []
    pos = 12
    end = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    while pos + 8 <= end:
        kind, size = struct.unpack_from("<4sI", data, pos)
        whole: Piece = (pos, pos + 8 + size + (size & 1))
        if kind == b"EXIF":
            body = data[pos + 8:pos + 8 + size]
            kept, what = edit_exif(body[6:] if body.startswith(b"Exif\x00\x00") else body, mode)
            removed += what
            if what:
                whole = _riff_chunk(b"EXIF", kept) if kept else b""
        elif kind == b"XMP " and (mode == "all" or _names_a_place(data[pos + 8:pos + 8 + size])):
            removed.append("xmp")
            whole = b""
        if whole:
            chunks.append((kind, whole))
        pos += 8 + size + (size & 1)
    if not removed:
        return [], []
    flags = {b"EXIF": 0x08, b"XMP ": 0x04}
    pieces: list[Piece] = []
    for kind, whole in chunks:
        if kind == b"VP8X" and isinstance(whole, tuple):  # say which metadata is still there
            head = bytearray(data[whole[0]:whole[1]])
            for fourcc, bit in flags.items():
                head[8] = head[8] | bit if any(k == fourcc for k, _ in chunks) else head[8] & ~bit
            whole = bytes(head)
        pieces.append(whole)
    total = 4 + sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in pieces)
    return [b"RIFF" + struct.pack("<I", total) + b"WEBP", *pieces, (end, len(data))], removed


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


# -- HEIC and AVIF ------------------------------------------------------------------------------------------------
def _heif(data: mmap.mmap, mode: str) -> tuple[list[Piece], list[str]]:
    """The EXIF item edited in place (its length kept, so every offset of the file stays true)."""
    types, places = items(data)
    pieces: list[Piece] = []
    removed: list[str] = []
    at = 0
    for item, kind in sorted(types.items(), key=lambda t: places.get(t[0], (0, 0))[0]):
        if kind != b"Exif" or item not in places:
            continue
        start, length = places[item]
        payload = data[start:start + length]
        skip = 4 + struct.unpack_from(">I", payload, 0)[0]  # the offset of the TIFF header, after its own 4 bytes
        tiff = payload[skip:]
        kept, what = edit_exif(tiff, mode)
        if not what:
            continue
        edited = blank_all_but_orientation(tiff) if mode == "all" else kept or b""
        pieces += [(at, start + skip), edited]
        at = start + skip + len(tiff)
        removed += what
    if not removed:
        return [], []
    pieces.append((at, len(data)))
    return pieces, removed
