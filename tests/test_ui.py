"""The web UI in a real browser (Debian's Chromium through Playwright) against the real daemon and real stores.

Every test looks at what a person would see: rows, badges, counts, messages, the clipboard. Each one also
collects the page's console errors and uncaught exceptions and asserts there were none, apart from the
resource errors the test itself provokes (a 401 while signed out, a refused connection while the daemon is
down, a 415 for a file that is not an image).

Slow uploads (to cancel, pause or clear them mid-flight) go to the OSS test server with ``put_delay_s`` set,
which makes it read each 64 KiB of a PUT body that much later: a real throttle on the wire, not a mock.

The last tests drive the settings RPC methods directly (save/delete/default profile, the TOML writer).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
import re
import socket
import stat
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import AK, SK, Daemon, Home, RpcFailure, S3Server, make_image, oss_profile, wait_until
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
expect.set_options(timeout=20_000)


# -- helpers ---------------------------------------------------------------------------------------------------
def png(path: Path, size: tuple[int, int] = (240, 160), color: tuple[int, int, int] = (90, 120, 220)) -> Path:
    """A real PNG (so thumbnails decode), in a colour of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 24):  # a few stripes, so each file has distinct bytes and a visible thumbnail
        img.paste((color[2], color[0], color[1]), (x, 0, x + 8, size[1]))
    img.save(path)
    return path


def noise_png(path: Path, megabytes: float = 2.5) -> Path:
    """A PNG that does not compress: about ``megabytes`` on disk, so a throttled upload takes seconds."""
    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, compress_level=0)
    return path


def png_bytes(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "PNG")
    return buf.getvalue()


