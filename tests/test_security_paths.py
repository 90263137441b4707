"""The attack suite, 3: what may be read and what may leak. Paths outside the allowed root (dot-dot, tilde,
symlinks, /proc, devices, FIFOs, encodings), a file swapped after its check, traversal and listing under /files/,
uploaded SVG and HTML that must not run script in our origin, token rotation, and secrets that must never leave
their files (API results, logs, the journal, file modes).

The harness (raw HTTP, the shared daemon ``World``) is in security_harness.py.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import AK, PNG_1PX, SK, S3Server, make_image, pixlift_env
from security_harness import (
    OSS_AK,
    OSS_SK,
    OSS_WRONG_SK,
    WRONG_SK,
    MiB,
    World,
    open_world,
    owner_still_uploads,
    raw,
    request_head,
)

SVG_XSS = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[World]:
    with open_world(tmp_path_factory, s3_server) as w:
        yield w


# -- path rules ----------------------------------------------------------------------------------------------------
OUTSIDE = "outside the allowed folders"
NOT_REGULAR = "not a regular file"


@dataclass(frozen=True)
class PathCase:
    id: str
    path: str
    says: str


PATH_CASES = [
    PathCase("outside-root", "{outside}/secret.jpg", OUTSIDE),
    PathCase("dotdot", "{pictures}/../outside/secret.jpg", OUTSIDE),
    PathCase("dotdot-deep", "{pictures}/./bait.jpg/../../../../../../etc/passwd", OUTSIDE),
    PathCase("tilde-outside", "~/outside/secret.jpg", OUTSIDE),
    PathCase("tilde-dotdot", "~/Pictures/../outside/secret.jpg", OUTSIDE),
    PathCase("tilde-alone", "~", OUTSIDE),
    PathCase("tilde-user", "~root/.bashrc", OUTSIDE),
    PathCase("symlink-to-file-outside", "{pictures}/link-file.jpg", OUTSIDE),
    PathCase("symlink-via-tilde", "~/Pictures/link-file.jpg", OUTSIDE),
    PathCase("symlinked-folder", "{pictures}/link-dir/secret.jpg", OUTSIDE),
    PathCase("proc-self-environ", "/proc/self/environ", OUTSIDE),
    PathCase("symlink-to-proc", "{pictures}/link-proc", OUTSIDE),
    PathCase("symlink-to-dev-zero", "{pictures}/link-dev", OUTSIDE),
    PathCase("etc-passwd", "/etc/passwd", OUTSIDE),
    PathCase("percent-encoded-dotdot", "{pictures}/%2e%2e/outside/secret.jpg", "no such file"),
    PathCase("double-encoded-dotdot", "{pictures}/%252e%252e/outside/secret.jpg", "no such file"),
    PathCase("backslash-dotdot", "{pictures}/..\\outside\\secret.jpg", "no such file"),
    PathCase("relative", "Pictures/bait.jpg", "relative path"),
    PathCase("relative-backslash", "..\\outside\\secret.jpg", "relative path"),
    PathCase("fifo", "{pictures}/fifo.jpg", NOT_REGULAR),
    PathCase("unix-socket", "{pictures}/sock.jpg", NOT_REGULAR),
    PathCase("folder", "{pictures}/folder.jpg", NOT_REGULAR),
    PathCase("empty-file", "{pictures}/empty.jpg", "empty"),
    PathCase("not-an-image", "{pictures}/notes.jpg", "not an image"),
    PathCase("over-max-file-size", "{pictures}/big.jpg", "too large"),
    PathCase("path-too-long", "{pictures}/" + "a" * 5000, "the limit is 4096"),
    PathCase("nul-byte", "{pictures}/bait.jpg\x00.png", "NUL byte"),
    PathCase("missing", "{pictures}/missing.jpg", "no such file"),
]


@pytest.mark.parametrize("case", PATH_CASES, ids=lambda c: c.id)
def test_path_refused(world: World, case: PathCase) -> None:
    before = world.state()
    path = world.fill(case.path)
    started = time.monotonic()
    status, reply = world.d.call_raw({"jsonrpc": "2.0", "id": 1, "method": "upload_images",
                                      "params": {"paths": [path]}})
    assert time.monotonic() - started < 3, "the handler blocked"
    assert status == 200
    error = reply["error"]
    assert error["code"] == -32001, error
    assert "nothing was queued" in error["message"]
    assert error["data"] == [{"path": path, "reason": error["data"][0]["reason"]}]
    assert case.says in error["data"][0]["reason"], error
    world.nothing_happened(before, world.secret, world.bait)


def test_one_bad_path_refuses_the_whole_call(world: World) -> None:
    before = world.state()
    paths = [str(world.bait), str(world.secret), str(world.pictures / "fifo.jpg")]
    _, reply = world.d.call_raw({"jsonrpc": "2.0", "id": 1, "method": "upload_images_batch",
                                 "params": {"paths": paths, "batch_size": 2}})
    assert reply["error"]["code"] == -32001
    assert [r["path"] for r in reply["error"]["data"]] == paths[1:]
    world.nothing_happened(before, world.bait, world.secret)


def test_file_swapped_after_the_check_is_never_sent(world: World) -> None:
    """Queue a large file whose upload is held mid-request, pause it, replace the file, resume: the new attempt
    sees a different file behind the path and fails; not one byte of the new file reaches the bucket."""
    target = make_image(world.pictures / "swap.jpg", 6 * MiB, seed=7)
    before = world.state()
    world.valve.hold()
    task = world.d.rpc("upload_images", {"paths": [str(target)], "profile": "held"})["tasks"][0]
    tid = task["task_id"]
    world.d.wait_task(tid, "uploading", timeout=10)
    assert world.d.rpc("pause_upload", {"task_id": tid}) == {"paused": 1}
    world.d.wait_task(tid, "paused", timeout=10)

    replacement = make_image(world.pictures / "swap.tmp", 6 * MiB, seed=8)
    os.replace(replacement, target)  # a new file behind the same name, as an attacker racing us would do
    world.valve.release()  # from here on anything the daemon sends reaches the real bucket
    assert world.d.rpc("resume_upload", {"task_id": tid}) == {"resumed": 1}
    failed = world.d.wait_task(tid, timeout=20)
    assert failed["status"] == "failed", failed
    assert "changed after it was queued" in failed["error"]["message"]
    assert failed["url"] is None
    new_bytes = target.read_bytes()
    objects = {k: p.read_bytes() for k, p in world.s3.objects(world.bucket).items()}
    assert objects == before[1], "an object was written"
    assert not any(new_bytes[:4096] in blob for blob in objects.values())

    # The control: through the same valve, an unchanged file uploads.
    ok = world.d.rpc("upload_images", {"paths": [str(world.bait)], "profile": "held"})["tasks"][0]
    done = world.d.wait_task(ok["task_id"], timeout=30)
    assert done["status"] == "completed", done
    assert world.bait.read_bytes() in [p.read_bytes() for p in world.s3.objects(world.bucket).values()]


# -- served files --------------------------------------------------------------------------------------------------
FILE_URLS = [
    "/files/..%2ftoken", "/files/%2e%2e/token", "/files/%2e%2e%2ftoken", "/files/%2E%2E/token",
    "/files/2026/..%2f..%2ftoken", "/files/%252e%252e/token", "/files/%252e%252e%252ftoken",
    "/files/..%5ctoken", "/files/%5c..%5ctoken", "/files/..\\token", "/files/....//token", "/files/.%2e/token",
    "/files/%c0%ae%c0%ae/token", "/files/..%c0%aftoken", "/files//etc/passwd", "/files/%2fetc%2fpasswd",
    "/files/link-passwd", "/files/link-home/token", "/files/.hidden", "/files/", "/files/2026", "/files/2026/",
    "/files/a%00b", "/files/" + "a" * 5000, "/files/" + "a/" * 2000 + "b", "/files/../token",
    "/static/", "/static/..%2f..%2ftoken", "/static/%2e%2e/%2e%2e/token", "/static/%252e%252e/token",
    "/token", "/daemon.json", "/config.toml", "/journal.sqlite3", "/pixlift.log", "/files/~/token",
]


@pytest.mark.parametrize("url", FILE_URLS)
def test_served_files_refuse_traversal_and_listing(world: World, url: str) -> None:
    reply = raw(world.port, request_head("GET", url, [("Host", f"127.0.0.1:{world.port}")], None))
    assert reply.status in (400, 403, 404), (reply.status, reply.body[:200])
    assert world.home.token.encode() not in reply.body
    assert b"root:" not in reply.body and b"access_key" not in reply.body and b"<a href" not in reply.body
    assert reply.headers.get("x-content-type-options") == "nosniff"


def test_uploaded_svg_and_html_cannot_run_script_in_our_origin(world: World) -> None:
    svg = world.pictures / "xss.svg"
    svg.write_bytes(SVG_XSS)
    task = world.d.rpc("upload_images", {"paths": [str(svg)], "profile": "local"})["tasks"][0]
    svg_url = world.d.wait_task(task["task_id"], timeout=20)["url"]
    # An HTML page inside an image (a text chunk, which names no place and so stays), named .html, streamed
    # in as the browser would. (Bytes after IEND would be removed with the trailer.)
    page = b"comment\x00<html><script>fetch('/rpc')</script></html>"
    text = struct.pack(">I", len(page)) + b"tEXt" + page + struct.pack(">I", zlib.crc32(b"tEXt" + page))
    html = PNG_1PX[:33] + text + PNG_1PX[33:]
    status, _, body = world.d.post("/api/upload?name=evil.html&profile=local", html,
                                   headers={"Content-Type": "application/octet-stream"})
    assert status == 200, body
    html_url = world.d.wait_task(json.loads(body)["task"]["task_id"], timeout=20)["url"]
    for url, content in ((svg_url, SVG_XSS), (html_url, html)):
        assert url.startswith(world.d.url + "/files/")
        reply = raw(world.port, request_head("GET", url.removeprefix(world.d.url),
                                             [("Host", f"127.0.0.1:{world.port}")], None))
        assert reply.status == 200 and reply.body == content
        csp = reply.headers["content-security-policy"]
        assert csp.split(";")[0].strip() == "sandbox", csp  # no allow-scripts, no allow-same-origin
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert not [k for k, _ in reply.all_headers if k.lower().startswith("access-control-")]


# -- secrets -------------------------------------------------------------------------------------------------------
def test_token_rotation_ends_old_credentials(world: World) -> None:
    old_token, old_cookie = world.home.token, world.cookie
    env = pixlift_env(world.home)
    out = subprocess.run([sys.executable, "-m", "pixlift", "token", "--rotate"], env=env, capture_output=True,
                         text=True, timeout=30, check=True)
    assert world.home.token != old_token
    assert old_token not in out.stdout + out.stderr and world.home.token not in out.stdout + out.stderr
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "get_daemon_info"}'
    assert world.d.post("/rpc", body, token=old_token)[0] == 401
    assert world.d.post("/rpc", body, token=None, headers={"Cookie": old_cookie, "Origin": world.d.url})[0] == 401
    assert world.d.post("/rpc", body)[0] == 200
    world.login()
    assert world.d.post("/rpc", body, token=None, headers={"Cookie": world.cookie, "Origin": world.d.url})[0] == 200


def test_secrets_never_leave_their_files(world: World) -> None:
    d = world.d
    # Give every path that might leak a chance to: wrong credentials, failed and finished uploads on S3 and OSS,
    # and malformed requests carrying the token (aiohttp logs a bad request's raw header lines).
    results: list[Any] = [d.rpc("list_profiles"), d.rpc("get_daemon_info")]
    results += [d.rpc("check_profile", {"profile": p}) for p in ("badsecret", "ossbad", "s3", "oss")]
    tasks = [d.rpc("upload_images", {"paths": [str(world.bait)], "profile": p})["tasks"][0]
             for p in ("badsecret", "ossbad", "s3", "oss")]
    finished = [d.wait_task(t["task_id"], timeout=30) for t in tasks]
    assert [t["status"] for t in finished] == ["failed", "failed", "completed", "completed"], finished
    results += finished
    token = world.home.token
    for head in (f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\nAuthorization: Bearer {token}\x01\r\n\r\n",
                 f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\nAuthorization Bearer {token}\r\n\r\n",
                 f"GET /?token={token}\x7f HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\n\r\n"):
        assert raw(world.port, head).status == 400
    results += [d.rpc("get_all_upload_progress"), d.rpc("get_upload_history")]
    time.sleep(0.2)  # let the log handlers flush

    secrets = {"token": token, "s3 secret": SK, "wrong s3 secret": WRONG_SK, "oss secret": OSS_SK,
               "wrong oss secret": OSS_WRONG_SK}
    key_ids = {"s3 key id": AK, "oss key id": OSS_AK}
    api = json.dumps(results)
    logs = {p.name: p.read_text(errors="replace") for p in world.home.root.glob("pixlift.log*")}
    assert logs, "no daemon log"
    texts = {"API results": api, "daemon stderr": d.log(), **logs,
             "daemon.json": (world.home.root / "daemon.json").read_text()}
    texts |= {p.name: p.read_bytes().decode("latin-1") for p in world.home.root.glob("journal.sqlite3*")}
    for where, text in texts.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} is in {where}"
        # A key id is not a secret, but it appears only where a presigned link must carry it.
        for what, key_id in key_ids.items():
            rest = re.sub(r"(X-Amz-Credential=|OSSAccessKeyId=)" + re.escape(key_id), "", text)
            assert key_id not in rest, f"the {what} is in {where}"
    assert "[redacted]" in "".join(logs.values())  # the malformed requests were logged, without the token

    modes = {p.name: p.stat().st_mode & 0o777 for p in world.home.root.iterdir()
             if p.name in ("token", "daemon.json", "config.toml") or p.name.startswith(("journal.", "pixlift.log"))}
    assert {"token", "daemon.json", "config.toml", "journal.sqlite3", "pixlift.log"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o600), modes
    assert world.home.root.stat().st_mode & 0o777 == 0o700


# -- after all that: the owner still uploads, by API, by browser session and by CLI --------------------------------
def test_daemon_still_uploads_normally(world: World) -> None:
    owner_still_uploads(world)
