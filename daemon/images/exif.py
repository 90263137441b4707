"""EXIF is a TIFF structure: its directories edited where they lie (metadata.py, metadata_heif.py, metadata_tiff.py).

Rebuilding the directories would move maker notes, whose private offsets then point at the wrong bytes; so
an edit is a ``Plan`` of spans to zero and directory tables to rewrite at the same length: a directory that
goes is blanked (its entries and the values they point to zeroed, its count 0) and its pointer dropped from
its parent (the later entries move up 12 bytes): every other byte stays where it was, and the file keeps its
length, which containers that store offsets (HEIF, MPF, TIFF) need.

Bounded (metadata_bounds.py): every count is checked against the bytes after it, a directory is visited
once (a chain that points back at itself ends), and the values to zero are merged before they are zeroed,
so that thousands of entries sharing one large value cost its size once, not once per entry.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .makernotes import KODAK_IFD_TAG, plan_kodak_ifd, plan_makernote
from .metadata_bounds import Unreadable, deep, fits, take, tick, u16, u32
from .metadata_xmp import iptc_has_place, names_a_place, photoshop_has_place

GPS_TAG, EXIF_TAG, INTEROP_TAG, SUBIFDS_TAG = 0x8825, 0x8769, 0xA005, 0x014A
ORIENTATION_TAG, XMP_TAG, IPTC_TAG, PHOTOSHOP_TAG, MAKERNOTE_TAG = 0x0112, 700, 33723, 34377, 0x927C
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
POINTERS = (EXIF_TAG, GPS_TAG, INTEROP_TAG)
# What a TIFF needs to show its pixels as they are: kept by "all" (with the orientation and the ICC profile)
IMAGE_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283,
                        284, 290, 291, 296, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339,
                        340, 341, 347, 529, 530, 531, 532, 34675})
MAX_IFDS = 256


@dataclass
class Plan:
    """What to change in a TIFF structure, at the same length: spans to zero, tables to rewrite."""

    zeros: list[tuple[int, int]] = field(default_factory=list)
    writes: dict[int, bytes] = field(default_factory=dict)  # a directory's start -> its new table
    removed: list[str] = field(default_factory=list)

    def apply(self, data: bytes | bytearray | memoryview) -> bytes:
        out = bytearray(data)
        for start, end in merged(self.zeros):
            tick()
            out[start:end] = bytes(end - start)
        for at, table in self.writes.items():
            out[at:at + len(table)] = table
        return bytes(out)


def merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping and touching spans joined: each byte is zeroed once."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


class Tiff:
    """A TIFF structure (EXIF or a TIFF file) read within its bytes."""

    def __init__(self, data: bytes | bytearray | memoryview | object) -> None:
        self.data = data
        self.size = len(data)  # type: ignore[arg-type]
        head = take(data, 0, 8, "the TIFF header")
        if head[:2] not in (b"II", b"MM"):
            raise Unreadable("not a TIFF header")
        self.order = "<" if head[:2] == b"II" else ">"
        if struct.unpack(self.order + "H", head[2:4])[0] not in (42, 43):
            raise Unreadable("not a TIFF header")
        self.ifd0 = struct.unpack(self.order + "I", head[4:8])[0]

    def entries(self, ifd: int) -> list[tuple[int, int, int, int]]:
        """(tag, type, count, offset of its 12-byte entry) of one directory."""
        count = u16(self.data, ifd, self.order)
        fits(count, 12, self.size - ifd - 2, "a TIFF directory")
        table = take(self.data, ifd + 2, 12 * count, "a TIFF directory")
        out = []
        for i in range(count):
            tag, kind, n = struct.unpack_from(self.order + "HHI", table, 12 * i)
            out.append((tag, kind, n, ifd + 2 + 12 * i))
        return out

    def next_ifd(self, ifd: int) -> int:
        count = u16(self.data, ifd, self.order)
        at = ifd + 2 + 12 * count
        return u32(self.data, at, self.order) if at + 4 <= self.size else 0

    def pointer(self, entry: int) -> int:
        return u32(self.data, entry + 8, self.order)

    def inline(self, kind: int, count: int) -> bool:
        """The value fits in its entry's four bytes."""
        return TYPE_SIZES.get(kind, 1) * count <= 4

    def value_span(self, kind: int, count: int, entry: int) -> tuple[int, int] | None:
        """Where an entry's value lies outside its entry (None: inside it, or past the end of the bytes)."""
        size = TYPE_SIZES.get(kind, 1) * count
        if size <= 4:
            return None
        offset = self.pointer(entry)
        return (offset, offset + size) if offset + size <= self.size else None

    def value(self, kind: int, count: int, entry: int) -> bytes:
        span = self.value_span(kind, count, entry)
        if span is None:
            size = TYPE_SIZES.get(kind, 1) * count
            return take(self.data, entry + 8, min(size, 4))
        return take(self.data, span[0], span[1] - span[0])

    def short(self, entry: int) -> int:
        return u16(self.data, entry + 8, self.order)

    def chain(self) -> list[int]:
        """IFD0 and the directories chained after it, each once."""
        out: list[int] = []
        ifd = self.ifd0
        while 8 <= ifd < self.size - 2 and ifd not in out:
            tick()
            if len(out) >= MAX_IFDS:
                raise Unreadable(f"more than {MAX_IFDS} chained TIFF directories")
            out.append(ifd)
            ifd = self.next_ifd(ifd)
        return out

    def table(self, ifd: int, keep: Callable[[int], bool]) -> bytes | None:
        """The directory's table without the entries ``keep`` refuses (same length; None: nothing dropped)."""
        count = u16(self.data, ifd, self.order)
        raw = take(self.data, ifd + 2, 12 * count)
        kept = [raw[12 * i:12 * i + 12] for i in range(count)
                if keep(struct.unpack_from(self.order + "H", raw, 12 * i)[0])]
        if len(kept) == count:
            return None
        return struct.pack(self.order + "H", len(kept)) + b"".join(kept) + bytes(12 * (count - len(kept)))

    def blank(self, plan: Plan, ifd: int, seen: set[int], depth: int = 0) -> None:
        """Zero a directory, what its entries point to and the directories below it; it then holds nothing."""
        deep(depth, "a TIFF directory")
        if ifd in seen or not 0 < ifd < self.size - 2:
            return
        seen.add(ifd)
        entries = self.entries(ifd)
        for tag, kind, count, entry in entries:
            tick()
            if tag in POINTERS:
                self.blank(plan, self.pointer(entry), seen, depth + 1)
            span = self.value_span(kind, count, entry)
            if span is not None:
                plan.zeros.append(span)
        plan.zeros.append((ifd, ifd + 2 + 12 * len(entries)))