def form_field(scope: Any, label: str) -> Any:
    """The visible form field with this label (each provider's fieldset has its own Bucket, keys...)."""
    return scope.get_by_label(label).filter(visible=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DROP_JS = """
async (files) => {
  const dt = new DataTransfer();
  for (const [name, b64, type] of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], name, { type }));
  }
  for (const type of ["dragenter", "dragover", "drop"]) {
    document.body.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}
"""


PASTE_JS = """
(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], "image.png", { type: "image/png" }));  // what browsers name a copied image
  document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
}
"""


@dataclass
class Ui:
    """One browser context logged in (or not) to one daemon, recording console errors."""

    context: BrowserContext
    page: Page
    daemon: Daemon
    errors: list[str] = field(default_factory=list)

    def login(self) -> None:
        self.page.goto(f"{self.daemon.url}/?token={self.daemon.home.token}")
        expect(self.page).to_have_url(f"{self.daemon.url}/")
        expect(self.page.locator("#app")).to_be_visible()

    def go(self, view: str) -> None:
        self.page.get_by_role("navigation", name="Views").get_by_role("link", name=view).click()

    def row(self, name: str) -> Any:
        return self.page.locator(".row", has=self.page.locator(".name", has_text=re.compile(f"^{re.escape(name)}$")))

    def badge(self, name: str) -> Any:
        return self.row(name).locator(".badge")

    def tab(self, label: str) -> Any:
        return self.page.get_by_role("tab", name=re.compile(f"^{label}"))

    def count(self, label: str) -> Any:
        return self.tab(label).locator(".count")

    def drop(self, files: list[tuple[str, bytes, str]]) -> None:
        self.page.evaluate(DROP_JS, [[n, base64.b64encode(b).decode(), t] for n, b, t in files])

    def paste(self, data: bytes) -> None:
        self.page.evaluate(PASTE_JS, base64.b64encode(data).decode())

    def clipboard(self) -> str:
        return str(self.page.evaluate("navigator.clipboard.readText()"))

    def copy(self, name: str, label: str) -> str:
        button = self.row(name).get_by_role("button", name=f"Copy {label}")
        button.click()
        expect(button).to_have_text("Copied")
        return self.clipboard()

    def assert_no_console_errors(self, *allowed: str) -> None:
        unexpected = [e for e in self.errors if not any(re.search(a, e) for a in allowed)]
        assert unexpected == [], f"console errors: {unexpected}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A missing browser is a missing install step (scripts/test.sh installs it), never a reason to skip.
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed: apt-get install -y chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_ui(browser: Browser) -> Iterator[Callable[..., Ui]]:
    contexts: list[BrowserContext] = []

    def opener(daemon: Daemon, login: bool = True, width: int = 1100) -> Ui:
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                      viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        ui = Ui(context, page, daemon)
        page.on("console", lambda m: ui.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: ui.errors.append(f"pageerror: {e}"))
        if login:
            ui.login()
        return ui

    yield opener
    for c in contexts:
        c.close()


@pytest.fixture
def s3_home(home: Home, s3_server: S3Server, request: pytest.FixtureRequest) -> Home:
    bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    s3_server.bucket(bucket)
    home.write_config(profiles={"s3": s3_server.profile(bucket)}, default="s3")
    home.bucket = bucket  # type: ignore[attr-defined]
    return home


# -- getting in --------------------------------------------------------------------------------------------------
def test_without_a_session_the_page_only_says_how_to_open_it(daemon: Daemon, open_ui: Callable[..., Ui]) -> None:
    ui = open_ui(daemon, login=False)
    page = ui.page
    page.goto(f"{daemon.url}/")
    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.locator("#signed-out")).to_contain_text("pixlift open")
    expect(page.locator("#app")).to_be_hidden()
    assert page.get_by_role("button").count() == 0  # nothing to click, nothing else to see
    assert page.get_by_role("textbox").count() == 0

    page.goto(f"{daemon.url}/?token=not-the-token")  # a wrong token signs nobody in
    expect(page).to_have_url(f"{daemon.url}/")
    expect(page.locator("#signed-out")).to_be_visible()

    ui.login()  # the token link: cookie set, token gone from the address bar
    assert "token" not in page.url
    expect(page.get_by_role("button", name="Choose files…")).to_be_visible()
    expect(page.locator("#signed-out")).to_be_hidden()
    cookie = next(c for c in ui.context.cookies() if c["name"] == "pixlift_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "pixlift_session" not in page.evaluate("document.cookie")
    page.reload()
    expect(page.locator("#app")).to_be_visible()  # the cookie, not the link, keeps us in
    ui.assert_no_console_errors(r"status of 401")


# -- adding files and watching them ---------------------------------------------------------------------------
def test_pick_and_drop_files_upload_to_s3_and_copy_links(s3_home: Home, s3_server: S3Server,
                                                        daemon_factory: Callable[..., Daemon],
                                                        open_ui: Callable[..., Ui]) -> None:
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    expect(page.get_by_label("Upload to")).to_have_value("s3")
    expect(page.get_by_label("Upload to").locator("option:checked")).to_have_text("s3 (default)")

    picked = [png(s3_home.pictures / f"pick-{i}.png", color=(40 + 60 * i, 140, 200 - 50 * i)) for i in range(3)]
    page.locator("#picker").set_input_files([str(p) for p in picked])
    for p in picked:
        expect(ui.badge(p.name)).to_have_text("completed")
        expect(ui.row(p.name).locator(".link")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+/"))

    ui.drop([("dropped one.png", png_bytes((220, 80, 60)), "image/png"),
             ("dropped-two.png", png_bytes((30, 160, 90)), "image/png")])
    expect(page.locator("#drop-overlay")).to_be_hidden()
    for name in ("dropped one.png", "dropped-two.png"):
        expect(ui.badge(name)).to_have_text("completed")

    ui.paste(png_bytes((250, 200, 40)))  # an image pasted from the clipboard gets a name of its own
    pasted = page.locator(".row", has=page.locator(".name", has_text=re.compile(r"^pasted-\d{8}-\d{6}\.png$")))
    expect(pasted.locator(".badge")).to_have_text("completed")

    # Each file is a daemon task like any other, named by its original name; one batch per drop or paste.
    tasks = d.rpc("get_all_upload_progress")["tasks"]
    names = sorted(t["name"] for t in tasks if not t["name"].startswith("pasted-"))
    assert names == sorted([p.name for p in picked] + ["dropped one.png", "dropped-two.png"])
    assert len(tasks) == 6 and len({t["batch_id"] for t in tasks}) == 3
    assert len(s3_server.objects(s3_home.bucket)) == 6  # type: ignore[attr-defined]

    # Tabs and counts, the summary line, thumbnails from the local files.
    expect(ui.count("All")).to_have_text("6")
    expect(ui.count("Completed")).to_have_text("6")
    expect(ui.count("Active")).to_have_text("0")
    expect(ui.count("Failed")).to_have_text("0")
    expect(page.locator("#summary")).to_have_text("6 completed")
    thumb = ui.row("pick-0.png").locator(".thumb img")
    expect(thumb).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", thumb.element_handle()) == 240
    ui.tab("Failed").click()
    expect(page.locator(".row:visible")).to_have_count(0)
    expect(page.locator("#empty")).to_have_text("No failed or cancelled uploads.")
    ui.tab("Completed").click()
    expect(page.locator(".row:visible")).to_have_count(6)
    ui.tab("All").click()

    # Copy links in each format; the button says so.
    url = next(t["url"] for t in tasks if t["name"] == "dropped one.png")
    assert ui.copy("dropped one.png", "URL") == url
    assert ui.copy("dropped one.png", "Markdown") == f"![dropped one.png]({url.replace(' ', '%20')})"
    assert ui.copy("dropped one.png", "HTML") == f'<img src="{html.escape(url)}" alt="dropped one.png">'
    assert ui.copy("dropped one.png", "custom") == f"![dropped one.png]({url})"  # the default template
    ui.go("Settings")
    page.get_by_label("Template for the Custom copy button").fill("[{stem}]: {url}")
    expect(page.locator("#template-preview")).to_have_text("[cat]: https://example.com/cat.png")
    ui.go("Uploads")
    assert ui.copy("dropped one.png", "custom") == f"[dropped one]: {url}"
    page.reload()  # the template is kept in this browser
    expect(ui.badge("pick-1.png")).to_have_text("completed")
    assert ui.copy("pick-1.png", "custom").startswith("[pick-1]: http")
    ui.assert_no_console_errors()


def test_polls_every_500_ms_with_since_and_a_drop_is_one_action(home: Home, oss_server: Any,
                                                               daemon_factory: Callable[..., Daemon],
                                                               open_ui: Callable[..., Ui]) -> None:
    """While uploads run the page asks every 500 ms, each time only for what changed since its last answer; a
    drop of many files adds at most one immediate poll (the answers to its sends update their rows)."""
    home.write_config(profiles={"oss": oss_profile(oss_server)}, default="oss")
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    polls: list[tuple[float, dict[str, Any]]] = []

    def record(request: Any) -> None:
        if request.url.endswith("/rpc") and request.method == "POST":
            body = json.loads(request.post_data or "{}")
            if isinstance(body, dict) and body.get("method") == "get_all_upload_progress":
                polls.append((time.monotonic(), body.get("params") or {}))

    page.on("request", record)
    oss_server.server.put_delay_s = 0.08  # about 3 s per file on the wire, one file at a time
    slow = [noise_png(home.pictures / f"slow-{i}.png") for i in range(3)]
    d.rpc("upload_images_batch", {"paths": [str(p) for p in slow], "batch_size": 1})
    expect(ui.badge("slow-0.png")).to_have_text("uploading")
    files = [(f"drop-{i}.png", base64.b64encode(png_bytes((i * 20, 90, 200))).decode(), "image/png")
             for i in range(12)]
    dropped_at = time.monotonic()
    page.evaluate(DROP_JS, files)
    for name in ("slow-2.png", "drop-11.png"):
        expect(ui.badge(name)).to_have_text("completed", timeout=60_000)
    done_at = time.monotonic()
    oss_server.server.put_delay_s = 0

    active = [(t, p) for t, p in polls if t <= done_at]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(active)]
    assert len(gaps) >= 6, polls
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.5, abs=0.15), gaps  # the median gap: 500 ms
    quick = [g for (t, _), g in zip(active[1:], gaps, strict=True) if g < 0.3 and t >= dropped_at]
    assert len(quick) <= 1, gaps  # the drop: one immediate poll at most, however many files it sends
    assert all("since" in p for _, p in polls[1:]), polls  # after the first answer, only what changed
    assert isinstance(polls[-1][1]["since"], int) and polls[-1][1]["since"] > 0
    expect(ui.count("Completed")).to_have_text("15")
    ui.assert_no_console_errors()


