"""SFTP logins by key (issue 24): a key file with and without a passphrase, and the SSH agent (a real
``ssh-agent`` holding a key made by ``ssh-keygen``), against OpenSSH's own ``sftp-server`` behind an SSH server
that checks the key (tests/davsftp.py); a key the server does not know fails ``invalid_credentials`` at once."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, make_image, pixlift_env, wait_until
from davsftp import USER, HostKey, OpenSshSftp, WebServer, files_under, sftp_server_path

FAST = {"backoff_base_s": 0.05, "backoff_max_s": 0.2}


def keygen(folder: Path, name: str, passphrase: str = "") -> Path:
    """A private key by ssh-keygen (OpenSSH's format, encrypted when there is a passphrase)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", f"pixlift-test-{name}",
                    "-f", str(path)], check=True, timeout=30)
    return path


@dataclass
class Server:
    root: Path
    profile: dict[str, Any]  # without any credential
    client_key: Path  # authorized on the server, no passphrase
    locked_key: Path  # authorized too, with PASSPHRASE
    web: str


PASSPHRASE = "correct horse battery"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    program = sftp_server_path()
    assert program is not None, "OpenSSH's sftp-server is not installed (Debian: openssh-sftp-server)"
    keys = tmp_path / "client-keys"
    plain, locked = keygen(keys, "id_plain"), keygen(keys, "id_locked", PASSPHRASE)
    authorized = [Path(f"{k}.pub").read_bytes() for k in (plain, locked)]
    host = HostKey.make(tmp_path / "host-keys")
    root = tmp_path / "store"
    ssh = OpenSshSftp(root, host, program, authorized_keys=authorized).start()
    web = WebServer(root)
    known = host.known_hosts(tmp_path / "known_hosts", ssh.port)
    profile = {"provider": "sftp", "host": "127.0.0.1", "port": ssh.port, "username": USER,
               "root": str(root / "img"), "known_hosts": str(known), "public_base_url": f"{web.url}/img"}
    try:
        yield Server(root / "img", profile, plain, locked, web.url)
    finally:
        web.stop()
        ssh.stop()


def upload_one(home: Home, d: Daemon, name: str) -> tuple[dict[str, Any], bytes, float]:
    f = make_image(home.pictures / name, 200_000, seed=len(name))
    started = time.monotonic()
    task = d.wait_task(d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"], timeout=60)
    return task, f.read_bytes(), time.monotonic() - started


def assert_arrived(server: Server, task: dict[str, Any], content: bytes) -> None:
    assert task["status"] == "completed", task["error"]
    assert (server.root / task["key"]).read_bytes() == content
    with urllib.request.urlopen(task["url"], timeout=30) as resp:
        assert resp.read() == content


def no_home_keys(tmp_path: Path) -> dict[str, str]:
    """The daemon's HOME without ~/.ssh keys: only what the profile (or the agent) offers can log in."""
    home = tmp_path / "user-home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home)}


@pytest.mark.parametrize("locked", [False, True], ids=["no-passphrase", "passphrase"])
def test_a_key_file_logs_in(home: Home, server: Server, tmp_path: Path, locked: bool,
                            daemon_factory: Callable[..., Daemon]) -> None:
    key = {"key_file": str(server.locked_key), "key_passphrase": PASSPHRASE} if locked else \
        {"key_file": str(server.client_key)}
    home.write_config({"vps": {**server.profile, **key}}, default="vps", transfers=FAST)
    env = pixlift_env(home, **no_home_keys(tmp_path))
    env.pop("SSH_AUTH_SOCK", None)
    d = daemon_factory(env=env)
    task, content, _ = upload_one(home, d, "by-key.jpg")
    assert_arrived(server, task, content)
    check = d.rpc("check_profile", {"profile": "vps"})
    assert check["ok"] is True, check
    assert PASSPHRASE not in str(d.rpc("list_profiles")) and PASSPHRASE not in d.log()


@pytest.mark.parametrize("given", ["not the passphrase", None], ids=["wrong", "missing"])
def test_a_wrong_or_missing_passphrase_is_invalid_credentials(home: Home, server: Server, tmp_path: Path,
                                                              given: str | None,
                                                              daemon_factory: Callable[..., Daemon]) -> None:
    key: dict[str, str] = {"key_file": str(server.locked_key)}
    if given is not None:
        key["key_passphrase"] = given
    home.write_config({"vps": {**server.profile, **key}}, default="vps", transfers=FAST)
    d = daemon_factory(env=pixlift_env(home, **no_home_keys(tmp_path)))
    task, _, took = upload_one(home, d, "locked.jpg")
    assert task["status"] == "failed" and task["error"]["code"] == "invalid_credentials", task
    message = task["error"]["message"]
    if given is None:  # the fix is to give it, not to change the key file
        assert "protected by a passphrase" in message and "set key_passphrase" in message, message
    else:
        assert "cannot be decrypted" in message and "key_passphrase" in message
        assert given not in str(task) and given not in d.log()
    assert took < 10 and task["attempts"] == 1
    assert files_under(server.root) == {}


def test_a_key_the_server_does_not_know_fails_within_seconds(home: Home, server: Server, tmp_path: Path,
                                                             daemon_factory: Callable[..., Daemon]) -> None:
    stranger = keygen(tmp_path / "other-keys", "id_stranger")
    home.write_config({"vps": {**server.profile, "key_file": str(stranger)}}, default="vps", transfers=FAST)
    d = daemon_factory(env=pixlift_env(home, **no_home_keys(tmp_path)))
    task, _, took = upload_one(home, d, "stranger.jpg")
    assert task["status"] == "failed" and task["error"]["code"] == "invalid_credentials", task
    assert "key_file" in task["error"]["message"], task["error"]
    assert took < 10 and task["attempts"] == 1, (took, task["attempts"])
    check = d.rpc("check_profile", {"profile": "vps"})
    assert check["ok"] is False and check["code"] == "invalid_credentials"
    assert files_under(server.root) == {}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of its own (in the foreground, so that it is stopped by its pid)."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(sock), 10, message="ssh-agent's socket")
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_ssh_agent_logs_in_when_neither_password_nor_key_file_is_set(
        home: Home, server: Server, agent: str, tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"vps": server.profile}, default="vps", transfers=FAST)
    added = subprocess.run(["ssh-add", str(server.client_key)], env={**os.environ, "SSH_AUTH_SOCK": agent},
                           capture_output=True, text=True, timeout=30)
    assert added.returncode == 0, added.stderr
    without = pixlift_env(home, **no_home_keys(tmp_path))
    without.pop("SSH_AUTH_SOCK", None)
    d = daemon_factory(env=without)  # no agent: nothing to log in with, and the message says what to set
    task, _, took = upload_one(home, d, "no-agent.jpg")
    assert task["status"] == "failed" and task["error"]["code"] == "invalid_credentials", task
    assert "SSH agent" in task["error"]["message"] and took < 10
    d.stop()

    d = daemon_factory(env=pixlift_env(home, SSH_AUTH_SOCK=agent, **no_home_keys(tmp_path)))
    task, content, _ = upload_one(home, d, "by-agent.jpg")
    assert_arrived(server, task, content)
    assert d.rpc("check_profile", {"profile": "vps"})["ok"] is True
