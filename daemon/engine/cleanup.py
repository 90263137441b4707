"""Multipart uploads left on a store are aborted until the store confirms it, across outages and restarts.

A cancelled upload, a failed one that is cleared, or one whose file changed before a retry hands its upload id
to ``Cleanup``, which writes it to the journal first and then asks the store to abort it. When the store cannot
be reached, the request stays in the journal and is tried again with backoff, and at every start: parts are
never orphaned (on AWS they are billed until a lifecycle rule removes them). A failed task keeps its upload,
so a retry continues from its parts while the store still has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..errors import PixliftError
from ..journal.journal import Journal
from ..providers.registry import ProviderPool

log = logging.getLogger(__name__)
FIRST_WAIT_S = 5.0
MAX_WAIT_S = 600.0


class Cleanup:
    def __init__(self, journal: Journal, providers: ProviderPool) -> None:
        self._journal = journal
        self._providers = providers
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def abort(self, profile: str, key: str, upload_id: str) -> None:
        """Remember, durably, that this upload must go; the background loop does it."""
        self._journal.add_abort(profile, key, upload_id)
        self._wake.set()

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="pixlift-cleanup")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        wait = FIRST_WAIT_S
        while True:
            left = 0
            await self._journal.durable()  # the aborts just asked for are queued for the journal's next commit
            for profile, key, upload_id in self._journal.pending_aborts():
                if await self._abort(profile, key, upload_id):
                    self._journal.remove_abort(upload_id)
                else:
                    left += 1
            wait = min(MAX_WAIT_S, wait * 2) if left else FIRST_WAIT_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait if left else None)

    async def _abort(self, profile: str, key: str, upload_id: str) -> bool:
        """True once the store has no such upload (aborted now, or gone already, or its profile is gone)."""
        try:
            with self._providers.lease(profile) as provider:
                await provider.abort_upload(key, upload_id)
        except PixliftError as exc:
            if exc.code == "config_error":  # the profile was deleted: nothing left to ask
                return True
            log.info("could not abort the multipart upload of %s yet (%s); will try again", key, exc.message)
            return False
        return True
