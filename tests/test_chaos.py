"""Chaos, made real: 200 files through random connection resets, three store restarts and three kill -9s.

Whatever happens on the way, the end is the same as on a quiet day: every object byte-identical to its file,
every link in history exactly once, and nothing left behind on the store. Random, with a fixed seed.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from conftest import Home, make_image, start_daemon, start_rclone, wait_until
from netproxy import Proxy

MiB = 1024 * 1024


def test_chaos_run_ends_with_every_object_whole_and_every_link_once(home: Home, tmp_path: Path) -> None:
    rng = random.Random(20261201)
    s3 = start_rclone(tmp_path / "s3")
    s3.bucket("chaos")
    proxy = Proxy(s3.port, rate_bps=6 * MiB).start()
    home.write_config({"s3": {**s3.profile("chaos"), "endpoint_url": proxy.endpoint}}, default="s3",
                      transfers={"backoff_base_s": 0.05, "backoff_max_s": 0.5},
                      security={"files_per_minute": 100000})
    sizes = [rng.randint(50_000, 600_000) for _ in range(185)] + [rng.randint(3 * MiB, 8 * MiB) for _ in range(15)]
    rng.shuffle(sizes)
    files = [make_image(home.pictures / f"c{i:03d}.jpg", size, seed=1000 + i) for i, size in enumerate(sizes)]
    d = start_daemon(home)
    try:
        batch = d.rpc("upload_images", {"paths": [str(f) for f in files]})["batch_id"]
        faults = ["restart"] * 3 + ["kill"] * 3 + ["reset"] * 14
        rng.shuffle(faults)
        deadline = time.monotonic() + 300
        for fault in faults:
            time.sleep(rng.uniform(1.0, 2.5))
            if fault == "reset":
                proxy.cut()
            elif fault == "restart":  # the store forgets its multipart uploads
                s3.proc.terminate()
                s3.proc.wait(10)
                proxy.cut()
                s3 = start_rclone(tmp_path / "s3", port=s3.port)
            else:
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait(10)
                d = start_daemon(home)
        proxy.rate_bps = 0

        def done() -> bool:
            assert time.monotonic() < deadline, "the batch did not end"
            s = d.rpc("get_all_upload_progress", {"batch_id": batch})["summary"]
            return s["completed"] + s["failed"] == len(files)

        wait_until(done, 300, interval=0.5, message="the batch to end")
        tasks = d.rpc("get_all_upload_progress", {"batch_id": batch})["tasks"]
        assert [t["status"] for t in tasks] == ["completed"] * len(files), [t["error"] for t in tasks if t["error"]]
        objects = s3.objects("chaos")
        for t, f in zip(tasks, files, strict=True):
            assert objects[t["key"]].read_bytes() == f.read_bytes(), t["name"]
        history = d.rpc("get_upload_history", {"limit": 1000})["items"]
        assert sorted(i["task_id"] for i in history) == sorted(t["task_id"] for t in tasks)  # each link once
        client = s3.client()

        def nothing_left() -> bool:
            try:
                return not client.list_multipart_uploads(Bucket="chaos").get("Uploads")
            except client.exceptions.NoSuchUpload:
                return True

        wait_until(nothing_left, 60, interval=0.5, message="no multipart upload left on the store")
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        proxy.stop()
        s3.proc.terminate()
        s3.proc.wait(10)
