"""What a progress read costs the daemon: get_all_upload_progress, full and incremental, at 1,000 to 100,000 tasks.

Measured on the server side, in process: a JSON-RPC call through the same dispatcher /rpc uses (parse, dispatch,
build the result, serialise it), against an engine holding N listed tasks (90% completed, the rest queued or
uploading, as after a long day of uploads). The incremental read asks with ``since`` after 100 tasks changed.

    python bench/read_cost.py [--sizes 1000,10000,100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from pixlift.api.rpc import Call, Dispatcher
from pixlift.app import APPLICATION, Runtime, create_app
from pixlift.core.config import SettingsBox
from pixlift.core.tasks import TaskStatus
from pixlift.files.paths import CheckedFile, Identity
from pixlift.settings.config_file import default_settings
from pixlift.settings.home import Home


async def measure(n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp))
        app = create_app(home, SettingsBox(default_settings(home.root)), Runtime())
        application = app[APPLICATION]
        engine = application._engine  # the bench fills the list directly: no files are read or sent
        engine._dispatcher = None
        files = [CheckedFile(path=f"/p/{i}.png", root="/p", name=f"img-{i:06d}.png", size=100_000 + i,
                             content_type="image/png", identity=Identity(1, i, 100_000 + i, 0)) for i in range(n)]
        _, tasks = engine.submit(files, profile="local", batch_size=8)
        for i, task in enumerate(tasks):
            if i % 10:
                task.status = TaskStatus.COMPLETED
                task.bytes_uploaded = task.bytes_total
                task.url = f"http://127.0.0.1:36690/files/2026/12/img-{i:06d}-abcdef01.png"
                task.key = f"2026/12/img-{i:06d}-abcdef01.png"
                task.finished_at = task.started_at = time.time()
            engine._save(task)
        dispatcher = Dispatcher()
        call = Call(application, "bench")
        application.charge_call = lambda client: None  # type: ignore[method-assign]

        async def read(since: int | None) -> tuple[float, int]:
            params = {} if since is None else {"since": since}
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get_all_upload_progress", "params": params})
            t0 = time.perf_counter()
            out = await dispatcher.dispatch(body, call)
            return (time.perf_counter() - t0) * 1000, len(out)

        await read(None)  # the first read serialises every task once; later reads reuse it
        full = [await read(None) for _ in range(rounds)]
        incremental = []
        for _ in range(rounds):
            since = engine.changes.version
            for task in tasks[:100]:
                engine._touch(task)
            incremental.append(await read(since))
        application.close()
        engine.journal.close()
        return {"tasks": n, "full_ms": statistics.median(t for t, _ in full), "full_kb": full[0][1] / 1000,
                "incr_ms": statistics.median(t for t, _ in incremental), "incr_kb": incremental[0][1] / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print("| tasks | full read | full size | incremental read (100 changed) | incremental size |")
    print("|---:|---:|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        r = asyncio.run(measure(n, args.rounds))
        print(f"| {n:,} | {r['full_ms']:.1f} ms | {r['full_kb']:,.0f} kB | {r['incr_ms']:.2f} ms | "
              f"{r['incr_kb']:,.1f} kB |")


if __name__ == "__main__":
    main()
