"""Does a block of metadata name a place? XMP (any namespace), IPTC IIM, Photoshop resources, C2PA/JUMBF
manifests and PNG text, judged by the same rules everywhere (metadata.py and its format modules).

XMP and manifests are text (XML, JSON-LD, CBOR strings) whose property names say what they hold; a place is
named by any property whose name holds latitude, longitude, GPS, city, state, province, country, location
or landmark, in any case and any namespace: ``exif:GPSLatitude``, ``drone-dji:GpsLatitude``,
``photoshop:City``, ``Iptc4xmpExt:LocationShown``. The match is on the words, not the names, so a packet that
merely mentions a city in a caption goes too: in "location" mode a false alarm costs a caption, a miss costs
the user's address. Text that may be compressed is inflated first, within ``MAX_INFLATE`` (more than that,
or a stream that will not inflate, counts as naming a place: what cannot be read cannot be vouched for).
"""

from __future__ import annotations

import re
import zlib

from .metadata_bounds import tick

PLACE_WORDS = re.compile(rb"(?i)latitude|longitude|longtitude|gps|city|state|province|country|location|landmark")
IPTC_PLACES = (26, 27, 90, 92, 95, 100, 101)  # IPTC IIM 2:xx datasets: location code/name, city, ... country
MAX_INFLATE = 16 * 1024 * 1024
XMP_EMPTY = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
             b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
XMP_END = b'<?xpacket end="w"?>'


def _text(packet: bytes) -> bytes:
    """The packet as UTF-8 bytes (XMP may be UTF-16 or UTF-32, with or without a byte order mark)."""
    head = packet[:64]
    if head.count(b"\x00") * 4 < len(head):  # UTF-16 text has a zero byte in every other byte
        return packet
    for codec in ("utf-32", "utf-16") if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") else (
            "utf-16", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        try:
            return packet.decode(codec).encode("utf-8")
        except UnicodeDecodeError:
            continue
    return packet.replace(b"\x00", b"")


def names_a_place(packet: bytes | bytearray | memoryview) -> bool:
    """XMP, or any text: a property (or word) that names a place."""
    tick()
    raw = bytes(packet)
    if PLACE_WORDS.search(raw) is not None:
        return True
    text = _text(raw)
    return text is not raw and PLACE_WORDS.search(text) is not None


def iptc_has_place(block: bytes | bytearray | memoryview) -> bool:
    """IPTC IIM: a location dataset (2:26 ... 2:101)."""
    data = bytes(block)
    return any(b"\x1c\x02" + bytes([n]) in data for n in IPTC_PLACES)


def photoshop_has_place(block: bytes | bytearray | memoryview) -> bool:
    """Photoshop image resources (JPEG APP13, TIFF 34377): IPTC (0x0404) or XMP (0x0424) with a place."""
    return iptc_has_place(block) or names_a_place(block)


def jumbf_has_place(block: bytes | bytearray | memoryview) -> bool:
    """A C2PA/JUMBF manifest: an assertion naming a place, or a compressed one that cannot be looked into."""
    data = bytes(block)
    return b"brob" in data or names_a_place(data)


def inflate(data: bytes, limit: int = MAX_INFLATE) -> bytes | None:
    """zlib data inflated, or None when it does not inflate within ``limit`` bytes."""
    out = bytearray()
    engine = zlib.decompressobj()
    try:
        rest = data
        while rest:
            tick()
            out += engine.decompress(rest, 1024 * 1024)
            if len(out) > limit:
                return None
            rest = engine.unconsumed_tail
            if engine.eof:
                break
        out += engine.flush()
    except zlib.error:
        return None
    return bytes(out) if len(out) <= limit else None


def empty_xmp(length: int) -> bytes:
    """An XMP packet that says nothing, padded with spaces to ``length`` bytes (in place of one that goes, in
    containers that store offsets); zeros when even the empty packet does not fit."""
    if length < len(XMP_EMPTY) + len(XMP_END):
        return bytes(length)
    return XMP_EMPTY + b" " * (length - len(XMP_EMPTY) - len(XMP_END)) + XMP_END
