"""``pixlift watch`` and the live progress of ``pixlift upload``, run as a person (or a script) runs them.

Progress is drawn on stderr only when it is a terminal (here a real pseudo-terminal); stdout carries the links
alone, one per line, in input order, so scripts and editors can read it.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from typing import Any

from conftest import Daemon, Home, make_image, oss_profile, pixlift_env


def cli(home: Home, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pixlift", *args], env=pixlift_env(home), capture_output=True,
                          text=True, timeout=timeout, cwd=home.pictures)


def test_watch_follows_a_batch_started_elsewhere(home: Home, oss_server: Any, daemon_factory: Any) -> None:
    home.write_config(profiles={"oss": oss_profile(oss_server)}, default="oss")
    d: Daemon = daemon_factory()
    oss_server.server.put_delay_s = 0.02  # a few seconds in all: watch starts while the batch runs
    files = [make_image(home.pictures / f"w{i}.jpg", 600_000, seed=i) for i in range(3)]
    started = d.rpc("upload_images_batch", {"paths": [str(f) for f in files], "batch_size": 1})
    out = cli(home, "watch", started["batch_id"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    done = d.rpc("get_all_upload_progress", {"batch_id": started["batch_id"]})["tasks"]
    assert sorted(lines) == sorted(f"completed  {t['name']}  {t['url']}" for t in done)
    assert out.stderr == ""  # not a terminal: no progress drawn

    again = cli(home, "watch", started["batch_id"])  # a finished batch: its files and its end, replayed
    assert again.returncode == 0 and sorted(again.stdout.splitlines()) == sorted(lines)
    missing = cli(home, "watch", "0" * 32)
    assert missing.returncode == 2 and "No batch" in missing.stderr and missing.stdout == ""


def test_upload_draws_progress_on_a_terminal_and_keeps_stdout_for_links(home: Home, oss_server: Any,
                                                                        daemon_factory: Any) -> None:
    home.write_config(profiles={"oss": oss_profile(oss_server)}, default="oss")
    d: Daemon = daemon_factory()
    oss_server.server.put_delay_s = 0.02
    files = [make_image(home.pictures / f"t{i}.jpg", 800_000, seed=40 + i) for i in range(2)]
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pixlift", "upload", *(f.name for f in files)],
                            env=pixlift_env(home), cwd=home.pictures, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "no output within a minute"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    assert proc.wait(30) == 0
    os.close(master)
    links = proc.stdout.read().decode().split("\n") if proc.stdout else []
    tasks = {t["name"]: t for t in d.rpc("get_all_upload_progress")["tasks"]}
    assert links == [tasks["t0.jpg"]["url"], tasks["t1.jpg"]["url"], ""]  # links alone, in input order
    text = drawn.decode(errors="replace")
    assert "t0.jpg" in text and "t1.jpg" in text and "completed" in text
    assert "%" in text and "[" in text and "/s" in text  # a bar, percent and speed while it ran
