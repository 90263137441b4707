"""WebDAV and SFTP, the stores people already own, end to end: the real daemon uploading to ``rclone serve
webdav``, ``rclone serve sftp`` and OpenSSH's own ``sftp-server`` (tests/davsftp.py), each behind a real TCP
proxy (tests/netproxy.py) that can slow a connection down or cut it, and each restarted mid-file on its port.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, RpcFailure, make_image, pixlift_env, wait_until
from davsftp import PASSWORD, USER, HostKey, OpenSshSftp, Rclone, WebServer, files_under, sftp_server_path
from netproxy import Proxy
from playwright.sync_api import expect
from test_ui import Ui, browser, form_field, open_ui  # noqa: F401 - the browser fixtures

MiB = 1024 * 1024
KiB = 1024
FAST = {"backoff_base_s": 0.05, "backoff_max_s": 0.2}
TEMP = re.compile(r"\.pixlift-part$")


@dataclass
class DavStore:
    kind: str  # "webdav", "sftp-rclone", "sftp-openssh"
    root: Path  # where the files land on disk
    proxy: Proxy
    profile: dict[str, Any]
    restart: Callable[[], None]  # stop the server and start it again on the same port
    resumes: bool  # the server writes a file at an offset
    port: int  # the server's own port, behind the proxy

    def objects(self) -> dict[str, Path]:
        return {k: p for k, p in files_under(self.root).items() if not TEMP.search(k)}

    def temps(self) -> list[str]:
        return [k for k in files_under(self.root) if TEMP.search(k)]

    def fetch(self, url: str, login: bool = True) -> bytes | int:
        req = urllib.request.Request(url)
        if login and self.kind == "webdav":
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code


def start_store(kind: str, tmp: Path, *, cache: bool = False) -> tuple[DavStore, Callable[[], None]]:
    """A store of ``kind`` behind a proxy, and what stops it."""
    root = tmp / "store"
    stops: list[Callable[[], None]] = []
    if kind == "webdav":
        server = Rclone("webdav", root).start()
        proxy = Proxy(server.port).start()
        profile = {"provider": "webdav", "url": f"{proxy.endpoint}/photos", "username": USER, "password": PASSWORD}
        (root / "photos").mkdir(parents=True, exist_ok=True)
        restart, resumes, served, port = _restart(server), False, root / "photos", server.port
        stops.append(server.stop)
    else:
        key = HostKey.make(tmp / "keys")
        if kind == "sftp-rclone":
            extra = ("--vfs-cache-mode", "writes", "--vfs-write-back", "0s", "--cache-dir", str(tmp / "cache")) \
                if cache else ()
            server = Rclone("sftp", root, extra=extra, host_key=key).start()
            port, resumes, folder, served = server.port, cache, "www/img", root / "www" / "img"
            restart = _restart(server)
            stops.append(server.stop)
        else:
            program = sftp_server_path()
            assert program is not None, "OpenSSH's sftp-server is not installed (scripts/test.sh installs it)"
            ssh = OpenSshSftp(root, key, program).start()
            port, resumes, folder, served = ssh.port, True, str(root / "www" / "img"), root / "www" / "img"
            restart = _restart(ssh)
            stops.append(ssh.stop)
        proxy = Proxy(port).start()
        web = WebServer(root)
        stops.append(web.stop)
        known = key.known_hosts(tmp / "known_hosts", proxy.port)
        profile = {"provider": "sftp", "host": "127.0.0.1", "port": proxy.port, "username": USER,
                   "password": PASSWORD, "root": folder, "known_hosts": str(known),
                   "public_base_url": f"{web.url}/www/img"}
    stops.append(proxy.stop)
    store = DavStore(kind, served, proxy, profile, restart, resumes, port)

    def stop() -> None:
        for fn in reversed(stops):
            fn()

    return store, stop


def _restart(server: Rclone | OpenSshSftp) -> Callable[[], None]:
    def again() -> None:
        server.stop()
        server.start()

    return again


KINDS = ["webdav", "sftp-rclone", "sftp-openssh"]


@pytest.fixture(params=KINDS)
def dav(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DavStore]:
    store, stop = start_store(request.param, tmp_path)
    yield store
    stop()


def configure(home: Home, store: DavStore, **transfers: Any) -> None:
    home.write_config({"nas": store.profile}, default="nas", transfers={**FAST, **transfers})


def progress(d: Daemon, task_id: str) -> dict[str, Any]:
    return dict(d.rpc("get_upload_progress", {"task_id": task_id}))


def uploading(d: Daemon, f: Path, past_mib: int, interval: float = 0.05) -> str:
    """Upload ``f``; its task id, once the store has acknowledged more than ``past_mib`` MiB of it."""
    task_id: str = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
    wait_until(lambda: progress(d, task_id)["bytes_uploaded"] > past_mib * MiB, 30, interval=interval,
               message=f"{past_mib} MiB acknowledged")
    return task_id


# -- the faces, the links, history, dedup, delete ----------------------------------------------------------------
def test_both_kinds_are_offered_with_their_fields(daemon: Daemon) -> None:
    kinds = {k["provider"]: k for k in daemon.rpc("list_provider_kinds")["kinds"]}
    webdav = {f["name"]: f for f in kinds["webdav"]["fields"]}
    sftp = {f["name"]: f for f in kinds["sftp"]["fields"]}
    assert set(webdav) == {"url", "username", "password"}
    assert webdav["url"]["input"] == "url" and webdav["password"]["secret"] is True
    assert set(sftp) == {"host", "port", "username", "password", "key_file", "key_passphrase", "root", "known_hosts"}
    assert sftp["port"]["input"] == "number"
    assert sftp["password"]["secret"] and sftp["key_passphrase"]["secret"] and not sftp["key_file"]["secret"]


def test_a_batch_arrives_whole_with_working_links_history_dedup_and_delete(
        home: Home, dav: DavStore, daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, dav)
    d = daemon_factory()
    sizes = [3_000, 300_000, 6 * MiB + 5]
    files = [make_image(home.pictures / f"photo {i}.jpg", n, seed=i) for i, n in enumerate(sizes)]
    done = d.wait_batch(d.rpc("upload_images_batch", {"paths": [str(f) for f in files], "batch_size": 3})["batch_id"])
    objects = dav.objects()
    for task, f in zip(done["tasks"], files, strict=True):
        assert task["status"] == "completed", task["error"]
        assert task["bytes_uploaded"] == task["bytes_total"] == f.stat().st_size
        assert re.fullmatch(r"\d{4}/\d{2}/photo-\d-[0-9a-f]{8}\.jpg", task["key"]), task["key"]
        assert objects[task["key"]].read_bytes() == f.read_bytes()
        assert dav.fetch(task["url"]) == f.read_bytes()
    assert dav.temps() == []
    if dav.kind == "webdav":  # no public_base_url: the file's WebDAV address, which needs the login
        assert done["tasks"][0]["url"].startswith(dav.profile["url"] + "/")
        assert dav.fetch(done["tasks"][0]["url"], login=False) == 401
        summary = d.rpc("list_profiles")["profiles"][0]["summary"]
        assert "login" in summary and "public_base_url" in summary
    history = d.rpc("get_upload_history", {"limit": 10})
    assert history["total"] == 3 and {i["url"] for i in history["items"]} == {t["url"] for t in done["tasks"]}
    assert all(i["url_expires_at"] is None for i in history["items"])

    # The same bytes again: the store confirms the copy (PROPFIND / stat), and nothing is sent.
    sent = dav.proxy.bytes_up
    again = d.wait_batch(d.rpc("upload_images", {"paths": [str(files[1])]})["batch_id"])["tasks"][0]
    assert again["deduplicated"] is True and again["key"] == done["tasks"][1]["key"]
    assert dav.proxy.bytes_up - sent < 20 * KiB

    # Delete: the object goes, the history says so, and the same file is then sent again.
    gone = d.rpc("delete_upload", {"task_id": again["task_id"]})
    assert gone["deleted"] is True and done["tasks"][1]["key"] not in dav.objects()
    assert dav.fetch(done["tasks"][1]["url"]) == 404
    assert d.rpc("get_upload_history", {"deleted": True})["total"] == 1
    back = d.wait_batch(d.rpc("upload_images", {"paths": [str(files[1])]})["batch_id"])["tasks"][0]
    assert back["deduplicated"] is False and dav.objects()[back["key"]].read_bytes() == files[1].read_bytes()


def test_the_command_line_uploads_and_checks(home: Home, dav: DavStore, daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, dav)
    daemon_factory()
    photo = make_image(home.pictures / "cli.jpg", 50_000, seed=7)
    env = pixlift_env(home)
    up = subprocess.run([sys.executable, "-m", "pixlift", "upload", str(photo)], env=env, capture_output=True,
                        text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    link = up.stdout.strip()
    assert dav.fetch(link) == photo.read_bytes()
    check = subprocess.run([sys.executable, "-m", "pixlift", "config", "check"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "writable" in check.stdout


# -- exact progress, pause and resume ---------------------------------------------------------------------------
def test_progress_is_what_the_server_acknowledged(home: Home, dav: DavStore,
                                                  daemon_factory: Callable[..., Daemon]) -> None:
    """Through a 2 MiB/s link with small buffers of its own (tests/slowlink.py), every reading is within a few
    hundred KiB of what the link has forwarded to the server: WebDAV counts the PUT body's bytes the server
    acknowledged (as S3 does), SFTP the writes the server answered, so SFTP never runs ahead of the link, and
    lags it by at most the writes in flight (2 MiB) and SSH's own bytes."""
    from slowlink import SlowLink

    link = SlowLink(dav.port, 2 * MiB).start()
    try:
        profile = dict(dav.profile)
        if dav.kind == "webdav":
            profile["url"] = f"{link.endpoint}/photos"
        else:
            profile["port"] = int(link.endpoint.rsplit(":", 1)[1])
            # the known_hosts entry must name the port the daemon connects to
            known = Path(profile["known_hosts"])
            known.write_text(known.read_text() + known.read_text().replace(f"]:{dav.profile['port']} ",
                                                                            f"]:{profile['port']} "))
        home.write_config({"nas": profile}, default="nas", transfers=FAST)
        d = daemon_factory()
        size = 8 * MiB
        f = make_image(home.pictures / "big.jpg", size)
        task_id = d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"]
        readings = []
        while True:
            before = link.body if dav.kind == "webdav" else link.forwarded
            t = progress(d, task_id)
            after = link.body if dav.kind == "webdav" else link.forwarded
            if t["status"] in ("completed", "failed"):
                break
            if t["status"] == "uploading":
                got = t["bytes_uploaded"]
                readings.append(got)
                ahead = 256 * KiB if dav.kind == "webdav" else 0
                behind = 256 * KiB if dav.kind == "webdav" else 2 * MiB + before // 20
                assert got <= after + ahead, f"{got} reported, the server had {after}"
                assert got >= before - behind, f"{got} reported, the server had {before}"
            time.sleep(0.1)
        assert t["status"] == "completed", t["error"]
        middle = [r for r in readings if 0 < r < size]
        assert len(set(middle)) >= 10
        assert all(a <= b for a, b in itertools.pairwise(readings))
    finally:
        link.stop()