def test_a_thousand_rows_are_updated_in_place_by_what_changed(home: Home, daemon_factory: Callable[..., Daemon],
                                                              open_ui: Callable[..., Ui]) -> None:
    """With 1,000 uploads listed, a poll that carries one change touches that row only: the other rows stay the
    same elements, and the page does a few DOM changes, not a thousand (what keeps it responsive; the time it
    takes is measured in bench/ui_poll.py, not asserted here)."""
    home.write_config(security={"files_per_minute": 100000})
    d = daemon_factory()
    paths = [str(make_image(home.pictures / f"r{i:04d}.jpg", 2_000, seed=i)) for i in range(1000)]
    batch = d.rpc("upload_images_batch", {"paths": paths, "batch_size": 50})
    d.wait_batch(batch["batch_id"], timeout=180)
    ui = open_ui(d)
    page = ui.page
    expect(ui.count("Completed")).to_have_text("1000", timeout=30_000)
    page.evaluate("""() => {
      window.__marked = [...document.querySelectorAll('.row')];
      window.__mutations = 0;
      new MutationObserver((list) => { window.__mutations += list.length; })
        .observe(document.getElementById('rows'), { childList: true, subtree: true, attributes: true,
                                                     characterData: true });
    }""")
    one = make_image(home.pictures / "one-more.jpg", 2_000, seed=5000)
    d.rpc("upload_images", {"paths": [str(one)]})
    expect(ui.count("Completed")).to_have_text("1001", timeout=30_000)
    page.wait_for_timeout(1500)  # a few more polls with nothing new
    kept = page.evaluate("() => window.__marked.filter((el) => el.isConnected).length")
    mutations = page.evaluate("() => window.__mutations")
    assert kept == 1000  # no row was rebuilt
    assert mutations < 60, mutations  # the new row and its group, not a re-render of the list
    ui.assert_no_console_errors()


