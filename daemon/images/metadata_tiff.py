"""TIFF: a TIFF is its own EXIF, edited in place (``exif.py``), so every offset of the file stays true.

"location": every GPS directory blanked and its pointer dropped, and the XMP (tag 700), IPTC (33723) and
Photoshop (34377) blocks that name a place zeroed and dropped, in every image of the file (chained and
SubIFDs). "all": every tag but those the pixels need (size, layout, compression, colour, the orientation and
the ICC profile) zeroed and dropped. The pixels are never touched.
"""

from __future__ import annotations

from .exif import Plan, Tiff, merged, plan_all_in_place, plan_location
from .metadata_bounds import Unreadable
from .metadata_heif import Patch


def edit_tiff(data: object, mode: str) -> tuple[list[Patch | tuple[int, int]], list[str]]:
    """Patches (new bytes at an offset) and spans to zero (offset, length as a negative marker); removed."""
    tiff = Tiff(data)
    if tiff.ifd0 < 8:
        raise Unreadable("a TIFF whose first directory lies inside its header")
    plan = plan_all_in_place(tiff, file=True) if mode == "all" else plan_location(tiff, file=True)
    return to_patches(plan), sorted(set(plan.removed))


def to_patches(plan: Plan) -> list[Patch | tuple[int, int]]:
    """The plan as non-overlapping changes: (offset, bytes) for rewritten tables, (offset, n) for n zeros."""
    out: list[Patch | tuple[int, int]] = []
    tables = sorted(plan.writes.items())
    for start, end in merged(plan.zeros):
        pos = start
        for at, table in tables:  # a rewritten table inside a zeroed span: the span is cut around it
            if at + len(table) <= pos or at >= end:
                continue
            if at > pos:
                out.append((pos, at - pos))
            pos = max(pos, at + len(table))
        if pos < end:
            out.append((pos, end - pos))
    out += tables
    return out
