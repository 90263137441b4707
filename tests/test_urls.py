"""upload_urls: images fetched from the web into the store, and no URL that reaches into the user's own machine
or network. Against a real local HTTP server (which is loopback, so it is refused until allowed), and against a
namespaced world (``ssrf_world.py``) where the same server is also a public address, so that every form of a
non-global address is tried directly and behind a redirect from an allowed server, by the real daemon with
``allow_private_urls = false``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest
import ssrf_world
from conftest import Daemon, Home, RpcFailure, pixlift_env
from pixlift.core.config import SecuritySettings
from pixlift.files.spool import Spool
from pixlift.intake.fetch import UrlsRefused, fetch_all, refused_address
from pixlift.intake.ssrf import checking_connector, refusal_in
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
    # full-width digits and ideographic dots are 127.0.0.1 to the HTTP client, and fetched as such when allowed
    urls = [web.url("/cat.png"), web.url("/hop"),
            web.url("/cat.png", "１２７.０.０.１"), web.url("/cat.png", "127。0。0。1")]
    started = d.rpc("upload_urls", {"urls": urls})
    done = d.wait_batch(started["batch_id"])["tasks"]
    for task in done:
        assert task["status"] == "completed" and task["source"] == "url", task
        assert (home.root / "files" / task["key"]).read_bytes() == PNG
    assert [t["name"] for t in done] == ["cat.png"] * 4
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


async def test_the_connector_itself_refuses_what_the_url_check_never_saw(web: Web) -> None:
    """No path around the check: a session given the checking connector and a URL that no one judged before
    (a literal IP, the full-width form, a name) still never reaches the server."""
    async with aiohttp.ClientSession(connector=checking_connector(refused_address)) as session:
        for url in (web.url("/cat.png"), web.url("/cat.png", "１２７.０.０.１"), web.url("/cat.png", "localhost"),
                    web.url("/cat.png", "[::ffff:127.0.0.1]")):
            with pytest.raises(aiohttp.ClientError) as info:
                await session.get(url)
            why = refusal_in(info.value)
            assert why is not None and "a loopback address" in why and "allow_private_urls" in why, (url, why)
    assert web.hits == []


# Every form of an address that is not globally routable, and the kind its refusal must name. The world's
# server listens on port 80 of every address, so a form that got through would be answered, and seen.
FORMS = [
    ("http://１２７.０.０.１/cat.png", "a loopback address"),  # full-width digits
    ("http://127。0。0。1/cat.png", "a loopback address"),  # ideographic full stops
    ("http://127．0．0．1/cat.png", "a loopback address"),  # full-width full stops
    ("http://127｡0｡0｡1/cat.png", "a loopback address"),  # half-width ideographic full stops
    ("http://①②⑦.⓪.⓪.①/cat.png", "a loopback address"),  # circled digits
    ("http://１６９.２５４.１６９.２５４/latest/meta-data/", "a link-local address"),  # the cloud metadata address
    ("http://１０.０.０.１/cat.png", "a private address"),
    ("http://[::ffff:127.0.0.1]/cat.png", "a loopback address"),  # IPv4-mapped
    ("http://[::127.0.0.1]/cat.png", "a loopback address"),  # IPv4-compatible
    ("http://[64:ff9b::127.0.0.1]/cat.png", "a loopback address"),  # NAT64
    ("http://[64:ff9b::a00:1]/cat.png", "a private address"),
    ("http://[2002:7f00:1::1]/cat.png", "a loopback address"),  # 6to4
    ("http://[2002:c0a8:101::1]/cat.png", "a private address"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/cat.png", "a loopback address"),  # Teredo, client 127.0.0.1
    ("http://100.100.100.100/cat.png", "not globally routable"),  # carrier-grade NAT (Tailscale's resolver)
    ("http://１００.６４.０.１/cat.png", "not globally routable"),
    ("http://[fec0::1]/cat.png", "a private address"),  # site-local
    ("http://[fc00::1]/cat.png", "a private address"),
    ("http://[fe80::1]/cat.png", "a link-local address"),
    ("http://0.0.0.0/cat.png", "not globally routable"),
    ("http://224.0.0.1/cat.png", "a multicast address"),
    ("http://[ff02::1]/cat.png", "a multicast address"),
    ("http://240.0.0.1/cat.png", "a reserved address"),
    ("http://198.18.0.1/cat.png", "not globally routable"),
    ("http://2130706433/cat.png", "a loopback address"),  # legacy IPv4 forms
    ("http://0x7f.1/cat.png", "a loopback address"),
    ("http://127.1/cat.png", "a loopback address"),
    ("http://ℓocalhost/cat.png", "this machine"),
    ("http://rebind.example/cat.png", "a loopback address"),  # names: judged by what they resolve to
    ("http://lan.example/cat.png", "a private address"),
    ("http://mixed.example/cat.png", "a private address"),  # one public address and one private: refused whole
]


def test_no_form_of_a_non_global_address_is_fetched_directly_or_behind_a_redirect() -> None:
    public = [f"http://{ssrf_world.PUBLIC}/cat.png", "http://images.example/cat.png"]
    direct = [url for url, _ in FORMS]
    hops = [f"http://{ssrf_world.PUBLIC}/to?{urllib.parse.quote(url, safe='')}" for url in direct]
    world = ssrf_world.run({"png_hex": PNG.hex(), "calls": [public, direct, hops]})
    fetched, refused_direct, refused_hops = world["calls"]

    # the world is real: a public address and a public name are fetched with allow_private_urls = false
    assert [t["status"] for t in fetched["tasks"]] == ["completed", "completed"], fetched
    assert all(bytes.fromhex(t["bytes"]) == PNG for t in fetched["tasks"])
    assert fetched["hits"] == ["/cat.png", "/cat.png"]

    for answer, urls, redirected in ((refused_direct, direct, False), (refused_hops, hops, True)):
        assert answer.get("code") == -32001, answer
        reasons = {r["url"]: r["reason"] for r in answer["refused"]}
        assert set(reasons) == set(urls)
        for url, (form, kind) in zip(urls, FORMS, strict=True):
            why = reasons[url]
            assert kind in why and "allow_private_urls = true" in why, (form, why)
            assert ("it redirects to " + form) in why if redirected else "redirects" not in why, (form, why)
    assert refused_direct["hits"] == []  # nothing was asked of the server
    assert sorted(urllib.parse.unquote(h) for h in refused_hops["hits"]) == sorted(f"/to?{url}" for url in direct)
