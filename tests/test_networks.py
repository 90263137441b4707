"""The networks users have (issue 22): a corporate proxy, a company certificate authority, a bucket in another
region than the profile says, an IPv6 address that drops packets. Each against real parts (tests/networks.py):
Debian's tinyproxy, certificates made by openssl, the S3 test server behind fronts on loopback, and the real
daemon and CLI as subprocesses. Uploads go the lean path (PUTs, parts) and the client's (multipart control,
listing), and ``pixlift config check`` must go where they go.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AK, SK, Daemon, Home, S3Server, free_port, make_image, pixlift_env
from netproxy import Proxy
from networks import CA, DroppingV6, RegionFront, Tinyproxy, TlsFront, can_view_hosts, hosts_view, start_tinyproxy

MiB = 1024 * 1024
CORP = "s3.corp.pixlift.test"  # resolves at the proxy only
SIZES = (3_000, 300_000, 6 * MiB + 11)  # lean PUTs, and a multipart upload (client calls + lean parts)



@pytest.fixture(autouse=True, scope="module")
def _own_hosts_file() -> None:
    """Names that only the proxy resolves need a hosts file of the daemon's own: never a reason to skip."""
    assert can_view_hosts(), ("these tests need unshare and mount namespaces (root; Debian's util-linux, which "
                              "scripts/test.sh installs)")


def profile(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "s3", "bucket": bucket, "endpoint_url": endpoint, "region": "us-east-1",
            "access_key_id": AK, "secret_access_key": SK, "addressing_style": "path", **extra}


def configure(home: Home, table: dict[str, Any], **transfers: Any) -> None:
    home.write_config({"corp": table}, default="corp", transfers={"outage_tolerance_s": 600, **transfers})


def config_check(home: Home, env: dict[str, str] | None = None, wrap: list[str] | None = None) -> tuple[int, str]:
    done = subprocess.run([*(wrap or []), sys.executable, "-m", "pixlift", "config", "check"],
                          env=pixlift_env(home, **(env or {})), capture_output=True, text=True, timeout=90, check=False)
    return done.returncode, done.stdout + done.stderr


def upload_all(d: Daemon, home: Home, sizes: tuple[int, ...] = SIZES, timeout: float = 60) -> list[dict[str, Any]]:
    files = [make_image(home.pictures / f"net {i}.jpg", n, seed=100 + i + n) for i, n in enumerate(sizes)]
    started = d.rpc("upload_images_batch", {"paths": [str(f) for f in files], "batch_size": 3})
    done = d.wait_batch(started["batch_id"], timeout=timeout)["tasks"]
    for task, f in zip(done, files, strict=True):
        assert task["status"] == "completed", task["error"]
        assert task["bytes_uploaded"] == f.stat().st_size
    return list(done)


def stored(server: S3Server, bucket: str, task: dict[str, Any]) -> bytes:
    return server.objects(bucket)[task["key"]].read_bytes()


@pytest.fixture
def corp_proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    proxy = start_tinyproxy(tmp_path / "tinyproxy", [("127.0.0.1", CORP)], free_port())
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("ca"))


# -- a corporate proxy ------------------------------------------------------------------------------------------
def test_behind_a_proxy_that_alone_resolves_the_store_every_request_goes_through_it(
        home: Home, s3_server: S3Server, corp_proxy: Tinyproxy, daemon_factory: Callable[..., Daemon]) -> None:
    """HTTP_PROXY with credentials, as a corporate machine has it: the check, the lean PUTs and parts (absolute
    form), the client's multipart calls all go through tinyproxy, the only one that can resolve the store's
    name; the proxy's password appears nowhere."""
    s3_server.bucket("corp")
    configure(home, profile(f"http://{CORP}:{s3_server.port}", "corp"))
    env = {"HTTP_PROXY": corp_proxy.url, "https_proxy": corp_proxy.url}
    code, out = config_check(home, env)
    assert code == 0, out
    assert f"through the proxy http://127.0.0.1:{corp_proxy.port}" in out
    d = daemon_factory(env=pixlift_env(home, **env))
    done = upload_all(d, home)
    for task, size in zip(done, SIZES, strict=True):
        assert len(stored(s3_server, "corp", task)) == size
    puts = [r for r in corp_proxy.requests() if r.startswith(f"PUT http://{CORP}:{s3_server.port}/corp/")]
    assert len(puts) >= 2 + 2  # two small files and two parts, in absolute form through the proxy
    assert any(r.startswith("POST ") for r in corp_proxy.requests())  # the client's multipart calls
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": corp_proxy.url}))
    with opener.open(done[0]["url"], timeout=30) as link:  # links work from the same network
        assert link.read() == stored(s3_server, "corp", done[0])
    d.stop()
    for text in (out, d.log()):
        assert corp_proxy.password not in text


