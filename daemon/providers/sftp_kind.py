"""The SFTP profile (a VPS, a NAS with SSH): its settings, how config.toml's table becomes one, and the settings
page's form.

Kept apart from the provider (sftp.py) so that reading the settings never loads asyncssh and its cryptography:
a daemon whose profiles do not use SFTP does not pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import Checker, ProfileBase, secret_field
from .base import Provider
from .kind import BuildContext, FormField, ProviderKind

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class SftpProfile(ProfileBase):
    provider: str = "sftp"
    host: str = ""
    port: int = 22
    username: str | None = None  # None: the local user's name, as ssh does
    password: str | None = secret_field()
    key_file: str | None = None  # a private key; neither it nor password: the SSH agent and ~/.ssh's keys
    key_passphrase: str | None = secret_field()
    root: str = ""  # the remote folder uploads go into; relative paths start at the login's home
    known_hosts: str = DEFAULT_KNOWN_HOSTS


def parse(check: Checker, where: str, common: dict[str, Any], t: dict[str, Any]) -> SftpProfile:
    host = t["host"].strip()
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise check.fail(f"{where}.host", f"{host!r} is not a host name", 'Write the server\'s name or address, '
                         'e.g. host = "example.com" (the user goes in username, the port in port).')
    if not common.get("public_base_url"):
        raise check.fail(where, "has no public_base_url", "SFTP has no links of its own: set public_base_url to the "
                         'web address that serves root, e.g. public_base_url = "https://img.example.com".')
    if "key_passphrase" in t and not t.get("key_file"):
        raise check.fail(where, "has a key_passphrase but no key_file", 'Add: key_file = "~/.ssh/id_ed25519"')
    root = check.folder(f"{where}.root", t.get("root", ""))
    return SftpProfile(**common, host=host, port=check.ranged(f"{where}.port", t.get("port", 22), 1, 65535),
                       username=t.get("username") or None, password=t.get("password"),
                       key_file=check.folder(f"{where}.key_file", t["key_file"]) if t.get("key_file") else None,
                       key_passphrase=t.get("key_passphrase"), root=root,
                       known_hosts=check.folder(f"{where}.known_hosts", t.get("known_hosts") or DEFAULT_KNOWN_HOSTS))


def summary(p: SftpProfile, files_root: Path) -> str:
    login = "password saved" if p.password else f"key {p.key_file}" if p.key_file else "SSH agent"
    user = f"{p.username}@" if p.username else ""
    return f"SFTP {user}{p.host}:{p.port} {p.root or '~'} · {login} · links at {p.public_base_url}"


def build(p: SftpProfile, ctx: BuildContext) -> Provider:
    from .sftp import SftpProvider  # asyncssh is loaded by the first profile that uses it

    return SftpProvider(p, ctx.transfers, in_flight=ctx.in_flight)


KIND = ProviderKind(
    name="sftp", label="SFTP (a server over SSH)", legend="SFTP", profile_type=SftpProfile,
    keys={"host": (str, True), "port": (int, False), "username": (str, False), "password": (str, False),
          "key_file": (str, False), "key_passphrase": (str, False), "root": (str, False),
          "known_hosts": (str, False)},
    parse=parse, build=build, summary=summary,
    form=(FormField("host", "Host", placeholder="example.com"),
          FormField("port", "Port", "number", "22"),
          FormField("username", "Username"),
          FormField("password", "Password", "password", "or a key file, or the SSH agent"),
          FormField("key_file", "Private key file", placeholder="~/.ssh/id_ed25519"),
          FormField("key_passphrase", "Key passphrase", "password"),
          FormField("root", "Remote folder", placeholder="/var/www/img"),
          FormField("known_hosts", "known_hosts file", placeholder=DEFAULT_KNOWN_HOSTS)),
)