def test_pause_and_resume(home: Home, dav: DavStore, daemon_factory: Callable[..., Daemon]) -> None:
    """OpenSSH's sftp-server goes on from what it holds; a server that writes in order only (rclone's sftp
    without a cache, WebDAV) starts the file again. Either way the file arrives whole, with no leftovers."""
    configure(home, dav)
    dav.proxy.rate_bps = 4 * MiB
    d = daemon_factory()
    f = make_image(home.pictures / "big.jpg", 16 * MiB + 3, seed=3)
    task_id = uploading(d, f, 6)
    assert d.rpc("pause_upload", {"task_id": task_id}) == {"paused": 1}
    paused = progress(d, task_id)
    kept = paused["bytes_uploaded"]
    if dav.resumes:
        assert kept > 6 * MiB, "an SFTP upload keeps what the server acknowledged"
    else:
        assert kept == 0 or dav.kind != "webdav"
    time.sleep(3.0)  # what the kernels had already buffered drains through the proxy
    quiet = dav.proxy.bytes_up
    time.sleep(0.7)
    assert dav.proxy.bytes_up - quiet < 64 * KiB, "a paused upload sends nothing (keepalives aside)"
    dav.proxy.rate_bps = 0
    before = dav.proxy.bytes_up
    d.rpc("resume_upload", {"task_id": task_id})
    done = d.wait_task(task_id)
    assert done["status"] == "completed", done["error"]
    assert dav.objects()[done["key"]].read_bytes() == f.read_bytes()
    resent = dav.proxy.bytes_up - before
    if dav.resumes:
        assert resent < f.stat().st_size - kept + 2 * MiB, "resume goes on from what the server holds"
    else:
        assert resent >= f.stat().st_size, "the file starts again"
    assert dav.temps() == []


