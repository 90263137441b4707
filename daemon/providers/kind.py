"""What the rest of pixlift knows of a storage provider: one ``ProviderKind`` per kind, as data.

A kind names its profile type and the ``config.toml`` keys it takes, parses a checked table into a profile,
builds the provider for a profile, describes a profile for the settings page (never its secrets), and lists
the fields that page shows. ``registry.py`` lists the kinds; nothing else in pixlift names a provider.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from ..core.config import Checker, Keys, ProfileBase, SecuritySettings, TransferSettings
from .base import Provider
from .inflight import InFlight

P = TypeVar("P", bound=ProfileBase)


@dataclass(frozen=True)
class FormField:
    """One input of the settings page's profile form."""

    name: str
    label: str
    input: Literal["text", "url", "password", "select", "number"] = "text"  # a number is sent as one
    placeholder: str = ""
    choices: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class BuildContext:
    """What a provider may need besides its profile."""

    transfers: TransferSettings
    files_root: Path  # where the embedded store keeps files when a profile names no folder
    base_url: Callable[[], str]  # the daemon's own address, known once it listens
    in_flight: InFlight | None = None  # the daemon-wide bound on bytes in flight


@dataclass(frozen=True)
class ProviderKind(Generic[P]):
    name: str  # the value of ``provider`` in config.toml
    label: str  # the settings page's choice, e.g. "Aliyun OSS"
    legend: str  # its short name, e.g. "OSS"
    profile_type: type[P]
    keys: Keys  # config.toml keys besides provider, key_template and public_base_url
    parse: Callable[[Checker, str, dict[str, Any], dict[str, Any]], P]  # (check, where, common, table)
    build: Callable[[P, BuildContext], Provider]
    summary: Callable[[P, Path], str]  # one line for the settings page: which bucket or folder, which keys
    form: tuple[FormField, ...]
    # Settings the API may not set although config.toml may (a folder to publish): (the profile, its table as
    # saved before, its table as the API would save it, the security settings, pixlift's home); raises
    # InvalidParams saying what is allowed. None: the API may set whatever the file may.
    api_guard: Callable[[P, Mapping[str, Any] | None, Mapping[str, Any], SecuritySettings, Path], None] | None = None

    def default_profile(self, name: str) -> P:
        return self.profile_type(name=name)

    def public_view(self, profile: P, files_root: Path) -> dict[str, Any]:
        """The profile as the API shows it: every field, each secret replaced by ``<name>_set``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(profile):
            value = getattr(profile, f.name)
            if f.metadata.get("secret"):
                out[f"{f.name}_set"] = bool(value)
            else:
                out[f.name] = str(value) if isinstance(value, Path) else value
        out["summary"] = self.summary(profile, files_root)
        return out

    def describe(self) -> dict[str, Any]:
        """The kind for the settings page (``list_provider_kinds``)."""
        secrets = set(self.profile_type.secret_fields())
        return {"provider": self.name, "label": self.label, "legend": self.legend,
                "fields": [{"name": f.name, "label": f.label, "input": f.input, "secret": f.name in secrets,
                            "placeholder": f.placeholder,
                            "choices": [list(c) for c in f.choices] if f.choices is not None else None}
                           for f in self.form]}
