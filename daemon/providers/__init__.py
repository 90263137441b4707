"""Storage providers behind one small interface, built lazily from the current settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from ..config import LocalProfile, OssProfile, Profile, S3Profile, SettingsBox
from .base import MultipartState, Provider

__all__ = ["MultipartState", "Provider", "ProviderPool", "build_provider"]


def build_provider(profile: Profile, box: SettingsBox, files_root: Path, base_url: Callable[[], str]) -> Provider:
    transfers = box.current.transfers
    if isinstance(profile, LocalProfile):
        from .local import LocalProvider

        return LocalProvider(profile, profile.root or files_root, base_url)
    if isinstance(profile, S3Profile):
        from .s3 import S3Provider

        return S3Provider(profile, transfers)
    if isinstance(profile, OssProfile):
        from .oss import OssProvider

        return OssProvider(profile, transfers)
    raise TypeError(f"unknown profile type {type(profile).__name__}")


class ProviderPool:
    """One provider per profile, rebuilt when its profile (or the transfer settings) change."""

    def __init__(self, box: SettingsBox, files_root: Path, base_url: Callable[[], str]) -> None:
        self.box = box
        self.files_root = files_root
        self.base_url = base_url
        self._providers: dict[str, tuple[object, Provider]] = {}
        self._retired: list[Provider] = []

    async def get(self, name: str) -> Provider:
        settings = self.box.current
        profile = settings.profile(name)
        fingerprint = (profile, settings.transfers)
        cached = self._providers.get(name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if cached is not None:
            self._retired.append(cached[1])  # running uploads may still use it; closed at shutdown
        provider = build_provider(profile, self.box, self.files_root, self.base_url)
        self._providers[name] = (fingerprint, provider)
        return provider

    async def close(self) -> None:
        providers = [p for _, p in self._providers.values()] + self._retired
        self._providers.clear()
        self._retired.clear()
        await asyncio.gather(*(p.close() for p in providers), return_exceptions=True)
