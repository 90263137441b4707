"""What the RPC handlers and routes may use, in one object: the engine, the path rules, limits, profiles."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from . import __version__
from .config import LocalProfile, OssProfile, S3Profile, SettingsBox
from .engine import Engine
from .errors import InvalidParams, InvalidState, PixliftError, RateLimited
from .home import Home
from .providers import ProviderPool, build_provider
from .security import Limits
from .settings_store import SettingsStore
from .sources import CheckedFile, Identity, PathChecker, sniff_image
from .tasks import ACTIVE, Task


class Services:
    def __init__(self, *, home: Home, config: SettingsBox, engine: Engine, providers: ProviderPool,
                 port: Any) -> None:
        self.home = home
        self.config = config
        self.engine = engine
        self.providers = providers
        self._port = port
        sec = config.current.security
        self.limits = Limits(sec.calls_per_second, sec.call_burst, sec.files_per_minute)
        self.settings = SettingsStore(home.config, home.root, config)

    def checker(self) -> PathChecker:
        return PathChecker(self.config.current.security)

    def charge_call(self, client: str) -> None:
        self.limits.charge_call(client)

    def charge(self, client: str, files: int) -> None:
        """Count files against the per-minute and total caps before anything is queued."""
        cap = self.config.current.security.max_queued_files
        active = self.engine.active_count()
        if active + files > cap:
            raise RateLimited(f"{active} files are already waiting; at most {cap} may be queued at once. "
                              "Retry when some have finished.", 30.0)
        self.limits.charge_files(client, files)

    async def upload_bytes(self, name: str, data: bytes, profile: str | None = None) -> Task:
        """Queue bytes held in memory (a clipboard image) as a one-file batch, like a browser upload."""
        sec = self.config.current.security
        self.config.current.profile(profile)
        if not data:
            raise InvalidParams(f"{name} is empty.")
        if len(data) > sec.max_file_size:
            raise InvalidParams(f"{name} is {len(data)} bytes; the limit is {sec.max_file_size}.")
        kind = sniff_image(data[:1024])
        if kind is None and sec.images_only:
            raise InvalidParams(f"{name} is not an image.")
        checked = await asyncio.to_thread(spool_bytes, self.home.spool, name, data, kind or "application/octet-stream")
        _, tasks = self.engine.submit([checked], profile=profile, batch_size=1, source="browser", names=[name])
        return tasks[0]

    def profiles(self) -> list[dict[str, Any]]:
        settings = self.config.current
        out = []
        for name, p in settings.profiles.items():
            item: dict[str, Any] = {"name": name, "provider": p.provider, "default": name == settings.default_profile,
                                    "key_template": p.key_template, "public_base_url": p.public_base_url}
            if isinstance(p, S3Profile):
                item.update(bucket=p.bucket, endpoint_url=p.endpoint_url, region=p.region,
                            addressing_style=p.addressing_style,
                            access_key_id_set=bool(p.access_key_id), secret_access_key_set=bool(p.secret_access_key))
            elif isinstance(p, OssProfile):
                item.update(bucket=p.bucket, endpoint=p.endpoint, access_key_id_set=bool(p.access_key_id),
                            access_key_secret_set=bool(p.access_key_secret))
            elif isinstance(p, LocalProfile):
                item.update(root=str(p.root or self.home.files))
            out.append(item)
        return out

    async def check_profile(self, name: str | None) -> dict[str, Any]:
        profile = self.config.current.profile(name)
        try:
            provider = await self.providers.get(profile.name)
            message = await asyncio.wait_for(provider.check(), timeout=30)
        except PixliftError as exc:
            return {"profile": profile.name, "ok": False, "code": exc.code, "message": exc.message}
        except TimeoutError:
            return {"profile": profile.name, "ok": False, "code": "timeout",
                    "message": "The store did not answer within 30 s. Check the endpoint and the network."}
        return {"profile": profile.name, "ok": True, "message": message}

    # -- the settings page: config.toml is changed through the store, and never hands back a secret --------
    def _profile_list(self) -> dict[str, Any]:
        return {"default": self.config.current.default_profile, "profiles": self.profiles()}

    async def save_profile(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        await self.settings.save_profile(name, fields)
        return self._profile_list()

    async def delete_profile(self, name: str) -> dict[str, Any]:
        busy = sum(1 for t in self.engine.tasks() if t.profile == name and t.status in ACTIVE)
        if busy:
            raise InvalidState(f"{busy} upload{'s' if busy > 1 else ''} still use profile {name!r}; let them "
                               "finish or cancel them first.", data={"profile": name, "active": busy})
        await self.settings.delete_profile(name)
        return self._profile_list()

    async def set_default_profile(self, name: str) -> dict[str, Any]:
        await self.settings.set_default(name)
        return self._profile_list()

    async def check_profile_draft(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Test unsaved settings: a provider built for this one check, then closed."""
        profile = await asyncio.to_thread(self.settings.draft, name, fields)
        provider = build_provider(profile, self.config, self.home.files, self.providers.base_url)
        try:
            message = await asyncio.wait_for(provider.check(), timeout=30)
        except PixliftError as exc:
            return {"profile": name, "ok": False, "code": exc.code, "message": exc.message}
        except TimeoutError:
            return {"profile": name, "ok": False, "code": "timeout",
                    "message": "The store did not answer within 30 s. Check the endpoint and the network."}
        finally:
            await provider.close()
        return {"profile": name, "ok": True, "message": message}

    def describe(self) -> dict[str, Any]:
        s = self.config.current
        return {"version": __version__, "pid": os.getpid(), "port": self._port(), "home": str(self.home.root),
                "config_file": str(self.home.config), "default_profile": s.default_profile,
                "profiles": sorted(s.profiles), "max_concurrent": s.transfers.max_concurrent,
                "allowed_roots": [str(r) for r in s.security.allowed_roots],
                "images_only": s.security.images_only, "max_file_size": s.security.max_file_size}


def spool_bytes(spool: Path, name: str, data: bytes, content_type: str) -> CheckedFile:
    folder = spool / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    path.write_bytes(data)
    return CheckedFile(path=str(path), root=str(folder), name=name, size=len(data), content_type=content_type,
                       identity=Identity.of(path.stat()))
