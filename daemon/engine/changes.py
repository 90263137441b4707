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
SEP = "\n"  # between the ids of one removal (an id is hex, or a name a test gave)


class ChangeLog:
    def __init__(self, journal: Journal, keep_removed: int = KEEP_REMOVED) -> None:
        self._journal = journal
        self._keep = keep_removed
        self.version = self.floor = self._ceiling = journal.reserved_version()
        # The removed ids of each removal, as (version of the first, how many, the ids joined by SEP): one
        # string, not 10,000 strings made with their tasks, which would pin the heap pages around them once
        # the rest of their tasks is freed. Their versions follow each other (one ``bump`` per id).
        self._removed: deque[tuple[int, int, str]] = deque()
        self._remembered = 0

    def bump(self) -> int:
        self.version += 1
        if self.version >= self._ceiling:
            self._ceiling = self.version + BLOCK
            self._journal.reserve_version(self._ceiling)
        return self.version

    def remove(self, task_ids: list[str]) -> None:
        if not task_ids:
            return
        first = self.bump()
        for _ in task_ids[1:]:
            self.bump()
        self._removed.append((first, len(task_ids), SEP.join(task_ids)))
        self._remembered += len(task_ids)
        while self._remembered > self._keep:
            first, count, joined = self._removed[0]
            drop = min(count, self._remembered - self._keep)
            self.floor = first + drop - 1
            self._remembered -= drop
            if drop == count:
                self._removed.popleft()
            else:
                self._removed[0] = (first + drop, count - drop, SEP.join(joined.split(SEP)[drop:]))

    def answers(self, since: int) -> bool:
        """Whether changes after ``since`` are all still known (else the reader needs a full read)."""
        return self.floor <= since <= self.version

    def removed_since(self, since: int) -> list[str]:
        parts: list[list[str]] = []
        for first, count, joined in reversed(self._removed):
            if first + count - 1 <= since:
                break
            ids = joined.split(SEP)
            parts.append(ids[since - first + 1:] if first <= since else ids)
        return [task_id for ids in reversed(parts) for task_id in ids]
