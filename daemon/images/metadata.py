"""Metadata a photo should not carry out of the house: its location (and, on request, every other tag).

Edited at the container level, so the image data is never decoded or re-encoded (the pixels stay identical):

- EXIF (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``): the GPS directory is blanked where it lies and its pointer
  dropped from IFD0, leaving every other byte in place. Rebuilding the directories would move maker notes,
  whose private offsets then point at the wrong bytes. ``all`` keeps a new EXIF holding the orientation only.
- XMP (JPEG APP1, PNG ``iTXt`` XML:com.adobe.xmp, WebP ``XMP ``) and IPTC (JPEG APP13): a packet that names a
  place (GPS, city, location shown or created) is dropped whole; ``all`` drops every packet, comment and text.
- The orientation and the colour profile (JPEG APP2 ICC, PNG ``iCCP``/``sRGB``/``gAMA``/``cHRM``, WebP ``ICCP``)
  always stay, so the picture looks the same.

``strip(content, kind, mode, out)`` writes the edited file to ``out`` and returns the tag groups it removed, or
returns None (writing nothing) when there is nothing to remove. A small file comes as the bytes the upload
already read; a larger one as its descriptor, read through ``mmap``, with the image data copied a MiB at a
time: a 200-megapixel JPEG costs page cache, not the daemon's memory. HEIC and AVIF keep their EXIF as a
container item (``metadata_heif.py``); GIF has XMP and comments only; a TIFF is its own EXIF (its GPS directory
is blanked in place; for "all", ``engine/processing.py`` re-encodes it losslessly).
Other formats (JPEG XL, BMP...) are sent as they are, and ``NOT_EDITED`` says so.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from .exif import blank_all_but_orientation, edit_exif, iptc_has_place, names_a_place
from .metadata_heif import Content, items

MODES = ("location", "all", "none")
EDITED = ("image/jpeg", "image/png", "image/webp", "image/avif", "image/heic", "image/gif", "image/tiff")
TIFF_IN_MEMORY = 256 * 1024 * 1024  # a TIFF is its own EXIF: edited in memory up to this size
NOT_EDITED = "pixlift does not edit this format's metadata yet; it was sent as it is"
CHUNK = 1024 * 1024
Piece = bytes | tuple[int, int]  # new bytes, or a span [start, end) of the source copied as it is
JPEG_XMP = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")


class NotAnImage(Exception):
    """The bytes do not parse as the format they were sniffed as; the caller sends the file unchanged."""


def strip(content: int | bytes, kind: str, mode: str, out: Path | Callable[[], Path]) -> list[str] | None:
    """Write the file (its bytes, or the open descriptor of it) without the ``mode`` metadata to ``out`` (or
    where ``out()`` says, asked only when there is something to write); the tag groups removed, or None
    (nothing written) when there is nothing to remove. Raises NotAnImage for bytes that do not parse."""
    if mode == "none" or kind not in EDITED:
        return None
    problem = None
    with _mapped(content) if not isinstance(content, bytes) else contextlib.nullcontext(content) as data:
        try:
            editor = {"image/jpeg": _jpeg, "image/png": _png, "image/webp": _webp, "image/gif": _gif,
                      "image/tiff": _tiff}.get(kind, _heif)
            pieces, removed = editor(data, mode)
        except (IndexError, struct.error, ValueError) as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if not removed:
                return None
            with (out if isinstance(out, Path) else out()).open("wb") as dst:
                for piece in pieces:
                    if isinstance(piece, bytes):
                        dst.write(piece)
                        continue
                    for at in range(piece[0], piece[1], CHUNK):  # spans of the source, copied a MiB at a time
                        dst.write(data[at:min(at + CHUNK, piece[1])])
    if problem is not None:
        raise NotAnImage(problem)
    return sorted(set(removed))


def _mapped(content: int) -> mmap.mmap:
    """The open file's bytes, mapped (a file already read is used as it is: no context to build for it)."""
    return mmap.mmap(content, 0, access=mmap.ACCESS_READ)


# -- JPEG -------------------------------------------------------------------------------------------------------
def _jpeg(data: Content, mode: str) -> tuple[list[Piece], list[str]]:
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


def _jpeg_head(data: Content, at: int, mode: str) -> tuple[int, list[Piece], list[str]]:
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
        return (None, ["xmp"]) if mode == "all" or names_a_place(body) else (body, [])
    if marker == 0xED:  # APP13: Photoshop resources, IPTC among them
        return (None, ["iptc"]) if mode == "all" or iptc_has_place(body) else (body, [])
    if mode == "all":
        if marker == 0xFE:
            return None, ["comment"]
        colour = (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00")) or marker in (0xE0, 0xEE)
        if 0xE1 <= marker <= 0xEF and not colour:
            return None, ["other"]
    return body, []


# -- PNG ----------------------------------------------------------------------------------------------------------
def _png(data: Content, mode: str) -> tuple[list[Piece], list[str]]:
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
            if mode == "all" or names_a_place(body):
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
def _webp(data: Content, mode: str) -> tuple[list[Piece], list[str]]:
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
        elif kind == b"XMP " and (mode == "all" or names_a_place(data[pos + 8:pos + 8 + size])):
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
def _heif(data: Content, mode: str) -> tuple[list[Piece], list[str]]:
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


# -- GIF and TIFF -------------------------------------------------------------------------------------------------
def _gif(data: Content, mode: str) -> tuple[list[Piece], list[str]]:
    """GIF has no EXIF: its XMP application extension (and comments, for "all") are dropped whole."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("no GIF header")
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # the global colour table
    pieces: list[Piece] = []
    removed: list[str] = []
    kept_from = 0
    while data[pos] != 0x3B:  # the trailer
        start = pos
        if data[pos] == 0x2C:  # an image: descriptor, local colour table, LZW data
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1
        elif data[pos] == 0x21:
            pos += 2
        else:
            raise ValueError("not a GIF block")
        first = pos
        while data[pos]:  # sub-blocks, each with its length first
            pos += 1 + data[pos]
        pos += 1
        label = data[start + 1] if data[start] == 0x21 else 0
        xmp = label == 0xFF and data[first:first + 12] == b"\x0bXMP DataXMP"
        if (xmp and (mode == "all" or names_a_place(data[first:pos]))) or (label == 0xFE and mode == "all"):
            pieces.append((kept_from, start))
            kept_from = pos
            removed.append("xmp" if xmp else "comment")
    pieces.append((kept_from, len(data)))
    return pieces, removed


def _tiff(data: Content, mode: str) -> tuple[list[Piece], list[str]]:
    """A TIFF is its own EXIF: its GPS directory blanked in place. Its other tags describe the image itself, so
    "all" cannot remove them in place (engine/processing.py re-encodes it instead)."""
    if mode != "location":
        raise ValueError("only the location is removed from a TIFF in place")
    if len(data) > TIFF_IN_MEMORY:
        raise ValueError("too large to edit in memory")
    kept, what = edit_exif(bytes(data), "location")
    return ([kept] if what and kept else []), what
