"""PNG: the chunks that hold metadata edited or dropped; the image chunks copied as they are.

"location" removes the GPS directory of ``eXIf`` and of ImageMagick's "Raw profile type exif"/"APP1" text
(re-written without it); an XMP ``iTXt`` (compressed or not), an IPTC or Photoshop raw profile, any other
text chunk and any private ancillary chunk that names a place; a C2PA manifest (``caBX``) naming a place;
and bytes after IEND unless they are zero padding. Compressed text is inflated within bounds first, and text
that will not inflate goes (it cannot be vouched for). "all" removes every text chunk, ``tIME``, ``caBX`` and
keeps of the EXIF only the orientation. Apple's ``iDOT`` (offsets of the image chunks) goes whenever a chunk
before the image data changes size, so that no decoder follows stale offsets.
"""

from __future__ import annotations

import re
import struct
import zlib

from .exif import edit_exif
from .metadata_bounds import Unreadable, all_zero, take, tick
from .metadata_jpeg import UNREADABLE_EXIF, Piece
from .metadata_xmp import inflate, iptc_has_place, jumbf_has_place, names_a_place, photoshop_has_place

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT = (b"tEXt", b"zTXt", b"iTXt")
# Ancillary chunks that describe how the pixels look or move (APNG): never metadata
DISPLAY = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"mDCV", b"mDCv", b"cLLI", b"cLLi", b"sBIT", b"pHYs",
           b"bKGD", b"tRNS", b"hIST", b"sPLT", b"acTL", b"fcTL", b"fdAT", b"oFFs", b"sCAL", b"pCAL", b"vpAg"}


def edit_png(data: object, mode: str) -> tuple[list[Piece], list[str]]:
    if take(data, 0, 8, "the PNG signature") != SIGNATURE:
        raise Unreadable("no PNG signature")
    size = len(data)  # type: ignore[arg-type]
    pieces: list[Piece] = [SIGNATURE]
    removed: list[str] = []
    idot: int | None = None
    pos = 8
    while pos < size:
        tick()
        if pos + 12 > size:
            raise Unreadable(f"a PNG chunk at offset {pos} is cut off")
        length, kind = struct.unpack(">I4s", take(data, pos, 8))
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > size:
            raise Unreadable(f"a PNG chunk ({kind!r}, {length} bytes) at offset {pos} runs past the end")
        whole: Piece = (pos, end)
        if kind == b"iDOT":
            idot = len(pieces)
        elif kind == b"eXIf" or kind in TEXT or kind == b"caBX" or (kind == b"tIME" and mode == "all") or (
                kind[0] & 0x20 and kind not in DISPLAY and kind not in (b"iDOT", b"tIME")):
            new, what = _chunk(kind, take(data, pos + 8, length), mode)
            if what:
                removed += what
                whole = new
        pieces.append(whole)
        pos = end
        if kind == b"IEND":
            break
    if pos < size:
        if all_zero(data, pos, size):
            pieces.append((pos, size))
        else:
            removed.append("trailer")
    if idot is not None and removed:
        pieces[idot] = b""
    return pieces, removed


def _chunk(kind: bytes, body: bytes, mode: str) -> tuple[bytes, list[str]]:
    """The chunk to write instead (b"": none) and what was removed; ([], ...) keeps it."""
    if kind == b"eXIf":
        try:
            kept, what = edit_exif(body, mode)
        except Unreadable:
            return b"", ["exif", UNREADABLE_EXIF]
        return (chunk(b"eXIf", kept) if kept else b""), what
    if kind == b"caBX":
        return b"", (["c2pa"] if mode == "all" or jumbf_has_place(body) else [])
    if kind == b"tIME":
        return b"", ["text"]
    if kind not in TEXT:  # a private ancillary chunk
        return b"", (["other"] if names_a_place(body) else [])
    keyword, text = _text(kind, body)
    if keyword == b"XML:com.adobe.xmp":
        return b"", (["xmp"] if mode == "all" or text is None or names_a_place(text) else [])
    profile = re.fullmatch(rb"Raw profile type (\w+)", keyword)
    if profile is not None:
        return _raw_profile(keyword, profile.group(1).lower(), text, mode)
    if mode == "all" or text is None or names_a_place(keyword + b" " + text):
        return b"", ["text"]
    return b"", []


def _text(kind: bytes, body: bytes) -> tuple[bytes, bytes | None]:
    """A text chunk's keyword and text (None: compressed text that does not inflate within bounds)."""
    keyword, _, rest = body.partition(b"\x00")
    if kind == b"tEXt":
        return keyword, rest
    if kind == b"zTXt":
        return keyword, inflate(rest[1:])
    compressed = rest[:1] == b"\x01"
    _, _, rest = rest[2:].partition(b"\x00")  # language tag
    _, _, text = rest.partition(b"\x00")  # translated keyword
    return keyword, inflate(text) if compressed else text


def _raw_profile(keyword: bytes, name: bytes, text: bytes | None, mode: str) -> tuple[bytes, list[str]]:
    """ImageMagick's "Raw profile type NAME": a hex dump of an EXIF, IPTC, Photoshop or XMP block."""
    block = _unhex(text) if text is not None else None
    if name in (b"exif", b"app1") and block is not None:
        tiff = block[6:] if block.startswith(b"Exif\x00\x00") else block
        try:
            kept, what = edit_exif(tiff, mode)
        except Unreadable:
            return b"", ["exif", UNREADABLE_EXIF]
        if not what:
            return b"", []
        if kept is None:
            return b"", what
        return chunk(b"zTXt", keyword + b"\x00\x00" + zlib.compress(_hex(name, block[:len(block) - len(tiff)] + kept),
                                                                      9)), what
    if block is None or mode == "all":
        return b"", ["exif" if name in (b"exif", b"app1") else "iptc" if name in (b"iptc", b"8bim") else "xmp"]
    test = {b"iptc": iptc_has_place, b"8bim": photoshop_has_place}.get(name, names_a_place)
    return b"", (["iptc" if name in (b"iptc", b"8bim") else "xmp"] if test(block) else [])


def _unhex(text: bytes) -> bytes | None:
    """The block of a raw profile: a line with its name, a line with its length, then hex digits."""
    parts = text.lstrip(b"\n").split(b"\n", 2)
    if len(parts) < 3:
        return None
    try:
        block = bytes.fromhex(parts[2].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return block


def _hex(name: bytes, block: bytes) -> bytes:
    digits = block.hex().encode()
    lines = b"\n".join(digits[i:i + 72] for i in range(0, len(digits), 72))
    return b"\n" + name + b"\n" + str(len(block)).rjust(8).encode() + b"\n" + lines + b"\n"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
