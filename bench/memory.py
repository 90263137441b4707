#!/usr/bin/env python3
"""Memory through a large batch: the daemon's peak RSS while a client follows it as the web UI does, and what
it keeps once the list is cleared.

One run starts the daemon (``pixlift serve --no-tray``) on the embedded local store with a fresh home, makes
``--count`` small valid PNG files (``--min-kib`` to ``--max-kib``, random pixels stored uncompressed, so every
file parses and is sent as it is), queues them with ``upload_images_batch`` calls of ``--call-size`` paths,
and meanwhile reads ``get_all_upload_progress`` with ``since`` twice a second, as the web UI does. The RSS of
the daemon's whole process tree is sampled every 0.1 s. When every task has finished it calls
``clear_upload_progress`` and reports the RSS a few seconds later.

    python bench/memory.py --count 10000          # issue goal: peak <= 150 MB, cleared < 100 MB
    python bench/memory.py --count 100000         # issue goal: peak <= 250 MB, cleared < 120 MB
    python bench/memory.py --count 30000 --probe heap.txt   # and what keeps the memory after clearing

This is a benchmark, not a test: it prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from pixlift.client import Client

MB = 1e6


def png(width: int, height: int, rng: random.Random) -> bytes:
    """A valid grayscale PNG of random pixels, stored (zlib level 0): about width*height bytes."""
    raw = b"".join(b"\x00" + rng.randbytes(width) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")


def make_files(folder: Path, count: int, min_kib: int, max_kib: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        side = max(8, int((rng.randint(min_kib, max_kib) * 1024) ** 0.5))
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        path = sub / f"f{i:06d}.png"
        path.write_bytes(png(side, side, rng))
        paths.append(str(path))
    return paths


def tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and every process descended from it."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def rss_parts(pid: int) -> dict[str, float]:
    """The daemon's RSS by kind (anonymous, file-backed, shared memory), in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("RssAnon", "RssFile", "RssShmem"):
            out[key] = round(int(line.split()[1]) * 1024 / MB, 1)
    return out


class Daemon:
    def __init__(self, home: Path, data: Path, probe: str | None = None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text("\n".join([
            "[security]", f"allowed_roots = {json.dumps([str(data)])}", "files_per_minute = 10000000",
            "calls_per_second = 1000", "call_burst = 1000", "max_queued_files = 1000000", ""]))
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["PIXLIFT_HOME"] = str(home)
        if probe:  # heapprobe/sitecustomize.py: what keeps the memory once the list is cleared
            env["PYTHONPATH"] = str(Path(__file__).parent / "heapprobe")
            env["PIXLIFT_HEAP_PROBE"] = probe
        self.log = (home / "serve.out").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                info = json.loads((home / "daemon.json").read_text())
                if info.get("pid") == self.proc.pid:
                    break
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the daemon did not start; see {home / 'serve.out'}")
            time.sleep(0.1)
        self.url = info["url"]
        self.token = (home / "token").read_text().strip()

    def rpc(self, method: str, **params: Any) -> Any:
        return Client(self.url, self.token, timeout=120).call(method, **params)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pixlift-mem-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        t0 = time.monotonic()
        paths = make_files(data, args.count, args.min_kib, args.max_kib)
        print(f"made {len(paths)} files in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        d = Daemon(Path(tmp) / "home", data, args.probe)
        if args.probe:
            Path(args.probe).unlink(missing_ok=True)
            d.proc.send_signal(signal.SIGUSR1)  # the objects of the daemon at rest
            time.sleep(2)
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(tree_rss(d.proc.pid))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            start_rss = tree_rss(d.proc.pid)
            sampler.start()
            t0 = time.monotonic()
            batch = None
            version = 0
            for i in range(0, len(paths), args.call_size):
                res = d.rpc("upload_images_batch", paths=paths[i:i + args.call_size], batch_size=100)
                batch = batch or res["batch_id"]
            while True:
                page = d.rpc("get_all_upload_progress", since=version)
                version = page["version"]
                s = page["summary"]
                if s["queued"] + s["uploading"] == 0 and s["total"] >= len(paths):
                    break
                time.sleep(0.5)
            took = time.monotonic() - t0
            done_rss = tree_rss(d.proc.pid)
            peak = max(samples)
            cleared = d.rpc("clear_upload_progress")["cleared"]
            time.sleep(args.settle)
            after = tree_rss(d.proc.pid)
            parts = rss_parts(d.proc.pid)
            if args.probe:
                d.proc.send_signal(signal.SIGUSR2)
                deadline = time.monotonic() + 900
                while not Path(args.probe).exists() and time.monotonic() < deadline:
                    time.sleep(1)
                print(f"heap report: {args.probe}", file=sys.stderr)
            stop.set()
            sampler.join()
            result = {"count": len(paths), "seconds": round(took, 1), "files_per_s": round(len(paths) / took, 1),
                      "failed": s["failed"], "rss_start_mb": round(start_rss / MB, 1),
                      "peak_rss_mb": round(peak / MB, 1), "rss_done_mb": round(done_rss / MB, 1),
                      "cleared": cleared, "rss_cleared_mb": round(after / MB, 1), "cleared_parts": parts}
            print(json.dumps(result))
            return result
        finally:
            stop.set()
            d.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--min-kib", type=int, default=2)
    p.add_argument("--max-kib", type=int, default=20)
    p.add_argument("--call-size", type=int, default=10000, help="paths per upload_images_batch call")
    p.add_argument("--settle", type=float, default=5.0, help="seconds to wait after clearing before reading RSS")
    p.add_argument("--probe", metavar="FILE", help="write what keeps the memory after clearing to FILE "
                   "(bench/heapprobe/sitecustomize.py; slow: minutes at 100,000 files)")
    run(p.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
