"""HEIC and AVIF (ISOBMFF/HEIF containers): metadata edited where it lies, every offset of the file kept.

The metadata of a HEIF file are items of the ``meta`` box (``iinf`` names their types, ``iloc`` says where
their bytes are, in the file or in ``idat``, in one extent or several):

- ``Exif``: its GPS directory blanked in place ("location"; ``exif.py`` keeps the length), or every tag but
  the orientation ("all");
- ``mime`` items of type ``application/rdf+xml`` (XMP): a packet that names a place (every packet, for
  "all") is replaced by an empty one padded to the same length;
- a top-level ``uuid`` box of C2PA: a manifest that names a place (any, for "all") becomes a ``free`` box.

Bounded (metadata_bounds.py): every box lies inside its parent; ``iinf`` and ``iloc`` counts are checked
against the bytes that follow them, and the extents of all items together against the bytes of ``iloc``,
so that a 54-byte file announcing four billion items, or 65,535 items of 65,535 empty extents each, is
refused at once instead of being counted through.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from .exif import blank_all_but_orientation, edit_exif
from .metadata_bounds import FileBytes, GaveUp, Unreadable, fits, take, tick, u32, uint
from .metadata_xmp import empty_xmp, inflate, jumbf_has_place, names_a_place

Content = FileBytes | bytes  # a file read on demand, or a small one already read (metadata.strip)
Patch = tuple[int, bytes]  # new bytes at a file offset, the same length as what they replace
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
MAX_ITEM = 64 * 1024 * 1024  # an Exif or XMP item larger than this is not metadata a camera writes
XMP_TYPES = (b"application/rdf+xml", b"application/xmp+xml")


def boxes(data: Content, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in [start, end)."""
    for kind, _, payload, box_end in located_boxes(data, start, end):
        yield kind, payload, box_end


