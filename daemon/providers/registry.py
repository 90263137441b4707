"""The storage providers pixlift knows, and the pool that builds one provider per profile.

Adding a provider: write ``providers/NAME.py`` with its ``Provider`` (``ObjectStore`` for an S3-like store: the
primitives and an error table) and, when it needs an SDK, ``providers/NAME_kind.py`` with its profile type and
its ``KIND``, whose ``build`` imports the provider module (so the SDK loads only for a profile that uses it);
then list its ``KIND`` here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.config import ProfileBase, SettingsBox
from . import local, oss_kind, s3_kind, sftp_kind, webdav_kind
from .base import Provider
from .inflight import InFlight
from .kind import BuildContext, ProviderKind

KINDS: Mapping[str, ProviderKind[Any]] = {k.name: k for k in (
    s3_kind.KIND, oss_kind.KIND, webdav_kind.KIND, sftp_kind.KIND, local.KIND)}
SECRET_KEYS = frozenset(name for k in KINDS.values() for name in k.profile_type.secret_fields())


def kind_of(profile: ProfileBase) -> ProviderKind[Any]:
    return KINDS[profile.provider]


def build_provider(profile: ProfileBase, box: SettingsBox, files_root: Path, base_url: Callable[[], str],
                   in_flight: InFlight | None = None) -> Provider:
    return kind_of(profile).build(profile, BuildContext(box.current.transfers, files_root, base_url, in_flight))


class ProviderPool:
    """One provider per profile, rebuilt when its profile (or the transfer settings) change.

    A replaced provider may still carry running uploads: it is closed once none of them uses it any more
    (``lease``), not kept until shutdown with its connections and threads."""

    def __init__(self, box: SettingsBox, files_root: Path, base_url: Callable[[], str]) -> None:
        self.box = box
        self.files_root = files_root
        self.base_url = base_url
        self._providers: dict[str, tuple[object, Provider]] = {}
        self._users: dict[int, int] = {}  # id(provider) -> uploads using it
        self._retired: dict[int, Provider] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.in_flight = InFlight(lambda: box.current.transfers.max_bytes_in_flight,
                                  lambda: box.current.transfers.part_size)

    def get(self, name: str) -> Provider:
        settings = self.box.current
        profile = settings.profile(name)
        fingerprint = (profile, settings.transfers)
        cached = self._providers.get(name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if cached is not None:
            self._retire(cached[1])
        provider = build_provider(profile, self.box, self.files_root, self.base_url, self.in_flight)
        self._providers[name] = (fingerprint, provider)
        return provider

    def lease(self, name: str) -> Lease:
        """The profile's provider for one upload (``with pool.lease(name) as provider``); a provider retired
        meanwhile is closed when the last lease of it ends."""
        return Lease(self, self.get(name))

    def _take(self, provider: Provider) -> None:
        key = id(provider)
        self._users[key] = self._users.get(key, 0) + 1

    def _give_back(self, provider: Provider) -> None:
        key = id(provider)
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key]
            if key in self._retired:
                self._close_soon(self._retired.pop(key))

    def _retire(self, provider: Provider) -> None:
        if self._users.get(id(provider)):
            self._retired[id(provider)] = provider
        else:
            self._close_soon(provider)

    def _close_soon(self, provider: Provider) -> None:
        task = asyncio.get_running_loop().create_task(provider.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        providers = [p for _, p in self._providers.values()] + list(self._retired.values())
        self._providers.clear()
        self._retired.clear()
        await asyncio.gather(*(p.close() for p in providers), *self._closing, return_exceptions=True)


class Lease:
    """One upload's use of a provider. A class, not a generator: two are made per file sent."""

    __slots__ = ("_pool", "_provider")

    def __init__(self, pool: ProviderPool, provider: Provider) -> None:
        self._pool, self._provider = pool, provider

    def __enter__(self) -> Provider:
        self._pool._take(self._provider)
        return self._provider

    def __exit__(self, *_: object) -> None:
        self._pool._give_back(self._provider)
