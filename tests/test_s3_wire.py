"""The lean S3 path (providers/s3_wire.py): PUTs and parts signed by botocore's signer, sent on pixlift's own
keep-alive connections (providers/http1.py).

Against real servers: rclone serve s3 (which checks every signature) and moto's server, each behind a real TCP
proxy that records the requests, so a test can tell which path carried the bytes: the lean path's requests
say ``pixlift/`` in their User-Agent, the client's ``Botocore``."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from conftest import AK, SK, S3Server, free_port, make_image, wait_until
from netproxy import Proxy
from pixlift.core.config import TransferSettings
from pixlift.errors import PermanentStorageError, TransferError
from pixlift.files.paths import CheckedFile, identity_of
from pixlift.files.sources import Source
from pixlift.providers.multipart import MultipartState
from pixlift.providers.s3 import S3Provider
from pixlift.providers.s3_kind import S3Profile
from pixlift.providers.s3_wire import Endpoint, signed_put, signing_key

MiB = 1024 * 1024
KEY = "odd names/ü + 100%~ (1).jpg"  # a space, a plus, a percent, a tilde, non-ASCII: each needs quoting


class Store:
    def __init__(self, endpoint: str, port: int, objects: Any) -> None:
        self.proxy = Proxy(port).start()
        self.proxy.capture = True
        self.endpoint = endpoint
        self.get = objects  # (bucket, key) -> bytes, read without pixlift

    def provider(self, bucket: str = "wire", **extra: Any) -> S3Provider:
        fields: dict[str, Any] = {"name": "wired", "bucket": bucket, "endpoint_url": self.proxy.endpoint,
                                  "region": "us-east-1", "access_key_id": AK, "secret_access_key": SK,
                                  "addressing_style": "path", **extra}
        return S3Provider(S3Profile(**fields), TransferSettings(attempts=3, backoff_base_s=0.05))

    def data_requests(self) -> list[tuple[str, str]]:
        """(user agent, target) of every PUT that carried a body."""
        return [(h.get("user-agent", ""), target) for method, target, h in self.proxy.requests()
                if method == "PUT" and int(h.get("content-length", "0")) > 0]


@pytest.fixture(params=["rclone", "moto"])
def store(request: pytest.FixtureRequest, s3_server: S3Server) -> Iterator[Store]:
    if request.param == "rclone":
        s3_server.bucket("wire")
        client = s3_server.client()
        s = Store(s3_server.endpoint, s3_server.port, lambda b, k: client.get_object(Bucket=b, Key=k)["Body"].read())
        yield s
        s.proxy.stop()
        return
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=AK,
                          aws_secret_access_key=SK, region_name="us-east-1")
    wait_until(lambda: client.list_buckets() is not None, message="moto server")
    client.create_bucket(Bucket="wire")
    s = Store(f"http://127.0.0.1:{port}", port, lambda b, k: client.get_object(Bucket=b, Key=k)["Body"].read())
    yield s
    s.proxy.stop()
    server.stop()


def opened(path: Path, **kw: Any) -> Source:
    st = os.stat(path)
    checked = CheckedFile(path=str(path), root=str(path.parent), name=path.name, size=st.st_size,
                          content_type="image/jpeg", identity=identity_of(st))
    return Source.open(checked, **kw)


async def upload(provider: S3Provider, path: Path, key: str, state: MultipartState | None = None) -> int:
    """Send the file; the bytes progress reported in all."""
    seen = [0]
    source = opened(path, digests=provider.digests)
    try:
        await provider.upload(source, key, on_bytes=lambda d: seen.__setitem__(0, seen[0] + d),
                              state=state or MultipartState(), on_part=lambda: None)
    finally:
        source.close()
    return seen[0]


async def test_puts_and_parts_go_the_lean_way_and_the_store_accepts_them(store: Store, tmp_path: Path) -> None:
    small = make_image(tmp_path / "small.jpg", 200_000, seed=1)
    large = make_image(tmp_path / "large.jpg", 11 * MiB + 17, seed=2)
    provider = store.provider()
    try:
        assert await upload(provider, small, KEY) == small.stat().st_size  # progress exact, to the byte
        assert await upload(provider, large, "parts/" + KEY) == large.stat().st_size
        link = await provider.link(KEY)
    finally:
        await provider.close()
    assert store.get("wire", KEY) == small.read_bytes()
    assert store.get("wire", "parts/" + KEY) == large.read_bytes()
    sent = store.data_requests()
    assert len(sent) == 4  # one PUT, three parts
    assert all(agent.startswith("pixlift/") and "Botocore" not in agent for agent, _ in sent), sent
    assert sum("partNumber=" in target for _, target in sent) == 3
    # the PUT carries Content-MD5 (a damaged object is never stored); the parts do not: their ETags are checked
    md5s = {target.partition("?")[2][:12]: "content-md5" in h for m, target, h in store.proxy.requests() if m == "PUT"}
    assert md5s == {"": True, "partNumber=1": False, "partNumber=2": False, "partNumber=3": False}, md5s
    # the link is signed with the cached key, and fetches the object (through the proxy, as a user's browser)
    with urllib.request.urlopen(link, timeout=10) as resp:
        assert hashlib.sha256(resp.read()).digest() == hashlib.sha256(small.read_bytes()).digest()


async def test_a_flipped_byte_in_a_part_is_refused_and_the_part_sent_again(store: Store, tmp_path: Path) -> None:
    """A part goes without Content-MD5: the lean path compares the part's ETag (the MD5 of what the store got)
    with the MD5 it took while the part went, and sends the part again. moto takes the new part; rclone will not
    replace a part it holds, so that upload is aborted and the file starts again, as its worker does."""
    large = make_image(tmp_path / "large.jpg", 11 * MiB, seed=3)
    provider = store.provider()
    provider.transfers = TransferSettings(part_concurrency=1, attempts=3, backoff_base_s=0.05)
    store.proxy.flip_after = 6 * MiB  # inside part 2's body
    state = MultipartState()
    try:
        for _ in range(3):  # what the worker does with a retryable failure of the whole file
            try:
                await upload(provider, large, "flipped.jpg", state)
                break
            except TransferError as exc:
                assert exc.retryable and exc.code == "upload_expired", exc
    finally:
        await provider.close()
    assert store.proxy.flipped == 1
    assert store.get("wire", "flipped.jpg") == large.read_bytes()
    parts = [t for _, t in store.data_requests() if "partNumber=" in t]
    assert sum("partNumber=2&" in t for t in parts) >= 2, parts  # part 2 went again
    assert all(agent.startswith("pixlift/") for agent, _ in store.data_requests())


async def test_a_part_whose_etag_shows_nothing_goes_again_with_content_md5(store: Store, tmp_path: Path) -> None:
    """An ETag that is not an MD5 (SSE-KMS, said here by the proxy) cannot show over plain http that a part arrived
    intact: that part goes again with Content-MD5, and every part after it; progress stays exact."""
    large = make_image(tmp_path / "hidden.jpg", 16 * MiB, seed=5)  # parts of 5, 5, 5 and 1 MiB
    provider = store.provider()
    provider.transfers = TransferSettings(part_concurrency=1, attempts=3, backoff_base_s=0.05)
    store.proxy.add_header = b"x-amz-server-side-encryption: aws:kms"
    try:
        assert await upload(provider, large, "hidden.jpg") == large.stat().st_size
    finally:
        await provider.close()
    assert store.get("wire", "hidden.jpg") == large.read_bytes()
    parts = [(target.partition("?")[2][:12], "content-md5" in h) for m, target, h in store.proxy.requests()
             if m == "PUT" and "partNumber=" in target]
    assert parts == [("partNumber=1", False), ("partNumber=1", True), ("partNumber=2", True),
                     ("partNumber=3", True), ("partNumber=4", True)], parts


async def test_refusals_on_the_lean_path_say_what_to_fix(s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.bucket("wire")
    store = Store(s3_server.endpoint, s3_server.port, None)
    small = make_image(tmp_path / "small.jpg", 50_000, seed=4)
    cases: list[tuple[S3Provider, str]] = [
        (store.provider(secret_access_key="not-the-secret"), "invalid_credentials"),
        (store.provider(bucket="no-such-bucket"), "bucket_not_found"),
    ]
    try:
        for provider, code in cases:
            with pytest.raises(PermanentStorageError) as info:
                await upload(provider, small, "refused.jpg")
            await provider.close()
            assert info.value.code == code
            assert "wired" in info.value.message and "Traceback" not in info.value.message
            assert "not-the-secret" not in info.value.message
        assert store.data_requests() and all(agent.startswith("pixlift/") for agent, _ in store.data_requests())
        store.proxy.refuse = True
        provider = store.provider()
        with pytest.raises(TransferError) as down:
            await upload(provider, small, "down.jpg")
        await provider.close()
        assert down.value.code == "network_error" and down.value.retryable
        assert "Check the network and endpoint_url" in down.value.message
    finally:
        store.proxy.stop()


def test_the_cached_signing_key_signs_exactly_as_botocore_does() -> None:
    import hmac

    creds = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    for day in ("20261201", "20261202"):  # a new day, a new key
        request = AWSRequest(method="PUT", url="http://s3.test/b/k")
        request.context["timestamp"] = f"{day}T120000Z"
        sts = f"AWS4-HMAC-SHA256\n{day}T120000Z\n{day}/us-east-1/s3/aws4_request\nabc"
        ours = hmac.new(signing_key(creds.secret_key, day, "us-east-1", "s3"), sts.encode(), hashlib.sha256)
        assert ours.hexdigest() == S3SigV4Auth(creds, "s3", "us-east-1").signature(sts, request)
        assert ours.hexdigest() != S3SigV4Auth(creds, "s3", "eu-west-1").signature(sts, request)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "https://s3.example.com", "http://localhost:80"])
@pytest.mark.parametrize("token", [None, "a-session/token+="])
async def test_links_are_what_generate_presigned_url_makes(endpoint: str, token: str | None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean link signer against the SDK's own, at the same instant, for keys that need quoting."""
    import boto3
    import botocore.auth
    from botocore.config import Config
    from pixlift.providers.s3_wire import S3Wire

    at = datetime(2026, 12, 1, 17, 5, 9, tzinfo=UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: at.replace(tzinfo=None))
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AK, aws_secret_access_key=SK,
                          aws_session_token=token, region_name="eu-central-1",
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    class Creds:
        async def get_frozen_credentials(self) -> ReadOnlyCredentials:
            return ReadOnlyCredentials(AK, SK, token)

    async def credentials() -> Creds:
        return Creds()

    probe = client.generate_presigned_url("put_object", Params={"Bucket": "pics", "Key": "probe"}, ExpiresIn=60)
    wire = S3Wire(Endpoint.from_presigned(probe, "probe"), credentials, connections=1, connect_timeout_s=1,
                  read_timeout_s=1)
    try:
        for key in (KEY, "2026/12/a-0123abcd.jpg", "漢字/photo (2).png"):
            sdk = client.generate_presigned_url("get_object", Params={"Bucket": "pics", "Key": key}, ExpiresIn=604800)
            assert await wire.presign_get(key, 604800, now=at) == sdk
    finally:
        await wire.close()