def test_cancel_pause_retry_and_clear_all_on_slow_uploads(home: Home, oss_server: Any,
                                                          daemon_factory: Callable[..., Daemon],
                                                          open_ui: Callable[..., Ui]) -> None:
    home.write_config(profiles={"oss": oss_profile(oss_server)}, default="oss")
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    oss_server.server.put_delay_s = 0.25  # ~10 s for 2.5 MB: plenty of time to act mid-upload
    slow = noise_png(home.pictures / "slow.png")
    page.locator("#picker").set_input_files(str(slow))
    expect(ui.badge("slow.png")).to_have_text("uploading")
    # Speed and time left, or (once the socket buffers hold every byte) that the store is taking them in.
    expect(ui.row("slow.png").locator(".meta")).to_have_text(re.compile(r"^\d+%.*(/s|left|finishing…)"))
    expect(ui.count("Active")).to_have_text("1")
    expect(page.locator("#summary")).to_contain_text("1 uploading")

    page.get_by_role("button", name="Pause all").click()
    expect(ui.badge("slow.png")).to_have_text("paused")
    expect(ui.row("slow.png").locator(".note")).to_contain_text("Paused")
    page.get_by_role("button", name="Resume all").click()
    expect(ui.badge("slow.png")).to_have_text("uploading")

    ui.row("slow.png").get_by_role("button", name="Cancel slow.png").click()
    expect(ui.badge("slow.png")).to_have_text("cancelled")
    expect(ui.count("Failed")).to_have_text("1")
    expect(ui.count("Active")).to_have_text("0")
    task_id = d.rpc("get_all_upload_progress")["tasks"][0]["task_id"]
    assert d.rpc("get_upload_progress", {"task_id": task_id})["status"] == "cancelled"

    oss_server.server.put_delay_s = 0
    ui.row("slow.png").get_by_role("button", name="Retry slow.png").click()
    expect(ui.badge("slow.png")).to_have_text("completed", timeout=30_000)
    done = d.rpc("get_upload_progress", {"task_id": task_id})  # the same task, sent again
    assert done["status"] == "completed" and done["attempts"] >= 2
    assert (oss_server.server.root / "test" / done["key"]).stat().st_size == slow.stat().st_size
    expect(ui.count("Completed")).to_have_text("1")

    # Clear all: asks first, because it cancels what is still uploading.
    oss_server.server.put_delay_s = 0.25
    more = [noise_png(home.pictures / f"more-{i}.png", 1.5) for i in range(2)]
    page.locator("#picker").set_input_files([str(p) for p in more])
    for p in more:
        expect(ui.badge(p.name)).to_have_text("uploading")
    page.get_by_role("button", name="Clear all").click()
    dialog = page.get_by_role("dialog", name="Clear all uploads?")
    expect(dialog).to_contain_text("2 uploads are not finished and will be cancelled")
    dialog.get_by_role("button", name="Keep them").click()
    expect(dialog).to_be_hidden()
    expect(ui.count("All")).to_have_text("3")
    page.get_by_role("button", name="Clear all").click()
    dialog.get_by_role("button", name="Cancel uploads and clear").click()
    expect(ui.count("All")).to_have_text("0")
    expect(page.locator("#empty")).to_contain_text("Nothing uploaded yet")
    wait_until(lambda: d.rpc("get_all_upload_progress")["tasks"] == [], 10, message="the daemon's list to empty")
    assert d.rpc("get_upload_history")["total"] == 1  # the completed link stays in history
    oss_server.server.put_delay_s = 0
    ui.assert_no_console_errors()


def test_failed_uploads_say_why_and_tabs_filter(s3_home: Home, s3_server: S3Server,
                                                daemon_factory: Callable[..., Daemon],
                                                open_ui: Callable[..., Ui]) -> None:
    s3_home.write_config(profiles={"s3": s3_server.profile(s3_home.bucket),  # type: ignore[attr-defined]
                                   "nobucket": s3_server.profile("no-such-bucket-here")}, default="s3")
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    good = [png(s3_home.pictures / f"good-{i}.png", color=(30, 90 * i, 160)) for i in range(2)]
    page.locator("#picker").set_input_files([str(p) for p in good])
    for p in good:
        expect(ui.badge(p.name)).to_have_text("completed")

    page.get_by_label("Upload to").select_option("nobucket")
    page.locator("#picker").set_input_files(str(png(s3_home.pictures / "lost.png")))
    expect(ui.badge("lost.png")).to_have_text("failed")
    expect(ui.row("lost.png").locator(".note")).to_contain_text("Bucket 'no-such-bucket-here' does not exist")

    # Refused by the daemon (415) after sending: the row says why, in its words.
    ui.drop([("fake.png", b"this is text, not a picture" * 10, "image/png")])
    expect(ui.badge("fake.png")).to_have_text("failed")
    expect(ui.row("fake.png").locator(".note")).to_have_text(re.compile(r"fake\.png is not an image"))
    # Refused before sending: not an image by type or name.
    ui.drop([("notes.txt", b"hello", "text/plain")])
    expect(ui.row("notes.txt").locator(".note")).to_contain_text("notes.txt is not an image")

    expect(ui.count("All")).to_have_text("5")
    expect(ui.count("Completed")).to_have_text("2")
    expect(ui.count("Failed")).to_have_text("3")
    expect(page.locator("#summary")).to_have_text("2 completed · 3 failed")
    ui.tab("Failed").click()
    expect(ui.tab("Failed")).to_have_attribute("aria-selected", "true")
    expect(page.locator(".row:visible")).to_have_count(3)
    page.keyboard.press("ArrowLeft")  # tabs work from the keyboard
    expect(ui.tab("Completed")).to_be_focused()
    expect(ui.tab("Completed")).to_have_attribute("aria-selected", "true")
    expect(page.locator(".row:visible")).to_have_count(2)
    ui.tab("All").click()

    s3_server.bucket("no-such-bucket-here")  # what the message said to do; then one click sends it again
    page.get_by_role("button", name="Retry failed").click()
    expect(page.get_by_text("Retrying 1 upload.")).to_be_visible()
    expect(ui.badge("lost.png")).to_have_text("completed")
    expect(ui.count("Completed")).to_have_text("3")

    page.get_by_role("button", name="Clear finished").click()
    expect(ui.count("All")).to_have_text("0")
    assert d.rpc("get_all_upload_progress")["tasks"] == []
    assert d.rpc("get_upload_history")["total"] == 3
    ui.assert_no_console_errors(r"status of 415")


