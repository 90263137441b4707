"""Location data never leaves by accident: real photos made with Pillow (EXIF with GPS, orientation, a maker
note, an ICC profile, XMP naming a place), edited by daemon/images/metadata.py, and uploaded through the real
daemon to the local store, S3 (rclone serve s3) and OSS (the project's server)."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, S3Server, noise_after, oss_profile
from PIL import Image, ImageCms, PngImagePlugin
from pixlift.images.metadata import strip

DATUM = "PIXLIFT-HOME-DATUM"  # GPSMapDatum: a value that must not survive anywhere in the bytes
PLACE = b"Iptc4xmpExt:LocationShown"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.48N">'
       b"<Iptc4xmpExt:LocationShown>Home</Iptc4xmpExt:LocationShown></rdf:Description></rdf:RDF></x:xmpmeta>")
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
KINDS = {"jpeg": ("JPEG", ".jpg", "image/jpeg"), "png": ("PNG", ".png", "image/png"),
         "webp": ("WEBP", ".webp", "image/webp")}


def phone_photo(path: Path, fmt: str, seed: int = 1) -> Path:
    """What a phone writes: GPS, orientation 6, make and model, a maker note, an ICC profile, XMP with a place."""
    pixels = Image.frombytes("RGB", (96, 64), hashlib.shake_256(bytes([seed])).digest(96 * 64 * 3))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Model X"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0), 0x12: DATUM}
    exif.get_ifd(0x8769)[0x927C] = b"MAKERNOTE:" + bytes(range(64))
    name, ext, _ = KINDS[fmt]
    path = path.with_suffix(ext)
    if fmt == "png":  # Pillow writes no XMP for PNG: as Photoshop and phones do, an iTXt chunk
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        pixels.save(path, name, exif=exif, icc_profile=ICC, pnginfo=info)
    else:
        pixels.save(path, name, exif=exif, icc_profile=ICC, xmp=XMP, **({"lossless": True} if fmt == "webp" else {}))
    return path


def strip_file(path: Path, kind: str, mode: str, out: Path) -> list[str] | None:
    """``strip`` as a larger file meets it (its descriptor, mapped); a small file's bytes, already read by the
    upload, must give the same result, byte for byte."""
    fd = os.open(path, os.O_RDONLY)
    try:
        removed = strip(fd, kind, mode, lambda: out)
    finally:
        os.close(fd)
    from_bytes = out.with_name("from-bytes-" + out.name)
    assert strip(path.read_bytes(), kind, mode, lambda: from_bytes) == removed
    assert from_bytes.exists() == out.exists()
    if out.exists():
        assert from_bytes.read_bytes() == out.read_bytes()
        from_bytes.unlink()
    return removed


def metadata_of(data: bytes) -> dict[str, Any]:
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    return {"gps": dict(exif.get_ifd(0x8825)), "orientation": exif.get(0x0112), "make": exif.get(0x010F),
            "icc": image.info.get("icc_profile") == ICC, "pixels": image.convert("RGB").tobytes(),
            "datum": DATUM.encode() in data, "place": PLACE in data or b"GPSLatitude" in data,
            "maker_note": b"MAKERNOTE:" in data}


@pytest.mark.parametrize("fmt", sorted(KINDS))
def test_location_goes_and_nothing_else_does(fmt: str, tmp_path: Path) -> None:
    photo = phone_photo(tmp_path / "photo", fmt)
    original = photo.read_bytes()
    before = metadata_of(original)
    assert before["gps"] and before["datum"] and before["place"] and before["orientation"] == 6
    out = tmp_path / f"out{photo.suffix}"
    removed = strip_file(photo, KINDS[fmt][2], "location", out)
    after = metadata_of(out.read_bytes())
    assert removed is not None and "gps" in removed and "xmp" in removed
    assert after["gps"] == {} and not after["datum"] and not after["place"]
    assert after["orientation"] == 6 and after["make"] == "PhoneMaker" and after["icc"]
    assert after["maker_note"]  # blanked in place, not rebuilt: the maker note's bytes are where they were
    assert after["pixels"] == before["pixels"]  # the image data was not touched
    assert photo.read_bytes() == original  # the original is never changed


@pytest.mark.parametrize("mode", ["location", "all"])
def test_an_avif_loses_its_gps_in_place(mode: str, tmp_path: Path) -> None:
    """HEIC and AVIF keep their EXIF as an item of the container: blanked where it lies, every offset true."""
    pixels = Image.frombytes("RGB", (64, 48), hashlib.shake_256(b"avif").digest(64 * 48 * 3))
    exif = Image.Exif()
    exif[0x0112] = 3
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 0x12: DATUM}
    photo = tmp_path / "photo.avif"
    pixels.save(photo, "AVIF", exif=exif, quality=90)
    out = tmp_path / "out.avif"
    removed = strip_file(photo, "image/avif", mode, out)
    assert removed == (["gps"] if mode == "location" else ["exif"])
    sent = out.read_bytes()
    assert len(sent) == photo.stat().st_size and DATUM.encode() not in sent
    after, before = Image.open(io.BytesIO(sent)), Image.open(photo)
    assert not after.getexif().get_ifd(0x8825)
    assert after.getexif().get(0x010F) == ("PhoneMaker" if mode == "location" else None)
    assert after.convert("RGB").tobytes() == before.convert("RGB").tobytes()


@pytest.mark.parametrize("fmt", sorted(KINDS))
def test_all_keeps_only_orientation_and_colour(fmt: str, tmp_path: Path) -> None:
    photo = phone_photo(tmp_path / "photo", fmt)
    before = metadata_of(photo.read_bytes())
    out = tmp_path / f"out{photo.suffix}"
    removed = strip_file(photo, KINDS[fmt][2], "all", out)
    after = metadata_of(out.read_bytes())
    assert removed is not None and "exif" in removed
    assert after["gps"] == {} and after["make"] is None and not after["maker_note"] and not after["place"]
    assert after["orientation"] == 6 and after["icc"] and after["pixels"] == before["pixels"]


@pytest.mark.parametrize("fmt", sorted(KINDS))
def test_a_photo_with_nothing_to_remove_is_left_alone(fmt: str, tmp_path: Path) -> None:
    name, ext, kind = KINDS[fmt]
    photo = tmp_path / f"plain{ext}"
    Image.new("RGB", (8, 8), "red").save(photo, name)
    out = tmp_path / f"out{ext}"
    assert strip_file(photo, kind, "location", out) is None
    assert not out.exists()


@pytest.fixture(params=["local", "s3", "oss"])
def profile(request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "local":
        yield {"provider": "local"}
    elif request.param == "s3":
        s3_server.bucket("metadata")
        yield s3_server.profile("metadata")
    else:
        from conftest import AK, SK
        from ossserver import run_in_thread

        server = run_in_thread(tmp_path / "oss", AK, SK, buckets=("test",))
        yield oss_profile(server)
        server.stop()


def test_a_phone_photo_arrives_without_its_location(home: Home, profile: dict[str, Any],
                                                    daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"cloud": profile}, default="cloud")
    d = daemon_factory()
    photos = [phone_photo(home.pictures / f"IMG_{i}", fmt, seed=i) for i, fmt in enumerate(sorted(KINDS))]
    originals = [p.read_bytes() for p in photos]
    started = d.rpc("upload_images", {"paths": [str(p) for p in photos]})
    done = d.wait_batch(started["batch_id"])
    for task, photo, original in zip(done["tasks"], photos, originals, strict=True):
        assert task["status"] == "completed", task["error"]
        with urllib.request.urlopen(task["url"], timeout=30) as resp:
            sent = resp.read()
        assert task["bytes_total"] == task["bytes_uploaded"] == len(sent) < len(original)
        processing = task["processing"]
        assert "gps" in processing["stripped"] and processing["bytes_before"] == len(original)
        assert processing["bytes_after"] == len(sent) and processing["note"] is None
        got, before = metadata_of(sent), metadata_of(original)
        assert got["gps"] == {} and not got["datum"] and not got["place"]
        assert got["orientation"] == 6 and got["icc"] and got["pixels"] == before["pixels"]
        assert hashlib.sha256(sent).hexdigest()[:8] in task["key"]  # the key names the bytes sent
        assert photo.read_bytes() == original
    assert not any((home.root / "spool").glob("*/*")), "the edited copies are removed once uploaded"


def test_a_large_photo_is_named_by_the_bytes_sent(home: Home, profile: dict[str, Any],
                                                  daemon_factory: Callable[..., Daemon]) -> None:
    """A photo over 1 MiB is hashed (for its {hash8} and dedup) while a parse thread reads its metadata: the key
    names the bytes sent, the edited copy's when the location was removed, the file's own when nothing was."""
    home.write_config({"cloud": profile}, default="cloud")
    d = daemon_factory()
    pixels = Image.frombytes("RGB", (2600, 2000), hashlib.shake_256(b"large").digest(2600 * 2000 * 3))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    located, plain = home.pictures / "large-located.jpg", home.pictures / "large-plain.jpg"
    pixels.save(located, "JPEG", quality=95, exif=exif)
    pixels.save(plain, "JPEG", quality=96)
    assert min(located.stat().st_size, plain.stat().st_size) > 5 * 1024 * 1024  # S3 sends them in parts
    done = d.wait_batch(d.rpc("upload_images", {"paths": [str(located), str(plain)]})["batch_id"], timeout=120)
    sent = []
    for task in done["tasks"]:
        assert task["status"] == "completed", task["error"]
        with urllib.request.urlopen(task["url"], timeout=30) as resp:
            sent.append(resp.read())
        assert hashlib.sha256(sent[-1]).hexdigest()[:8] in task["key"]
        assert task["bytes_uploaded"] == task["bytes_total"] == len(sent[-1])
    assert "gps" in done["tasks"][0]["processing"]["stripped"] and metadata_of(sent[0])["gps"] == {}
    assert sent[0] != located.read_bytes()
    assert done["tasks"][1]["processing"] is None and sent[1] == plain.read_bytes()


def test_bytes_that_only_start_like_a_jpeg_fail_closed_and_go_as_they_are_only_when_asked(
        home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    """Stripping fails closed: a file whose container does not parse is not sent with whatever it may hold;
    the message says how to send it anyway, and with strip_metadata = "none" it goes byte for byte."""
    home.write_config({"cloud": {"provider": "local"}}, default="cloud")
    d = daemon_factory()
    odd = home.pictures / "odd.jpg"
    odd.write_bytes(noise_after(b"\xff\xd8\xff\xe0", 5_000))  # a JPEG signature, then noise
    task = d.wait_batch(d.rpc("upload_images", {"paths": [str(odd)]})["batch_id"])["tasks"][0]
    assert task["status"] == "failed" and task["error"]["code"] == "metadata_unreadable"
    message = task["error"]["message"]
    assert 'strip_metadata = "none"' in message and "[profiles.cloud.images]" in message
    assert not any((home.root / "files").rglob("*.jpg")), "nothing was stored"
    d.stop()  # the failure is journalled with the task: a restart still shows it
    home.write_config({"cloud": {"provider": "local"}}, default="cloud")
    config = home.root / "config.toml"
    config.write_text(config.read_text() + '\n[profiles.cloud.images]\nstrip_metadata = "none"\n')
    d = daemon_factory()
    again = d.rpc("get_upload_progress", {"task_id": task["task_id"]})
    assert again["error"] == task["error"] and again["status"] == "failed"
    d.rpc("retry_upload", {"task_id": task["task_id"]})
    done = d.wait_task(task["task_id"])
    assert done["status"] == "completed" and done["processing"] is None
    with urllib.request.urlopen(done["url"], timeout=30) as resp:
        assert resp.read() == odd.read_bytes()


def test_a_gif_loses_xmp_that_names_a_place_and_keeps_its_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    plain = tmp_path / "plain.gif"
    frames[0].save(plain, save_all=True, append_images=frames[1:], comment=b"holiday")
    data = plain.read_bytes()
    xmp = XMP + b" " * 10
    blocks = b"".join(bytes([len(xmp[i:i + 255])]) + xmp[i:i + 255] for i in range(0, len(xmp), 255))
    photo = tmp_path / "photo.gif"
    photo.write_bytes(data[:-1] + b"\x21\xff\x0bXMP DataXMP" + blocks + b"\x00" + data[-1:])
    for mode, gone in (("location", ["xmp"]), ("all", ["comment", "xmp"])):
        out = tmp_path / f"out-{mode}.gif"
        assert strip_file(photo, "image/gif", mode, out) == gone
        sent = out.read_bytes()
        assert PLACE not in sent and (b"holiday" in sent) == (mode == "location")
        before, after = Image.open(photo), Image.open(out)
        assert after.n_frames == before.n_frames == 2
        for i in range(2):
            before.seek(i)
            after.seek(i)
            assert after.convert("RGB").tobytes() == before.convert("RGB").tobytes()


def test_a_tiff_loses_its_gps_and_for_all_every_tag_in_place(
        home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    photo = phone_photo(home.pictures / "scan", "png").with_suffix(".png")
    tiff = home.pictures / "scan.tif"
    exif = Image.open(photo).getexif()
    Image.open(photo).save(tiff, "TIFF", exif=exif, icc_profile=ICC)
    assert strip_file(tiff, "image/tiff", "location", home.root / "out.tif") == ["gps"]
    located = metadata_of((home.root / "out.tif").read_bytes())
    assert located["gps"] == {} and not located["datum"] and located["make"] == "PhoneMaker"
    assert located["pixels"] == metadata_of(tiff.read_bytes())["pixels"]

    home.write_config({"cloud": {"provider": "local"}}, default="cloud")
    config = home.root / "config.toml"
    config.write_text(config.read_text() + '\n[images]\nstrip_metadata = "all"\n')
    d = daemon_factory()
    task = d.wait_batch(d.rpc("upload_images", {"paths": [str(tiff)]})["batch_id"])["tasks"][0]
    assert task["status"] == "completed", task["error"]
    assert task["processing"]["note"] is None and "exif" in task["processing"]["stripped"]
    with urllib.request.urlopen(task["url"], timeout=30) as resp:
        body = resp.read()
    sent = metadata_of(body)
    assert len(body) == tiff.stat().st_size  # edited in place: every offset of the file still true
    assert sent["gps"] == {} and sent["make"] is None and sent["icc"] and not sent["datum"]
    assert sent["pixels"] == metadata_of(tiff.read_bytes())["pixels"]