def plan_location(tiff: Tiff, *, file: bool = False) -> Plan:
    """GPS directories blanked and their pointers dropped; XMP, IPTC and Photoshop blocks that name a place
    zeroed and dropped. ``file``: a TIFF file (its chained directories are images, SubIFDs too)."""
    plan = Plan()
    seen: set[int] = set()
    todo = [(ifd, 0) for ifd in tiff.chain()]
    make = _make(tiff, todo[0][0]) if todo else b""
    while todo:
        ifd, depth = todo.pop()
        deep(depth, "a TIFF directory")
        if ifd in seen or not 0 < ifd < tiff.size - 2:
            continue
        seen.add(ifd)
        dropped: set[int] = set()
        for tag, kind, count, entry in tiff.entries(ifd):
            tick()
            if tag == GPS_TAG:
                tiff.blank(plan, tiff.pointer(entry), set(seen))
                dropped.add(tag)
                plan.removed.append("gps")
            elif tag in (EXIF_TAG, INTEROP_TAG):
                todo.append((tiff.pointer(entry), depth + 1))
            elif tag == MAKERNOTE_TAG and plan_makernote(tiff, plan, kind, count, entry, make):
                dropped.add(tag)
            elif tag == KODAK_IFD_TAG:
                plan_kodak_ifd(tiff, plan, entry)
            elif tag == SUBIFDS_TAG and file:
                todo += [(p, depth + 1) for p in _longs(tiff, kind, count, entry)]
            elif tag in (XMP_TAG, IPTC_TAG, PHOTOSHOP_TAG):
                block = tiff.value(kind, count, entry)
                test = {XMP_TAG: names_a_place, IPTC_TAG: iptc_has_place, PHOTOSHOP_TAG: photoshop_has_place}[tag]
                if test(block):
                    _drop_value(plan, tiff, kind, count, entry)
                    dropped.add(tag)
                    plan.removed.append({XMP_TAG: "xmp", IPTC_TAG: "iptc", PHOTOSHOP_TAG: "iptc"}[tag])
        if dropped:
            table = tiff.table(ifd, lambda t: t not in dropped)  # noqa: B023 (called at once)
            if table is not None:
                plan.writes[ifd] = table
    return plan


