"""JPEG XL (issue 21): a photo in a JPEG XL container leaves without its location. Real codestreams by libjxl's
``cjxl``, the container's boxes around them, the location written into it by exiftool (EXIF GPS in the
``Exif`` box, XMP in the ``xml `` box); uploaded through the real daemon and judged by exiftool, the pixels
decoded by ``djxl``. A container whose metadata boxes are Brotli-compressed (``brob``, what ``cjxl`` writes
for a JPEG it recompresses) cannot be read: it fails closed."""

from __future__ import annotations

import json
import struct
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Daemon, Home
from PIL import Image

GPS = ["-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E",
       "-GPSAltitude=35", "-Orientation#=6"]
XMP = ["-XMP-exif:GPSLatitude=48.8584", "-XMP-exif:GPSLongitude=2.2945", "-XMP-photoshop:City=Paris",
       "-XMP-iptcCore:Location=Trocadero"]
PLACE = ("gps", "latitude", "longitude", "city", "location", "country", "state")


def run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def container(codestream: bytes) -> bytes:
    """The JPEG XL container (ISO BMFF): the signature box, ``ftyp``, the codestream in ``jxlc``."""
    return (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
            + box(b"jxlc", codestream))


def tags(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(run("exiftool", "-j", "-G1", "-a", "-n", str(path)))[0]
    return found


def places(found: dict[str, Any]) -> list[str]:
    return [k for k in found if not k.startswith(("System:", "File:"))
            and any(w in k.split(":", 1)[-1].lower() for w in PLACE)]


def pixels(path: Path, work: Path) -> bytes:
    png = work / f"{path.stem}-decoded.png"
    run("djxl", str(path), str(png))
    return Image.open(png).convert("RGBA").tobytes()


def located_jxl(folder: Path, work: Path, name: str, args: list[str], seed: int) -> Path:
    picture = work / f"{name}.png"
    noise = bytes((i * 7919 + seed) % 251 for i in range(97 * 41 * 3))
    Image.frombytes("RGB", (97, 41), noise).save(picture)
    bare = work / f"{name}.bare.jxl"
    run("cjxl", str(picture), str(bare), "--container=0", "-d", "0")
    plain = work / f"{name}.jxl"
    plain.write_bytes(container(bare.read_bytes()))
    target = folder / f"{name}.jxl"
    run("exiftool", "-q", "-o", str(target), *args, str(plain))
    return target


def upload(d: Daemon, files: list[Path], stored: Path) -> dict[str, dict[str, Any]]:
    done = d.wait_batch(d.rpc("upload_images", {"paths": [str(p) for p in files]})["batch_id"], timeout=120)
    out = {}
    for task, original in zip(done["tasks"], files, strict=True):
        out[original.name] = task
        if task["status"] == "completed":
            with urllib.request.urlopen(task["url"], timeout=30) as resp:
                (stored / original.name).write_bytes(resp.read())
    return out


def test_a_jpeg_xl_photo_leaves_without_its_location(home: Home, tmp_path: Path,
                                                      daemon_factory: Callable[..., Daemon]) -> None:
    work, stored = tmp_path / "work", tmp_path / "stored"
    work.mkdir()
    stored.mkdir()
    files = [located_jxl(home.pictures, work, "exif", GPS, 1), located_jxl(home.pictures, work, "xmp", XMP, 2),
             located_jxl(home.pictures, work, "both", GPS + XMP, 3)]
    for f in files:
        assert len(places(tags(f))) >= 2, f"exiftool wrote no location into {f.name}"
    tasks = upload(daemon_factory(), files, stored)
    for f in files:
        task = tasks[f.name]
        assert task["status"] == "completed", task["error"]
        sent = stored / f.name
        found = tags(sent)
        assert not places(found), f"exiftool still finds a location in {f.name}: {places(found)}"
        assert found["File:FileType"] == "JXL" and sent.stat().st_size == f.stat().st_size  # edited in place
        assert pixels(sent, work) == pixels(f, work), f"{f.name}: the pixels changed"
        assert b"Paris" not in sent.read_bytes() and b"Trocadero" not in sent.read_bytes()
    assert tasks["exif.jxl"]["processing"]["stripped"] == ["gps"]
    assert tasks["xmp.jxl"]["processing"]["stripped"] == ["xmp"]
    assert tasks["both.jxl"]["processing"]["stripped"] == ["gps", "xmp"]
    assert tags(stored / "exif.jxl")["IFD0:Orientation"] == 6  # the orientation stays


def test_all_removes_every_metadata_box_but_the_orientation(home: Home, tmp_path: Path,
                                                            daemon_factory: Callable[..., Daemon]) -> None:
    work, stored = tmp_path / "work", tmp_path / "stored"
    work.mkdir()
    stored.mkdir()
    config = home.root / "config.toml"
    config.write_text(config.read_text() + '\n[images]\nstrip_metadata = "all"\n')
    f = located_jxl(home.pictures, work, "both", [*GPS, *XMP, "-Artist=Someone", "-XMP-dc:Creator=Someone"], 4)
    task = upload(daemon_factory(), [f], stored)[f.name]
    assert task["status"] == "completed", task["error"]
    found = tags(stored / f.name)
    assert not places(found)
    assert not [k for k in found if k.startswith(("XMP", "IFD0:Artist"))], found
    assert found["IFD0:Orientation"] == 6
    assert pixels(stored / f.name, work) == pixels(f, work)


def test_compressed_metadata_boxes_fail_closed(home: Home, tmp_path: Path,
                                               daemon_factory: Callable[..., Daemon]) -> None:
    """cjxl recompressing a located JPEG puts its EXIF and XMP in Brotli-compressed ``brob`` boxes, which
    pixlift cannot read: the file is not sent, and the message says how to send it as it is."""
    work, stored = tmp_path / "work", tmp_path / "stored"
    work.mkdir()
    stored.mkdir()
    jpeg = work / "photo.jpg"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(work / "plain.jpg", quality=90)
    run("exiftool", "-q", "-o", str(jpeg), *GPS, *XMP, str(work / "plain.jpg"))
    recompressed = home.pictures / "recompressed.jxl"
    run("cjxl", str(jpeg), str(recompressed))
    assert b"brob" in recompressed.read_bytes()
    task = upload(daemon_factory(), [recompressed], stored)[recompressed.name]
    assert task["status"] == "failed" and task["error"]["code"] == "metadata_unreadable", task
    assert "Brotli" in task["error"]["message"] and 'strip_metadata = "none"' in task["error"]["message"]
    assert not list(stored.iterdir())