def test_the_profile_proxy_key_wins_over_the_environment(home: Home, s3_server: S3Server,
                                                         corp_proxy: Tinyproxy) -> None:
    s3_server.bucket("corp")
    dead = f"http://127.0.0.1:{free_port()}"
    configure(home, profile(f"http://{CORP}:{s3_server.port}", "corp", proxy=corp_proxy.url))
    code, out = config_check(home, {"HTTP_PROXY": dead, "HTTPS_PROXY": dead})
    assert code == 0, out
    configure(home, profile(f"http://{CORP}:{s3_server.port}", "corp", proxy=""))  # "": none, whatever the env says
    started = time.monotonic()
    code, out = config_check(home, {"HTTP_PROXY": corp_proxy.url})
    assert code == 1 and CORP in out, out
    assert time.monotonic() - started < 20
    wrong = corp_proxy.url.replace(corp_proxy.password, "not-it")
    configure(home, profile(f"http://{CORP}:{s3_server.port}", "corp", proxy=wrong))
    code, out = config_check(home)
    assert code == 1 and "407" in out and "not-it" not in out, out


def test_https_through_the_proxy_tunnel_with_a_company_ca(home: Home, s3_server: S3Server, corp_proxy: Tinyproxy,
                                                          ca: CA, daemon_factory: Callable[..., Daemon]) -> None:
    """An https store behind the proxy: CONNECT tunnels, TLS inside them checked against the company's CA (the
    profile's ca_bundle), for the check, the lean path and the client alike."""
    s3_server.bucket("tunnel")
    cert, key = ca.issue("corp", dns=[CORP])
    front = TlsFront(s3_server.port, cert, key)
    try:
        configure(home, profile(f"https://{CORP}:{front.port}", "tunnel", proxy=corp_proxy.url,
                                ca_bundle=str(ca.cert)))
        code, out = config_check(home)
        assert code == 0, out
        d = daemon_factory()
        done = upload_all(d, home)
        assert [len(stored(s3_server, "tunnel", t)) for t in done] == list(SIZES)
        assert any(r.startswith(f"CONNECT {CORP}:{front.port}") for r in corp_proxy.requests())
        assert not any(r.startswith("PUT ") for r in corp_proxy.requests())  # the bytes went inside tunnels
    finally:
        front.stop()