def located_boxes(data: Content, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box in [start, end)."""
    pos = start
    while pos + 8 <= end:
        tick()
        size, kind = struct.unpack(">I4s", take(data, pos, 8, "a box header"))
        head = 8
        if size == 1:
            size, head = uint(data, pos + 8, 8), 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise Unreadable(f"a {kind!r} box of {size} bytes at offset {pos} runs past its parent")
        yield kind, pos, pos + head, pos + size
        pos += size


@dataclass
class Item:
    kind: bytes = b""
    content_type: bytes = b""
    encoding: bytes = b""
    extents: list[tuple[int, int]] = field(default_factory=list)  # (file offset, length)
    located: bool = False


def items(data: Content) -> dict[int, Item]:
    """The items of the top-level ``meta`` box, by id; where their bytes are for those that hold metadata."""
    meta = next(((s, e) for kind, s, e in boxes(data, 0, len(data)) if kind == b"meta"), None)
    if meta is None:
        raise Unreadable("no meta box")
    found: dict[int, Item] = {}
    children = list(boxes(data, meta[0] + 4, meta[1]))  # meta is a FullBox: 4 bytes of version/flags
    idat = next((s for kind, s, _ in children if kind == b"idat"), None)
    for kind, start, end in children:
        if kind == b"iinf":
            _iinf(data, start, end, found)
    for kind, start, end in children:
        if kind == b"iloc":
            _iloc(data, start, end, found, idat)
    return found


def _iinf(data: Content, start: int, end: int, found: dict[int, Item]) -> None:
    version = take(data, start, 1)[0]
    count = uint(data, start + 4, 2 if version == 0 else 4)
    body = start + 4 + (2 if version == 0 else 4)
    fits(count, 8, end - body, "the item information box")
    for infe, s, e in boxes(data, body, end):
        if infe != b"infe" or take(data, s, 1)[0] < 2:
            continue
        id_size = 2 if take(data, s, 1)[0] == 2 else 4
        item = Item(kind=take(data, s + 6 + id_size, 4))
        if item.kind == b"mime":
            strings = take(data, s + 10 + id_size, e - s - 10 - id_size).split(b"\x00")
            item.content_type = strings[1] if len(strings) > 1 else b""
            item.encoding = strings[2] if len(strings) > 2 else b""
        found[uint(data, s + 4, id_size)] = item


def _iloc(data: Content, start: int, end: int, found: dict[int, Item], idat: int | None) -> None:
    version = take(data, start, 1)[0]
    if version > 2:
        raise Unreadable(f"an iloc box of version {version}")
    sizes = take(data, start + 4, 2)
    offset_size, length_size, base_size = sizes[0] >> 4, sizes[0] & 15, sizes[1] >> 4
    index_size = sizes[1] & 15 if version in (1, 2) else 0
    if any(n not in (0, 4, 8) for n in (offset_size, length_size, base_size, index_size)):
        raise Unreadable("an iloc box with field sizes other than 0, 4 or 8")
    count_size = id_size = 2 if version < 2 else 4
    pos = start + 6
    count = uint(data, pos, count_size)
    pos += count_size
    per_item = id_size + (2 if version else 0) + 2 + base_size + 2
    fits(count, per_item, end - pos, "the item location box")
    per_extent = index_size + offset_size + length_size
    budget = end - start  # extents of every item together: no more than the box has bytes
    for _ in range(count):
        tick()
        item_id = uint(data, pos, id_size)
        pos += id_size
        method = uint(data, pos, 2) & 15 if version else 0
        pos += 2 if version else 0
        pos += 2  # data_reference_index
        base = uint(data, pos, base_size)
        pos += base_size
        extents = uint(data, pos, 2)
        pos += 2
        fits(extents, per_extent, end - pos, "an item's extents")
        budget -= extents
        if budget < 0:
            raise GaveUp("its items announce more extents than the item location box has bytes: a structure no "
                         "valid file has")
        item = found.get(item_id)
        if item is None or not _metadata(item) or per_extent == 0:
            pos += extents * per_extent
            continue
        origin = 0 if method == 0 else idat if method == 1 else None
        if origin is None:
            raise Unreadable(f"item {item_id} is located by another item (construction method {method})")
        item.extents = []
        for _ in range(extents):
            pos += index_size
            offset = uint(data, pos, offset_size)
            length = uint(data, pos + offset_size, length_size)
            pos += offset_size + length_size
            item.extents.append((origin + base + offset, length))
        item.located = True


def _metadata(item: Item) -> bool:
    return item.kind == b"Exif" or (item.kind == b"mime" and item.content_type.lower() in XMP_TYPES)


def read_item(data: Content, item: Item) -> bytes:
    """An item's bytes, its extents joined (one extent of length 0 runs to the end of the file)."""
    parts = []
    total = 0
    for offset, length in item.extents:
        tick()
        length = len(data) - offset if length == 0 and len(item.extents) == 1 else length
        total += length
        if total > MAX_ITEM:
            raise Unreadable(f"a metadata item of more than {MAX_ITEM} bytes")
        parts.append(take(data, offset, length, "a metadata item"))
    return b"".join(parts)


def scatter(item: Item, edited: bytes, data_size: int) -> list[Patch]:
    """Edited item bytes (the same length) written back over its extents."""
    patches, at = [], 0
    for offset, length in item.extents:
        length = data_size - offset if length == 0 and len(item.extents) == 1 else length
        patches.append((offset, edited[at:at + length]))
        at += length
    return patches


def edit(data: Content, mode: str) -> tuple[list[Patch], list[str]]:
    """What to write over the file, in place, and what was removed."""
    patches: list[Patch] = []
    removed: list[str] = []
    for item in items(data).values():
        if not item.located:
            continue
        payload = read_item(data, item)
        if item.kind == b"Exif":
            skip = 4 + u32(payload, 0)  # the offset of the TIFF header, after its own 4 bytes
            if skip >= len(payload):
                raise Unreadable("an Exif item whose TIFF header lies past its end")
            tiff = payload[skip:]
            kept, what = edit_exif(tiff, mode)
            if not what:
                continue
            edited = blank_all_but_orientation(tiff) if mode == "all" else kept or bytes(len(tiff))
            patches += scatter(item, payload[:skip] + edited, len(data))
            removed += what
        else:
            text = payload if not item.encoding else inflate(payload)
            if mode == "all" or text is None or names_a_place(text):
                patches += scatter(item, empty_xmp(len(payload)) if not item.encoding else bytes(len(payload)),
                                   len(data))
                removed.append("xmp")
    for kind, box, start, end in located_boxes(data, 0, len(data)):
        if kind == b"uuid" and take(data, start, 16) == C2PA_UUID and (
                mode == "all" or jumbf_has_place(take(data, start, end - start))):
            patches += freed(data, box, start, end)
            removed.append("c2pa")
    return patches, removed


def edit_jxl(data: Content, mode: str) -> tuple[list[Patch], list[str]]:
    """JPEG XL in its container: the ``Exif`` box edited like an Exif item, ``xml `` (XMP) and ``jumb``
    (C2PA) boxes that name a place emptied; Brotli-compressed ones (``brob``) cannot be looked into here."""
    if take(data, 0, 12) != b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return [], []  # a bare codestream: it holds no metadata
    patches: list[Patch] = []
    removed: list[str] = []
    for kind, box, start, end in located_boxes(data, 0, len(data)):
        body = Item(extents=[(start, end - start)])
        if kind == b"Exif":
            payload = read_item(data, body)
            skip = 4 + u32(payload, 0)
            kept, what = edit_exif(payload[skip:], mode)
            if what:
                edited = blank_all_but_orientation(payload[skip:]) if mode == "all" else kept or b""
                patches.append((start + skip, edited))
                removed += what
        elif kind in (b"xml ", b"jumb") and (mode == "all" or (jumbf_has_place if kind == b"jumb" else
                                                               names_a_place)(read_item(data, body))):
            patches += freed(data, box, start, end)
            removed.append("xmp" if kind == b"xml " else "c2pa")
        elif kind == b"brob" and take(data, start, 4) in (b"Exif", b"xml ", b"jumb"):
            if mode == "all":
                patches += freed(data, box, start, end)
                removed.append("exif")
            else:
                raise Unreadable("its metadata is Brotli-compressed, which pixlift cannot read")
    return patches, removed


def freed(data: Content, box: int, start: int, end: int) -> list[Patch]:
    """A box turned into a ``free`` box of the same size, its bytes zeroed: every reader skips it."""
    return [(box + 4, b"free"), (start, bytes(end - start))]
