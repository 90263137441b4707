#!/usr/bin/env python3
"""How long the web UI takes to apply one poll to 1,000 rows (a benchmark, not a test).

It starts a daemon with a temporary PIXLIFT_HOME and its local profile, uploads 1,000 tiny PNGs through
``upload_images``, opens the UI in headless Chromium (logged in through the token link), waits for the 1,000
rows, stops the page's own polling, and then feeds ``window.__pixlift.applyPoll(data)`` the same
``get_all_upload_progress`` answer over and over:

- ``unchanged``: the daemon's real answer (1,000 completed tasks), applied again: the cost of a poll when
  nothing moved, the common case;
- ``all moving``: every task ``uploading``, with new bytes, percent, speed and ETA each round: the worst case,
  every row's text and bar change;
- ``status flip``: every task switches between ``queued`` and ``uploading`` each round (badges, counts, buttons).

It also records the time between animation frames while the progress bars glide after such polls (only rows
on screen are animated; the rest take their new value at once).

For each it prints the median and p95 of the script time ``applyPoll`` reports, and of script time plus the
style and layout it causes (forced with a layout read right after), over ``--rounds`` rounds.

    python bench/ui_poll.py                 # 1,000 rows, 60 rounds
    python bench/ui_poll.py --rows 5000 --rounds 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0f01f0005000201a3e5b1e90000000049454e44ae426082")

MEASURE_JS = """
async ([scenario, rounds]) => {
  const base = window.__benchData;
  const apply = [], total = [];
  for (let i = 0; i < rounds; i++) {
    let data = base;
    if (scenario === "all moving") {
      data = { summary: { ...base.summary, uploading: base.tasks.length, completed: 0, speed_bps: 5e7 },
               tasks: base.tasks.map((t, j) => {
                 const done = Math.floor(t.bytes_total * ((i * 7 + j) % 100) / 100);
                 return { ...t, status: "uploading", bytes_uploaded: done, url: null,
                          percent: Math.round(10000 * done / t.bytes_total) / 100,
                          speed_bps: 100000 + 1000 * ((i + j) % 97), eta_s: (i + j) % 60 };
               }) };
    } else if (scenario === "status flip") {
      const status = i % 2 ? "queued" : "uploading";
      data = { summary: base.summary,
               tasks: base.tasks.map((t) => ({ ...t, status, url: null, percent: 0, bytes_uploaded: 0 })) };
    }
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));  // start on a fresh frame
    const t0 = performance.now();
    apply.push(window.__pixlift.applyPoll(data));
    document.body.getBoundingClientRect();
    void document.body.offsetHeight;  // force style and layout now, inside the measurement
    total.push(performance.now() - t0);
  }
  return { apply, total };
}
"""


FRAMES_JS = """
async (rounds) => {
  // Polls every 500 ms in which every task moved; record the time between frames while the bars glide.
  const base = window.__benchData;
  const gaps = [];
  for (let i = 0; i < rounds; i++) {
    const data = { summary: base.summary, tasks: base.tasks.map((t, j) => ({ ...t, status: "uploading", url: null,
      percent: (i * 10 + j) % 100, bytes_uploaded: 0, speed_bps: 1e5, eta_s: 5 })) };
    window.__pixlift.applyPoll(data);
    let last = performance.now();
    const end = last + 500;
    while (performance.now() < end) {
      const now = await new Promise((r) => requestAnimationFrame(r));
      gaps.push(now - last);
      last = now;
    }
  }
  return gaps;
}
"""


def rpc(url: str, token: str, method: str, params: Any = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    req = urllib.request.Request(f"{url}/rpc", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def start_daemon(home: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {**os.environ, "PIXLIFT_HOME": str(home)}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, "-m", "pixlift", "serve", "--port", "0", "--no-tray"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the daemon exited at start; run 'pixlift serve' by hand to see why")
        try:
            info = json.loads((home / "daemon.json").read_text())
            if info.get("pid") == proc.pid:
                return proc, info["url"], (home / "token").read_text().strip()
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the daemon did not start within 30 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pixlift-ui-bench-"))
    home, pictures = tmp / "home", tmp / "pictures"
    home.mkdir()
    pictures.mkdir()
    (home / "config.toml").write_text(
        f'[security]\nallowed_roots = [{json.dumps(str(pictures))}]\nfiles_per_minute = 100000\n')
    paths = []
    for i in range(args.rows):
        p = pictures / f"image-{i:05d}.png"
        p.write_bytes(PNG_1PX)
        paths.append(str(p))
    proc, url, token = start_daemon(home)
    try:
        batch = rpc(url, token, "upload_images", {"paths": paths})["batch_id"]
        while True:
            s = rpc(url, token, "get_all_upload_progress", {"batch_id": batch})["summary"]
            if s["queued"] + s["uploading"] + s["paused"] == 0:
                break
            time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/?token={token}")
            page.wait_for_function("(n) => document.querySelectorAll('.row').length >= n", arg=args.rows,
                                   timeout=120_000)
            page.evaluate("window.__pixlift.stopPolling()")
            data = rpc(url, token, "get_all_upload_progress")
            page.evaluate("(d) => { window.__benchData = d; }", data)
            print(f"pixlift UI poll benchmark: {len(data['tasks'])} rows, {args.rounds} rounds each, "
                  f"Chromium {browser.version}, headless")
            print(f"{'scenario':<14} {'apply median':>13} {'apply p95':>10} {'+layout median':>15} {'+layout p95':>12}")
            for scenario in ("unchanged", "all moving", "status flip", "unchanged"):
                page.evaluate(MEASURE_JS, [scenario, 5])  # warm up the code paths
                res = page.evaluate(MEASURE_JS, [scenario, args.rounds])
                a, t = res["apply"], res["total"]
                print(f"{scenario:<14} {statistics.median(a):>10.2f} ms {percentile(a, 0.95):>7.2f} ms "
                      f"{statistics.median(t):>12.2f} ms {percentile(t, 0.95):>9.2f} ms")
            gaps = page.evaluate(FRAMES_JS, 6)
            print(f"frames while bars glide (every row moved, 500 ms polls): median {statistics.median(gaps):.1f} ms, "
                  f"p95 {percentile(gaps, 0.95):.1f} ms, worst {max(gaps):.1f} ms between frames")
            if errors:
                print(f"console errors: {errors}", file=sys.stderr)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
