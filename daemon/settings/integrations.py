"""``[integrations]`` as the faces see it: the settings in force, saving them, and the PicGo server's state.

The PicGo-compatible server (api/picgo.py) is a face of its own; it registers ``apply`` here so that a change saved
from the settings page or over JSON-RPC starts, moves or stops it before the call answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..core.config import SettingsBox
from .store import SettingsStore


class Integrations:
    def __init__(self, config: SettingsBox, store: SettingsStore) -> None:
        self._config = config
        self._store = store
        self.apply: Callable[[], Awaitable[None]] | None = None  # set by the PicGo server while it runs
        self.listening = False  # the PicGo server is bound to its port
        self.error: str | None = None  # why it is not, when it should be

    def view(self) -> dict[str, Any]:
        """The settings in force (the key only as set or not) and whether the PicGo server listens."""
        i = self._config.current.integrations
        return {"picgo_server": i.picgo_server, "picgo_port": i.picgo_port, "picgo_key_set": i.picgo_key is not None,
                "picgo_origins": list(i.picgo_origins), "picgo_listening": self.listening, "picgo_error": self.error}

    async def save(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Patch ``[integrations]`` in config.toml (checked like a start), then apply it."""
        await self._store.save_integrations(fields)
        if self.apply is not None:
            await self.apply()
        return self.view()
