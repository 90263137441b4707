"""The installers, run for real in a throwaway HOME.

Linux: install-linux.sh installs a wheel built from this checkout into its own virtual environment (with the
system's site-packages visible, so pixlift's dependencies come from the test environment: fast, no download),
writes the systemd user unit and the autostart entry; both are validated by the tools the desktops use
(systemd-analyze, desktop-file-validate) and the command they start is started. Then uninstall-linux.sh removes
them and keeps the user's data. macOS: the LaunchAgent template and the plist install-macos.sh renders parse
with plistlib and name the installed program. Windows: pwsh is not installed here, so the scripts are read.

CI needs (apt): shellcheck desktop-file-utils systemd (for systemd-analyze), libglib2.0-bin and
gnome-settings-daemon-common (gsettings and GNOME's shortcut schema). No extra pip packages.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import plistlib
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import wait_until

REPO = Path(__file__).resolve().parent.parent
INSTALLER = REPO / "installer"


@dataclass
class UserHome:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "cfg"

    @property
    def data(self) -> Path:
        return self.root / "share"

    @property
    def unit(self) -> Path:
        return self.config / "systemd" / "user" / "pixlift.service"

    @property
    def autostart(self) -> Path:
        return self.config / "autostart" / "pixlift.desktop"

    @property
    def venv(self) -> Path:
        return self.data / "pixlift-venv"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PIXLIFT_HOME", "PIXLIFT_VENV", "PIXLIFT_PYTHON")}
        env.update(HOME=str(self.root), XDG_CONFIG_HOME=str(self.config), XDG_DATA_HOME=str(self.data), **extra)
        return env

    def run(self, script: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["sh", str(INSTALLER / script), *args], env=self.env(**extra), capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{script} {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture
def user(tmp_path: Path) -> UserHome:
    root = tmp_path / "user home"  # a space: every path the scripts write must be quoted
    root.mkdir()
    return UserHome(root)


def exec_line(text: str, key: str) -> list[str]:
    """The command of ExecStart= (unit) or Exec= (desktop entry); both formats quote the same way here."""
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{key}=")]
    return shlex.split(line.split("=", 1)[1].replace("%%", "%"))


def desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text())
    return parser["Desktop Entry"]


def serve_briefly(command: list[str], home: Path) -> None:
    """Start what the unit / autostart entry starts (headless, on a free port), call it, stop it with SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PIXLIFT_HOME"] = str(home)
    proc = subprocess.Popen([*command, "--no-tray", "--port", "0"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        info = wait_until(lambda: proc.poll() is None and (home / "daemon.json").exists() and
                          json.loads((home / "daemon.json").read_text()), 30, message="the installed daemon")
        assert info["pid"] == proc.pid
        status = subprocess.run([command[0], "status"], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and f"running at {info['url']}" in status.stdout, status
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not (home / "daemon.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- Linux -----------------------------------------------------------------------------------------------------------
def test_linux_install_start_uninstall(user: UserHome, wheel: Path, tmp_path: Path) -> None:
    out = user.run("install-linux.sh", "--python", sys.executable, "--no-start", str(wheel)).stdout
    assert "no systemd user manager here" in out  # a container: the autostart entry is what starts it

    # the program: its own environment, not this checkout's editable install
    pixlift = user.venv / "bin" / "pixlift"
    where = subprocess.run([str(user.venv / "bin" / "python"), "-c", "import pixlift; print(pixlift.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(user.venv), where
    version = subprocess.run([str(pixlift), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("pixlift ")
    assert (user.root / ".local" / "bin" / "pixlift").resolve() == pixlift.resolve()

    # the unit: valid for systemd, starts the installed pixlift
    unit = user.unit.read_text()
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verify = subprocess.run(["systemd-analyze", "--user", "verify", str(user.unit)], capture_output=True, text=True,
                            env=user.env(XDG_RUNTIME_DIR=str(runtime)), timeout=60, check=False)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    assert exec_line(unit, "ExecStart") == [str(pixlift), "serve"]
    assert "Restart=on-failure" in unit.splitlines()
    assert "WantedBy=graphical-session.target" in unit.splitlines()

    # the autostart entry: valid for desktops, starts the same command
    check = subprocess.run(["desktop-file-validate", str(user.autostart)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout
    entry = desktop_entry(user.autostart)
    assert entry["Type"] == "Application" and entry["Name"] == "pixlift"
    assert exec_line(user.autostart.read_text(), "Exec") == [str(pixlift), "serve"]
    assert "X-systemd-skip" not in entry  # no unit enabled here: the entry must not be skipped

    serve_briefly(exec_line(unit, "ExecStart"), tmp_path / "pixlift-home")

    # idempotent: a second run upgrades in place and writes the same files
    before = (user.unit.read_bytes(), user.autostart.read_bytes())
    user.run("install-linux.sh", "--python", sys.executable, "--no-start", str(wheel))
    assert (user.unit.read_bytes(), user.autostart.read_bytes()) == before

    # uninstall: unit, autostart, program and link gone; the user's data kept, unless --purge
    data = user.data / "pixlift"
    data.mkdir(parents=True)
    (data / "config.toml").write_text('[storage]\ndefault = "local"\n')
    out = user.run("uninstall-linux.sh").stdout
    assert not user.unit.exists() and not user.autostart.exists() and not user.venv.exists()
    assert not (user.root / ".local" / "bin" / "pixlift").exists()
    assert (data / "config.toml").exists() and "kept your pixlift data" in out
    user.run("uninstall-linux.sh")  # idempotent too
    user.run("uninstall-linux.sh", "--purge")
    assert not data.exists()


def test_linux_install_enables_the_unit_when_systemd_is_there(user: UserHome, wheel: Path, tmp_path: Path) -> None:
    """Containers have no systemd user manager; a systemctl on PATH that logs its calls stands in for one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl.log"
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n'
                         'case "$*" in *is-active*) exit 3 ;; esac\nexit 0\n')  # no graphical session running
    systemctl.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    out = user.run("install-linux.sh", "--python", sys.executable, str(wheel), PATH=path).stdout
    logged = calls.read_text().splitlines()
    assert "--user daemon-reload" in logged and "--user enable pixlift.service" in logged, logged
    assert "enabled the systemd user unit" in out and "starts at your next" in out
    entry = desktop_entry(user.autostart)
    assert entry["X-systemd-skip"] == "true" and entry["X-GNOME-HiddenUnderSystemd"] == "true"
    check = subprocess.run(["desktop-file-validate", str(user.autostart)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout

    user.run("uninstall-linux.sh", PATH=path)
    assert "--user disable --now pixlift.service" in calls.read_text().splitlines()
    assert not user.unit.exists() and not user.autostart.exists()


def test_linux_uninstall_stops_a_running_pixlift(user: UserHome, wheel: Path) -> None:
    user.run("install-linux.sh", "--python", sys.executable, "--no-start", str(wheel))
    home = user.data / "pixlift"  # where pixlift keeps its files when PIXLIFT_HOME is unset
    env = user.env()
    proc = subprocess.Popen([str(user.venv / "bin" / "pixlift"), "serve", "--no-tray", "--port", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (home / "daemon.json").exists(), 30, message="daemon.json under XDG_DATA_HOME")
        out = user.run("uninstall-linux.sh").stdout
        assert f"stopping pixlift (pid {proc.pid})" in out
        assert proc.wait(10) == 0  # SIGTERM: saved and exited cleanly
        assert (home / "token").exists()  # the data stays
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


MEDIA_KEYS = "org.gnome.settings-daemon.plugins.media-keys"
OURS = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/pixlift-clipboard/"
THEIRS = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/"


def gsettings(user: UserHome, *args: str) -> str:
    """GNOME's own settings tool, on a keyfile under the throwaway HOME instead of the session's dconf."""
    done = subprocess.run(["gsettings", *args], env=user.env(GSETTINGS_BACKEND="keyfile"), capture_output=True,
                          text=True, timeout=30, check=True)
    return done.stdout.strip()


def binding(user: UserHome, path: str, key: str) -> str:
    value = gsettings(user, "get", f"{MEDIA_KEYS}.custom-keybinding:{path}", key)
    return str(ast.literal_eval(value))


def install_in_a_terminal(user: UserHome, wheel: Path, answer: str) -> str:
    """install-linux.sh as a person runs it: stdin and stdout a terminal, answering its question."""
    main, side = os.openpty()
    proc = subprocess.Popen(["sh", str(INSTALLER / "install-linux.sh"), "--python", sys.executable, "--no-start",
                             str(wheel)], stdin=side, stdout=side, stderr=side,
                            env=user.env(GSETTINGS_BACKEND="keyfile"))
    os.close(side)
    out = b""
    try:
        while b"[y/N]" not in out:
            chunk = os.read(main, 4096)
            assert chunk, out.decode()
            out += chunk
        os.write(main, answer.encode() + b"\n")
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closes with the script
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(300) == 0, out.decode()
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    return out.decode()


def test_linux_install_binds_the_clipboard_hotkey_and_uninstall_removes_it(user: UserHome, wheel: Path) -> None:
    """GNOME keeps custom shortcuts in gsettings: the one the installer adds runs the installed pixlift, keeps the
    user's own shortcuts, and goes away with the uninstaller."""
    gsettings(user, "set", MEDIA_KEYS, "custom-keybindings", f"['{THEIRS}']")
    gsettings(user, "set", f"{MEDIA_KEYS}.custom-keybinding:{THEIRS}", "command", "'gnome-terminal'")
    pixlift = str(user.venv / "bin" / "pixlift")

    user.run("install-linux.sh", "--python", sys.executable, "--no-start", "--hotkey", "<Control><Alt>p", str(wheel),
             GSETTINGS_BACKEND="keyfile")
    assert ast.literal_eval(gsettings(user, "get", MEDIA_KEYS, "custom-keybindings")) == [THEIRS, OURS]
    assert shlex.split(binding(user, OURS, "command")) == [pixlift, "upload", "--clipboard", "--copy"]
    assert binding(user, OURS, "binding") == "<Control><Alt>p"
    assert binding(user, THEIRS, "command") == "gnome-terminal"

    out = user.run("uninstall-linux.sh", GSETTINGS_BACKEND="keyfile").stdout
    assert "removed the pixlift hotkey" in out
    assert ast.literal_eval(gsettings(user, "get", MEDIA_KEYS, "custom-keybindings")) == [THEIRS]
    assert binding(user, OURS, "command") == ""

    declined = install_in_a_terminal(user, wheel, "n")
    assert "no hotkey bound" in declined and OURS not in gsettings(user, "get", MEDIA_KEYS, "custom-keybindings")
    accepted = install_in_a_terminal(user, wheel, "y")
    assert "bound <Super><Shift>u to:" in accepted
    assert binding(user, OURS, "binding") == "<Super><Shift>u"
    assert ast.literal_eval(gsettings(user, "get", MEDIA_KEYS, "custom-keybindings")) == [THEIRS, OURS]

    quiet = user.run("install-linux.sh", "--python", sys.executable, "--no-start", str(wheel),
                     GSETTINGS_BACKEND="keyfile").stdout  # no terminal: no question, the binding stays
    assert "[y/N]" not in quiet and binding(user, OURS, "binding") == "<Super><Shift>u"


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in INSTALLER.glob("*.sh"))
    assert len(scripts) == 4
    done = subprocess.run(["shellcheck", "--shell=sh", *scripts], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} is not executable"


# -- macOS -----------------------------------------------------------------------------------------------------------
def test_macos_plist_names_the_installed_program(tmp_path: Path) -> None:
    template = plistlib.loads((INSTALLER / "com.pixlift.daemon.plist").read_bytes())
    assert template["Label"] == "com.pixlift.daemon"
    assert template["ProgramArguments"] == ["@PIXLIFT@", "serve"]

    home = tmp_path / "Jane & <Co>"  # characters XML must escape
    home.mkdir()
    done = subprocess.run(["sh", str(INSTALLER / "install-macos.sh"), "--print-plist"], capture_output=True,
                          env={**os.environ, "HOME": str(home)}, timeout=30, check=True)
    plist = plistlib.loads(done.stdout)
    assert plist["Label"] == "com.pixlift.daemon"
    assert plist["ProgramArguments"] == [f"{home}/Library/Application Support/pixlift-venv/bin/pixlift", "serve"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}  # restart after a crash, not after Quit
    assert plist["LimitLoadToSessionType"] == "Aqua"
    assert plist["StandardErrorPath"] == f"{home}/Library/Logs/pixlift.log"
    assert not list(home.iterdir()), "--print-plist must change nothing"

    for script in ("install-macos.sh", "uninstall-macos.sh"):
        text = (INSTALLER / script).read_text()
        assert "launchctl bootstrap" in text or "launchctl bootout" in text


# -- Windows ---------------------------------------------------------------------------------------------------------
def test_windows_scripts_start_pythonw_at_login() -> None:
    install = (INSTALLER / "install-windows.ps1").read_text()
    uninstall = (INSTALLER / "uninstall-windows.ps1").read_text()
    assert "pythonw.exe" in install and '"-m pixlift serve"' in install
    assert 'GetFolderPath("Startup")' in install and "CreateShortcut" in install
    assert "pixlift-venv" in install and "pixlift-venv" in uninstall
    assert "[switch]$Purge" in uninstall and "pixlift.lnk" in uninstall


# -- the docs ----------------------------------------------------------------------------------------------------------
def test_readme_covers_every_platform_and_script() -> None:
    readme = (INSTALLER / "README.md").read_text()
    for script in sorted(p.name for p in INSTALLER.iterdir() if p.suffix in (".sh", ".ps1")):
        assert script in readme, f"installer/README.md does not mention {script}"
    for topic in ("Linux", "macOS", "Windows", "start at login", "Stop", "Uninstall", "--purge", "-Purge"):
        assert topic.lower() in readme.lower(), topic

