"""The wheel a user installs carries everything the editable tree has, and the daemon starts from it.

CI installs the tree editable; the README installs a wheel. A subpackage or a UI file that the packaging does
not name works here and is missing for users: this installs the wheel into a fresh virtual environment (with
this environment's site-packages on its path for the dependencies: fast, no download; their .pth files, this
checkout's editable install among them, are not read there) and serves from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

from conftest import REPO_ROOT, wait_until

# Imports every module of the installed package (from the wheel's files, never this checkout) and names them.
IMPORT_EVERY_MODULE = """
import importlib, pathlib, pkgutil, sys, pixlift
here = pathlib.Path(pixlift.__file__).parent
for m in pkgutil.walk_packages(pixlift.__path__, "pixlift."):
    if m.name.endswith("__main__"):
        continue
    mod = importlib.import_module(m.name)
    assert pathlib.Path(mod.__file__).is_relative_to(here), mod.__file__
    print(m.name)
print("pixlift")
"""


def test_the_wheel_has_every_module_and_ui_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tree = {f"pixlift/{p.relative_to(REPO_ROOT / 'daemon')}" for p in (REPO_ROOT / "daemon").rglob("*.py")}
    tree |= {f"pixlift/ui/{p.relative_to(REPO_ROOT / 'ui')}" for p in (REPO_ROOT / "ui").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert tree - names == set()


def test_the_installed_wheel_serves_the_api_and_every_ui_file(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "outer-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import pixlift; print(pixlift.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    every = subprocess.run([str(venv / "bin" / "python"), "-c", IMPORT_EVERY_MODULE], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
    assert every.returncode == 0, every.stderr[-2000:]
    imported = set(every.stdout.split())
    tree = {".".join(["pixlift", *p.relative_to(REPO_ROOT / "daemon").with_suffix("").parts]).removesuffix(".__init__")
            for p in (REPO_ROOT / "daemon").rglob("*.py") if p.stem != "__main__"}
    assert tree - imported == set() and len(imported) > 60

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PIXLIFT_HOME"] = str(home)
    proc = subprocess.Popen([str(venv / "bin" / "pixlift"), "serve", "--no-tray", "--port", "0"], env=env,
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        info = wait_until(lambda: proc.poll() is None and (home / "daemon.json").exists() and
                          json.loads((home / "daemon.json").read_text()), 30, message="the installed daemon")
        token = (home / "token").read_text().strip()
        body = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "list_provider_kinds"},
                           {"jsonrpc": "2.0", "id": 2, "method": "get_daemon_info"}]).encode()
        req = urllib.request.Request(f"{info['url']}/rpc", data=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            kinds, daemon = sorted(json.loads(resp.read()), key=lambda r: r["id"])
        assert {k["provider"] for k in kinds["result"]["kinds"]} == {"local", "s3", "oss", "webdav", "sftp"}
        assert daemon["result"]["pid"] == proc.pid
        for path in (REPO_ROOT / "ui").rglob("*"):
            if path.is_file() and path.suffix in (".js", ".css", ".svg", ".html"):
                rel = path.relative_to(REPO_ROOT / "ui").as_posix()
                with urllib.request.urlopen(f"{info['url']}/static/{rel}", timeout=10) as resp:
                    assert resp.status == 200 and resp.read() == path.read_bytes(), rel
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
