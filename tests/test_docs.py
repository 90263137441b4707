"""The docs are part of the interface: a method, a setting or a command missing from the README fails here."""

from __future__ import annotations

import re
from pathlib import Path

from pixlift.api.rpc import REGISTRY
from pixlift.cli import commands as cli
from pixlift.core.keys import PLACEHOLDERS
from pixlift.providers.registry import KINDS
from pixlift.settings.config_file import INTEGRATION_KEYS, SECURITY_KEYS, TRANSFER_KEYS, profile_keys

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_rpc_method_and_param_is_in_the_readme() -> None:
    for name, method in REGISTRY.items():
        row = next((line for line in README.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README's method table lacks {name}"
        for p in method.params:
            assert p.name in row, f"README's row for {name} lacks param {p.name}"


def test_every_setting_and_placeholder_is_in_the_readme() -> None:
    keys = set(TRANSFER_KEYS) | set(SECURITY_KEYS) | set(INTEGRATION_KEYS)
    keys |= {k for name in KINDS for k in profile_keys(name)}
    for key in keys - {"session_token"}:
        assert re.search(rf"^#?\s*{key} = ", README, re.M), f"README's config example lacks {key}"
    for placeholder in PLACEHOLDERS:
        assert f"{{{placeholder}}}" in README


def test_every_cli_command_is_in_the_readme() -> None:
    for name in (n[4:] for n in dir(cli) if n.startswith("cmd_")):
        assert f"`pixlift {name}" in README, f"README lacks the {name} command"
