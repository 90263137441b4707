"""A browser app built on Uppy's AWS S3 plugin uploads to the local store's one-time URL, in real Chromium.

The app is what such apps are (the presigned flow of seed 004): a page on its own origin (another loopback
port) and its backend there, which calls the daemon's ``create_upload_urls`` with the token, hands the URL to
Uppy, and calls ``confirm_uploads`` once Uppy is done. The browser PUTs the file to the daemon itself, so the
one-time URL must answer the CORS preflight and the PUT for the page's origin, as an S3 presigned URL does for
a bucket that allows the app; nothing else on the daemon may.

Both plugin generations are tried: Uppy 5 (``getUploadParameters``, which waits for an ``ETag`` it can read)
and Uppy 6 (``signRequest``). Their browser bundles come from npm: scripts/test.sh installs them into
``.browser-libs/`` (not committed).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, Daemon, Home
from playwright.sync_api import Browser
from test_ui import browser, png  # noqa: F401 - headless Chromium, launched as the UI's tests launch it

LIBS = REPO_ROOT / ".browser-libs" / "node_modules"

SIGN = {  # how each plugin generation asks the app's backend for a URL
    "uppy5": """{ shouldUseMultipart: false,
        async getUploadParameters(file) {
          const p = await backend('/sign', { name: file.name, size: file.size, type: file.type });
          return { method: p.method, url: p.url, headers: p.headers, fields: {} };
        } }""",
    "uppy6": """{ shouldUseMultipart: false, generateObjectKey: (file) => file.id,
        async signRequest({ method, key }) {
          const file = uppy.getFile(key);
          const p = await backend('/sign', { name: file.name, size: file.size, type: file.type });
          return { url: p.url, key: p.key };
        } }""",
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>photo app</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/lib/uppy.min.css"></head>
<body><div id="drop"></div>
<script src="/lib/uppy.min.js"></script>
<script>
  const keys = {};
  async function backend(path, body) {
    const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                  body: JSON.stringify(body) });
    const p = await r.json();
    keys[body.name] = p.key;
    return p;
  }
  const { Uppy, Dashboard, AwsS3 } = window.Uppy;
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(Dashboard, { inline: true, target: '#drop' });
  uppy.use(AwsS3, SIGN);
  uppy.on('complete', async (result) => {
    const done = result.successful.map((f) => keys[f.name]);
    const confirmed = done.length ? await backend('/confirm', { keys: done }) : null;
    window.outcome = { successful: done, failed: result.failed.map((f) => String(f.error)), confirmed };
  });
  window.uppy = uppy;
</script></body></html>"""


class AppBackend:
    """The app's own server: its page, the Uppy bundle, and the two calls its backend makes to the daemon."""

    def __init__(self, daemon: Daemon, bundle: str) -> None:
        self.daemon = daemon
        page = PAGE.replace("SIGN", SIGN[bundle]).encode()
        dist = LIBS / bundle / "dist"
        self.calls: list[dict[str, Any]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                files = {"/": (page, "text/html"), "/lib/uppy.min.js": ((dist / "uppy.min.js").read_bytes(),
                                                                        "text/javascript"),
                         "/lib/uppy.min.css": ((dist / "uppy.min.css").read_bytes(), "text/css")}
                body, ctype = files.get(self.path, (b"", "text/plain"))
                self.reply(200 if body else 404, body, ctype)

            def do_POST(self) -> None:
                asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/sign":
                    file = {"name": asked["name"], "size": asked["size"], "content_type": asked["type"]}
                    answer = daemon.rpc("create_upload_urls", {"files": [file]})["uploads"][0]
                else:
                    answer = daemon.rpc("confirm_uploads", {"keys": asked["keys"]})
                calls.append({"path": self.path, "asked": asked, "answer": answer})
                self.reply(200, json.dumps(answer).encode(), "application/json")

            def reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def app_for(daemon_factory: Callable[..., Daemon], home: Home) -> Iterator[Callable[[str], AppBackend]]:
    home.write_config({"local": {"provider": "local"}}, default="local")
    started: list[AppBackend] = []

    def make(bundle: str) -> AppBackend:
        # A missing bundle is a missing install step (scripts/test.sh installs it), never a reason to skip.
        assert (LIBS / bundle / "dist" / "uppy.min.js").exists(), f"{bundle} is not installed: run scripts/test.sh"
        started.append(AppBackend(daemon_factory(), bundle))
        return started[-1]

    yield make
    for app in started:
        app.server.shutdown()


@pytest.mark.parametrize("bundle", ["uppy5", "uppy6"])
def test_an_uppy_app_uploads_to_the_local_store_from_chromium(
        bundle: str, app_for: Callable[[str], AppBackend], browser: Browser, home: Home, tmp_path: Path) -> None:  # noqa: F811
    app = app_for(bundle)
    photo = png(tmp_path / "holiday.png", size=(320, 200), color=(200, 120, 40))
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.goto(app.origin + "/")
        page.locator(".uppy-Dashboard-input").first.set_input_files(str(photo))
        page.locator(".uppy-StatusBar-actionBtn--upload").click()
        page.wait_for_function("window.outcome !== undefined", timeout=30_000)
        outcome = page.evaluate("window.outcome")
        assert outcome["failed"] == [] and len(outcome["successful"]) == 1, (outcome, errors)
        (confirmed,) = outcome["confirmed"]["results"]
        assert confirmed["status"] == "confirmed", confirmed
        assert (home.root / "files" / confirmed["key"]).read_bytes() == photo.read_bytes()
        sign = next(c for c in app.calls if c["path"] == "/sign")["answer"]
        assert "/presigned/" in sign["url"] and confirmed["key"] == sign["key"]
        assert errors == [], errors

        # the one-time URL is the only thing on the daemon the page may use: /rpc stays closed to it
        daemon_url = sign["url"].split("/presigned/")[0]
        blocked = page.evaluate("""async (url) => {
            try { await fetch(url + '/rpc', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                              body: '{"jsonrpc":"2.0","id":1,"method":"get_daemon_info"}' });
                  return 'answered'; }
            catch (e) { return 'blocked: ' + e; } }""", daemon_url)
        assert blocked.startswith("blocked"), blocked
        assert "Traceback" not in app.daemon.log(), app.daemon.log()
    finally:
        context.close()
