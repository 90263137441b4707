"""upload_urls: images fetched from the web into the store, and no URL that reaches into the user's own machine
or network. Against a real local HTTP server (which is loopback, so it is refused until allowed)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Daemon, Home, RpcFailure, pixlift_env
from pixlift.core.config import SecuritySettings
from pixlift.files.spool import Spool
from pixlift.intake.fetch import UrlsRefused, fetch_all, refused_address
from test_ui import png_bytes

PNG = png_bytes((30, 160, 90))


class Web:
    def __init__(self) -> None:
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                web.hits.append(self.path)
                port = self.server.server_address[1]
                routes: dict[str, tuple[int, dict[str, str], bytes]] = {
                    "/cat.png": (200, {"Content-Type": "image/png"}, PNG),
                    "/hop": (302, {"Location": "/cat.png"}, b""),
                    "/loop": (302, {"Location": "/loop"}, b""),
                    "/alias": (302, {"Location": f"http://127.0.0.2:{port}/cat.png"}, b""),
                    "/note.txt": (200, {"Content-Type": "text/plain"}, b"not a picture at all"),
                    "/big.png": (200, {"Content-Type": "image/png"}, PNG + bytes(300_000)),
                }
                status, headers, body = routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.hits: list[str] = []
        self.server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def web() -> Iterator[Web]:
    w = Web()
    yield w
    w.server.shutdown()


def refused(d: Daemon, *urls: str) -> list[dict[str, str]]:
    listed = len(d.rpc("get_all_upload_progress")["tasks"])
    with pytest.raises(RpcFailure) as info:
        d.rpc("upload_urls", {"urls": list(urls)})
    assert info.value.code == -32001 and "nothing was queued" in str(info.value)
    assert len(d.rpc("get_all_upload_progress")["tasks"]) == listed  # no task for any of them
    return list(info.value.data)


def test_addresses_of_this_machine_and_its_network_are_refused_by_default(
        home: Home, web: Web, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"local": {"provider": "local"}}, default="local")
    d = daemon_factory()
    urls = [web.url("/cat.png"), web.url("/cat.png", "localhost"), web.url("/cat.png", "[::ffff:127.0.0.1]"),
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.png", "file:///etc/passwd"]
    reasons = {r["url"]: r["reason"] for r in refused(d, *urls)}
    assert set(reasons) == set(urls)
    assert "loopback" in reasons[urls[0]] and "allow_private_urls" in reasons[urls[0]]
    assert "this machine" in reasons[urls[1]] and "loopback" in reasons[urls[2]]
    assert "link-local" in reasons[urls[3]] and "private" in reasons[urls[4]]
    assert "http://" in reasons[urls[5]]
    assert web.hits == []  # nothing was even asked of the server


def test_with_private_urls_allowed_images_arrive_and_the_rest_is_refused(
        home: Home, web: Web, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"local": {"provider": "local"}}, default="local",
                      security={"allow_private_urls": True, "max_file_size_mb": 0.2})
    d = daemon_factory()
    started = d.rpc("upload_urls", {"urls": [web.url("/cat.png"), web.url("/hop")]})
    done = d.wait_batch(started["batch_id"])["tasks"]
    for task in done:
        assert task["status"] == "completed" and task["source"] == "url", task
        assert (home.root / "files" / task["key"]).read_bytes() == PNG
    assert [t["name"] for t in done] == ["cat.png", "cat.png"]
    assert "the limit is 209715 bytes" in refused(d, web.url("/big.png"))[0]["reason"]
    assert "not an image" in refused(d, web.url("/note.txt"))[0]["reason"]
    assert "redirects more than 5 times" in refused(d, web.url("/loop"))[0]["reason"]
    assert "HTTP 404" in refused(d, web.url("/nothing-here.png"))[0]["reason"]

    cli = subprocess.run([sys.executable, "-m", "pixlift", "upload", web.url("/cat.png")], env=pixlift_env(home),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert cli.returncode == 0, cli.stderr
    with urllib.request.urlopen(cli.stdout.strip(), timeout=30) as resp:
        assert resp.read() == PNG
    bad = subprocess.run([sys.executable, "-m", "pixlift", "upload", web.url("/note.txt")], env=pixlift_env(home),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "not an image" in bad.stderr and not bad.stdout


async def test_a_redirect_to_a_refused_address_is_refused_before_it_is_followed(web: Web, tmp_path: Path) -> None:
    """Every hop is checked: here the first address is allowed and the second is not (a public server that
    redirects into the LAN, made with two loopback addresses and a policy that tells them apart)."""
    def policy(ip: str) -> str | None:
        return "a refused address (127.0.0.2)" if ip == "127.0.0.2" else None

    spool = Spool(tmp_path / "spool")
    security = SecuritySettings(allowed_roots=(tmp_path,))
    fetched = await fetch_all([web.url("/cat.png")], security, spool, refuse=policy)
    assert Path(fetched[0].checked.path).read_bytes() == PNG
    with pytest.raises(UrlsRefused) as info:
        await fetch_all([web.url("/alias"), web.url("/cat.png")], security, spool, refuse=policy)
    assert "127.0.0.2" in info.value.refused[0]["reason"] and len(info.value.refused) == 1
    assert web.hits.count("/cat.png") == 2  # the redirect's target was never asked for
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [Path(fetched[0].checked.path).parent.name]
    assert refused_address("::ffff:10.1.2.3") is not None and refused_address("93.184.216.34") is None
    await asyncio.sleep(0)
