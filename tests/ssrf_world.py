"""A small internet of its own for the SSRF tests, run inside new network and mount namespaces (``run``).

In there the loopback device also holds a globally routable address (``PUBLIC``), so the real daemon, with
``allow_private_urls = false``, may fetch from an image server that listens on every address at port 80: as
``PUBLIC`` it is a server on the internet, as ``127.0.0.1`` it is this machine. ``/etc/hosts`` is replaced (in
the mount namespace only) by names that resolve to one or the other. The server redirects ``/to?<url>`` to that
URL, sending the ``Location`` header in UTF-8 as it was given, so each form of address is tried directly and
behind a redirect from an allowed server. Nothing here is visible outside the namespaces.

Run as ``python ssrf_world.py SPEC.json OUT.json`` inside the namespaces; ``run`` does that from a test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PUBLIC = "93.184.216.34"
HOSTS = {"images.example": PUBLIC, "rebind.example": "127.0.0.1", "lan.example": "192.168.1.20",
         "mixed.example": f"{PUBLIC} 10.0.0.7"}


def run(spec: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """Run the world with ``spec`` (``{"png_hex", "calls": [[urls...], ...], "allow_private_urls"}``) and
    return what each call answered and what the server was asked."""
    prefix = ["unshare", "--net", "--mount"]
    if os.geteuid() != 0:  # as another user, a user namespace makes us root inside the new ones
        prefix = ["unshare", "--user", "--map-root-user", "--net", "--mount"]
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp, "spec.json"), Path(tmp, "out.json")
        spec_path.write_text(json.dumps(spec))
        done = subprocess.run([*prefix, sys.executable, __file__, str(spec_path), str(out_path)],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0 or not out_path.exists():
            raise AssertionError(f"the namespaced world failed ({done.returncode}): {done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out_path.read_text())
        return result


def _network(tmp: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{PUBLIC}/32", "dev", "lo"], check=True)
    hosts = tmp / "hosts"
    lines = ["127.0.0.1 localhost", "::1 localhost"]
    for name, addrs in HOSTS.items():
        lines += [f"{a} {name}" for a in addrs.split()]
    hosts.write_text("\n".join(lines) + "\n")
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)


class _Server:
    def __init__(self, png: bytes) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                if self.path == "/cat.png":
                    head, body = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n", png
                elif self.path.startswith("/to?"):
                    where = urllib.parse.unquote(self.path[4:])
                    head, body = b"HTTP/1.1 302 Found\r\nLocation: " + where.encode() + b"\r\n", b""
                else:
                    head, body = b"HTTP/1.1 404 Not Found\r\n", b""
                self.wfile.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("0.0.0.0", 80), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _main(spec_path: str, out_path: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import Home, RpcFailure, start_daemon

    spec = json.loads(Path(spec_path).read_text())
    tmp = Path(tempfile.mkdtemp(prefix="ssrf-world-"))
    try:
        _network(tmp)
        server = _Server(bytes.fromhex(spec["png_hex"]))
        home = Home(tmp / "home", tmp / "Pictures")
        home.root.mkdir()
        home.pictures.mkdir()
        home.write_config({"local": {"provider": "local"}}, default="local",
                          security={"allow_private_urls": bool(spec.get("allow_private_urls", False))})
        d = start_daemon(home)
        calls = []
        try:
            for urls in spec["calls"]:
                before = len(server.hits)
                try:
                    started = d.rpc("upload_urls", {"urls": urls})
                    tasks = d.wait_batch(started["batch_id"])["tasks"]
                    answer: dict[str, Any] = {"tasks": [
                        {"status": t["status"], "key": t["key"],
                         "bytes": (home.root / "files" / t["key"]).read_bytes().hex() if t["key"] else None}
                        for t in tasks]}
                except RpcFailure as exc:
                    answer = {"code": exc.code, "refused": exc.data}
                calls.append({**answer, "hits": server.hits[before:]})
        finally:
            d.stop()
            server.server.shutdown()
        Path(out_path).write_text(json.dumps({"calls": calls}))
    finally:
        subprocess.run(["umount", "/etc/hosts"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