def plan_all_in_place(tiff: Tiff, *, file: bool) -> Plan:
    """Every tag but the orientation (and, in a TIFF file, what its pixels need) zeroed and dropped in place."""
    plan = Plan()
    seen: set[int] = set()
    chain = tiff.chain()
    todo = [(ifd, 0) for ifd in (chain if file else chain[:1])]
    keep = IMAGE_TAGS if file else frozenset({ORIENTATION_TAG})
    while todo:
        ifd, depth = todo.pop()
        deep(depth, "a TIFF directory")
        if ifd in seen or not 0 < ifd < tiff.size - 2:
            continue
        seen.add(ifd)
        for tag, kind, count, entry in tiff.entries(ifd):
            tick()
            if tag in keep:
                if tag == SUBIFDS_TAG:
                    todo += [(p, depth + 1) for p in _longs(tiff, kind, count, entry)]
                continue
            if tag in POINTERS or tag == KODAK_IFD_TAG:
                tiff.blank(plan, tiff.pointer(entry), seen, depth + 1)
            else:
                _drop_value(plan, tiff, kind, count, entry)
            plan.removed.append("gps" if tag == GPS_TAG else "exif")
        table = tiff.table(ifd, lambda t: t in keep)
        if table is not None:
            plan.writes[ifd] = table
    if not file:  # IFD1 (the thumbnail) goes with the rest: IFD0's link to it is cut
        for ifd in chain[1:]:
            entries = {tag: (kind, count, entry) for tag, kind, count, entry in tiff.entries(ifd)}
            if 513 in entries and 514 in entries:  # the thumbnail's own bytes
                start, length = tiff.pointer(entries[513][2]), tiff.pointer(entries[514][2])
                if start + length <= tiff.size:
                    plan.zeros.append((start, start + length))
            tiff.blank(plan, ifd, set())
        if len(chain) > 1:
            at = chain[0] + 2 + 12 * u16(tiff.data, chain[0], tiff.order)
            plan.zeros.append((at, at + 4))
    return plan


def _make(tiff: Tiff, ifd0: int) -> bytes:
    """The camera's maker (IFD0's Make), which tells some maker notes apart."""
    for tag, kind, count, entry in tiff.entries(ifd0):
        if tag == 0x010F and kind == 2:
            return tiff.value(kind, min(count, 64), entry)
    return b""


def _longs(tiff: Tiff, kind: int, count: int, entry: int) -> list[int]:
    if kind not in (4, 13) or count > 64:
        return []
    raw = tiff.value(kind, count, entry)
    return list(struct.unpack(tiff.order + f"{count}I", raw[:4 * count])) if len(raw) >= 4 * count else []


def _drop_value(plan: Plan, tiff: Tiff, kind: int, count: int, entry: int) -> None:
    span = tiff.value_span(kind, count, entry)
    if span is not None:
        plan.zeros.append(span)


def edit_exif(tiff: bytes, mode: str) -> tuple[bytes | None, list[str]]:
    """The EXIF to keep (None: drop it) and what was removed from it. "location" keeps the length."""
    parsed = Tiff(tiff)
    if mode == "all":
        entries = parsed.entries(parsed.ifd0) if parsed.ifd0 else []
        if {tag for tag, *_ in entries} <= {ORIENTATION_TAG} and len(parsed.chain()) <= 1:
            return tiff, []  # the orientation alone: nothing to remove
        orientation = next((parsed.short(e) for tag, kind, n, e in entries
                            if tag == ORIENTATION_TAG and kind == 3 and n == 1), None)
        return minimal_exif(parsed.order, orientation), ["exif"]
    plan = plan_location(parsed)
    if not plan.removed:
        return tiff, []
    return plan.apply(tiff), sorted(set(plan.removed))


def blank_all_but_orientation(tiff: bytes) -> bytes:
    """Every tag blanked where it lies but the orientation, the length kept (for containers with offsets)."""
    return plan_all_in_place(Tiff(tiff), file=False).apply(tiff)


def minimal_exif(order: str, orientation: int | None) -> bytes | None:
    """An EXIF holding only the orientation (None when there is none to keep)."""
    if orientation is None:
        return None
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    return head + struct.pack(order + "HHHIHHI", 1, ORIENTATION_TAG, 3, 1, orientation, 0, 0)