# -- history ----------------------------------------------------------------------------------------------------
def test_history_search_thumbnails_and_copy(s3_home: Home, daemon_factory: Callable[..., Daemon],
                                            open_ui: Callable[..., Ui]) -> None:
    d = daemon_factory()
    paths = [str(png(s3_home.pictures / n, color=c)) for n, c in
             (("cat-1.png", (200, 60, 60)), ("cat-2.png", (60, 200, 60)), ("dog.png", (60, 60, 200)))]
    batch = d.rpc("upload_images", {"paths": paths})["batch_id"]  # uploaded by another client, not the page
    d.wait_batch(batch)
    ui = open_ui(d)
    page = ui.page
    expect(ui.badge("dog.png")).to_have_text("completed")  # rows for other clients' uploads too,
    expect(ui.row("dog.png").locator(".thumb img")).to_be_visible()  # with the uploaded image as thumbnail

    ui.go("History")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    items = page.locator("#history-list > li")
    expect(items).to_have_count(3)
    expect(page.locator("#history-total")).to_have_text("3 uploads, newest first")
    first = items.first.locator("img")
    expect(first).to_be_visible()
    wait_until(lambda: page.evaluate("(img) => img.complete && img.naturalWidth", first.element_handle()) == 240, 10,
               message="the history thumbnail to load")

    page.get_by_label("Search history by name").fill("cat")
    expect(items).to_have_count(2)
    expect(page.locator("#history-total")).to_have_text("2 uploads match “cat”")
    page.get_by_label("Search history by name").fill("dog")
    expect(items).to_have_count(1)
    url = d.rpc("get_upload_history", {"query": "dog"})["items"][0]["url"]
    button = items.first.get_by_role("button", name="Copy Markdown")
    button.click()
    expect(button).to_have_text("Copied")
    assert ui.clipboard() == f"![dog.png]({url})"
    page.get_by_label("Search history by name").fill("zebra")
    expect(items).to_have_count(0)
    expect(page.locator("#history-empty")).to_have_text("No uploads named like “zebra”.")
    ui.assert_no_console_errors()


def test_history_deletes_from_the_store_after_a_confirmation_naming_it(
        s3_home: Home, s3_server: S3Server, daemon_factory: Callable[..., Daemon], open_ui: Callable[..., Ui]) -> None:
    d = daemon_factory()
    paths = [str(png(s3_home.pictures / n, color=c)) for n, c in (("keep.png", (200, 60, 60)),
                                                                  ("oops.png", (60, 60, 200)))]
    d.wait_batch(d.rpc("upload_images", {"paths": paths})["batch_id"])
    bucket = s3_home.bucket  # type: ignore[attr-defined]
    client = s3_server.client()
    keys = {i["name"]: i["key"] for i in d.rpc("get_upload_history")["items"]}
    ui = open_ui(d)
    page = ui.page
    ui.go("History")
    items = page.locator("#history-list > li")
    expect(items).to_have_count(2)
    expect(items.filter(has_text="keep.png").locator(".meta").first).to_contain_text("link expires in 7 days")

    oops = items.filter(has_text="oops.png")
    oops.get_by_role("button", name="Delete oops.png from s3").click()
    dialog = page.get_by_role("dialog", name="Delete oops.png?")
    expect(dialog).to_contain_text("profile “s3”")
    dialog.get_by_role("button", name="Keep it").click()  # changing one's mind changes nothing
    expect(dialog).to_be_hidden()
    client.head_object(Bucket=bucket, Key=keys["oops.png"])

    oops.get_by_role("button", name="Delete oops.png from s3").click()
    dialog.get_by_role("button", name="Delete from the store").click()
    expect(items.filter(has_text="oops.png").locator(".badge.deleted")).to_contain_text("Deleted")
    expect(items.filter(has_text="oops.png").get_by_role("button", name="Copy Markdown")).to_have_count(0)
    with pytest.raises(client.exceptions.ClientError):
        client.head_object(Bucket=bucket, Key=keys["oops.png"])
    client.head_object(Bucket=bucket, Key=keys["keep.png"])  # the other one is still there

    page.get_by_label("Which uploads to show").select_option("deleted")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("oops.png")
    page.get_by_label("Which uploads to show").select_option("stored")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("keep.png")
    ui.assert_no_console_errors()


