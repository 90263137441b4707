"""The daemon-wide change counter behind incremental reads (``since``) and the push channels.

Every change to a task (state, bytes, error, url) takes the next ``version``; a reader that remembers the
version of its last read asks only for what changed after it. The counter keeps growing across restarts
without a write per change: the journal holds a ceiling reserved a block ahead, and a restarted daemon starts
from that ceiling, above anything the previous run handed out. Removed task ids (cleared or expired) are
remembered, boundedly, with the version of their removal; a ``since`` older than what is remembered (or from
before this run) cannot be answered incrementally, and the reader gets everything with ``full``.
"""

from __future__ import annotations

from collections import deque

from ..journal.journal import Journal

BLOCK = 100_000  # versions reserved per journal write
KEEP_REMOVED = 10_000  # removed ids remembered for incremental readers


class ChangeLog:
    def __init__(self, journal: Journal, keep_removed: int = KEEP_REMOVED) -> None:
        self._journal = journal
        self._keep = keep_removed
        self.version = self.floor = self._ceiling = journal.reserved_version()
        self._removed: deque[tuple[int, str]] = deque()

    def bump(self) -> int:
        self.version += 1
        if self.version >= self._ceiling:
            self._ceiling = self.version + BLOCK
            self._journal.reserve_version(self._ceiling)
        return self.version

    def remove(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self._removed.append((self.bump(), task_id))
        while len(self._removed) > self._keep:
            self.floor = self._removed.popleft()[0]

    def answers(self, since: int) -> bool:
        """Whether changes after ``since`` are all still known (else the reader needs a full read)."""
        return self.floor <= since <= self.version

    def removed_since(self, since: int) -> list[str]:
        out = []
        for version, task_id in reversed(self._removed):
            if version <= since:
                break
            out.append(task_id)
        out.reverse()
        return out
