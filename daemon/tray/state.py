"""What the tray shows: a frozen ``TrayState`` read on the loop, and the words made of it.

Pure: no pystray, no threads. ``read_state`` is handed to ``Crossing.call`` and so runs on the event loop; the
tray's threads only ever see the frozen result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..application import Application
from ..core.views import Summary

NAME = "pixlift"
RECENT = 5  # links in "Recent links"


@dataclass(frozen=True)
class Link:
    name: str
    url: str
    history_id: int | None = None  # to ask for it signed again when it is copied (settings/links.py)


@dataclass(frozen=True)
class TrayState:
    """The summary the web UI shows (``views.summarize``: one rule for totals), plus what only the tray names."""

    summary: Summary = field(default_factory=Summary)
    first_name: str = ""  # an uploading (or queued) file, named in the title when it is the only one
    recent: tuple[Link, ...] = ()
    version: int = -1  # the daemon's change counter when this was read

    @property
    def active(self) -> int:
        """Files that are sending or waiting to send."""
        return self.summary.active

    @property
    def paused(self) -> int:
        return self.summary.paused

    @property
    def failed(self) -> int:
        return self.summary.failed

    @property
    def percent(self) -> int:
        s = self.summary
        return int(100 * s.bytes_uploaded / s.bytes_total) if s.bytes_total else 0


def read_state(app: Application, since: int = -1) -> TrayState | None:
    """Runs on the loop: what the tray shows, from the same summary the web UI shows; None when nothing has
    changed since the version of the last reading (then nothing is read at all)."""
    if app.version == since:
        return None
    items = app.history(RECENT, 0)["items"]
    return TrayState(app.summary(), app.current_name(),
                     tuple(Link(str(i["name"]), str(i["url"]), i.get("history_id")) for i in items
                           if i.get("url") and not i.get("deleted_at")), app.version)


def title_for(state: TrayState) -> str:
    """The tooltip: "pixlift: 3 uploading, 42%", "pixlift: uploading cat.png, 7%", "pixlift: idle"."""
    parts = []
    if state.active == 1 and state.first_name:
        parts.append(f"uploading {shorten(state.first_name)}, {state.percent}%")
    elif state.active:
        parts.append(f"{state.active} uploading, {state.percent}%")
    if state.paused:
        parts.append(f"{state.paused} paused")
    if state.failed:
        parts.append(f"{state.failed} failed")
    return "pixlift: " + (", ".join(parts) or "idle")


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def latin1_safe(text: str) -> str:
    """pystray's xorg backend writes the title as Latin-1 and dies on anything else (a CJK file name)."""
    return text.encode("latin-1", "replace").decode("latin-1")
