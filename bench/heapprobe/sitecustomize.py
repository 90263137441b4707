"""What keeps a cleared daemon's memory: loaded into the daemon by ``bench/memory.py --probe FILE``.

Python's allocator (pymalloc) hands a 1 MiB arena back to the system only when nothing in it lives. After a
large batch is cleared, a few objects made during the run (a thread's lock, a counter, a cached string) can
each keep an arena of freed task records. This module, imported at the daemon's start through
``PYTHONPATH``, answers two signals:

- ``SIGUSR1``: remember every object alive now (the daemon at rest, before the run);
- ``SIGUSR2``: write to ``$PIXLIFT_HEAP_PROBE`` pymalloc's statistics (``sys._debugmallocstats``: arenas in
  use, free pools), then every object alive that was not alive at ``SIGUSR1``, grouped by the 1 MiB of
  address space it sits in, with what refers to it. Groups that hold only such objects are arenas the run
  left pinned.

Objects are reached from the garbage collector's list and one step from there (strings and numbers inside
containers); what C code alone holds is not seen. The report is for reading, not a figure to compare.
"""

from __future__ import annotations

import collections
import gc
import os
import signal
import sys
from typing import Any

_OUT = os.environ.get("PIXLIFT_HEAP_PROBE")
_before: dict[int, type] = {}


def _alive() -> dict[int, Any]:
    gc.collect()
    objects = gc.get_objects()
    seen = {id(o): o for o in objects}
    for o in objects:
        for r in gc.get_referents(o):
            seen.setdefault(id(r), r)
    return seen


def _anonymous_maps() -> list[tuple[int, int]]:
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) == 5 or (len(parts) > 5 and parts[5].startswith("[anon")):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                spans.append((lo, hi))
    return spans


def _mark(signum: int, frame: object) -> None:
    global _before
    _before = {a: type(o) for a, o in _alive().items()}


def _describe(o: object, skip: set[int]) -> str:
    try:
        text = repr(o)[:90]
    except Exception:
        text = "?"
    holders = []
    for r in gc.get_referrers(o):
        if id(r) in skip or (isinstance(r, dict) and len(r) > 1000):
            continue
        try:
            holders.append(f"{type(r).__name__}: {repr(r)[:60]}")
        except Exception:
            holders.append(type(r).__name__)
        if len(holders) == 3:
            break
    return f"    {type(o).__name__:16} {text:90} <- {holders}"


def _report(signum: int, frame: object) -> None:
    assert _OUT is not None
    stats = _OUT + ".stats"
    fd = os.open(stats, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)
    with open(stats) as f:
        wanted = ("# arenas allocated current", "# arenas highwater mark", "# bytes in allocated blocks",
                  "unused pools")
        summary = [line.rstrip() for line in f if any(w in line for w in wanted)]
    os.unlink(stats)
    seen = _alive()
    spans = _anonymous_maps()
    marks = {id(k) for k in _before}
    groups: dict[tuple[int, int], list[Any]] = collections.defaultdict(list)
    old: collections.Counter[tuple[int, int]] = collections.Counter()
    for a, o in seen.items():
        if a in marks or o is _before:
            continue
        for lo, hi in spans:
            if lo <= a < hi:
                key = (hi, (hi - a) >> 20)
                break
        else:
            continue
        if _before.get(a) is type(o):
            old[key] += 1
        else:
            groups[key].append(o)
    pinned = sorted(((k, v) for k, v in groups.items() if not old[k]), key=lambda kv: len(kv[1]))
    skip = {id(v) for v in groups.values()} | {id(groups), id(seen), id(pinned)}
    kinds: collections.Counter[str] = collections.Counter()
    with open(_OUT + ".tmp", "w") as out:
        print("\n".join(summary), file=out)
        print(f"MiB of address space holding only objects made after the mark: {len(pinned)}", file=out)
        for (hi, n), objs in pinned:
            print(f"{hi:x}-{n}: {len(objs)} objects", file=out)
            shown = objs[:12]
            for o in shown:
                print(_describe(o, skip | {id(objs), id(shown)}), file=out)
                kinds[type(o).__name__] += 1
        print(f"by type: {kinds.most_common()}", file=out)
    os.replace(_OUT + ".tmp", _OUT)


if _OUT:
    signal.signal(signal.SIGUSR1, _mark)
    signal.signal(signal.SIGUSR2, _report)
