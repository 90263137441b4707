"""Convert, compress and scale on request ([images] convert_to, quality, max_dimension), with Pillow, through
the real daemon: the format and size asked for, upright, without the location; a decompression bomb is
refused with a clear message and nothing is sent."""

from __future__ import annotations

import io
import struct
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, S3Server
from PIL import Image
from pixlift.errors import ConfigError
from pixlift.settings.config_file import parse_settings
from test_metadata import ICC, phone_photo


def fetch(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read()), str(resp.headers.get("Content-Type", ""))


def images_config(home: Home, profile: dict[str, Any], **images: Any) -> None:
    home.write_config({"cloud": profile}, default="cloud")
    config = home.root / "config.toml"
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in images.items()]
    config.write_text(config.read_text() + "\n[images]\n" + "\n".join(lines) + "\n")


@pytest.mark.parametrize("to", ["webp", "avif", "jpeg", "png"])
def test_converted_scaled_upright_and_without_location(to: str, home: Home, s3_server: S3Server,
                                                       daemon_factory: Callable[..., Daemon]) -> None:
    s3_server.bucket("convert")
    images_config(home, s3_server.profile("convert"), convert_to=to, quality=70, max_dimension=40)
    d = daemon_factory()
    photo = phone_photo(home.pictures / "IMG_1", "jpeg")  # 96 x 64 pixels, orientation 6 (to be turned)
    task = d.wait_batch(d.rpc("upload_images", {"paths": [str(photo)]})["batch_id"])["tasks"][0]
    assert task["status"] == "completed", task["error"]
    sent, content_type = fetch(task["url"])
    image = Image.open(io.BytesIO(sent))
    assert image.format == {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG"}[to]
    assert content_type == f"image/{to}"
    assert image.size == (27, 40)  # turned upright (64 x 96), then scaled to fit 40
    exif = image.getexif()
    assert not exif.get_ifd(0x8825) and exif.get(0x0112, 1) == 1 and image.info.get("icc_profile") == ICC
    assert task["key"].endswith(".jpg" if to == "jpeg" else f".{to}")
    assert task["processing"]["converted_to"] == to and "gps" in task["processing"]["stripped"]
    assert task["processing"]["bytes_after"] == task["bytes_total"] == len(sent)


def bomb(path: Path, side: int = 30_000) -> Path:
    """A small PNG whose header announces side x side pixels (900 megapixels): what a decompression bomb is."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(side)
    idat = zlib.compress(row * 64, 9)  # the first rows only: the header is what matters
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_with_a_clear_message(home: Home,
                                                              daemon_factory: Callable[..., Daemon]) -> None:
    images_config(home, {"provider": "local"}, convert_to="webp")
    d = daemon_factory()
    task = d.wait_batch(d.rpc("upload_images", {"paths": [str(bomb(home.pictures / "huge.png"))]})["batch_id"])
    t = task["tasks"][0]
    assert t["status"] == "failed" and t["bytes_uploaded"] == 0
    assert "megapixels" in t["error"]["message"] and "Nothing was sent" in t["error"]["message"]
    assert "Traceback" not in t["error"]["message"]
    assert not list((home.root / "files").rglob("*.webp"))


def test_image_settings_are_checked(tmp_path: Path) -> None:
    for images, where in (({"convert_to": "gif"}, "images.convert_to"), ({"quality": 0}, "images.quality"),
                          ({"max_dimension": 3}, "images.max_dimension"), ({"strip_metadata": "gps"},
                                                                           "images.strip_metadata")):
        with pytest.raises(ConfigError) as info:
            parse_settings({"images": images}, tmp_path / "config.toml", tmp_path)
        assert where in info.value.message
    settings = parse_settings({"images": {"convert_to": "webp"},
                               "profiles": {"raw": {"provider": "local", "images": {"convert_to": "",
                                                                                    "strip_metadata": "none"}}}},
                              tmp_path / "config.toml", tmp_path)
    assert settings.images_for("local").convert_to == "webp"
    raw = settings.images_for("raw")
    assert raw.convert_to == "" and raw.strip_metadata == "none" and raw.dedup is True
