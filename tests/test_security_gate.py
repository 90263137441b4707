"""The attack suite, 1: the gate. Host (DNS rebinding), Origin and fetch metadata (CSRF), the token, the browser
session's cookie and the content types a page may send without a preflight; each refusal asserts that nothing
happened. The controls let the owner in; the listening socket is loopback only.

The harness (raw HTTP, the shared daemon ``World``) is in security_harness.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import PNG_1PX, S3Server
from security_harness import World, open_world, owner_still_uploads, raw, request_head, upload_body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[World]:
    with open_world(tmp_path_factory, s3_server) as w:
        yield w


# -- the gate: Host, Origin, authentication, content type, size ----------------------------------------------------
HOST = ("Host", "127.0.0.1:{port}")
AUTH = ("Authorization", "Bearer {token}")
JSON = ("Content-Type", "application/json")
OWN = ("Origin", "http://127.0.0.1:{port}")
FOREIGN = "Requests from other web pages are refused"
WRONG_HOST = "answers only to 127.0.0.1, localhost and [::1]"
NO_TOKEN = "Missing or wrong token"


@dataclass(frozen=True)
class Http:
    id: str
    headers: tuple[tuple[str, str], ...]
    status: int
    says: str
    method: str = "POST"
    target: str = "/rpc"
    body: str = "upload"  # upload | batch | unknown | notify | form | none
    version: str = "HTTP/1.1"


GATE_CASES = [
    # DNS rebinding: a hostile name resolved to 127.0.0.1 makes the browser send its own Host.
    Http("host-evil.com", (("Host", "evil.com:{port}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-nip.io", (("Host", "127.0.0.1.nip.io:{port}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-localhost-other-port", (("Host", "localhost:{other}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-without-port", (("Host", "127.0.0.1"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-0.0.0.0", (("Host", "0.0.0.0:{port}"), AUTH, JSON), 403, WRONG_HOST),
    Http("host-missing-http1.1", (AUTH, JSON), 400, "Host"),
    Http("host-missing-http1.0", (AUTH, JSON), 403, WRONG_HOST, version="HTTP/1.0"),
    Http("host-twice", (HOST, ("Host", "evil.com:{port}"), AUTH, JSON), 400, "Host"),
    # CSRF: a page elsewhere posting to us, with or without the token (a token can leak; the origin cannot lie).
    Http("origin-foreign", (HOST, AUTH, JSON, ("Origin", "http://evil.com")), 403, FOREIGN),
    Http("origin-null", (HOST, AUTH, JSON, ("Origin", "null")), 403, FOREIGN),
    Http("origin-localhost-other-port", (HOST, AUTH, JSON, ("Origin", "http://localhost:{other}")), 403, FOREIGN),
    Http("origin-https-self", (HOST, AUTH, JSON, ("Origin", "https://127.0.0.1:{port}")), 403, FOREIGN),
    Http("sec-fetch-site-cross-site", (HOST, AUTH, JSON, ("Sec-Fetch-Site", "cross-site")), 403, FOREIGN),
    Http("preflight-foreign", (HOST, ("Origin", "http://evil.com"), ("Access-Control-Request-Method", "POST"),
                               ("Access-Control-Request-Headers", "authorization,content-type")), 403, FOREIGN,
         method="OPTIONS", body="none"),
    Http("preflight-own-origin", (HOST, OWN, ("Access-Control-Request-Method", "POST")), 403,
         "No cross-origin access", method="OPTIONS", body="none"),
    Http("preflight-null-origin", (HOST, ("Origin", "null"), ("Access-Control-Request-Method", "POST")), 403,
         FOREIGN, method="OPTIONS", body="none"),
    # Authentication happens before any method runs: batches, notifications and unknown methods included.
    Http("no-token", (HOST, JSON), 401, NO_TOKEN),
    Http("wrong-token", (HOST, ("Authorization", "Bearer {token}x"), JSON), 401, NO_TOKEN),
    Http("token-prefix", (HOST, ("Authorization", "Bearer {token:.20}"), JSON), 401, NO_TOKEN),
    Http("empty-bearer", (HOST, ("Authorization", "Bearer "), JSON), 401, NO_TOKEN),
    Http("basic-auth", (HOST, ("Authorization", "Basic {token}"), JSON), 401, NO_TOKEN),
    Http("token-in-query", (HOST, JSON), 401, NO_TOKEN, target="/rpc?token={token}"),
    Http("no-token-batch", (HOST, JSON), 401, NO_TOKEN, body="batch"),
    Http("no-token-unknown-method", (HOST, JSON), 401, NO_TOKEN, body="unknown"),
    Http("no-token-notification", (HOST, JSON), 401, NO_TOKEN, body="notify"),
    Http("no-token-own-origin", (HOST, JSON, OWN), 401, NO_TOKEN),
    Http("no-token-upload-route", (HOST, ("Content-Type", "image/png")), 401, NO_TOKEN,
         target="/api/upload?name=x.png", body="png"),
    # The browser session: a cookie counts only with the daemon's own Origin.
    Http("cookie-without-origin", (HOST, JSON, ("Cookie", "{cookie}")), 401, NO_TOKEN),
    Http("cookie-foreign-origin", (HOST, JSON, ("Cookie", "{cookie}"), ("Origin", "http://evil.com")), 403, FOREIGN),
    Http("cookie-null-origin", (HOST, JSON, ("Cookie", "{cookie}"), ("Origin", "null")), 403, FOREIGN),
    Http("cookie-rebound-host", (("Host", "evil.com:{port}"), JSON, ("Cookie", "{cookie}"),
                                 ("Origin", "http://evil.com:{port}")), 403, WRONG_HOST),
    Http("cookie-forged", (HOST, JSON, OWN, ("Cookie", "pixlift_session=AAAAAAAAAAAAAAAAAAAAAA.deadbeef")), 401,
         NO_TOKEN),
    Http("cookie-upload-route-no-origin", (HOST, ("Cookie", "{cookie}"), ("Content-Type", "image/png")), 401,
         NO_TOKEN, target="/api/upload?name=x.png", body="png"),
    # "Simple" requests a page can send without a preflight are refused on /rpc even with a valid credential.
    Http("text-plain", (HOST, AUTH, ("Content-Type", "text/plain")), 415, "Content-Type: application/json"),
    Http("form-urlencoded", (HOST, AUTH, ("Content-Type", "application/x-www-form-urlencoded")), 415,
         "Content-Type: application/json", body="form"),
    Http("multipart-form", (HOST, AUTH, ("Content-Type", "multipart/form-data; boundary=x")), 415,
         "Content-Type: application/json"),
    Http("no-content-type", (HOST, AUTH), 415, "Content-Type: application/json"),
    Http("text-plain-cookie", (HOST, ("Content-Type", "text/plain"), ("Cookie", "{cookie}"), OWN), 415,
         "Content-Type: application/json"),
    Http("get-rpc", (HOST, AUTH), 405, "Method Not Allowed", method="GET", body="none"),
]


def _body(world: World, kind: str) -> bytes | None:
    call = {"jsonrpc": "2.0", "method": "upload_images", "params": {"paths": [str(world.bait)]}}
    return {
        "upload": upload_body(world),
        "batch": json.dumps([{**call, "id": 1}, {"jsonrpc": "2.0", "id": 2, "method": "pause_upload"}]).encode(),
        "unknown": b'{"jsonrpc": "2.0", "id": 1, "method": "no_such_method"}',
        "notify": json.dumps(call).encode(),
        "form": b"paths=" + str(world.bait).encode(),
        "png": PNG_1PX,
        "none": None,
    }[kind]


@pytest.mark.parametrize("case", GATE_CASES, ids=lambda c: c.id)
def test_gate_refuses(world: World, case: Http) -> None:
    before = world.state()
    body = _body(world, case.body)
    headers = [(k, world.fill(v)) for k, v in case.headers]
    reply = raw(world.port, request_head(case.method, world.fill(case.target), headers,
                                         None if body is None else len(body), case.version), body or b"")
    assert reply.status == case.status, reply
    assert case.says in reply.text, reply.text
    assert not [k for k, _ in reply.all_headers if k.lower().startswith("access-control-")], reply.all_headers
    assert "set-cookie" not in reply.headers
    world.nothing_happened(before, world.bait)


@pytest.mark.parametrize("headers", [
    (HOST, AUTH, JSON),
    (("Host", "localhost:{port}"), AUTH, JSON),
    (("Host", "[::1]:{port}"), AUTH, JSON),
    (HOST, ("Authorization", "bearer {token}"), JSON),
    (HOST, AUTH, ("Content-Type", "application/json; charset=utf-8"), ("Sec-Fetch-Site", "same-origin")),
    (HOST, JSON, OWN, ("Cookie", "{cookie}")),
    (HOST, JSON, ("Origin", "http://localhost:{port}"), ("Cookie", "{cookie}")),
], ids=["token", "localhost", "ipv6-host", "lower-case-scheme", "charset-and-fetch-metadata", "cookie",
        "cookie-localhost"])
def test_gate_lets_the_owner_in(world: World, headers: tuple[tuple[str, str], ...]) -> None:
    """The controls: the same request, correctly addressed and authenticated, works (no method is run here
    that changes anything, so these can sit between the refusal cases)."""
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "get_daemon_info"}'
    reply = raw(world.port, request_head("POST", "/rpc", [(k, world.fill(v)) for k, v in headers], len(body)), body)
    assert reply.status == 200, reply
    assert reply.json()["result"]["port"] == world.port


def test_token_link_sets_a_strict_cookie_and_leaves_no_token_behind(world: World) -> None:
    token = world.home.token
    reply = raw(world.port, request_head("GET", f"/?token={token}", [("Host", f"127.0.0.1:{world.port}")], None))
    assert reply.status == 303
    assert reply.headers["location"] == "/"
    assert token not in reply.text and not [v for _, v in reply.all_headers if token in v]
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert token not in cookie  # a nonce and its MAC, not the token
    assert reply.headers["cache-control"] == "no-store" and reply.headers["referrer-policy"] == "no-referrer"

    wrong = raw(world.port, request_head("GET", "/?token=guess", [("Host", f"127.0.0.1:{world.port}")], None))
    assert wrong.status == 303 and wrong.headers["location"] == "/" and "set-cookie" not in wrong.headers
    cross = raw(world.port, request_head("GET", f"/?token={token}", [("Host", f"127.0.0.1:{world.port}"),
                                                                     ("Sec-Fetch-Site", "cross-site")], None))
    assert cross.status == 403 and "set-cookie" not in cross.headers


def test_loopback_only(world: World) -> None:
    """The listening socket is bound to 127.0.0.1, nothing else (read from the kernel's socket table)."""
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) == world.port:
                    listening.append(addr)
    assert listening == ["0100007F"], listening


# -- after all that: the owner still uploads, by API, by browser session and by CLI --------------------------------
def test_daemon_still_uploads_normally(world: World) -> None:
    owner_still_uploads(world)
