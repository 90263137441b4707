"""The PicGo-compatible server, driven by the requests the real editors send (README, "Typora and Obsidian"):
Obsidian's Image Auto Upload plugin (paths, clipboard, its remote-server form, /delete), Typora's window (a
preflight, then a JSON POST from typora://app) and PicList's form and key. Then the same requests as a web page
could make them, which must be refused with nothing stored."""

from __future__ import annotations

import http.client
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, free_port, make_image, pixlift_env, wait_until
from playwright.sync_api import expect
from test_cli_clipboard import screenshot
from test_ui import Ui, browser, open_ui  # noqa: F401 - headless Chromium for the settings page
from tray_harness import Desktop, desktop_fixture  # noqa: F401 - Xvfb for the clipboard

OBSIDIAN = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) obsidian/1.8.9 "
                          "Chrome/132.0.6834.210 Electron/34.3.0 Safari/537.36",
            "Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}
TYPORA = {"Origin": "typora://app", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors",
          "Sec-Fetch-Dest": "empty", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
          "like Gecko) Typora/1.10.8 Chrome/128.0.6613.186 Electron/32.2.5 Safari/537.36"}
PAGE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
        "Sec-Fetch-Dest": "empty"}


def enable(home: Home, port: int, key: str | None = None) -> None:
    lines = ["", "[integrations]", "picgo_server = true", f"picgo_port = {port}"]
    if key:
        lines.append(f'picgo_key = "{key}"')
    with (home.root / "config.toml").open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def send(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         host: str | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def obsidian_form(files: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """The body Image Auto Upload's payloadGenerator builds: field "list", the boundary with four extra dashes."""
    boundary = "BoundaryAbCdEfGh01234567"
    out = b""
    for name, data in files:
        out += (f"------{boundary}\r\nContent-Disposition: form-data; name=\"list\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"------{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary=----{boundary}", out


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        data: bytes = resp.read()
        return data


def stored(home: Home) -> list[Path]:
    files = home.root / "files"
    return sorted(p for p in files.rglob("*") if p.is_file()) if files.exists() else []


def test_off_by_default_then_switched_on_and_off_from_settings(home: Home, daemon: Daemon) -> None:
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        send(port, "POST", "/heartbeat", b"", OBSIDIAN)
    info = daemon.rpc("get_integrations")
    assert info["picgo_server"] is False and info["picgo_listening"] is False and info["picgo_port"] == 36677

    on = daemon.rpc("save_integrations", {"picgo_server": True, "picgo_port": port, "picgo_key": "k3y-for-tests"})
    assert on["picgo_listening"] is True and on["picgo_key_set"] is True and "k3y" not in json.dumps(on)
    assert 'picgo_key = "k3y-for-tests"' in (home.root / "config.toml").read_text()
    assert send(port, "POST", "/heartbeat?key=k3y-for-tests", None, OBSIDIAN)[2] == {"success": True,
                                                                                     "result": "alive"}
    status, _, body = send(port, "POST", "/heartbeat", None, OBSIDIAN)
    assert status == 401 and body["success"] is False and "?key=" in body["message"]
    assert "k3y-for-tests" not in daemon.log()

    off = daemon.rpc("save_integrations", {"picgo_server": False, "remove_picgo_key": True})
    assert off["picgo_listening"] is False and off["picgo_key_set"] is False
    with pytest.raises(ConnectionRefusedError):
        send(port, "POST", "/heartbeat", None, OBSIDIAN)


def test_a_busy_port_is_reported_not_fatal(home: Home, daemon: Daemon) -> None:
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        info = daemon.rpc("save_integrations", {"picgo_server": True, "picgo_port": taken})
        assert info["picgo_listening"] is False
        assert f"Port {taken} cannot be used" in info["picgo_error"] and "PicGo or PicList" in info["picgo_error"]
    assert daemon.rpc("get_daemon_info")["integrations"]["picgo_error"] == info["picgo_error"]
    assert daemon.rpc("get_upload_history")["total"] == 0  # and the daemon still works


def test_obsidian_paths_form_and_delete(home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    enable(home, port)
    d = daemon_factory()
    images = [make_image(home.pictures / f"note image {i}.jpg", 30_000 + i, seed=i) for i in range(3)]

    # requestUrl({url, method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({list})})
    body = json.dumps({"list": [str(p) for p in images]}).encode()
    status, _, answer = send(port, "POST", "/upload", body, {**OBSIDIAN, "Content-Type": "application/json"})
    assert status == 200 and answer["success"] is True, answer
    assert len(answer["result"]) == 3
    for url, image in zip(answer["result"], images, strict=True):  # in input order, each the file's bytes
        assert fetch(url) == image.read_bytes()
    assert [f["imgUrl"] for f in answer["fullResult"]] == answer["result"]
    tasks = {t["task_id"]: t for t in d.rpc("get_all_upload_progress")["tasks"]}
    assert all(tasks[f["id"]]["status"] == "completed" for f in answer["fullResult"])
    assert d.rpc("get_upload_history")["total"] == 3

    # Remote server mode: the files' bytes as multipart/form-data (a vault file is named by its full path).
    ctype, form = obsidian_form([("1733000000000.png", screenshot()),
                                 (str(images[1]), images[1].read_bytes())])
    status, _, answer = send(port, "POST", "/upload", form, {**OBSIDIAN, "Content-Type": ctype})
    assert status == 200 and answer["success"] is True, answer
    assert fetch(answer["result"][0]) == screenshot() and fetch(answer["result"][1]) == images[1].read_bytes()
    assert answer["fullResult"][1]["fileName"] == images[1].name

    # "Delete image using PicList": the fullResult entry it kept goes to /delete.
    entry = answer["fullResult"][0]
    status, _, deleted = send(port, "POST", "/delete", json.dumps({"list": [entry]}).encode(),
                              {**OBSIDIAN, "Content-Type": "application/json"})
    assert status == 200 and deleted == {"success": True, "message": "delete success: 1, fail: 0"}
    with pytest.raises(urllib.error.HTTPError):
        fetch(answer["result"][0])
    history = {i["task_id"]: i for i in d.rpc("get_upload_history")["items"]}
    assert history[entry["id"]]["deleted_at"] is not None
    assert [i for i in history.values() if i["deleted_at"]] == [history[entry["id"]]]  # only that one
    status, _, unknown = send(port, "POST", "/delete", json.dumps({"list": [{"imgUrl": "https://x.example/a.png"}]})
                              .encode(), {**OBSIDIAN, "Content-Type": "application/json"})
    assert unknown["success"] is False and "fail: 1" in unknown["message"] and "No upload" in unknown["message"]


def test_obsidian_clipboard_upload_is_an_empty_post(home: Home, desktop: Desktop,
                                                    daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    enable(home, port)
    d = daemon_factory(env={**pixlift_env(home), "DISPLAY": desktop.display})
    status, _, answer = send(port, "POST", "/upload", None, OBSIDIAN)  # requestUrl({url, method: "POST"})
    assert status == 400 and answer["success"] is False and "holds no image" in answer["message"]

    desktop.clip_set(screenshot(), "image/png")
    status, _, answer = send(port, "POST", "/upload", None, OBSIDIAN)
    assert status == 200 and answer["success"] is True, answer
    assert fetch(answer["result"][0]) == screenshot()
    assert d.rpc("get_all_upload_progress")["tasks"][-1]["source"] == "clipboard"


def test_typora_preflight_then_post_from_its_window(home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    enable(home, port)
    daemon_factory()
    images = [make_image(home.pictures / f"typora-{i}.png", 10_000 + i, seed=10 + i) for i in range(2)]
    status, headers, _ = send(port, "OPTIONS", "/upload", None, {
        **TYPORA, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert status == 204 and headers["access-control-allow-origin"] == "typora://app"
    assert headers["access-control-allow-methods"] == "POST" and "content-type" in \
        headers["access-control-allow-headers"].lower()

    body = json.dumps({"list": [str(p) for p in images]}).encode()
    status, headers, answer = send(port, "POST", "/upload", body, {**TYPORA, "Content-Type": "application/json"})
    assert status == 200 and answer["success"] is True, answer
    assert headers["access-control-allow-origin"] == "typora://app"
    assert [fetch(u) for u in answer["result"]] == [p.read_bytes() for p in images]


def test_piclist_form_with_key_and_failures_named(home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    enable(home, port, key="piclist-key-123")
    daemon_factory()
    boundary = "X-PICLIST-BOUNDARY"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"shot.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + screenshot() + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _, answer = send(port, "POST", "/upload?key=piclist-key-123", form, headers)
    assert status == 200 and answer["success"] is True and fetch(answer["result"][0]) == screenshot()
    assert send(port, "POST", "/upload?key=wrong-key-000", form, headers)[0] == 401

    outside = make_image(home.root.parent / "elsewhere.jpg", 5_000)
    status, _, answer = send(port, "POST", "/upload?key=piclist-key-123",
                             json.dumps({"list": [str(outside)]}).encode(), {"Content-Type": "application/json"})
    assert status == 400 and answer["success"] is False
    assert "elsewhere.jpg" in answer["message"] and str(home.pictures) in answer["message"]  # where files may be
    status, _, answer = send(port, "POST", "/upload?key=piclist-key-123", json.dumps({"list": []}).encode(),
                             {"Content-Type": "application/json"})
    assert status == 400 and "at least one" in answer["message"]


@pytest.mark.parametrize("case", ["page origin", "null origin", "cross-site fetch", "same-site fetch", "text/plain",
                                  "url-encoded form", "foreign host", "page preflight", "page form"])
def test_what_a_web_page_could_send_is_refused_and_stores_nothing(home: Home, case: str,
                                                                  daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    enable(home, port)
    d = daemon_factory()
    image = make_image(home.pictures / "private.jpg", 20_000)
    body = json.dumps({"list": [str(image)]}).encode()
    json_type = {"Content-Type": "application/json"}
    ctype, form = obsidian_form([("x.png", screenshot())])
    request: dict[str, tuple[str, bytes | None, dict[str, str], str | None]] = {
        "page origin": ("POST", body, {**PAGE, **json_type}, None),
        "null origin": ("POST", body, {**PAGE, "Origin": "null", **json_type}, None),
        "cross-site fetch": ("POST", body, {"Sec-Fetch-Site": "cross-site", **json_type}, None),
        "same-site fetch": ("POST", body, {"Sec-Fetch-Site": "same-site", **json_type}, None),
        "text/plain": ("POST", body, {**OBSIDIAN, "Content-Type": "text/plain;charset=UTF-8"}, None),
        "url-encoded form": ("POST", b"list=" + str(image).encode(),
                             {**OBSIDIAN, "Content-Type": "application/x-www-form-urlencoded"}, None),
        "foreign host": ("POST", body, {**OBSIDIAN, **json_type}, f"rebound.example:{port}"),
        "page preflight": ("OPTIONS", None, {**PAGE, "Access-Control-Request-Method": "POST"}, None),
        "page form": ("POST", form, {**PAGE, "Content-Type": ctype}, None),
    }
    method, data, headers, host = request[case]
    status, got_headers, answer = send(port, method, "/upload", data, headers, host=host)
    assert status in (403, 415), (status, answer)
    assert answer["success"] is False and answer["message"]
    assert "access-control-allow-origin" not in got_headers
    assert stored(home) == [] and d.rpc("get_upload_history")["total"] == 0
    assert d.rpc("get_all_upload_progress")["tasks"] == []


def test_settings_in_config_are_checked(home: Home) -> None:
    enable(home, 36677)
    with (home.root / "config.toml").open("a") as fh:
        fh.write('picgo_origins = ["null"]\n')
    env = pixlift_env(home)
    done = subprocess.run([*pixlift_cmd(), "config", "check"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "integrations.picgo_origins" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def pixlift_cmd() -> list[str]:
    import sys
    return [sys.executable, "-m", "pixlift"]


def test_switched_on_in_the_settings_page(home: Home, daemon: Daemon, open_ui: Callable[..., Ui]) -> None:  # noqa: F811
    ui = open_ui(daemon)
    page = ui.page
    ui.go("Settings")
    panel = page.get_by_role("region", name="Editors: Typora and Obsidian")
    status = panel.get_by_role("status")
    expect(status).to_have_text("Off. No editor can reach pixlift this way.")
    expect(panel).to_contain_text("requests from web pages are refused")
    port = free_port()
    panel.get_by_label("PicGo-compatible server").check()
    panel.get_by_label("Port").fill(str(port))
    panel.get_by_label("Key (optional)").fill("typed-in-key-42")
    panel.get_by_role("button", name="Save").click()
    expect(status).to_have_text(f"✓ Listening. In the editor, set the upload server to "
                                f"http://127.0.0.1:{port}/upload?key=YOUR-KEY")
    expect(panel.get_by_label("Key (optional)")).to_have_value("")  # write-only
    assert send(port, "POST", "/heartbeat?key=typed-in-key-42", None, OBSIDIAN)[2]["success"] is True

    panel.get_by_label("Remove the saved key").check()
    panel.get_by_label("Port").fill("80")
    panel.get_by_role("button", name="Save").click()
    assert panel.get_by_label("Port").evaluate("e => e.validity.valid") is False  # the browser says why first
    panel.get_by_label("Port").fill(str(port))
    panel.get_by_role("button", name="Save").click()
    expect(panel.get_by_label("Remove the saved key")).to_be_hidden()
    assert send(port, "POST", "/heartbeat", None, OBSIDIAN)[2]["success"] is True
    ui.assert_no_console_errors()


def test_rate_limited_like_every_other_caller(home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config(security={"calls_per_second": 0.2, "call_burst": 2})
    port = free_port()
    enable(home, port)
    daemon_factory()
    assert [send(port, "POST", "/heartbeat", None, OBSIDIAN)[0] for _ in range(2)] == [200, 200]
    status, headers, answer = send(port, "POST", "/heartbeat", None, OBSIDIAN)
    assert status == 429 and answer["success"] is False and "Too many calls" in answer["message"]
    assert int(headers["retry-after"]) >= 1


def test_an_editor_waiting_on_an_outage_is_answered_when_pixlift_stops(home: Home,
                                                                        daemon_factory: Callable[..., Daemon]) -> None:
    """The store is down (nothing listens on its port): the upload waits the outage out, the editor waits for it,
    and quitting pixlift answers the editor at once instead of leaving it hanging (the upload resumes later)."""
    import threading
    import time
    dead = free_port()
    home.write_config(profiles={"s3": {"provider": "s3", "bucket": "b", "endpoint_url": f"http://127.0.0.1:{dead}",
                                       "access_key_id": "AK", "secret_access_key": "SK", "addressing_style": "path"}},
                      default="s3")
    port = free_port()
    enable(home, port)
    d = daemon_factory()
    image = make_image(home.pictures / "offline.jpg", 8_000)
    got: list[tuple[int, dict[str, str], Any]] = []
    editor = threading.Thread(target=lambda: got.append(send(
        port, "POST", "/upload", json.dumps({"list": [str(image)]}).encode(),
        {**OBSIDIAN, "Content-Type": "application/json"})))
    editor.start()
    wait_until(lambda: any((t.get("error") or {}).get("code") == "network_error"
                           for t in d.rpc("get_all_upload_progress")["tasks"]), 60, message="the outage noticed")
    started = time.monotonic()
    assert d.stop() == 0
    editor.join(30)
    assert not editor.is_alive() and time.monotonic() - started < 15
    status, _, answer = got[0]
    assert status == 200 and answer["success"] is False
    assert "offline.jpg: not uploaded yet" in answer["message"] and "History" in answer["message"]


@pytest.mark.parametrize("case", ["no boundary", "wrong boundary", "cut off", "headers without end",
                                  "no disposition", "garbage"])
def test_a_malformed_multipart_body_gets_400_in_words_and_no_traceback(home: Home, case: str,
                                                                        daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    enable(home, port)
    d = daemon_factory()
    part = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + screenshot())
    ctype, body = {
        "no boundary": ("multipart/form-data", part + b"\r\n--B--\r\n"),
        "wrong boundary": ("multipart/form-data; boundary=Z", part + b"\r\n--B--\r\n"),
        "cut off": ("multipart/form-data; boundary=B", part[:300]),
        "headers without end": ("multipart/form-data; boundary=B", b"--B\r\nContent-Disposition: form-data; "
                                b"name=\"file\"; filename=\"a.png\"\r\n" + b"X: y\r\n" * 50),
        "no disposition": ("multipart/form-data; boundary=B", b"--B\r\nContent-Type: image/png\r\n\r\nxx\r\n--B--\r\n"),
        "garbage": ("multipart/form-data; boundary=B", bytes(range(256)) * 4),
    }[case]
    status, _, answer = send(port, "POST", "/upload", body, {**OBSIDIAN, "Content-Type": ctype})
    assert 400 <= status < 500, (status, answer)
    assert answer["success"] is False and answer["message"]
    assert "Traceback" not in d.log()
    assert not stored(home)
    assert d.rpc("get_upload_history")["total"] == 0
