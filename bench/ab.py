"""Two versions of the daemon, interleaved: which one is faster on the tiny set, on a machine whose runs differ
by up to 50% from one minute to the next.

    python bench/ab.py --a 7193aff --b WORKTREE --rounds 4
    python bench/ab.py --a HEAD --b WORKTREE --fake-put       # the daemon's own CPU, the store answering at once

Each version is the ``daemon/`` folder of a git revision (``git archive``), or of the working tree (``WORKTREE``),
put first on the daemon's ``PYTHONPATH`` as the package ``pixlift``. Both daemons upload the same files to one
``rclone serve s3`` (started afresh before each run), taking turns (A B, B A, A B, ...), each run through a profile
of its own and its objects removed after it. It prints every run, each version's median time and CPU per file, and
the ratio B/A of each round's pair: a ratio is measured a few seconds apart, so the machine's slow minutes touch
both sides of it alike.

``--fake-put`` answers every PUT in the daemon itself, at once (``S3Wire.put`` replaced through a
``sitecustomize`` of this script's making): what is left is pixlift's own CPU, from the JSON-RPC call to the
journal, which moves far less from run to run than the time to a real store.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import upload_bench as ub  # the harness this benchmark shares

REPO = Path(__file__).resolve().parent.parent
FAKE_PUT = '''import asyncio
import pixlift.providers.s3_wire as wire

async def put(self, key, body, headers, query="", md5=None):
    await asyncio.sleep(0)
    return '"00000000000000000000000000000000"'

wire.S3Wire.put = put
'''


def version(rev: str, into: Path) -> Path:
    """A folder holding the package ``pixlift`` as the revision (or the working tree) has it."""
    into.mkdir(parents=True)
    if rev == "WORKTREE":
        (into / "pixlift").symlink_to(REPO / "daemon")
    else:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "daemon"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        (into / "daemon").rename(into / "pixlift")
    return into


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="a git revision, or WORKTREE")
    p.add_argument("--b", default="WORKTREE", help="a git revision, or WORKTREE (default)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--files", type=int, default=10_000, help="tiny files of 2-20 KiB (default 10,000)")
    p.add_argument("--fake-put", action="store_true", help="the store answers at once, inside the daemon")
    args = p.parse_args(argv)
    owned = ub.Owned()
    root = Path(tempfile.mkdtemp(prefix="pixlift-ab-"))
    try:
        paths = {v: str(version(rev, root / v)) for v, rev in (("A", args.a), ("B", args.b))}
        if args.fake_put:
            (root / "fake").mkdir()
            (root / "fake" / "sitecustomize.py").write_text(FAKE_PUT)
            paths = {v: f"{path}:{root / 'fake'}" for v, path in paths.items()}
        data = root / "data" / "tiny"
        data.mkdir(parents=True)
        rng = random.Random(1)
        files = {}
        for i in range(args.files):
            name, size = f"t{i:05d}.jpg", rng.randint(2 * 1024, 20 * 1024)
            ub.write_jpeg_like(data / name, size, i, rng)
            files[name] = size
        fileset = ub.FileSet("tiny", data, files)
        (root / "logs").mkdir()
        server = ub.start_server(owned, root / "s3", root / "logs")
        daemons = {}
        for v in "AB":
            settings = ub.parse_args([])
            settings.pixlift_env = [f"PYTHONPATH={paths[v]}"]
            prefixes = [f"{v}{i}" for i in range(args.rounds)]
            daemons[v] = (ub.Pixlift(owned, root / f"home-{v}", root / "data", server, settings, prefixes), prefixes)
        runs: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for i in range(args.rounds):
            for v in ("AB" if i % 2 == 0 else "BA"):
                daemon, prefixes = daemons[v]
                ub.restart_server(owned, server, root / "logs")  # a run does not pay for the one before it
                daemon.fresh()
                daemon.warm_up(prefixes[i])
                result = daemon.upload(fileset, prefixes[i])
                daemon.stop()
                shutil.rmtree(server.bucket_dir() / prefixes[i], ignore_errors=True)
                runs[v].append((result["seconds"], result["cpu_ms_per_file"] * 1000))
                print(f"round {i} {v}: {result['seconds']:.2f} s, {args.files / result['seconds']:.0f} files/s, "
                      f"{result['cpu_ms_per_file'] * 1000:.0f} us of CPU per file", flush=True)
        for v, rev in (("A", args.a), ("B", args.b)):
            median = statistics.median(s for s, _ in runs[v])
            print(f"{v} ({rev}): median {median:.2f} s ({args.files / median:.0f} files/s), "
                  f"CPU {statistics.median(c for _, c in runs[v]):.0f} us per file")
        ratios = [b[0] / a[0] for a, b in zip(runs["A"], runs["B"], strict=True)]
        print(f"B/A time, round by round: {', '.join(f'{r:.3f}' for r in ratios)}; "
              f"median {statistics.median(ratios):.3f}")
        return 0
    finally:
        owned.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
