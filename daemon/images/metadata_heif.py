"""HEIC and AVIF (ISOBMFF/HEIF containers): the EXIF item's GPS directory blanked where it lies.

The EXIF of a HEIF file is an item of the ``meta`` box (``iinf`` names its type ``Exif``, ``iloc`` says where
its bytes are). Blanking the GPS directory in place (``metadata.edit_exif`` keeps the length the same for
"location") leaves every offset of the file valid, so nothing else moves. "all" blanks the whole EXIF
except the orientation the same way. XMP is a ``mime`` item: it is not edited here, and a packet that names a
place is reported, so nobody assumes it was removed.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator

Content = mmap.mmap | bytes  # a file mapped, or a small one already read (metadata.strip)


def _boxes(data: Content, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in [start, end)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise ValueError("a box runs past its parent")
        yield kind, pos + head, pos + size
        pos += size


def _uint(data: Content, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "big") if size else 0


def items(data: Content) -> tuple[dict[int, bytes], dict[int, tuple[int, int]]]:
    """Item types by id, and where each single-extent item's bytes are (file offset, length)."""
    meta = next(((s, e) for kind, s, e in _boxes(data, 0, len(data)) if kind == b"meta"), None)
    if meta is None:
        raise ValueError("no meta box")
    types: dict[int, bytes] = {}
    places: dict[int, tuple[int, int]] = {}
    for kind, start, end in _boxes(data, meta[0] + 4, meta[1]):  # meta is a FullBox: 4 bytes of version/flags
        version = data[start]
        if kind == b"iinf":
            count_size = 2 if version == 0 else 4
            for infe, s, _ in _boxes(data, start + 4 + count_size, end):
                if infe == b"infe" and data[s] >= 2:
                    id_size = 2 if data[s] == 2 else 4
                    item = _uint(data, s + 4, id_size)
                    types[item] = bytes(data[s + 4 + id_size + 2:s + 4 + id_size + 6])
        elif kind == b"iloc":
            offset_size, length_size = data[start + 4] >> 4, data[start + 4] & 15
            base_size, index_size = data[start + 5] >> 4, (data[start + 5] & 15) if version in (1, 2) else 0
            pos = start + 6
            count_size = 2 if version < 2 else 4
            count = _uint(data, pos, count_size)
            pos += count_size
            for _ in range(count):
                id_size = 2 if version < 2 else 4
                item = _uint(data, pos, id_size)
                pos += id_size
                method = _uint(data, pos, 2) & 15 if version in (1, 2) else 0
                pos += 2 if version in (1, 2) else 0
                pos += 2  # data_reference_index
                base = _uint(data, pos, base_size)
                pos += base_size
                extents = _uint(data, pos, 2)
                pos += 2
                spans = []
                for _ in range(extents):
                    pos += index_size
                    offset = _uint(data, pos, offset_size)
                    length = _uint(data, pos + offset_size, length_size)
                    pos += offset_size + length_size
                    spans.append((base + offset, length))
                if method == 0 and len(spans) == 1:
                    places[item] = spans[0]
    return types, places
