"""The container parsers, fuzzed: Hypothesis mutates real files of each format (bytes flipped, the file cut,
pieces spliced in, counts and lengths inflated to their maximum) and every parser must answer within its
deadline with an edited file, nothing to remove, ``Unreadable`` or ``GaveUp``, never another exception. The
parse runs on a thread with a budget, as in the daemon, so a hang fails the test instead of hanging CI."""

from __future__ import annotations

import contextlib
import io
import tempfile
from datetime import timedelta
from pathlib import Path

import pillow_heif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makernotes import NOTES, exif_with_note, kodak_jpeg
from PIL import Image, PngImagePlugin
from pixlift.images.metadata import strip
from pixlift.images.metadata_bounds import GaveUp, Unreadable, budget

pillow_heif.register_heif_opener()  # a test dependency (pyproject): HEIC and AVIF bases

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.5N"/></rdf:RDF>'
       b"</x:xmpmeta>")


def seed_file(fmt: str) -> bytes:
    image = Image.frombytes("RGB", (24, 16), bytes(range(256)) * 4 + bytes(128))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=True)
        image.save(buf, fmt, exif=exif, pnginfo=info)
    elif fmt == "GIF":
        image.save(buf, fmt, comment=XMP)
        data = buf.getvalue()
        blocks = b"".join(bytes([len(XMP[i:i + 255])]) + XMP[i:i + 255] for i in range(0, len(XMP), 255))
        return data[:-1] + b"\x21\xff\x0bXMP DataXMP" + blocks + b"\x00" + data[-1:]
    elif fmt == "TIFF":  # Pillow writes a TIFF's GPS directory from an EXIF it has read
        image.save(buf, fmt, exif=Image.open(io.BytesIO(seed_file("JPEG"))).getexif())
    else:
        image.save(buf, fmt, exif=exif, xmp=XMP, quality=80)
    return buf.getvalue()


FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF",
           "image/tiff": "TIFF", "image/heic": "HEIF"}
SEEDS = {kind: seed_file(fmt) for kind, fmt in FORMATS.items()}


def makernote_seed(make: str) -> bytes:
    """A JPEG whose EXIF holds a maker's note of the layout that keeps places (tests/makernotes.py)."""
    buf = io.BytesIO()
    Image.new("RGB", (24, 16)).save(buf, "JPEG", exif=exif_with_note(make))
    return buf.getvalue()


def kodak_seed() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return kodak_jpeg(Path(folder) / "kodak.jpg", Image.new("RGB", (24, 16))).read_bytes()


MAKERNOTE_SEEDS = {**{make: makernote_seed(make) for make in NOTES}, "KODAK": kodak_seed()}


@st.composite
def mutated(draw: st.DrawFn, kind: str, seed: bytes | None = None, within: int | None = None) -> bytes:
    """``kind``'s seed (or ``seed``) mutated; ``within``: mutations start in its first bytes (a note's EXIF)."""
    data = bytearray(SEEDS[kind] if seed is None else seed)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "truncate", "splice", "inflate", "zero"]))
        at = draw(st.integers(0, max(0, min(len(data), within or len(data)) - 1)))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[max(8, at):]
        elif how == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif how == "inflate":  # a count or a length at its maximum
            width = draw(st.sampled_from([1, 2, 4]))
            data[at:at + width] = b"\xff" * width
        else:
            data[at:at + 4] = bytes(4)
    return bytes(data)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_the_seed_files_parse_and_lose_their_location(kind: str, tmp_path: Path) -> None:
    removed = strip(SEEDS[kind], kind, "location", tmp_path / "out")
    assert removed and ("gps" in removed or "xmp" in removed), removed


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_parser_answers_mutated_files_within_its_deadline(kind: str) -> None:
    @settings(max_examples=150, deadline=timedelta(seconds=3), derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=mutated(kind), mode=st.sampled_from(["location", "all"]))
    def run(data: bytes, mode: str) -> None:
        with tempfile.TemporaryDirectory() as folder, budget(2.0), contextlib.suppress(Unreadable, GaveUp):
            strip(data, kind, mode, Path(folder) / "out")

    run()


@pytest.mark.parametrize("make", sorted(MAKERNOTE_SEEDS))
def test_maker_note_parsing_answers_mutated_files_within_its_deadline(make: str) -> None:
    seed = MAKERNOTE_SEEDS[make]
    exif_end = seed.index(b"\xff\xdb")  # mutations land in the EXIF, where the note is

    @settings(max_examples=150, deadline=timedelta(seconds=3), derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=mutated("image/jpeg", seed, within=exif_end), mode=st.sampled_from(["location", "all"]))
    def run(data: bytes, mode: str) -> None:
        with tempfile.TemporaryDirectory() as folder, budget(2.0), contextlib.suppress(Unreadable, GaveUp):
            strip(data, "image/jpeg", mode, Path(folder) / "out")

    run()
