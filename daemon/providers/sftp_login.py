"""How pixlift logs in to an SFTP server: the host key it trusts (``known_hosts``, and nothing else) and the
credentials it offers (a password, a key file, or the SSH agent and ~/.ssh's keys), as asyncssh's options."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

with warnings.catch_warnings():  # cryptography's deprecation of DSA, raised as asyncssh imports it
    warnings.simplefilter("ignore")
    import asyncssh

from ..core.config import TransferSettings
from ..errors import PermanentStorageError
from .base import describe

if TYPE_CHECKING:
    from .sftp_kind import SftpProfile

KEEPALIVE_S = 15.0  # a link that died without a word is noticed after 3 unanswered keepalives


def login_options(p: SftpProfile, t: TransferSettings) -> dict[str, Any]:
    """asyncssh.connect's options for a profile (blocking: it reads known_hosts and the key file)."""
    options: dict[str, Any] = {
        "host": p.host, "port": p.port, "known_hosts": _known_hosts(p), "connect_timeout": t.connect_timeout_s,
        "login_timeout": max(t.connect_timeout_s, t.read_timeout_s), "keepalive_interval": KEEPALIVE_S,
        "keepalive_count_max": 3}
    if p.username:
        options["username"] = p.username
    if p.key_file:
        options.update(client_keys=[_key(p)], agent_path=None)
    elif p.password:
        options.update(client_keys=None, agent_path=None)  # the password alone: no keys tried before it
    if p.password:
        options["password"] = p.password
    return options


def _known_hosts(p: SftpProfile) -> asyncssh.SSHKnownHosts:
    path = os.path.expanduser(p.known_hosts)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""  # every host is unknown: the message says how to add this one
    except OSError as exc:
        raise host_key_error(p, f"{path} cannot be read ({exc.strerror})") from exc
    try:
        return asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise host_key_error(p, f"{path} is not a known_hosts file ({describe(exc)})") from exc


def _key(p: SftpProfile) -> asyncssh.SSHKey:
    path = os.path.expanduser(p.key_file or "")
    try:
        return asyncssh.read_private_key(path, p.key_passphrase)
    except asyncssh.KeyEncryptionError as exc:
        raise PermanentStorageError(f"The key {path} of profile {p.name!r} cannot be decrypted ({describe(exc)}). "
                                    "Check key_passphrase.", code="invalid_credentials") from exc
    except asyncssh.KeyImportError as exc:
        if p.key_passphrase is None and "passphrase" in str(exc).lower():  # asyncssh's words for an encrypted key
            raise PermanentStorageError(f"The key {path} of profile {p.name!r} is protected by a passphrase: set "
                                        "key_passphrase in the profile (or leave key_file out and let the SSH "
                                        "agent hold the key).", code="invalid_credentials") from exc
        raise PermanentStorageError(f"The key {path} of profile {p.name!r} cannot be used ({describe(exc)}). "
                                    "Check key_file.", code="invalid_credentials") from exc
    except (OSError, ValueError) as exc:
        raise PermanentStorageError(f"The key {path} of profile {p.name!r} cannot be used ({describe(exc)}). "
                                    "Check key_file.", code="invalid_credentials") from exc


def host_key_error(p: SftpProfile, why: str) -> PermanentStorageError:
    return PermanentStorageError(
        f"The SSH host key of {p.host} (port {p.port}) is not trusted: {why}; nothing was sent. If this is your "
        f"server, add its key to known_hosts: ssh-keyscan -p {p.port} {p.host} >> {p.known_hosts} (check the "
        f"fingerprint it prints against the server's); if the key changed, remove the old one first: "
        f"ssh-keygen -R '[{p.host}]:{p.port}'.", code="host_key_unknown")