@pytest.mark.parametrize("token", [None, "a-session/token+="])
@pytest.mark.parametrize(("base", "query"), [("http://127.0.0.1:9000/pics/", ""),
                                              ("https://pics.s3.eu-central-1.amazonaws.com/",
                                               "partNumber=7&uploadId=2~Ab.c_d-EF%2Bgh%3D%3D")])
def test_the_lean_header_signer_signs_as_the_sdk_does(base: str, query: str, token: str | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The same Authorization (and every other header) as botocore's S3SigV4Auth on an AWSRequest, configured
    as pixlift configures its client (``payload_signing_enabled = False``)."""
    import botocore.auth
    from botocore.config import Config

    at = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: at.replace(tzinfo=None))
    creds = ReadOnlyCredentials(AK, SK, token)
    endpoint = Endpoint(base, "eu-central-1", "s3")
    headers = {"Content-Type": "image/jpeg", "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}
    stock = AWSRequest(method="PUT", url=endpoint.url(KEY, query), headers=headers)
    stock.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(creds, "s3", "eu-central-1").add_auth(stock)
    lean = signed_put(endpoint, creds, KEY, query, headers, now=at.timestamp())
    assert lean == dict(stock.headers.items())
    assert lean["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert headers == {"Content-Type": "image/jpeg", "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}  # not changed
