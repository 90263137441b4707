"""Links that last: a presigned link is signed again whenever it is read with under a tenth of its life left.

A completed task's link is watched from the moment it is made (a heap ordered by when it becomes due), so a
read costs nothing until one is due; ``refresh`` re-signs the due ones through their provider. History
entries are re-signed the same way when a page of them is read (``due``). A link that cannot be re-signed
now (the store's credentials are not at hand) keeps its old one and is tried at the next read.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable

from ..core.config import ProfileBase
from ..core.tasks import Task, TaskStatus
from ..errors import ConfigError, TransferError
from ..providers.registry import ProviderPool

log = logging.getLogger(__name__)
SHARE_LEFT = 0.1  # re-signed when less than this share of its lifetime is left


def due(expires: float | None, lifetime: int | None, now: float) -> bool:
    return expires is not None and lifetime is not None and expires - now < lifetime * SHARE_LEFT


def lifetime_of(profile: ProfileBase | None) -> int | None:
    """A profile's presigned-link lifetime; None for public links and the local store's."""
    if profile is None or profile.public_base_url:
        return None
    value = getattr(profile, "presign_expires_s", None)
    return int(value) if value else None


class Links:
    def __init__(self, providers: ProviderPool, clock: Callable[[], float]) -> None:
        self._providers = providers
        self._clock = clock
        self._due: list[tuple[float, str, float]] = []  # (when the link becomes due, task id, its expiry)

    async def sign(self, task: Task) -> None:
        """Give a completed task its link, and watch it when it expires."""
        with self._providers.lease(task.profile) as provider:
            task.url = await provider.link(task.key or "")
            lifetime = provider.link_lifetime
        self.watch(task, lifetime)

    def watch(self, task: Task, lifetime: int | None) -> None:
        """A link just signed: when it expires, and when to sign it again."""
        task.url_expires = None if lifetime is None else self._clock() + lifetime
        self._push(task, lifetime)

    def keep(self, task: Task, profile: ProfileBase | None) -> None:
        """Watch a completed task's link as it is (one signed before a restart)."""
        if task.status is TaskStatus.COMPLETED:
            self._push(task, lifetime_of(profile))

    def _push(self, task: Task, lifetime: int | None) -> None:
        if task.url_expires is not None and lifetime is not None:
            heapq.heappush(self._due, (task.url_expires - lifetime * SHARE_LEFT, task.task_id, task.url_expires))

    async def refresh(self, find: Callable[[str], Task | None], changed: Callable[[Task], None]) -> None:
        """Re-sign every watched link that is due; ``changed`` is told of each task whose link changed."""
        now = self._clock()
        while self._due and self._due[0][0] <= now:
            _, task_id, expires = heapq.heappop(self._due)
            task = find(task_id)
            if task is None or task.status is not TaskStatus.COMPLETED or task.key is None:
                continue  # forgotten, or retried since
            if task.url_expires != expires:
                continue  # signed again since this entry was made
            try:
                await self.sign(task)
            except (TransferError, ConfigError) as exc:
                log.info("could not re-sign the link of %s yet (%s)", task.name, exc.message)
                heapq.heappush(self._due, (now + 60, task_id, expires))
                continue
            changed(task)
