"""JPEG containers for tests and benchmarks that need many or large incompressible images (no pytest here, so
the benchmarks can import it too)."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable


def jpeg_bytes(size: int, seed: int = 0, rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """A JPEG container of exactly ``size`` bytes: real segments (JFIF, a quantization table carrying ``seed``,
    a frame, a Huffman table, a scan) around random entropy-coded bytes with no stray 0xFF, then EOI. Its
    metadata parses like a camera's (nothing to remove); its pixels are noise. Incompressible, unique per call."""
    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    head = (b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, b"\x00" + seed.to_bytes(8, "big") + bytes(range(1, 57)))
            + segment(0xC0, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00")
            + segment(0xC4, b"\x00" + bytes([0, 1] + [0] * 14) + b"\x00")
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"))
    if size < len(head) + 2:
        raise ValueError(f"a JPEG container needs at least {len(head) + 2} bytes")
    body = rng(size - len(head) - 2).replace(b"\xff", b"\xfe")
    return head + body + b"\xff\xd9"
