"""The daemon's heap: Python's garbage collector tuned for a process that keeps ten thousand task records, and
glibc's allocator asked to give back what a finished batch no longer uses.

Python frees an object's memory to its allocator, not to the system: a batch of 100,000 files left the daemon
at 330 MB after its tasks were cleared, of which Python itself still used under 40 MB. The rest was glibc's:
freed blocks kept in its heaps, one per thread that allocated, up to eight per core. So, on glibc (Linux), at
start: at most two heaps; and after the list is cleared, ``malloc_trim`` hands every free page back.
glibc's threshold above which a buffer is mapped apart stays its own, rising with the buffers freed: fixed at
256 KiB, every 5 MiB part was mapped and faulted in afresh, and a 1 GB file took half as much CPU again.
Elsewhere (macOS, Windows, musl) the system allocators return memory themselves, and these calls are skipped.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

GC_THRESHOLDS = (700, 10, 100)  # Python's own: (700, 10, 10)
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2


def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # musl and others: no libc.so.6
        return None


_LIBC = _glibc()


def settle_heap() -> None:
    """Once, at start, before the worker threads exist.

    Full garbage collections ten times rarer than Python's default, which suits a short script, not a daemon
    that keeps ten thousand task records. With the default, seven full collections of the growing heap ran per
    10,000 tiny files, up to 0.13 s each with the loop frozen: 15-20% of the daemon's CPU. With these, GC took
    0.24 s in all instead of 0.7-0.8 and the longest pause was 33 ms (bench/README.md). The young generations
    keep Python's thresholds: raising them, or freezing what exists at start, kept more garbage alive (oss2's,
    among others) for little more speed. Then glibc's heaps, as the module says."""
    gc.set_threshold(*GC_THRESHOLDS)
    if _LIBC is not None and not _LIBC.mallopt(M_ARENA_MAX, ARENAS):
        log.debug("mallopt(M_ARENA_MAX, %d) was refused", ARENAS)


def give_back() -> None:
    """After many tasks are forgotten: collect what they left in cycles, then return free pages to the system."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