def test_a_dropped_or_pasted_image_link_is_fetched_and_a_refused_one_says_why(
        home: Home, daemon_factory: Callable[..., Daemon], open_ui: Callable[..., Ui]) -> None:
    from test_urls import PNG, Web

    web = Web()
    try:
        home.write_config({"local": {"provider": "local"}}, default="local")
        d = daemon_factory()
        ui = open_ui(d)
        page = ui.page
        drop = """(url) => { const dt = new DataTransfer(); dt.setData("text/uri-list", url);
                   const e = new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true});
                   window.dispatchEvent(e); }"""
        page.evaluate(drop, web.url("/cat.png"))  # loopback: refused by default, and the page says so
        expect(page.locator("#toasts .toast.error")).to_contain_text("loopback")
        assert d.rpc("get_all_upload_progress")["tasks"] == []

        config = home.root / "config.toml"
        config.write_text(config.read_text().replace("[security]", "[security]\nallow_private_urls = true"))
        d.stop()
        d = daemon_factory()
        ui = open_ui(d)
        page = ui.page
        page.evaluate(drop, web.url("/cat.png"))
        expect(ui.badge("cat.png")).to_have_text("completed")
        paste = """(url) => { const dt = new DataTransfer(); dt.setData("text/plain", url);
                    document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: dt, bubbles: true})); }"""
        page.evaluate(paste, web.url("/hop"))
        expect(page.locator(".row", has_text="cat.png")).to_have_count(2)
        tasks = d.wait_batch(d.rpc("get_all_upload_progress")["tasks"][-1]["batch_id"])["tasks"]
        assert tasks[0]["source"] == "url" and tasks[0]["status"] == "completed"
        assert (home.root / "files" / tasks[0]["key"]).read_bytes() == PNG
        ui.assert_no_console_errors()
    finally:
        web.server.shutdown()


# -- settings ---------------------------------------------------------------------------------------------------
def test_settings_images_options_per_profile(home: Home, daemon_factory: Callable[..., Daemon],
                                            open_ui: Callable[..., Ui]) -> None:
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    ui.go("Settings")
    page.locator("#profile-list > li[data-name=local]").get_by_role("button", name="Edit local").click()
    dialog = page.get_by_role("dialog", name="Edit profile local")
    dialog.get_by_text("Images: location, format, size").click()
    metadata = form_field(dialog, "Photo metadata")
    expect(metadata).to_have_value("location")  # the default: no setting to find
    expect(dialog).to_contain_text("Phones write where a photo was taken into it.")
    form_field(dialog, "Convert to").select_option("webp")
    form_field(dialog, "Longest side (pixels)").fill("40")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    images = tomllib.loads((home.root / "config.toml").read_text())["profiles"]["local"]["images"]
    assert images["convert_to"] == "webp" and images["max_dimension"] == 40 and images["strip_metadata"] == "location"
    photo = png(home.pictures / "wide.png", size=(200, 100))
    task = d.wait_batch(d.rpc("upload_images", {"paths": [str(photo)]})["batch_id"])["tasks"][0]
    assert task["status"] == "completed" and task["key"].endswith(".webp")
    assert task["processing"]["converted_to"] == "webp"
    page.locator("#profile-list > li[data-name=local]").get_by_role("button", name="Edit local").click()
    expect(form_field(dialog, "Convert to")).to_have_value("webp")  # what was saved, shown again
    ui.assert_no_console_errors()


