"""What live subscribers cost the daemon: its CPU time for a 1,000-file batch with no subscriber, then with 25
Server-Sent Events streams and 25 WebSocket subscriptions following it (interval 500 ms), in one run.

Each round starts a fresh daemon (the embedded local store, so the store costs nothing and the daemon's own
work is what is measured), uploads 1,000 small images through JSON-RPC and reads the daemon's CPU time
(user + system, from /proc) from the first call to the last task finished. The subscribers run in this
process and read every event.

    python bench/push_cost.py [--files 1000] [--subscribers 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jpegs import jpeg_bytes

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(home: Path, pictures: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[security]\nallowed_roots = ["{pictures}"]\nfiles_per_minute = 100000\n'
                                      "calls_per_second = 1000\ncall_burst = 1000\n")
    env = {**os.environ, "PIXLIFT_HOME": str(home)}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, "-m", "pixlift", "serve", "--no-tray", "--port", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        info = home / "daemon.json"
        if info.exists():
            data = json.loads(info.read_text())
            if data.get("pid") == proc.pid:
                return proc, data["url"], (home / "token").read_text().strip()
        time.sleep(0.05)
    raise RuntimeError("the daemon did not start")


async def sse(http: aiohttp.ClientSession, url: str, headers: dict[str, str], stop: asyncio.Event) -> int:
    n = 0
    async with http.get(f"{url}/events?interval_ms=500", headers=headers) as resp:
        async for line in resp.content:
            n += line.startswith(b"event:")
            if stop.is_set():
                return n
    return n


async def ws(http: aiohttp.ClientSession, url: str, headers: dict[str, str], stop: asyncio.Event) -> int:
    n = 0
    async with http.ws_connect(f"{url}/ws", headers=headers) as sock:
        await sock.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                        "params": {"interval_ms": 500}}))
        while not stop.is_set():
            try:
                await sock.receive(timeout=0.5)
            except TimeoutError:
                continue
            n += 1
    return n


async def round_(files: list[str], subscribers: int, workdir: Path) -> tuple[float, float, int]:
    proc, url, token = start(workdir / f"home-{time.monotonic_ns()}", Path(files[0]).parent)
    headers = {"Authorization": f"Bearer {token}"}
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            followers = [asyncio.create_task(sse(http, url, {}, stop) if i % 2 == 0 else ws(http, url, {}, stop))
                         for i in range(subscribers)]
            await asyncio.sleep(1.0 if subscribers else 0.1)

            async def rpc(method: str, params: dict[str, Any]) -> Any:
                body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
                async with http.post(f"{url}/rpc", json=body) as resp:
                    return (await resp.json())["result"]

            before, t0 = cpu_s(proc.pid), time.perf_counter()
            started = await rpc("upload_images_batch", {"paths": files, "batch_size": 32})
            while (await rpc("get_all_upload_progress", {"batch_id": started["batch_id"]}))["summary"][
                    "completed"] < len(files):
                await asyncio.sleep(0.2)
            cpu, wall = cpu_s(proc.pid) - before, time.perf_counter() - t0
            stop.set()
            events = sum(await asyncio.gather(*followers))
            return cpu, wall, events
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pictures = work / "Pictures"
        pictures.mkdir()
        files = []
        for i in range(args.files):
            path = pictures / f"img-{i:05d}.jpg"
            path.write_bytes(jpeg_bytes(8_000 + i))  # a container that parses (pixlift reads its metadata)
            files.append(str(path))
        results: dict[int, list[tuple[float, float, int]]] = {0: [], args.subscribers: []}
        for _ in range(args.rounds):
            for subs in results:  # interleaved, so both see the same machine
                results[subs].append(asyncio.run(round_(files, subs, work)))
    base = statistics.median(c for c, _, _ in results[0])
    print(f"| subscribers | daemon CPU for {args.files} files (median of {args.rounds}) | wall | events received |"
          " vs none |")
    print("|---:|---:|---:|---:|---:|")
    for subs, rows in results.items():
        cpu = statistics.median(c for c, _, _ in rows)
        wall = statistics.median(w for _, w, _ in rows)
        events = statistics.median(e for _, _, e in rows)
        print(f"| {subs} | {cpu:.2f} s | {wall:.2f} s | {events:.0f} | {cpu / base:.2f}x |")


if __name__ == "__main__":
    main()
