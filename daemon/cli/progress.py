"""Live progress on a terminal for ``pixlift upload`` and ``pixlift watch``, drawn from the daemon's events.

A line per file (percent, bytes, speed, time left) while there are a few; one total line for many. Drawn on
stderr and only when it is a terminal, redrawn in place at most ten times a second, so stdout carries nothing
but the links and a script or an editor reading it is never confused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TextIO

MANY = 8  # more files than this: one total line instead of a line each
BAR = 20


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s left" if s >= 60 else f"{s}s left"


def bar(percent: float) -> str:
    filled = int(BAR * min(100.0, max(0.0, percent)) / 100)
    return "[" + "#" * filled + "-" * (BAR - filled) + "]"


class Board:
    def __init__(self, stream: TextIO, *, show: bool, order: list[str] | None = None) -> None:
        self.stream = stream
        self.show = show
        self.order = list(order or [])  # task ids in input order (watch: in the order they appear)
        self.tasks: dict[str, Mapping[str, Any]] = {}
        self.summary: Mapping[str, Any] = {}
        self._lines = 0
        self._drawn_at = 0.0

    def apply(self, event: Mapping[str, Any]) -> None:
        """Take one event of the stream (``progress``, ``task`` or ``batch``)."""
        data = event["data"]
        if event["event"] == "progress":
            for task in data["tasks"]:
                self._task(task)
            self.summary = data["summary"]
        elif event["event"] == "task":
            self._task(data)
        self.draw(force=event["event"] != "progress")

    def _task(self, task: Mapping[str, Any]) -> None:
        if task["task_id"] not in self.tasks and task["task_id"] not in self.order:
            self.order.append(task["task_id"])
        self.tasks[task["task_id"]] = task

    def lines(self) -> list[str]:
        known = [self.tasks[t] for t in self.order if t in self.tasks]
        if len(self.order) > MANY:
            s = self.summary
            done = sum(1 for t in known if t["status"] == "completed")
            failed = sum(1 for t in known if t["status"] == "failed")
            speed = sum(t.get("speed_bps") or 0 for t in known if t["status"] == "uploading")
            total = sum(t["bytes_total"] for t in known)
            sent = sum(t["bytes_uploaded"] for t in known if t["status"] != "cancelled")
            pct = 100.0 * sent / total if total else float(s.get("percent", 0))
            left = (total - sent) / speed if speed else None
            return [f"{done}/{len(self.order)} done {bar(pct)} {pct:5.1f}%  {size(sent)}/{size(total)}  "
                    f"{size(speed)}/s  {eta(left)}" + (f"  {failed} failed" if failed else "")]
        out = []
        for t in known:
            name = t["name"] if len(t["name"]) <= 28 else t["name"][:25] + "..."
            if t["status"] in ("uploading", "queued"):
                detail = (f"{t['percent']:5.1f}%  {size(t['bytes_uploaded'])}/{size(t['bytes_total'])}  "
                          f"{size(t.get('speed_bps') or 0)}/s  {eta(t.get('eta_s'))}")
                out.append(f"{name:<28} {bar(t['percent'])} {detail}")
            else:
                out.append(f"{name:<28} {t['status']}")
        return out

    def draw(self, force: bool = False) -> None:
        if not self.show:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        lines = self.lines()
        up = f"\x1b[{self._lines}F" if self._lines else ""
        self.stream.write(up + "".join(f"\x1b[2K{line[:120]}\n" for line in lines))
        self.stream.flush()
        self._lines = len(lines)

    def finish(self) -> None:
        self.draw(force=True)