# -- faults made real ---------------------------------------------------------------------------------------------
def test_a_server_restarted_mid_file_and_a_cut_link_are_waited_out(home: Home, dav: DavStore,
                                                                   daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, dav)
    dav.proxy.rate_bps = 4 * MiB
    d = daemon_factory()
    f = make_image(home.pictures / "restart.jpg", 14 * MiB, seed=5)
    task_id = uploading(d, f, 3, interval=0.1)
    dav.restart()  # the server goes down mid-file and comes back on the same port
    dav.proxy.cut()
    wait_until(lambda: (t := progress(d, task_id))["bytes_uploaded"] > 8 * MiB or t["status"] != "uploading", 60,
               interval=0.2, message="the upload to go on")
    dav.proxy.cut()  # and the link drops once more
    dav.proxy.rate_bps = 0
    done = d.wait_task(task_id, timeout=120)
    assert done["status"] == "completed", done["error"]
    assert done["bytes_uploaded"] == f.stat().st_size and done["error"] is None
    assert dav.objects()[done["key"]].read_bytes() == f.read_bytes()
    assert dav.temps() == []


def test_cancel_mid_file_leaves_nothing(home: Home, dav: DavStore, daemon_factory: Callable[..., Daemon]) -> None:
    configure(home, dav)
    dav.proxy.rate_bps = 3 * MiB
    d = daemon_factory()
    f = make_image(home.pictures / "oops.jpg", 12 * MiB, seed=6)
    task_id = uploading(d, f, 2)
    assert d.rpc("cancel_upload", {"task_id": task_id})["status"] == "cancelled"
    wait_until(lambda: files_under(dav.root) == {}, 30, interval=0.2, message="the temporary file to go")
    time.sleep(1.5)
    assert files_under(dav.root) == {}