def test_settings_add_test_edit_default_and_delete_profiles(home: Home, s3_server: S3Server,
                                                            daemon_factory: Callable[..., Daemon],
                                                            open_ui: Callable[..., Ui]) -> None:
    s3_server.bucket("ui-settings")
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    ui.go("Settings")
    expect(page.locator("#profile-list > li")).to_have_count(1)

    page.get_by_role("button", name="Add profile").click()
    dialog = page.get_by_role("dialog", name="Add profile")
    form_field(dialog, "Name").fill("minio")
    form_field(dialog, "Provider").select_option("s3")
    form_field(dialog, "Bucket").fill("ui-settings")
    dead = f"http://127.0.0.1:{free_port()}"
    form_field(dialog, "Endpoint URL").fill(dead)
    form_field(dialog, "Region").fill("us-east-1")
    form_field(dialog, "Addressing style").select_option("path")
    form_field(dialog, "Access key ID").fill(AK)
    form_field(dialog, "Secret access key").fill(SK)
    dialog.get_by_role("button", name="Test connection").click()
    result = dialog.locator("#profile-result")
    expect(result).to_have_text(re.compile(f"^✗ Could not reach {re.escape(dead)}"))
    assert not re.search(r"minio", home.root.joinpath("config.toml").read_text())  # testing writes nothing

    form_field(dialog, "Endpoint URL").fill(s3_server.endpoint)
    dialog.get_by_role("button", name="Test connection").click()
    expect(result).to_have_text(f"✓ bucket 'ui-settings' at {s3_server.endpoint} is reachable and the credentials work")

    form_field(dialog, "Endpoint URL").fill("not a url")  # the daemon's checker refuses, nothing is written
    dialog.get_by_role("button", name="Save").click()
    expect(result).to_contain_text("profiles.minio.endpoint_url: 'not a url' is not an http(s) URL")
    assert "minio" not in home.root.joinpath("config.toml").read_text()

    # Valid settings whose connection test fails: the page says why and asks before saving them.
    form_field(dialog, "Endpoint URL").fill(dead)
    dialog.get_by_role("button", name="Save").click()
    confirm = page.locator("#confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Save minio anyway?")
    expect(confirm).to_contain_text(f"Could not reach {dead}")
    confirm.get_by_role("button", name="Keep editing").click()
    expect(confirm).to_be_hidden()
    expect(dialog).to_be_visible()
    expect(result).to_have_text(re.compile(f"^✗ Could not reach {re.escape(dead)}"))
    assert "minio" not in home.root.joinpath("config.toml").read_text()

    form_field(dialog, "Endpoint URL").fill(s3_server.endpoint)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    card = page.locator("#profile-list > li[data-name=minio]")
    expect(card).to_contain_text(f"Bucket ui-settings at {s3_server.endpoint} · keys saved")
    config = home.root / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = tomllib.loads(config.read_text())
    assert saved["profiles"]["minio"]["secret_access_key"] == SK
    assert saved["security"]["allowed_roots"] == [str(home.pictures)]  # other sections kept
    listed = json.dumps(d.rpc("list_profiles"))
    assert SK not in listed and AK not in listed and SK not in page.content()

    card.get_by_role("button", name="Test connection of minio").click()
    expect(card.locator(".result")).to_have_text(re.compile("^✓ bucket 'ui-settings'"))
    card.get_by_role("button", name="Make minio the default").click()
    expect(card.locator(".tag.default")).to_have_text("default")
    expect(page.get_by_label("Upload to").locator("option:checked")).to_have_text("minio (default)")

    # Edit: secrets are write-only (empty, "saved"), and an empty secret keeps the saved one.
    card.get_by_role("button", name="Edit minio").click()
    dialog = page.get_by_role("dialog", name="Edit profile minio")
    expect(form_field(dialog, "Secret access key")).to_have_value("")
    expect(form_field(dialog, "Secret access key")).to_have_attribute("placeholder", re.compile("saved"))
    expect(form_field(dialog, "Bucket")).to_have_value("ui-settings")
    form_field(dialog, "Region").fill("eu-west-1")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    saved = tomllib.loads(config.read_text())["profiles"]["minio"]
    assert saved["region"] == "eu-west-1" and saved["secret_access_key"] == SK

    # In force without a restart: the page uploads through it.
    ui.go("Uploads")
    page.locator("#picker").set_input_files(str(png(home.pictures / "via-minio.png")))
    expect(ui.badge("via-minio.png")).to_have_text("completed")
    assert any(k.endswith(".png") for k in s3_server.objects("ui-settings"))

    ui.go("Settings")
    local = page.locator("#profile-list > li[data-name=local]")
    local.get_by_role("button", name="Delete local").click()
    page.get_by_role("dialog", name="Delete profile local?").get_by_role("button", name="Delete").click()
    expect(page.locator("#profile-list > li")).to_have_count(1)
    expect(card.get_by_role("button", name=re.compile("Delete"))).to_have_count(0)  # not the default
    assert "local" not in tomllib.loads(config.read_text())["profiles"]
    ui.assert_no_console_errors()


# -- the daemon going away ------------------------------------------------------------------------------------
def restart_on_same_port(daemon_factory: Callable[..., Daemon], port: int) -> Daemon:
    """Start a daemon on ``port`` again, waiting while the old one's closed connections still hold it.

    The stopping daemon closes the page's keep-alive connections itself, which leaves them in FIN-WAIT/TIME-WAIT
    on its port; a listener without SO_REUSEADDR (app.py binds with ``reuse_address=False``) cannot bind that
    port until they expire (up to 60 s on Linux). With SO_REUSEADDR the first attempt succeeds.
    """
    deadline = time.monotonic() + 75
    while True:
        try:
            return daemon_factory(port=port)
        except AssertionError as exc:
            if "address already in use" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_page_recovers_after_the_daemon_restarts(home: Home, daemon_factory: Callable[..., Daemon],
                                                 open_ui: Callable[..., Ui]) -> None:
    d = daemon_factory()
    ui = open_ui(d)
    page = ui.page
    page.locator("#picker").set_input_files(str(png(home.pictures / "before.png")))
    expect(ui.badge("before.png")).to_have_text("completed")

    d.stop()
    banner = page.get_by_role("alert").filter(has_text="Disconnected from pixlift")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("retrying")

    d2 = restart_on_same_port(daemon_factory, d.port)
    expect(banner).to_be_hidden(timeout=30_000)
    expect(ui.badge("before.png")).to_have_text("completed")  # the list came back from the daemon's journal
    page.locator("#picker").set_input_files(str(png(home.pictures / "after.png")))  # still signed in
    expect(ui.badge("after.png")).to_have_text("completed")
    assert {t["name"] for t in d2.rpc("get_all_upload_progress")["tasks"]} == {"before.png", "after.png"}
    ui.assert_no_console_errors(r"ERR_CONNECTION_REFUSED", r"ERR_CONNECTION_RESET", r"ERR_EMPTY_RESPONSE")


