"""JPEG: the segments that hold metadata edited or dropped; the image data copied as it is.

Read as tolerantly as libjpeg reads: fill bytes (0xFF runs) and extraneous bytes between segments are
skipped, markers between progressive scans are read like those before the first, a missing EOI ends the
image where the file ends. What is removed in "location" mode: the EXIF GPS directory (blanked in place,
``exif.py``); an XMP packet (standard and extended, judged together) that names a place; Photoshop/IPTC
(APP13) naming a place; a C2PA/JUMBF manifest (APP11) naming a place; any other APPn segment or comment
naming a place (a GoPro GPMF stream, a Ricoh RMETA block); bytes after the last image (a trailer: IPTC,
a vendor's block, a motion photo's video) unless they are zero padding. "all" keeps only JFIF, the colour
profile, Adobe's colour transform and the orientation. Images that follow the first (an MPO's second view,
a phone's gain map) are edited the same way, and the offsets MPF (APP2) keeps of them are rewritten to
where they now lie.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from .exif import Tiff, edit_exif
from .metadata_bounds import GaveUp, Unreadable, all_zero, search, take, tick, u16, u32
from .metadata_xmp import jumbf_has_place, names_a_place, photoshop_has_place

Piece = bytes | bytearray | tuple[int, int] | int  # new bytes, a span of the source, or that many zero bytes
XMP_MAIN, XMP_EXT = b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00"
SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # the marker that ends a scan's entropy-coded data
UNREADABLE_EXIF = "note:its EXIF could not be read, so all of it was removed (the orientation too)"


def length(piece: Piece) -> int:
    return piece if isinstance(piece, int) else piece[1] - piece[0] if isinstance(piece, tuple) else len(piece)


@dataclass
class Out:
    """The pieces written so far; images and MPF segments are recorded by the index of their first piece."""

    pieces: list[Piece] = field(default_factory=list)
    starts: dict[int, int] = field(default_factory=dict)  # an image's old start -> index of its first piece
    ends: dict[int, int] = field(default_factory=dict)  # an image's old start -> index after its last piece

    def add(self, piece: Piece) -> None:
        if length(piece):
            self.pieces.append(piece)


@dataclass
class Mpf:
    segment: bytearray  # the APP2 segment as written, patched at the end
    index: int  # its piece
    header: int  # the source offset its offsets count from (its TIFF header)
    order: str
    fields: list[tuple[int, int]]  # (where an entry's size and offset are in the segment, the old offset)


def edit_jpeg(data: bytes | object, mode: str) -> tuple[list[Piece], list[str]]:
    out = Out()
    removed: list[str] = []
    size = len(data)  # type: ignore[arg-type]
    mpfs: list[Mpf] = []
    end = _image(data, 0, mode, out, removed, mpfs)
    starts = sorted({m.header + offset for m in mpfs for _, offset in m.fields if offset})
    pos = end
    while pos < size:
        tick()
        if take(data, pos, min(3, size - pos)) == b"\xff\xd8\xff":
            pos = _image(data, pos, mode, out, removed, mpfs)
            continue
        stop = next((s for s in starts if s > pos), size)
        if all_zero(data, pos, stop):
            out.add((pos, stop))
        else:
            removed.append("trailer")
        pos = stop
    if mpfs:
        offsets = [0]
        for piece in out.pieces:
            offsets.append(offsets[-1] + length(piece))
        for mpf in mpfs:
            header = offsets[mpf.index] + 8
            for at, old_offset in mpf.fields:
                start = mpf.header + old_offset
                if old_offset and start in out.starts:
                    new_start, new_end = offsets[out.starts[start]], offsets[out.ends[start]]
                    struct.pack_into(mpf.order + "II", mpf.segment, at, new_end - new_start, new_start - header)
    return out.pieces, removed


def _image(data: object, at: int, mode: str, out: Out, removed: list[str], mpfs: list[Mpf]) -> int:
    """One JPEG from its SOI: its segments edited, its scans copied; where it ends in the source."""
    size = len(data)  # type: ignore[arg-type]
    if take(data, at, 2, "the JPEG start") != b"\xff\xd8":
        raise Unreadable("no JPEG start of image")
    out.starts[at] = len(out.pieces)
    out.add(b"\xff\xd8")
    pos = at + 2
    scanning = False
    xmp: list[tuple[int, bytes]] = []  # (index in pieces, body): decided together
    jumbf: list[tuple[int, bytes]] = []
    while pos < size:
        tick()
        if scanning:  # entropy-coded data ends at the first 0xFF not followed by 0x00 (stuffing), RSTn or 0xFF
            mark = search(data, SCAN_END, pos, 2)
            if mark < 0:
                out.add((pos, size))
                pos = size
                break
            out.add((pos, mark))
            pos = mark
        byte = take(data, pos, 1)[0]
        if byte != 0xFF:  # extraneous bytes between segments: libjpeg skips them, and so are they dropped
            found = data.find(b"\xff", pos)  # type: ignore[attr-defined]
            if found < 0:
                break
            pos = found
            continue
        marker = take(data, pos + 1, 1, "a JPEG marker")[0] if pos + 1 < size else 0xD9
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            out.add((pos, min(pos + 2, size)))
            pos = min(pos + 2, size)
            break
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:
            if marker == 0xD8:
                raise Unreadable("a JPEG start of image inside an image")
            out.add((pos, pos + 2))
            pos += 2
            continue
        length = u16(data, pos + 2)
        if length < 2 or pos + 2 + length > size:
            raise Unreadable(f"a JPEG segment (0x{marker:02X}) of {length} bytes at {pos} runs past the end")
        if marker == 0xDA:
            out.add((pos, pos + 2 + length))
            pos += 2 + length
            scanning = True
            continue
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out.add((pos, pos + 2 + length))
            pos += 2 + length
            continue
        body = take(data, pos + 4, length - 2)
        if marker == 0xE1 and body.startswith((XMP_MAIN, XMP_EXT)):
            xmp.append((len(out.pieces), body))
            out.add((pos, pos + 2 + length))
        elif marker == 0xEB and body.startswith(b"JP"):
            jumbf.append((len(out.pieces), body))
            out.add((pos, pos + 2 + length))
        elif marker == 0xE2 and body.startswith(b"MPF\x00"):
            segment = bytearray(take(data, pos, 2 + length))
            mpf = _mpf(segment, len(out.pieces), pos + 8)
            if mpf is not None:
                mpfs.append(mpf)
            out.add(segment)
        else:
            keep, what = _segment(marker, body, mode)
            removed += what
            if keep is body:
                out.add((pos, pos + 2 + length))
            elif keep is not None:
                out.add(b"\xff" + bytes([marker]) + struct.pack(">H", len(keep) + 2) + keep)
        pos += 2 + length
    _decide(out, xmp, mode, removed, "xmp", lambda parts: names_a_place(_xmp_text(parts)))
    _decide(out, jumbf, mode, removed, "c2pa", lambda parts: jumbf_has_place(b"".join(p[16:] for p in parts)))
    out.ends[at] = len(out.pieces)
    return pos


def _decide(out: Out, group: list[tuple[int, bytes]], mode: str, removed: list[str], what: str, test: object) -> None:
    """Segments that hold one packet together (XMP and its extension, a manifest's parts) go or stay together."""
    if not group:
        return
    bodies = [entry[-1] for entry in group]
    if mode == "all" or test(bodies):  # type: ignore[operator]
        for entry in group:
            out.pieces[entry[0]] = b""  # emptied, not taken out: recorded indices stay true
        removed.append(what)


def _xmp_text(parts: list[bytes]) -> bytes:
    """The standard packet and the extended one, joined in the order of their offsets (a word split across
    two segments must still be found)."""
    main = [p[len(XMP_MAIN):] for p in parts if p.startswith(XMP_MAIN)]
    ext = sorted((u32(p, len(XMP_EXT) + 36), p[len(XMP_EXT) + 40:]) for p in parts
                 if p.startswith(XMP_EXT) and len(p) >= len(XMP_EXT) + 40)
    return b"".join(main) + b"".join(chunk for _, chunk in ext)


def _segment(marker: int, body: bytes, mode: str) -> tuple[bytes | None, list[str]]:
    """What to keep of one APPn or COM segment (``body`` itself, new bytes, or None) and what was removed."""
    if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
        try:
            kept, what = edit_exif(body[6:], mode)
        except Unreadable:
            return None, ["exif", UNREADABLE_EXIF]
        if not what:
            return body, []
        return (b"Exif\x00\x00" + kept if kept else None), what
    colour = (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00")) or marker == 0xEE or \
        (marker == 0xE0 and body.startswith((b"JFIF\x00", b"JFXX\x00")))
    if colour:
        return body, []
    if marker == 0xED:  # APP13: Photoshop resources, IPTC among them
        return (None, ["iptc"]) if mode == "all" or photoshop_has_place(body) else (body, [])
    if mode == "all":
        return None, ["comment" if marker == 0xFE else "other"]
    if names_a_place(body):
        return None, ["comment" if marker == 0xFE else "other"]
    return body, []


def _mpf(segment: bytearray, index: int, header: int) -> Mpf | None:
    """The MP entries of an MPF segment (APP2 "MPF\\0"): where each image of the file is, from its header."""
    try:
        tiff = Tiff(bytes(segment[8:]))
        fields = []
        for tag, kind, count, entry in tiff.entries(tiff.ifd0):
            if tag == 0xB002 and kind == 7 and count % 16 == 0:
                offset = u32(tiff.data, entry + 8, tiff.order)
                for i in range(count // 16):
                    at = offset + 16 * i
                    fields.append((8 + at + 4, u32(tiff.data, at + 8, tiff.order)))
    except (Unreadable, GaveUp):
        return None  # an MPF that does not parse is kept as it is: it names no place
    return Mpf(segment, index, header, tiff.order, fields)
