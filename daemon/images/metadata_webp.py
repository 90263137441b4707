"""WebP (RIFF) and GIF: the blocks that hold metadata edited or dropped; the image data copied as it is.

WebP: the ``EXIF`` chunk loses its GPS directory ("location") or all but the orientation ("all"); an
``XMP `` chunk, and any chunk WebP does not define, that names a place goes (every one of them for "all");
``VP8X`` is told what is left. GIF: an XMP application extension, a comment or any other application
extension that names a place goes (all of them but the animation loop and the colour profile for "all").
In both, bytes after the end of the image go unless they are zero padding.
"""

from __future__ import annotations

import struct

from .exif import edit_exif
from .metadata_bounds import Unreadable, all_zero, take, tick, u32
from .metadata_jpeg import UNREADABLE_EXIF, Piece, length
from .metadata_xmp import names_a_place

WEBP_IMAGE = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
GIF_KEPT = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def edit_webp(data: object, mode: str) -> tuple[list[Piece], list[str]]:
    head = take(data, 0, 12, "the RIFF header")
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise Unreadable("no RIFF WEBP header")
    size = len(data)  # type: ignore[arg-type]
    end = min(size, 8 + u32(data, 4, "<"))
    chunks: list[tuple[bytes, Piece]] = []  # (fourcc, the whole chunk as written)
    removed: list[str] = []
    pos = 12
    while pos + 8 <= end:
        tick()
        kind, length_ = struct.unpack("<4sI", take(data, pos, 8))
        stop = pos + 8 + length_ + (length_ & 1)
        if pos + 8 + length_ > end:
            raise Unreadable(f"a WebP chunk ({kind!r}, {length_} bytes) at offset {pos} runs past the end")
        whole: Piece = (pos, min(stop, end))
        if kind == b"EXIF":
            body = take(data, pos + 8, length_)
            try:
                kept, what = edit_exif(body[6:] if body.startswith(b"Exif\x00\x00") else body, mode)
            except Unreadable:
                kept, what = None, ["exif", UNREADABLE_EXIF]
            removed += what
            if what:
                whole = riff_chunk(b"EXIF", kept) if kept else b""
        elif kind not in WEBP_IMAGE and (mode == "all" or names_a_place(take(data, pos + 8, length_))):
            removed.append("xmp" if kind == b"XMP " else "other")
            whole = b""
        if whole:
            chunks.append((kind, whole))
        pos = stop
    trailer: list[Piece] = []
    if end < size:
        if all_zero(data, end, size):
            trailer.append((end, size))
        else:
            removed.append("trailer")
    if not removed:
        return [], []
    flags = {b"EXIF": 0x08, b"XMP ": 0x04}
    pieces: list[Piece] = []
    for kind, whole in chunks:
        if kind == b"VP8X" and isinstance(whole, tuple):  # say which metadata is still there
            vp8x = bytearray(take(data, whole[0], whole[1] - whole[0]))
            for fourcc, bit in flags.items():
                vp8x[8] = vp8x[8] | bit if any(k == fourcc for k, _ in chunks) else vp8x[8] & ~bit
            whole = bytes(vp8x)
        pieces.append(whole)
    total = 4 + sum(length(p) for p in pieces)
    return [b"RIFF" + struct.pack("<I", total) + b"WEBP", *pieces, *trailer], removed


def riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def edit_gif(data: object, mode: str) -> tuple[list[Piece], list[str]]:
    if take(data, 0, 6, "the GIF header") not in (b"GIF87a", b"GIF89a"):
        raise Unreadable("no GIF header")
    size = len(data)  # type: ignore[arg-type]
    flags = take(data, 10, 1)[0]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # the global colour table
    pieces: list[Piece] = []
    removed: list[str] = []
    kept_from = 0
    while pos < size:
        tick()
        start = pos
        block = take(data, pos, 1, "a GIF block")[0]
        if block == 0x3B:  # the trailer
            pos += 1
            break
        if block == 0x2C:  # an image: descriptor, local colour table, LZW minimum code size, data
            local = take(data, pos + 9, 1)[0]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1
        elif block == 0x21:
            pos += 2
        else:
            raise Unreadable(f"not a GIF block (0x{block:02X}) at offset {pos}")
        first = pos
        while True:  # sub-blocks, each with its length first
            tick()
            n = take(data, pos, 1, "a GIF sub-block")[0]
            pos += 1 + n
            if n == 0:
                break
        if pos > size:
            raise Unreadable("a GIF block runs past the end")
        label = take(data, start + 1, 1)[0] if block == 0x21 else 0
        if label == 0xFF:
            app = take(data, first, 12)
            if app[1:] in GIF_KEPT:
                continue
            what = "xmp" if app == b"\x0bXMP DataXMP" else "other"
        elif label == 0xFE:
            what = "comment"
        else:
            continue
        if mode == "all" or names_a_place(take(data, first, pos - first)):
            pieces.append((kept_from, start))
            kept_from = pos
            removed.append(what)
    pieces.append((kept_from, pos))
    if pos < size:
        if all_zero(data, pos, size):
            pieces.append((pos, size))
        else:
            removed.append("trailer")
    return pieces, removed
