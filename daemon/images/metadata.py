"""Metadata a photo should not carry out of the house: its location (and, on request, every other tag).

Edited at the container level, so the image data is never decoded or re-encoded (the pixels stay identical);
each format has its module, which says exactly what it removes:

- JPEG (``metadata_jpeg.py``), PNG (``metadata_png.py``), WebP and GIF (``metadata_webp.py``): the blocks
  that hold metadata are edited or dropped, the image data copied as it is;
- TIFF (``metadata_tiff.py``), HEIC and AVIF, JPEG XL in its container (``metadata_heif.py``): edited in
  place at the same length, because these formats keep offsets of their parts.

What names a place is decided in one place (``metadata_xmp.py``), and every parser is bounded
(``metadata_bounds.py``). The orientation and the colour profile always stay, so the picture looks the same.

``strip(content, kind, mode, out)`` writes the edited file to ``out`` and returns what it removed (tag
groups, plus ``note:`` lines for ``processing.note``), or None (writing nothing) when there is nothing to
remove. A small file comes as the bytes the upload already read; a larger one as its descriptor, read through
``FileBytes`` (``os.pread``, never ``mmap``: a mapped file truncated by another process kills the daemon with
SIGBUS), with the image data copied a MiB at a time; a file that changes meanwhile raises ``Changed``.
Bytes that do not parse raise ``Unreadable`` (the task fails ``metadata_unreadable``), a file over the time
budget or with an impossible structure ``GaveUp``.
Formats pixlift does not edit (BMP, ICO...) are sent as they are, and ``NOT_EDITED`` says so.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from .metadata_bounds import Changed, FileBytes, GaveUp, Unreadable, tick
from .metadata_heif import Patch, edit, edit_jxl
from .metadata_jpeg import Piece, edit_jpeg
from .metadata_png import edit_png
from .metadata_tiff import edit_tiff
from .metadata_webp import edit_gif, edit_webp

MODES = ("location", "all", "none")
EDITED = ("image/jpeg", "image/png", "image/webp", "image/avif", "image/heic", "image/gif", "image/tiff",
          "image/jxl")
NOT_EDITED = "pixlift does not edit this format's metadata yet; it was sent as it is"
CHUNK = 1024 * 1024
ZEROS = bytes(CHUNK)
NotAnImage = Unreadable  # the name callers knew: bytes that do not parse as the format they were sniffed as
__all__ = ["EDITED", "MODES", "NOT_EDITED", "Changed", "GaveUp", "NotAnImage", "Unreadable", "strip"]


def strip(content: int | bytes, kind: str, mode: str, out: Path | Callable[[], Path]) -> list[str] | None:
    """Write the file (its bytes, or the open descriptor of it) without the ``mode`` metadata to ``out`` (or
    where ``out()`` says, asked only when there is something to write); what was removed, or None (nothing
    written) when there is nothing to remove. Raises Unreadable or GaveUp (metadata_bounds.py),
    or Changed when the file changed while it was read."""
    if mode == "none" or kind not in EDITED:
        return None
    data = content if isinstance(content, bytes) else FileBytes(content)
    pieces, removed = _edit(data, kind, mode)
    if not removed:
        return None
    with (out if isinstance(out, Path) else out()).open("wb") as dst:
        for piece in pieces:
            tick()
            if isinstance(piece, int):
                for at in range(0, piece, CHUNK):
                    dst.write(ZEROS[:min(CHUNK, piece - at)])
            elif isinstance(piece, tuple):
                for at in range(piece[0], piece[1], CHUNK):  # spans of the source, copied a MiB at a time
                    dst.write(data[at:min(at + CHUNK, piece[1])])  # type: ignore[arg-type]
            else:
                dst.write(piece)
    if isinstance(data, FileBytes):
        data.check()  # rewritten in place at the same length meanwhile: the copy would mix two versions
    return sorted(set(removed))


def _edit(data: FileBytes | bytes, kind: str, mode: str) -> tuple[list[Piece], list[str]]:
    editors = {"image/jpeg": edit_jpeg, "image/png": edit_png, "image/webp": edit_webp, "image/gif": edit_gif}
    try:
        if kind in editors:
            return editors[kind](data, mode)
        patches: list[Patch | tuple[int, int]]
        if kind == "image/tiff":
            patches, removed = edit_tiff(data, mode)
        else:
            found, removed = (edit_jxl if kind == "image/jxl" else edit)(data, mode)
            patches = list(found)
    except Unreadable:
        raise
    except (IndexError, ValueError, OverflowError, struct.error) as exc:  # a check this module forgot
        raise Unreadable(str(exc) or type(exc).__name__) from exc
    return in_place(patches, len(data)), removed


def in_place(patches: list[Patch | tuple[int, int]], size: int) -> list[Piece]:
    """Changes at the same length (new bytes, or a count of zeros, at an offset) as pieces over the source."""
    pieces: list[Piece] = []
    pos = 0
    for at, new in sorted(patches, key=lambda p: p[0]):
        tick()
        n = new if isinstance(new, int) else len(new)
        if at < pos or at + n > size:
            raise Unreadable("two of its metadata blocks overlap")
        if at > pos:
            pieces.append((pos, at))
        pieces.append(new)
        pos = at + n
    if pos < size:
        pieces.append((pos, size))
    return pieces