def test_narrow_window_keeps_every_control_reachable(home: Home, daemon: Daemon,
                                                     open_ui: Callable[..., Ui]) -> None:
    ui = open_ui(daemon, width=380)
    page = ui.page
    page.locator("#picker").set_input_files(str(png(home.pictures / "narrow.png")))
    expect(ui.badge("narrow.png")).to_have_text("completed")
    assert page.evaluate("document.documentElement.scrollWidth") <= 380  # no sideways scrolling
    for name in ("Choose files…", "Pause all", "Resume all", "Clear finished", "Clear all", "Copy Markdown"):
        expect(page.get_by_role("button", name=name).first).to_be_visible()
    ui.assert_no_console_errors()


# -- the settings RPC methods behind the page ------------------------------------------------------------------
def test_save_profile_checks_before_writing_and_keeps_secrets(home: Home, daemon: Daemon, s3_server: S3Server) -> None:
    config = home.root / "config.toml"
    before = config.read_text()
    with pytest.raises(RpcFailure) as bad:
        daemon.rpc("save_profile", {"name": "x", "profile": {"provider": "s3", "bucket": "b", "bucket_name": "b"}})
    assert bad.value.code == -32004 and "Did you mean 'bucket'?" in bad.value.error["message"]
    with pytest.raises(RpcFailure) as bad_name:
        daemon.rpc("save_profile", {"name": "has space", "profile": {"provider": "local"}})
    assert bad_name.value.code == -32602
    with pytest.raises(RpcFailure) as not_object:
        daemon.rpc("save_profile", {"name": "x", "profile": "s3"})
    assert not_object.value.code == -32602
    assert config.read_text() == before

    odd = 'a "quoted" \\ path\twith\ttabs\nand a newline ☃'
    fields = {**s3_server.profile("rpc-bucket"), "key_template": "{stem}{ext}",
              "public_base_url": "https://cdn.example.com/x", "region": odd}
    with pytest.raises(RpcFailure) as untested:  # the bucket does not exist: saving it needs force
        daemon.rpc("save_profile", {"name": "p-1", "profile": fields})
    assert untested.value.code == -32004 and untested.value.data["check"]["ok"] is False
    assert "Not saved" in untested.value.error["message"] and config.read_text() == before
    listed = daemon.rpc("save_profile", {"name": "p-1", "profile": fields, "force": True})
    assert [p["name"] for p in listed["profiles"]] == ["local", "p-1"] and listed["default"] == "local"
    assert SK not in json.dumps(listed)
    saved = tomllib.loads(config.read_text())
    assert saved["profiles"]["p-1"]["region"] == odd  # escaped and read back exactly
    assert saved["storage"]["default"] == "local" and saved["security"]["allowed_roots"] == [str(home.pictures)]

    # A patch: blank non-secret fields are removed, left-out fields and blank secrets are kept.
    daemon.rpc("save_profile", {"name": "p-1", "force": True, "profile": {
        "public_base_url": "", "secret_access_key": "", "region": "eu-west-1"}})
    table = tomllib.loads(config.read_text())["profiles"]["p-1"]
    assert "public_base_url" not in table and table["secret_access_key"] == SK
    assert table["region"] == "eu-west-1" and table["key_template"] == "{stem}{ext}"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    with pytest.raises(RpcFailure) as default_gone:
        daemon.rpc("delete_profile", {"name": "local"})
    assert default_gone.value.code == -32004 and "default" in default_gone.value.error["message"]
    with pytest.raises(RpcFailure) as unknown:
        daemon.rpc("set_default_profile", {"name": "nope"})
    assert unknown.value.code == -32004
    assert daemon.rpc("set_default_profile", {"name": "p-1"})["default"] == "p-1"
    assert daemon.rpc("get_daemon_info")["default_profile"] == "p-1"  # in force at once
    assert [p["name"] for p in daemon.rpc("delete_profile", {"name": "local"})["profiles"]] == ["p-1"]
    with pytest.raises(RpcFailure) as last:
        daemon.rpc("delete_profile", {"name": "p-1"})
    assert last.value.code == -32004
    draft = daemon.rpc("check_profile_draft", {"name": "p-1", "profile": {"endpoint_url": s3_server.endpoint}})
    assert draft["ok"] is False and "rpc-bucket" in draft["message"]  # the bucket was never created
    s3_server.bucket("rpc-bucket")
    assert daemon.rpc("check_profile_draft", {"name": "p-1", "profile": {"region": "us-east-1"}})["ok"] is True


def test_toml_writer_round_trips_our_schema() -> None:
    from pixlift.settings.store import dumps

    doc = {"storage": {"default": "a b"},
           "profiles": {"a b": {"provider": "s3", "s": 'q"\\\n\t\x01\x7f é ☃', "n": 3, "f": 1e16, "g": 0.5,
                                "t": True, "e": ""},
                        "local": {"provider": "local"}},
           "transfers": {},
           "security": {"allowed_roots": ["~/P", 'a"b'], "images_only": False}}
    assert tomllib.loads(dumps(doc)) == doc
