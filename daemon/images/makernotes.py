"""Maker notes: the camera makers' private directories inside EXIF, and the places some of them keep.

exiftool (the reference reader) puts these maker-note tags of photos in its "Location" group, and can write
them there (which is how the tests put them there):

- Nikon, type 3 notes (``Nikon\\0\\x02``, a TIFF structure of their own, offsets from its own header):
  ``LocationInfo`` (0x0039), which holds ``CountryCode`` and ``Location``, and ``BarometerInfo`` (0x00C3),
  which holds the ``Altitude`` a Z camera measured;
- Panasonic (``Panasonic\\0\\0\\0``, then a directory whose offsets count from the EXIF's TIFF header):
  ``Location``, ``Country``, ``State``, ``City``, ``Landmark``, ``City2`` (0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x80);
- Samsung, type 2 notes (a bare directory, offsets from the EXIF's TIFF header): ``LocalLocationName`` and
  ``LocationName`` (0x30, 0x31);
- Kodak's own directory, which IFD0's ``KodakIFD`` (0x8290) points at: ``GPSString`` (0x0402). exiftool reads
  it but does not write it; one that does not parse makes the whole EXIF unreadable (``exif.py``'s rule).

In "location" mode these entries are dropped from their directory (the later entries move up 12 bytes and the
count goes down, as ``exif.py`` does) and their values zeroed: every other byte of the note stays where it
was, so the offsets inside it stay valid. A note that announces one of these layouts but does not parse is
zeroed whole and its entry dropped (stripping fails closed), which ``processing.note`` says. "all" already
removes every maker note. Other locations exiftool reads from maker notes are in videos (Nikon's NCTG,
Pentax's PENT atoms) or thermal cameras' own files; the world-time cities some cameras keep (Canon's
TimeZoneCity, Pentax's and Casio's HometownCity) name the time zone the clock is set to and stay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .metadata_bounds import Unreadable, tick, u16

if TYPE_CHECKING:  # exif.py calls this module, which reads with its classes
    from .exif import Plan, Tiff

NIKON_LOCATION = frozenset({0x0039, 0x00C3})
PANASONIC_LOCATION = frozenset({0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x80})
SAMSUNG_LOCATION = frozenset({0x30, 0x31})
KODAK_IFD_TAG = 0x8290
KODAK_LOCATION = frozenset({0x0402})
MAKERNOTE_UNREADABLE = ("note:a camera maker note that can hold a location could not be read, so it was removed "
                        "whole")


def plan_makernote(tiff: Tiff, plan: Plan, kind: int, count: int, entry: int, make: bytes) -> bool:
    """Add to ``plan`` the location entries of the maker note at ``entry``; True when the note itself must go
    (its entry is then dropped by the caller), because it announces a layout that holds places but does not
    parse."""
    span = tiff.value_span(kind, count, entry)
    if span is None:
        return False
    start, end = span
    head = bytes(tiff.data[start:min(end, start + 12)])  # type: ignore[index]
    maker = make.strip(b"\x00 ").upper()
    try:
        if head.startswith(b"Nikon\x00\x02"):
            inner = type(tiff)(bytes(tiff.data[start + 10:end]))  # type: ignore[index]
            _drop(inner, plan, inner.ifd0, inner.size, NIKON_LOCATION, start + 10)
        elif head.startswith(b"Panasonic\x00\x00\x00"):
            _drop(tiff, plan, start + 12, end, PANASONIC_LOCATION, 0)
        elif maker.startswith(b"SAMSUNG") and _samsung_type2(head, tiff.order):
            _drop(tiff, plan, start, end, SAMSUNG_LOCATION, 0)
    except Unreadable:
        plan.zeros.append((start, end))
        plan.removed += ["makernote", MAKERNOTE_UNREADABLE]
        return True
    return False


def plan_kodak_ifd(tiff: Tiff, plan: Plan, entry: int) -> None:
    """Kodak's directory (offsets from the EXIF's header): its GPSString entry dropped and zeroed."""
    _drop(tiff, plan, tiff.pointer(entry), tiff.size, KODAK_LOCATION, 0)


def _samsung_type2(head: bytes, order: str) -> bool:
    """exiftool's test for a Samsung type 2 note: a directory whose first entry is MakerNoteVersion (undef[4])."""
    first = head[2:10]
    return first == (b"\x01\x00\x07\x00\x04\x00\x00\x00" if order == "<" else b"\x00\x01\x00\x07\x00\x00\x00\x04")


def _drop(tiff: Tiff, plan: Plan, ifd: int, limit: int, tags: frozenset[int], shift: int) -> None:
    """The entries of ``tags`` dropped from the directory at ``ifd`` (which must end by ``limit``, the note's
    end) and their values zeroed; ``shift`` is where ``tiff``'s bytes start in the bytes the plan edits."""
    if not 0 < ifd < limit - 2 or ifd + 2 + 12 * u16(tiff.data, ifd, tiff.order) > limit:
        raise Unreadable("a maker note's directory does not fit in it")
    found = False
    for tag, kind, count, entry in tiff.entries(ifd):
        tick()
        if tag in tags:
            found = True
            span = tiff.value_span(kind, count, entry)
            if span is None and not tiff.inline(kind, count):
                raise Unreadable("a maker note's location runs past its end")
            if span is not None:
                plan.zeros.append((span[0] + shift, span[1] + shift))
    if not found:
        return
    table = tiff.table(ifd, lambda t: t not in tags)
    if table is not None:
        plan.writes[ifd + shift] = table
    plan.removed.append("makernote")
