"""Convert, compress and scale an image on request (``[images] convert_to``, ``quality``, ``max_dimension``).

Unlike metadata removal, this decodes and re-encodes, with Pillow, on a worker thread. The pixels are
bounded before anything is decoded: a file whose header announces more than ``MAX_PIXELS`` is refused (a
decompression bomb looks like that), except a JPEG that is to be scaled down, which the decoder reads at
1/2, 1/4 or 1/8 of its size (``draft``) so its full bitmap is never made; Pillow's own hard limit (about 179
megapixels) still applies to that. The
orientation is applied to the pixels; the colour profile is kept; EXIF goes as ``strip_metadata`` says
(without GPS for "location", none for "all").
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from ..errors import SourceError

MAX_PIXELS = 120_000_000
FORMATS = {"webp": ("WEBP", "image/webp", ".webp"), "avif": ("AVIF", "image/avif", ".avif"),
           "jpeg": ("JPEG", "image/jpeg", ".jpg"), "png": ("PNG", "image/png", ".png"),
           "tiff": ("TIFF", "image/tiff", ".tif")}  # a TIFF's tags removed by re-encoding it (lossless)
CHOICES = ("", "webp", "avif", "jpeg", "png")


def convert(source: BinaryIO, name: str, out_dir: Path, *, to: str, quality: int, max_dimension: int,
            strip_metadata: str) -> tuple[Path, str, list[str]]:
    """Write the converted image into ``out_dir``; its path, its content type and the tag groups left out.
    SourceError says why not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS below is the rule here
        try:
            image = Image.open(source)
        except Image.DecompressionBombError as exc:  # over Pillow's own hard limit (about 179 megapixels)
            raise _too_big(name, None) from exc
        except (OSError, ValueError) as exc:
            raise SourceError(f"{name} could not be read as an image to convert ({exc}); nothing was sent. "
                              "Upload it without converting ([images] convert_to = \"\").") from exc
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            scalable = image.format == "JPEG" and max_dimension and max(width, height) // 8 <= max_dimension * 2
            if not scalable:
                raise _too_big(name, width * height)
        if max_dimension and image.format == "JPEG":
            image.draft(image.mode, (max_dimension, max_dimension))  # decode at a fraction of the size
        try:
            upright = ImageOps.exif_transpose(image)
            if max_dimension and max(upright.size) > max_dimension:
                upright.thumbnail((max_dimension, max_dimension), Image.Resampling.LANCZOS)
            kind, mime, ext = FORMATS[to or _same(image.format)]
            exif = image.getexif()
            removed: list[str] = []
            if exif.get(0x0112, 1) != 1:
                exif[0x0112] = 1  # the orientation is in the pixels now
            options: dict[str, object] = {"icc_profile": image.info.get("icc_profile")}
            if strip_metadata == "all":
                removed += ["exif"] if exif else []
            else:
                if strip_metadata == "location" and 0x8825 in exif:
                    del exif[0x8825]
                    removed.append("gps")
                if exif:
                    options["exif"] = exif.tobytes()
            if kind in ("WEBP", "AVIF", "JPEG"):
                options["quality"] = quality
            if kind == "TIFF":
                options["compression"] = "tiff_deflate"
            if kind == "JPEG" and upright.mode not in ("RGB", "L", "CMYK"):
                upright = upright.convert("RGB")
            out = out_dir / (Path(name).stem + ext)
            upright.save(out, kind, **options)
        except (OSError, ValueError, KeyError) as exc:
            raise SourceError(f"{name} could not be converted ({exc}); nothing was sent.") from exc
    return out, mime, removed


def _same(pillow_format: str | None) -> str:
    """Scaling without converting: the format it has (one Pillow writes), else PNG."""
    return {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "AVIF": "avif", "TIFF": "tiff"}.get(pillow_format or "",
                                                                                             "png")


def _too_big(name: str, pixels: int | None) -> SourceError:
    size = f"{pixels / 1e6:.0f} megapixels" if pixels else "more pixels than pixlift decodes"
    return SourceError(f"{name} has {size}; pixlift converts images of up to {MAX_PIXELS // 1_000_000} megapixels "
                       "(a file that claims more is how a decompression bomb looks). Nothing was sent. Upload it "
                       "without converting, or set max_dimension to scale a JPEG down.")
