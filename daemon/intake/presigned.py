"""Presigned uploads: an app that holds the bytes (a screenshot tool, an editor) sends them straight to the store.

``create`` checks each file against the limits before anything is signed and answers, per file and in input
order, a signed PUT (S3 and OSS, through their SDKs) or the daemon's own one-time URL (the local store), or
an error; one bad entry never fails the others. ``confirm`` asks the store whether the object arrived with the
announced size and records it in the history like any upload, with its link; ``missing`` and ``mismatch``
say what went wrong. Announced uploads are kept in memory for ``LIFETIME_S``: after a restart, ask again.

Bytes PUT to the local store's one-time URL pass the same image policy as every other way in
(``processing.prepare``: the location removed, or the file refused as ``metadata_unreadable``), so what is
stored may be smaller than announced; ``confirm`` then expects the size that was stored. Bytes PUT to an S3
or OSS presigned URL go straight to that store and never pass through pixlift: nothing can be removed there.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ..core.config import SettingsBox
from ..core.keys import render_key
from ..core.views import iso
from ..engine.processing import prepare
from ..errors import FileRefused, InvalidParams, NotFound, PixliftError
from ..files.paths import IMAGE_FORMATS
from ..files.sources import Source
from ..files.spool import Spool
from ..images.metadata_bounds import GATE
from ..journal.journal import Journal
from ..providers.multipart import MultipartState
from ..providers.registry import ProviderPool
from ..settings.links import lifetime_of

LIFETIME_S = 3600
MAX_FILES = 100
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic", "image/jxl",
               "image/bmp", "image/tiff", "image/x-icon", "image/svg+xml")


@dataclass(frozen=True)
class Announced:
    profile: str
    key: str
    name: str
    size: int
    content_type: str
    expires: float
    token: str | None  # the local store's one-time URL


class Presigned:
    def __init__(self, config: SettingsBox, providers: ProviderPool, journal: Journal, spool: Spool,
                 base_url: Callable[[], str]) -> None:
        self._config, self._providers, self._journal, self._spool = config, providers, journal, spool
        self._base_url = base_url
        self._announced: dict[tuple[str, str], Announced] = {}
        self._tokens: dict[str, Announced] = {}
        self._stored: dict[tuple[str, str], int] = {}  # what the local store kept, when the policy changed it

    async def create(self, files: list[Any], profile: str | None) -> dict[str, Any]:
        if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
            raise InvalidParams(f"'files' must be a list of 1 to {MAX_FILES} {{name, size, content_type}} objects.",
                                data={"param": "files"})
        settings = self._config.current
        chosen = settings.profile(profile)  # ConfigError for an unknown profile: the whole call
        self._forget_expired()
        out = []
        for entry in files:
            try:
                out.append(await self._one(entry, chosen.name, chosen.key_template))
            except PixliftError as exc:
                name = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else None
                out.append({"name": name, "error": exc.to_dict()})
        return {"uploads": out}

    async def _one(self, entry: Any, profile: str, template: str) -> dict[str, Any]:
        security = self._config.current.security
        if not isinstance(entry, dict):
            raise InvalidParams("Each file must be an object {name, size, content_type}.")
        name, size, kind = entry.get("name"), entry.get("size"), entry.get("content_type")
        if not isinstance(name, str) or not name.strip() or len(name) > 255 or "/" in name or "\\" in name:
            raise InvalidParams("name must be a file name (no folders), at most 255 characters.")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidParams("size must be the file's size in bytes, a whole number above 0.")
        if size > security.max_file_size:
            raise FileRefused(f"{name} is {size} bytes; the limit is {security.max_file_size} bytes "
                              "([security] max_file_size_mb).")
        if not isinstance(kind, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", kind):
            raise InvalidParams("content_type must be a MIME type such as image/png.")
        if security.images_only and kind not in IMAGE_TYPES:
            raise FileRefused(f"{name} is announced as {kind}, not an image ({IMAGE_FORMATS}).")
        now = time.time()
        key = render_key(template, filename=name, digest=uuid.uuid4().hex + uuid.uuid4().hex,
                         when=datetime.now(UTC), task_id=uuid.uuid4().hex, profile=profile)
        headers = {"Content-Type": kind}
        with self._providers.lease(profile) as provider:
            signed = await provider.presign_put(key, kind, LIFETIME_S)
        token = None
        if signed is None:  # a store the daemon writes itself: a one-time URL of its own
            token = secrets.token_urlsafe(24)
            url = f"{self._base_url()}/presigned/{token}"
        else:
            url = signed
        announced = Announced(profile, key, name, size, kind, now + LIFETIME_S, token)
        self._announced[(profile, key)] = announced
        if token:
            self._tokens[token] = announced
        return {"name": name, "key": key, "url": url, "method": "PUT", "headers": headers,
                "expires_at": iso(announced.expires)}

    async def receive(self, token: str, chunks: AsyncIterator[bytes]) -> None:
        """The local store's one-time URL: the body, within the announced size, stored under its key."""
        announced = self._tokens.pop(token, None)
        if announced is None or announced.expires < time.time():
            raise NotFound("This upload URL is unknown, used or expired; ask for a new one (create_upload_urls).")
        security = self._config.current.security
        try:
            checked = await self._spool.keep_stream(announced.name, chunks, security)
        except BaseException:
            self._tokens[token] = announced  # not used up: the app may send it again
            raise
        try:
            if checked.size != announced.size:
                self._tokens[token] = announced
                raise FileRefused(f"{checked.size} bytes arrived, {announced.size} were announced; nothing was "
                                  "stored. Send the whole file again.")
            images = self._config.current.images_for(announced.profile)
            prepared = await GATE.run(partial(prepare, checked, images, self._spool, None, announced.profile))
            sent = prepared.checked if prepared is not None else checked
            source = await asyncio.to_thread(Source.open, sent)
            try:
                with self._providers.lease(announced.profile) as provider:
                    await provider.upload(source, announced.key, on_bytes=lambda n: None, state=MultipartState(),
                                          on_part=lambda: None)
            finally:
                source.close()
                if sent is not checked:
                    self._spool.drop(sent)
            if sent.size != announced.size:
                self._stored[(announced.profile, announced.key)] = sent.size
        finally:
            self._spool.drop(checked)

    async def confirm(self, keys: list[Any], profile: str | None) -> dict[str, Any]:
        if not isinstance(keys, list) or not 0 < len(keys) <= MAX_FILES or not all(isinstance(k, str) for k in keys):
            raise InvalidParams(f"'keys' must be a list of 1 to {MAX_FILES} keys from create_upload_urls.",
                                data={"param": "keys"})
        chosen = self._config.current.profile(profile)
        results = []
        for key in keys:
            results.append(await self._confirm(chosen.name, key))
        return {"results": results}

    async def _confirm(self, profile: str, key: str) -> dict[str, Any]:
        announced = self._announced.get((profile, key))
        if announced is None:
            return {"key": key, "status": "missing", "message": "No upload URL was made for this key and profile "
                    "(or it was confirmed already, or the daemon restarted since): ask for one, then PUT again."}
        with self._providers.lease(profile) as provider:
            stored = await provider.stored_size(key)
            if stored is None:
                return {"key": key, "status": "missing", "message": "Nothing arrived at the store under this key: "
                        "PUT the file to its URL, with its headers, then confirm."}
            if stored != self._stored.get((profile, key), announced.size):
                return {"key": key, "status": "mismatch", "message": f"The store holds {stored} bytes under this "
                        f"key; {announced.size} were announced. PUT the whole file again, then confirm."}
            url = await provider.link(key)
        self._announced.pop((profile, key), None)
        self._stored.pop((profile, key), None)
        lifetime = lifetime_of(self._config.current.profiles.get(profile))
        now = time.time()
        self._journal.add_upload(f"presigned-{uuid.uuid4().hex}", announced.name, url, stored, profile, key, now,
                                 None if lifetime is None else now + lifetime)
        await self._journal.durable()
        return {"key": key, "status": "confirmed", "url": url, "message": "Uploaded; the link is in the history."}

    def _forget_expired(self) -> None:
        now = time.time()
        for k, a in list(self._announced.items()):
            if a.expires < now:
                self._announced.pop(k, None)
                if a.token:
                    self._tokens.pop(a.token, None)