# -- errors that say what to do ------------------------------------------------------------------------------------
def test_a_wrong_password_fails_at_once_and_the_test_button_says_the_same(
        home: Home, dav: DavStore, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"nas": {**dav.profile, "password": "not-the-password"}}, default="nas", transfers=FAST)
    d = daemon_factory()
    f = make_image(home.pictures / "a.jpg", 10_000)
    started = time.monotonic()
    t = d.wait_task(d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"])
    assert time.monotonic() - started < 10
    assert t["status"] == "failed" and t["attempts"] == 1
    assert t["error"]["code"] == "invalid_credentials" and "password" in t["error"]["message"]
    assert "not-the-password" not in str(t)
    check = d.rpc("check_profile", {"profile": "nas"})
    assert check["ok"] is False and check["code"] == "invalid_credentials"
    assert check["message"] == t["error"]["message"]
    assert files_under(dav.root) == {}


@pytest.mark.parametrize("case", ["unknown", "changed", "no-file"])
def test_an_unknown_or_changed_host_key_writes_nothing_and_says_how_to_add_it(
        home: Home, tmp_path: Path, case: str, daemon_factory: Callable[..., Daemon]) -> None:
    store, stop = start_store("sftp-rclone", tmp_path)
    try:
        known = Path(store.profile["known_hosts"])
        port = store.profile["port"]
        if case == "unknown":
            known.write_text(f"[127.0.0.1]:{port + 1} {HostKey.make(tmp_path / 'k1').public}\n")
        elif case == "changed":  # the same host and port, another key: what a man in the middle would show
            HostKey.make(tmp_path / "k2").known_hosts(known, port)
        else:
            known.unlink()
        home.write_config({"vps": store.profile}, default="vps", transfers=FAST)
        d = daemon_factory()
        f = make_image(home.pictures / "a.jpg", 10_000)
        t = d.wait_task(d.rpc("upload_images", {"paths": [str(f)]})["tasks"][0]["task_id"])
        assert t["status"] == "failed" and t["attempts"] == 1
        assert t["error"]["code"] == "host_key_unknown"
        message = t["error"]["message"]
        assert "127.0.0.1" in message and f"ssh-keyscan -p {port} 127.0.0.1 >> {known}" in message
        assert files_under(store.root.parent) == {} or not any(
            "a-" in k for k in files_under(store.root.parent)), "nothing is written"
        check = subprocess.run([sys.executable, "-m", "pixlift", "config", "check"], env=pixlift_env(home),
                               capture_output=True, text=True, timeout=60)
        assert check.returncode != 0 and message in check.stdout  # the same words as the task's
    finally:
        stop()


def test_a_folder_the_login_may_not_write_is_access_denied(home: Home, tmp_path: Path,
                                                          daemon_factory: Callable[..., Daemon]) -> None:
    """The servers run as ``nobody`` over folders that belong to root: the file system refuses them, as it
    would a NAS user without write access."""
    assert os.geteuid() == 0, "this test runs the servers as another user, which needs root (as CI runs)"
    shared = Path(tempfile.mkdtemp(prefix="pixlift-ro-"))  # outside pytest's folder, which only root may enter
    try:
        for sub in ("dav/photos", "sftp/img", "cache"):
            (shared / sub).mkdir(parents=True)
        for folder in [shared, *shared.rglob("*")]:
            folder.chmod(0o755)
        (shared / "cache").chmod(0o777)
        webdav = Rclone("webdav", shared / "dav", user="nobody",
                        extra=("--config", "", "--cache-dir", str(shared / "cache"))).start()
        key = HostKey.make(tmp_path / "keys")
        program = sftp_server_path()
        sftp = OpenSshSftp(shared / "sftp", key, program, user="nobody").start() if program else None
        profiles = {"nas": {"provider": "webdav", "url": f"{webdav.url}/photos", "username": USER,
                            "password": PASSWORD}}
        if sftp is not None:
            profiles["vps"] = {"provider": "sftp", "host": "127.0.0.1", "port": sftp.port, "username": USER,
                               "password": PASSWORD, "root": str(shared / "sftp" / "img"),
                               "known_hosts": str(key.known_hosts(tmp_path / "kh", sftp.port)),
                               "public_base_url": "https://img.example.com"}
        home.write_config(profiles, default="nas", transfers=FAST)
        d = daemon_factory()
        f = make_image(home.pictures / "a.jpg", 10_000)
        for name in profiles:
            t = d.wait_task(d.rpc("upload_images", {"paths": [str(f)], "profile": name})["tasks"][0]["task_id"])
            assert t["status"] == "failed" and t["error"]["code"] == "access_denied", (name, t["error"])
            assert t["attempts"] == 1
            check = d.rpc("check_profile", {"profile": name})
            assert check["ok"] is False and check["code"] == "access_denied", check
        assert files_under(shared / "dav") == {} and files_under(shared / "sftp") == {}
        webdav.stop()
        if sftp is not None:
            sftp.stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_rclone_sftp_with_a_write_cache_resumes_inside_the_file(home: Home, tmp_path: Path,
                                                                daemon_factory: Callable[..., Daemon]) -> None:
    store, stop = start_store("sftp-rclone", tmp_path, cache=True)
    try:
        test_pause_and_resume(home, store, daemon_factory)
    finally:
        stop()


def test_profiles_are_checked_before_they_are_saved(daemon: Daemon) -> None:
    with pytest.raises(RpcFailure) as no_links:
        daemon.rpc("save_profile", {"name": "vps", "profile": {"provider": "sftp", "host": "example.com"},
                                    "force": True})
    assert "public_base_url" in str(no_links.value)
    with pytest.raises(RpcFailure) as login_in_url:
        daemon.rpc("save_profile", {"name": "nas", "profile": {"provider": "webdav", "url": "https://me:pw@x.example"},
                                    "force": True})
    assert "username" in str(login_in_url.value)
    saved = daemon.rpc("save_profile", {"name": "vps", "force": True, "profile": {
        "provider": "sftp", "host": "example.com", "port": 2222, "password": "secret-pw",
        "public_base_url": "https://img.example.com"}})
    vps = next(p for p in saved["profiles"] if p["name"] == "vps")
    assert vps["port"] == 2222 and vps["password_set"] is True and "password" not in vps
    assert "secret-pw" not in str(saved)


# -- the settings page, in a real browser ----------------------------------------------------------------------------
def test_the_settings_page_configures_an_sftp_store_and_uploads_through_it(
        home: Home, tmp_path: Path, daemon_factory: Callable[..., Daemon],
        open_ui: Callable[..., Ui]) -> None:  # noqa: F811 - the fixture imported above
    store, stop = start_store("sftp-rclone", tmp_path)
    try:
        d = daemon_factory()
        p = store.profile
        ui = open_ui(d)
        page = ui.page
        ui.go("Settings")
        page.get_by_role("button", name="Add profile").click()
        dialog = page.get_by_role("dialog", name="Add profile")
        form_field(dialog, "Name").fill("vps")
        form_field(dialog, "Provider").select_option("sftp")
        dialog.get_by_label("Host", exact=True).fill(p["host"])
        form_field(dialog, "Port").fill(str(p["port"]))
        form_field(dialog, "Username").fill(p["username"])
        form_field(dialog, "Password").fill("wrong")
        form_field(dialog, "Remote folder").fill(p["root"])
        form_field(dialog, "known_hosts file").fill(p["known_hosts"])
        dialog.locator("summary", has_text="Links and names").click()
        form_field(dialog, "Public base URL").fill(p["public_base_url"])
        dialog.get_by_role("button", name="Test connection").click()
        result = dialog.locator("#profile-result")
        expect(result).to_contain_text("refused the login of pixlift")
        form_field(dialog, "Password").fill(p["password"])
        dialog.get_by_role("button", name="Test connection").click()
        expect(result).to_contain_text("the host key is known, the login works")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        card = page.locator("#profile-list > li[data-name=vps]")
        expect(card).to_contain_text(f"SFTP pixlift@127.0.0.1:{p['port']}")
        saved = next(x for x in d.rpc("list_profiles")["profiles"] if x["name"] == "vps")
        assert saved["port"] == p["port"] and saved["password_set"] is True
        photo = make_image(home.pictures / "via-ui.jpg", 40_000, seed=9)
        batch = d.rpc("upload_images", {"paths": [str(photo)], "profile": "vps"})["batch_id"]
        task = d.wait_batch(batch)["tasks"][0]
        assert task["status"] == "completed", task["error"]
        assert store.fetch(task["url"]) == photo.read_bytes()
        ui.assert_no_console_errors()
    finally:
        stop()


@pytest.mark.parametrize("kind", ["sftp-openssh", "webdav"])
def test_a_task_that_fails_for_good_leaves_no_partial_file(home: Home, tmp_path: Path, kind: str,
                                                           daemon_factory: Callable[..., Daemon]) -> None:
    """The server is out past the outage tolerance mid-file: the task fails, and once the server answers
    again its temporary file is gone (a half image in the user's web folder helps nobody: a retry starts the
    file again). While the task was waiting, the file was kept, and a retry then uploads it whole."""
    store, stop = start_store(kind, tmp_path)
    try:
        configure(home, store, outage_tolerance_s=3)
        store.proxy.rate_bps = 2 * MiB
        d = daemon_factory()
        f = make_image(home.pictures / "halfway.jpg", 12 * MiB, seed=8)
        task_id = uploading(d, f, 3, interval=0.1)
        assert store.temps(), "the file is on its way under a temporary name"
        store.proxy.refuse = True  # the server is out: no connection gets through
        store.proxy.cut()
        failed = d.wait_task(task_id, timeout=60, interval=0.2)
        assert failed["status"] == "failed" and failed["error"]["code"] == "network_error", failed
        store.proxy.refuse = False  # it is back
        store.proxy.rate_bps = 0
        wait_until(lambda: not store.temps(), 40, interval=0.2, message="the partial file to be removed")
        assert store.objects() == {}
        assert progress(d, task_id)["bytes_uploaded"] == 0  # nothing is kept for a retry to go on from
        again = d.rpc("retry_upload", {"task_id": task_id})
        assert again["status"] in ("queued", "uploading")
        done = d.wait_task(task_id, timeout=60)
        assert done["status"] == "completed", done["error"]
        assert store.objects()[done["key"]].read_bytes() == f.read_bytes()
        assert store.temps() == []
    finally:
        stop()
