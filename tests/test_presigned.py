"""Presigned uploads: an app PUTs its bytes straight to the store (S3, OSS) or to the daemon's one-time URL (the
local store), then confirms; per-file answers in input order, limits before signing, a clear missing/mismatch."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Daemon, Home
from test_ui import png_bytes
from test_uploads import Store, configure, store  # noqa: F401 - S3 and OSS behind a proxy

PNG = png_bytes((200, 40, 40))


def put(upload: dict[str, Any], body: bytes) -> int:
    req = urllib.request.Request(upload["url"], data=body, method=upload["method"], headers=upload["headers"])
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def roundtrip(d: Daemon) -> None:
    files = [{"name": "shot.png", "size": len(PNG), "content_type": "image/png"},
             {"name": "huge.png", "size": 10**12, "content_type": "image/png"},
             {"name": "notes.txt", "size": 10, "content_type": "text/plain"},
             {"name": "short.png", "size": len(PNG) + 100, "content_type": "image/png"},
             {"name": "never.png", "size": len(PNG), "content_type": "image/png"}]
    uploads = d.rpc("create_upload_urls", {"files": files})["uploads"]
    assert [u["name"] for u in uploads] == [f["name"] for f in files]  # input order, one answer each
    ok, huge, text, short, never = uploads
    assert "limit" in huge["error"]["message"] and "not an image" in text["error"]["message"]
    assert ok["method"] == "PUT" and ok["headers"] == {"Content-Type": "image/png"} and ok["expires_at"]
    assert put(ok, PNG) == 200 and put(short, PNG) in (200, 400)  # a store takes what it is given

    results = d.rpc("confirm_uploads", {"keys": [ok["key"], short["key"], never["key"], "made/up.png"]})["results"]
    confirmed, mismatch, missing, unknown = results
    assert confirmed["status"] == "confirmed" and fetch(confirmed["url"]) == PNG
    assert mismatch["status"] in ("mismatch", "missing") and missing["status"] == "missing"
    assert unknown["status"] == "missing" and "No upload URL was made" in unknown["message"]
    history = d.rpc("get_upload_history")["items"]
    assert [(i["name"], i["key"]) for i in history] == [("shot.png", ok["key"])]  # recorded like any upload


def test_presigned_uploads_to_s3_and_oss(home: Home, store: Store,  # noqa: F811
                                         daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, store)
    roundtrip(daemon_factory())


def test_presigned_uploads_to_the_local_store_use_a_one_time_url(home: Home,
                                                                 daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"local": {"provider": "local"}}, default="local")
    d = daemon_factory()
    roundtrip(d)
    upload = d.rpc("create_upload_urls", {"files": [{"name": "again.png", "size": len(PNG),
                                                      "content_type": "image/png"}]})["uploads"][0]
    assert upload["url"].startswith(d.url + "/presigned/")
    assert put(upload, PNG[:-5]) == 400  # not the announced size: refused, and the URL may be used again
    assert put(upload, PNG) == 200
    assert put(upload, PNG) == 404  # used once
    confirmed = d.rpc("confirm_uploads", {"keys": [upload["key"]]})["results"][0]
    assert confirmed["status"] == "confirmed" and fetch(confirmed["url"]) == PNG


@pytest.mark.parametrize("files", [[], "x", [1] * 101])
def test_bad_file_lists_are_refused_whole(files: Any, home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory()
    from conftest import RpcFailure

    with pytest.raises(RpcFailure) as info:
        d.rpc("create_upload_urls", {"files": files})
    assert info.value.code == -32602


def test_bytes_put_to_the_local_store_follow_the_image_policy(home: Home, tmp_path: Any,
                                                              daemon_factory: Callable[..., Daemon]) -> None:
    """The same photo that loses its GPS when uploaded by path loses it when PUT to the local one-time URL; a
    file whose metadata cannot be read is refused, storing nothing."""
    import io

    from conftest import noise_after
    from PIL import Image
    from test_metadata import DATUM, phone_photo

    home.write_config({"local": {"provider": "local"}}, default="local")
    d = daemon_factory()
    photo = phone_photo(tmp_path / "IMG_1", "jpeg").read_bytes()
    odd = noise_after(b"\xff\xd8\xff\xe0", 4_000)
    good, bad = d.rpc("create_upload_urls", {"files": [
        {"name": "IMG_1.jpg", "size": len(photo), "content_type": "image/jpeg"},
        {"name": "odd.jpg", "size": len(odd), "content_type": "image/jpeg"}]})["uploads"]
    assert put(good, photo) == 200
    assert put(bad, odd) == 400
    confirmed, missing = d.rpc("confirm_uploads", {"keys": [good["key"], bad["key"]]})["results"]
    assert confirmed["status"] == "confirmed" and missing["status"] == "missing"
    sent = fetch(confirmed["url"])
    assert DATUM.encode() not in sent and len(sent) < len(photo)
    assert not Image.open(io.BytesIO(sent)).getexif().get_ifd(0x8825)
    assert Image.open(io.BytesIO(sent)).getexif().get(0x0112) == 6


def send(url: str, method: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), resp.headers, bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_the_one_time_url_answers_cors_for_the_app_that_holds_it_and_nothing_else_does(
        home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    """As an S3 presigned URL for a bucket that allows the app: the preflight and the PUT are answered for the
    asking origin (a public app's page, which browsers mark cross-site, too). No other route gains CORS."""
    import hashlib
    home.write_config({"local": {"provider": "local"}}, default="local")
    d = daemon_factory()
    app = "https://photos.example"
    upload = d.rpc("create_upload_urls", {"files": [{"name": "a.png", "size": len(PNG),
                                                      "content_type": "image/png"}]})["uploads"][0]
    ask = {"Origin": app, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type",
           "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    status, headers, _ = send(upload["url"], "OPTIONS", {**ask, "Access-Control-Request-Private-Network": "true"})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == app
    assert headers["Access-Control-Allow-Methods"] == "PUT"
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    assert "Access-Control-Allow-Credentials" not in headers  # the URL is the permission, never a cookie
    for bad in ({**ask, "Access-Control-Request-Method": "DELETE"}, {k: v for k, v in ask.items() if k != "Origin"},
                {**ask, "Access-Control-Request-Headers": "content-type, x: y"}):
        status, headers, _ = send(upload["url"], "OPTIONS", bad)
        assert status in (400, 403) and "Access-Control-Allow-Origin" not in headers, bad

    put_headers = {"Origin": app, "Content-Type": "image/png", "Sec-Fetch-Site": "cross-site"}
    status, headers, _ = send(upload["url"], "PUT", put_headers, PNG)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == app and headers["Vary"] == "Origin"
    assert headers["ETag"] == f'"{hashlib.md5(PNG).hexdigest()}"' and "ETag" in headers["Access-Control-Expose-Headers"]
    status, headers, body = send(upload["url"], "PUT", put_headers, PNG)  # used: the app can read why
    assert status == 404 and headers["Access-Control-Allow-Origin"] == app and b"used" in body
    assert d.rpc("confirm_uploads", {"keys": [upload["key"]]})["results"][0]["status"] == "confirmed"

    # every other route: no CORS for that origin, preflights refused
    key = d.rpc("get_upload_history")["items"][0]["key"]
    for path, method in (("/rpc", "OPTIONS"), ("/api/upload", "OPTIONS"), ("/events", "OPTIONS"), ("/", "GET"),
                         ("/rpc", "POST"), (f"/files/{key}", "GET"), (f"/files/{key}", "OPTIONS"),
                         ("/static/app.js", "GET"), ("/presigne/x", "OPTIONS")):
        status, headers, _ = send(d.url + path, method, {**ask, "Authorization": f"Bearer {home.token}",
                                                         "Content-Type": "application/json"},
                                  b"{}" if method == "POST" else None)
        assert "Access-Control-Allow-Origin" not in headers and not any(
            h.lower().startswith("access-control-") for h in headers), (path, method, status)
        assert status >= 400 or path.startswith(("/files/", "/static/")), (path, method, status)