# -- a company certificate authority ----------------------------------------------------------------------------
def test_an_untrusted_certificate_fails_in_seconds_and_trust_set_the_aws_way_works(
        home: Home, s3_server: S3Server, ca: CA, tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    s3_server.bucket("tls")
    cert, key = ca.issue("localhost", dns=["localhost"])
    front = TlsFront(s3_server.port, cert, key)
    try:
        configure(home, profile(f"https://localhost:{front.port}", "tls"))
        code, out = config_check(home)
        assert code == 1 and "not trusted" in out and "localhost" in out and "AWS_CA_BUNDLE" in out, out

        d = daemon_factory()
        img = make_image(home.pictures / "untrusted.jpg", 20_000, seed=7)
        started = time.monotonic()
        task = d.rpc("upload_images", {"paths": [str(img)]})["tasks"][0]
        failed = d.wait_task(task["task_id"], "failed", timeout=30)
        took = time.monotonic() - started
        print(f"untrusted certificate: failed in {took:.2f} s")
        assert failed["error"]["code"] == "certificate_untrusted", failed["error"]
        message = failed["error"]["message"]
        assert "localhost" in message and "not trusted" in message
        assert "ca_bundle in [profiles.corp]" in message and "AWS_CA_BUNDLE" in message
        assert took < 5
        d.stop()

        # Trusted the AWS ways: AWS_CA_BUNDLE, ca_bundle in the AWS config file, the profile's ca_bundle.
        d = daemon_factory(env=pixlift_env(home, AWS_CA_BUNDLE=str(ca.cert)))
        done = upload_all(d, home, SIZES[:2])
        assert [len(stored(s3_server, "tls", t)) for t in done] == list(SIZES[:2])
        d.stop()
        aws_config = tmp_path / "aws-config"
        aws_config.write_text(f"[default]\nca_bundle = {ca.cert}\n")
        assert config_check(home, {"AWS_CONFIG_FILE": str(aws_config)})[0] == 0
        configure(home, profile(f"https://localhost:{front.port}", "tls", ca_bundle=str(ca.cert)))
        assert config_check(home)[0] == 0

        # The right authority, the wrong name: said as such.
        configure(home, profile(f"https://127.0.0.1:{front.port}", "tls", ca_bundle=str(ca.cert)))
        code, out = config_check(home)
        assert code == 1 and "names another host" in out and "127.0.0.1" in out, out
    finally:
        front.stop()


# -- a bucket in another region ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["400", "301", "307"])
def test_a_bucket_in_another_region_is_signed_for_its_own_and_the_check_says_so(
        mode: str, home: Home, s3_server: S3Server, daemon_factory: Callable[..., Daemon]) -> None:
    """The store answers as AWS does to a request signed for the wrong region. The region is learned from a HEAD
    of the bucket before any body goes, so no body is sent twice to learn it; links are signed for it."""
    s3_server.bucket(f"region{mode}")
    front = RegionFront(s3_server.port, "eu-west-3", mode).start()
    try:
        configure(home, profile(front.endpoint, f"region{mode}"))
        code, out = config_check(home)
        assert code == 0 and 'is in region eu-west-3, not us-east-1: set region = "eu-west-3"' in out, out
        front.seen.clear()
        d = daemon_factory()
        done = upload_all(d, home)
        assert [len(stored(s3_server, f"region{mode}", t)) for t in done] == list(SIZES)
        assert [(s.method, s.path) for s in front.wrong()] == [("HEAD", f"/region{mode}")], front.wrong()
        assert all(s.length == 0 for s in front.wrong())
        for task in done:
            assert "%2Feu-west-3%2Fs3%2F" in task["url"]
        with urllib.request.urlopen(done[0]["url"], timeout=30) as link:
            assert link.read() == stored(s3_server, f"region{mode}", done[0])
    finally:
        front.stop()


# -- an IPv6 address that drops packets -------------------------------------------------------------------------
def test_a_name_whose_ipv6_address_drops_packets_connects_over_ipv4_at_once(
        home: Home, s3_server: S3Server, tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    """The daemon resolves ``dual.pixlift.test`` to ``::1`` first, then ``127.0.0.1`` (its own /etc/hosts in a
    mount namespace: the C library's real resolver, the one thing not real being that the name is not in the
    DNS, which this machine has none of). On ``[::1]`` the port's queue is full, so the kernel drops the SYNs:
    real dropped packets. With happy eyeballs, IPv4 is tried 250 ms later and every upload goes through, instead
    of waiting out ``connect_timeout_s`` per connection."""
    s3_server.bucket("dual")
    v4 = Proxy(s3_server.port).start()  # 127.0.0.1:P, the port the v6 address drops packets on
    v6 = DroppingV6(v4.port)
    try:
        assert v6.drops(), "the IPv6 address must drop connection attempts for this test to mean anything"
        wrap = hosts_view(tmp_path / "hosts", [("::1", "dual.pixlift.test"), ("127.0.0.1", "dual.pixlift.test")])
        configure(home, profile(f"http://dual.pixlift.test:{v4.port}", "dual"), connect_timeout_s=20)
        started = time.monotonic()
        code, out = config_check(home, wrap=wrap)
        assert code == 0, out
        assert time.monotonic() - started < 15
        d = daemon_factory(wrap=wrap)
        started = time.monotonic()
        done = upload_all(d, home, timeout=60)
        took = time.monotonic() - started
        print(f"IPv6-first name: {len(done)} uploads in {took:.2f} s")
        assert took < 10  # one connect timeout alone would be 20 s
        assert [len(stored(s3_server, "dual", t)) for t in done] == list(SIZES)
    finally:
        v6.close()
        v4.stop()


# -- the decisions, next to botocore's own ----------------------------------------------------------------------
NETWORK_ENV = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "AWS_CA_BUNDLE",
               "REQUESTS_CA_BUNDLE", "AWS_CONFIG_FILE", "AWS_PROFILE")


@pytest.mark.parametrize(("env", "keys"), [
    ({"HTTPS_PROXY": "http://u%40corp:p%3Ass@proxy.corp:3128", "HTTP_PROXY": "http://other:1"}, {}),
    ({"https_proxy": "proxy.corp:3128"}, {}),  # no scheme, lower case
    ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".example.com"}, {}),
    ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "other.org"}, {}),
    ({"HTTPS_PROXY": "http://env.corp:3128"}, {"proxy": "http://key.corp:8080"}),
    ({"HTTPS_PROXY": "http://env.corp:3128"}, {"proxy": ""}),
    ({"AWS_CA_BUNDLE": "CA"}, {}),
    ({"REQUESTS_CA_BUNDLE": "CA"}, {}),
    ({"AWS_CONFIG_FILE": "CONFIG"}, {}),
    ({"AWS_CA_BUNDLE": "CA"}, {"ca_bundle": "CA"}),
    ({"AWS_CA_BUNDLE": "CA"}, {"verify": False}),
    ({}, {}),  # certifi
])
async def test_the_lean_path_takes_the_network_botocore_decides(
        env: dict[str, str], keys: dict[str, Any], ca: CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxies and the trust the lean path uses are those botocore decides for the same settings: a plain
    boto3 client (as awscli has) is asked what it would do, with the profile's keys as botocore's arguments."""
    import boto3
    from botocore.config import Config
    from pixlift.core.config import TransferSettings
    from pixlift.providers.network import tls_context
    from pixlift.providers.s3 import S3Provider
    from pixlift.providers.s3_kind import S3Profile

    aws_config = tmp_path / "aws-config"
    aws_config.write_text(f"[default]\nca_bundle = {ca.cert}\n")
    for name in NETWORK_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, {"CA": str(ca.cert), "CONFIG": str(aws_config)}.get(value, value))
    keys = {k: str(ca.cert) if v == "CA" else v for k, v in keys.items()}
    endpoint = "https://store.example.com:9000"
    provider = S3Provider(S3Profile(name="n", bucket="b", endpoint_url=endpoint, region="us-east-1",
                                    access_key_id=AK, secret_access_key=SK, addressing_style="path", **keys),
                          TransferSettings())
    try:
        await provider.client()
        net = provider.network
        assert net is not None
        proxy = keys.get("proxy")
        plain = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                               aws_access_key_id=AK, aws_secret_access_key=SK,
                                               verify=False if keys.get("verify") is False else keys.get("ca_bundle"),
                                               config=Config(proxies=None if proxy is None else
                                                             ({"http": proxy, "https": proxy} if proxy else {})))
        session = plain._endpoint.http_session
        url = f"{endpoint}/b/photo.jpg"
        assert net.verify == session._verify
        assert net.proxy_url(url) == session._proxy_config.proxy_url_for(url)
        lean = net.proxy_for(url)
        if lean is None:
            assert not session._proxy_config.proxy_url_for(url)
        else:
            expected = session._proxy_config.proxy_headers_for(session._proxy_config.proxy_url_for(url))
            assert lean.authorization == expected.get("Proxy-Authorization")
            assert "@" not in lean.shown and "p%3Ass" not in lean.shown
        if net.verify is not False:
            ours = tls_context(net.verify)
            assert ours is not None and ours.check_hostname and ours.get_ca_certs() == net.tls.get_ca_certs()  # type: ignore[union-attr]
    finally:
        await provider.close()


def test_retry_after_on_a_503_is_kept_for_the_wait() -> None:
    from email.utils import formatdate

    from pixlift.core.config import TransferSettings
    from pixlift.engine.worker import asked_wait
    from pixlift.errors import TransientStorageError
    from pixlift.providers.http1 import Answer
    from pixlift.providers.s3 import S3Provider
    from pixlift.providers.s3_kind import S3Profile
    from pixlift.providers.s3_wire import StoreRefused, refusal, retry_after

    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert 25 < (retry_after(formatdate(time.time() + 30, usegmt=True)) or 0) <= 30
    doc = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    refused = refusal(Answer(503, {"retry-after": "7"}, doc), "us-east-1")
    assert isinstance(refused, StoreRefused) and refused.reply.retry_after_s == 7.0
    provider = S3Provider(S3Profile(name="n", bucket="b", endpoint_url="http://127.0.0.1:9"), TransferSettings())
    error = provider.translate(refused)
    assert isinstance(error, TransientStorageError) and error.code == "server_error"
    assert asked_wait(error) == 7.0


async def test_the_clients_path_refuses_the_same_certificates_as_the_lean_path(s3_server: S3Server, ca: CA) -> None:
    """When the client sends the requests (multipart calls, listings, or every request when the lean path is
    off), the same context decides: untrusted fails as ``certificate_untrusted`` at once, a name mismatch says
    so (aiobotocore's own session would check neither the name nor, through a proxy, the certificate)."""
    from pixlift.core.config import TransferSettings
    from pixlift.errors import CertificateUntrusted
    from pixlift.providers.s3 import S3Provider
    from pixlift.providers.s3_kind import S3Profile

    s3_server.bucket("client-tls")
    cert, key = ca.issue("client-localhost", dns=["localhost"])
    front = TlsFront(s3_server.port, cert, key)
    cases = [(f"https://localhost:{front.port}", None, "is not trusted"),
             (f"https://127.0.0.1:{front.port}", str(ca.cert), "names another host"),
             (f"https://localhost:{front.port}", str(ca.cert), None)]
    try:
        for endpoint, bundle, said in cases:
            provider = S3Provider(S3Profile(name="c", bucket="client-tls", endpoint_url=endpoint, region="us-east-1",
                                            access_key_id=AK, secret_access_key=SK, addressing_style="path",
                                            ca_bundle=bundle), TransferSettings())
            provider._lean = False  # the client's path alone
            try:
                started = time.monotonic()
                if said is None:
                    assert "reachable" in await provider.check()
                    continue
                with pytest.raises(CertificateUntrusted) as info:
                    await provider.check()
                assert time.monotonic() - started < 5
                assert said in info.value.message and info.value.code == "certificate_untrusted"
            finally:
                await provider.close()
    finally:
        front.stop()
