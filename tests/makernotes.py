"""Maker notes as cameras write them, with the places exiftool reads there: the notes' structure is built by
hand (exiftool edits maker-note tags but does not create them), then exiftool itself writes the location into
them, so what it reads back is what it wrote."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from PIL import Image

# exiftool arguments that write a location into each maker's note
WRITES: dict[str, list[str]] = {
    "NIKON CORPORATION": ["-Nikon:Location=Paris", "-Nikon:CountryCode=FRA", "-Nikon:Altitude=35"],
    "Panasonic": ["-Panasonic:City=Paris", "-Panasonic:Country=France", "-Panasonic:State=Ile-de-France",
                  "-Panasonic:Landmark=Trocadero", "-Panasonic:Location=Trocadero", "-Panasonic:City2=Paris"],
    "SAMSUNG": ["-Samsung:LocationName=Paris", "-Samsung:LocalLocationName=Trocadero"],
}
# what else each note holds, which must still read the same after the location went
KEPT = {"NIKON CORPORATION": "Nikon:MakerNoteVersion", "Panasonic": "Panasonic:ImageQuality",
        "SAMSUNG": "Samsung:MakerNoteVersion"}


def directory(order: str, entries: list[tuple[int, int, int, bytes]], at: int) -> bytes:
    """A TIFF directory placed at ``at`` (as its offsets count), its longer values right after it."""
    table, extra = struct.pack(order + "H", len(entries)), b""
    end = at + 2 + 12 * len(entries) + 4
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            table += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            table += struct.pack(order + "HHII", tag, kind, count, end + len(extra))
            extra += value + b"\x00" * (len(value) % 2)
    return table + struct.pack(order + "I", 0) + extra


NOTES: dict[str, Callable[[int], bytes]] = {  # the note, given where it starts in the EXIF's TIFF structure
    # type 3: a TIFF structure of its own, offsets from its own header; LocationInfo (0x39) is 79 bytes,
    # BarometerInfo (0xC3, a Z camera's altitude) 10
    "NIKON CORPORATION": lambda at: b"Nikon\x00\x02\x10\x00\x00MM\x00*\x00\x00\x00\x08" + directory(
        ">", [(0x01, 7, 4, b"0210"), (0x39, 7, 79, b"0100" + bytes(75)), (0xC3, 7, 10, b"0100" + bytes(6))], 8),
    # "Panasonic\0\0\0", then a directory whose offsets count from the EXIF's header
    "Panasonic": lambda at: b"Panasonic\x00\x00\x00" + directory(
        "<", [(0x01, 3, 1, b"\x02\x00")] + [(t, 7, 64, bytes(64)) for t in (0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x80)],
        at + 12),
    # type 2: a bare directory, MakerNoteVersion first
    "SAMSUNG": lambda at: directory("<", [(0x01, 7, 4, b"0100"), (0x30, 2, 64, bytes(64)),
                                         (0x31, 2, 64, bytes(64))], at),
}


def exif_with_note(make: str) -> bytes:
    """An APP1 EXIF body: IFD0 with Make, an EXIF directory with the maker's (still empty) note."""
    order = "<"
    name = make.encode() + b"\x00"
    make_at = 8 + 2 + 24 + 4
    exif_at = make_at + len(name) + len(name) % 2
    note_at = exif_at + 18
    note = NOTES[make](note_at)
    ifd0 = (struct.pack(order + "H", 2) + struct.pack(order + "HHII", 0x010F, 2, len(name), make_at)
            + struct.pack(order + "HHII", 0x8769, 4, 1, exif_at) + struct.pack(order + "I", 0))
    exif = (struct.pack(order + "H", 1) + struct.pack(order + "HHII", 0x927C, 7, len(note), note_at)
            + struct.pack(order + "I", 0))
    return b"Exif\x00\x00II*\x00" + struct.pack(order + "I", 8) + ifd0 + name + b"\x00" * (len(name) % 2) + exif + note


def located_makernotes(folder: Path, image: Image.Image) -> list[Path]:
    """One JPEG per maker whose note exiftool has written a location into."""
    out = []
    for make, writes in WRITES.items():
        empty = folder / f"empty-{make.split()[0].lower()}.jpg"
        image.save(empty, "JPEG", quality=90, exif=exif_with_note(make))
        target = folder / f"makernote-{make.split()[0].lower()}.jpg"
        subprocess.run(["exiftool", "-q", "-o", str(target), *writes, str(empty)], check=True, timeout=60)
        out.append(target)
    return out


def kodak_jpeg(path: Path, image: Image.Image) -> Path:
    """A JPEG whose IFD0 points at Kodak's own directory (KodakIFD) holding a GPSString, as exiftool reads it
    (it does not write one: the place is put there by hand)."""
    order = "<"
    name = b"EASTMAN KODAK COMPANY\x00"
    make_at = 8 + 2 + 24 + 4
    kodak_at = make_at + len(name) + len(name) % 2
    kodak = directory(order, [(0x0001, 7, 4, b"0100"), (0x0402, 2, 24, b"48.8584N 2.2945E".ljust(24, b"\x00"))],
                      kodak_at)
    ifd0 = (struct.pack(order + "H", 2) + struct.pack(order + "HHII", 0x010F, 2, len(name), make_at)
            + struct.pack(order + "HHII", 0x8290, 4, 1, kodak_at) + struct.pack(order + "I", 0))
    exif = b"Exif\x00\x00II*\x00" + struct.pack(order + "I", 8) + ifd0 + name + b"\x00" * (len(name) % 2) + kodak
    image.save(path, "JPEG", quality=90, exif=exif)
    return path
