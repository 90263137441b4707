"""Storage profiles as the settings page and the API see them: list, describe, test, save, delete, default.

Profiles are shown through their provider's kind (``providers/kind.py``), so no secret ever leaves and no
provider is named here. Changes go through ``SettingsStore``, the one writer of config.toml.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.config import ProfileBase, Settings, SettingsBox
from ..errors import ConfigError, InvalidState, PixliftError
from ..providers.base import Provider
from ..providers.registry import KINDS, ProviderPool, build_provider, kind_of
from .store import SettingsStore

CHECK_TIMEOUT_S = 30


class Profiles:
    def __init__(self, *, config: SettingsBox, store: SettingsStore, providers: ProviderPool, files_root: Path,
                 busy: Callable[[str], int]) -> None:
        self.config = config
        self._store = store
        self._providers = providers
        self._files_root = files_root
        self._busy = busy

    def kinds(self) -> dict[str, Any]:
        """The provider kinds and the fields the settings page shows for each."""
        return {"kinds": [k.describe() for k in KINDS.values()]}

    def listing(self) -> dict[str, Any]:
        settings = self.config.current
        out = []
        for name, p in settings.profiles.items():
            item = {"name": name, "default": name == settings.default_profile,
                    **kind_of(p).public_view(p, self._files_root),
                    "images": dataclasses.asdict(settings.images_for(name))}
            out.append(item)
        return {"default": settings.default_profile, "profiles": out}

    def served_file(self, name: str, key: str) -> int | None:
        """A stored file that the daemon serves at a link of this profile (its own folder), opened; the caller
        closes it."""
        try:
            return self._providers.get(name).served_file(key)
        except PixliftError:
            return None

    async def check(self, name: str | None) -> dict[str, Any]:
        profile = self.config.current.profile(name)
        return await _check(profile.name, self._providers.get(profile.name))

    async def check_draft(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Test unsaved settings: a provider built for this one check, then closed."""
        profile: ProfileBase = await asyncio.to_thread(self._store.draft, name, fields)
        provider = build_provider(profile, self.config, self._files_root, self._providers.base_url)
        try:
            return await _check(name, provider)
        finally:
            await provider.close()

    async def save(self, name: str, fields: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
        """Save after the settings check; unless ``force``, also after a connection test that passes, so a typo
        in a key or an endpoint is caught while the person is still at the form."""
        if not force:
            result = await self.check_draft(name, fields)
            if not result["ok"]:
                raise ConfigError(f"Not saved: the connection test failed: {result['message']} Fix the settings, "
                                  "or save anyway (force).", data={"check": result, "force": True})
        await self._store.save_profile(name, fields)
        return self.listing()

    async def delete(self, name: str) -> dict[str, Any]:
        busy = self._busy(name)
        if busy:
            raise InvalidState(f"{busy} upload{'s' if busy > 1 else ''} still use profile {name!r}; let them "
                               "finish or cancel them first.", data={"profile": name, "active": busy})
        await self._store.delete_profile(name)
        return self.listing()

    async def set_default(self, name: str) -> dict[str, Any]:
        await self._store.set_default(name)
        return self.listing()


async def _check(name: str, provider: Provider) -> dict[str, Any]:
    try:
        message = await asyncio.wait_for(provider.check(), timeout=CHECK_TIMEOUT_S)
    except PixliftError as exc:
        return {"profile": name, "ok": False, "code": exc.code, "message": exc.message}
    except TimeoutError:
        return {"profile": name, "ok": False, "code": "timeout",
                "message": f"The store did not answer within {CHECK_TIMEOUT_S} s. Check the endpoint and the "
                           "network."}
    return {"profile": name, "ok": True, "message": message}


async def check_offline(settings: Settings, files_root: Path, names: list[str]) -> list[dict[str, Any]]:
    """``check`` for each named profile without a running daemon (``pixlift config check``)."""
    pool = ProviderPool(SettingsBox(settings), files_root, lambda: "http://127.0.0.1")
    try:
        return [await _check(name, pool.get(name)) for name in names]
    finally:
        await pool.close()
