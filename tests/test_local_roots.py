"""Local roots stay where the user put them: a local profile's folder set through the API must lie under pixlift's
home or inside ``allowed_roots`` (it is served to every program on the machine, without the token); one written
in config.toml by hand is taken as written. ``/local/`` and ``/files/`` serve only regular files under their
folder, never through a symlink out of it. All against the real daemon."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Home, RpcFailure
from test_ui import png_bytes

PNG = png_bytes((10, 90, 200))


def refused(d: Daemon, method: str, params: dict[str, Any]) -> RpcFailure:
    with pytest.raises(RpcFailure) as info:
        d.rpc(method, params)
    return info.value


def saved_profiles(home: Home) -> dict[str, Any]:
    return dict(tomllib.loads((home.root / "config.toml").read_text()).get("profiles", {}))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"  # neither under the home nor in allowed_roots
    folder.mkdir()
    return folder


def test_the_api_cannot_point_a_local_profile_at_a_folder_the_user_did_not_choose(
        home: Home, outside: Path, tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"local": {"provider": "local"}}, default="local")
    (home.pictures / "to-root").symlink_to("/")
    d = daemon_factory()
    before = (home.root / "config.toml").read_text()
    bad = ["/", str(outside), str(home.pictures / "to-root"), str(home.pictures / "to-root" / "etc"),
           str(home.root), str(home.root / ".." / "outside"), str(tmp_path)]  # tmp_path holds the home
    for root in bad:
        for method, params in (("check_profile_draft", {"name": "pub", "profile": {"provider": "local", "root": root}}),
                               ("save_profile", {"name": "pub", "profile": {"provider": "local", "root": root}}),
                               ("save_profile", {"name": "pub", "profile": {"provider": "local", "root": root},
                                                 "force": True}),
                               ("save_profile", {"name": "local", "profile": {"root": root}, "force": True})):
            err = refused(d, method, params)
            assert err.code == -32602, (root, method, err.error)
            assert "under pixlift's home" in str(err) and "allowed_roots" in str(err) and str(home.pictures) in str(err)
            assert err.data["key"] == "root"
    assert (home.root / "config.toml").read_text() == before  # nothing was written
    assert [p["name"] for p in d.rpc("list_profiles")["profiles"]] == ["local"]
    assert d.get("/local/pub/etc/passwd")[0] == 404

    # under the home, or inside an allowed root: saved, tested, and uploads go there
    for name, root in (("mine", home.root / "published"), ("pics", home.pictures / "public")):
        d.rpc("save_profile", {"name": name, "profile": {"provider": "local", "root": str(root)}})
        assert saved_profiles(home)[name]["root"] == str(root)
    (home.pictures / "cat.png").write_bytes(PNG)
    task = d.rpc("upload_images", {"paths": [str(home.pictures / "cat.png")], "profile": "pics"})["tasks"][0]
    done = d.wait_task(task["task_id"])
    assert done["status"] == "completed" and (home.pictures / "public" / done["key"]).read_bytes() == PNG
    assert d.get(done["url"].removeprefix(d.url))[2] == PNG


def test_a_folder_written_in_config_toml_is_taken_as_written(
        home: Home, outside: Path, tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    home.write_config({"site": {"provider": "local", "root": f"{outside}/"}}, default="site")
    d = daemon_factory()
    assert d.rpc("check_profile", {"profile": "site"})["ok"]
    (home.pictures / "cat.png").write_bytes(PNG)
    task = d.rpc("upload_images", {"paths": [str(home.pictures / "cat.png")]})["tasks"][0]
    done = d.wait_task(task["task_id"])
    assert done["status"] == "completed" and (outside / done["key"]).read_bytes() == PNG
    assert d.get(done["url"].removeprefix(d.url))[2] == PNG

    # editing another field keeps the user's folder; so does sending it back as the settings page shows it
    d.rpc("save_profile", {"name": "site", "profile": {"key_template": "{stem}{ext}"}})
    shown = next(p for p in d.rpc("list_profiles")["profiles"] if p["name"] == "site")["root"]
    assert shown == str(outside)
    d.rpc("save_profile", {"name": "site", "profile": {"provider": "local", "root": str(outside),
                                                       "key_template": "img/{stem}{ext}"}})
    assert saved_profiles(home)["site"] == {"provider": "local", "root": str(outside),
                                            "key_template": "img/{stem}{ext}"}
    # but the API cannot move it somewhere else outside, nor give another profile the same folder
    elsewhere = tmp_path / "elsewhere"
    assert refused(d, "save_profile", {"name": "site", "profile": {"root": str(elsewhere)}, "force": True}).code \
        == -32602
    assert refused(d, "save_profile", {"name": "copy", "profile": {"provider": "local", "root": str(outside)},
                                       "force": True}).code == -32602
    assert saved_profiles(home)["site"]["root"] == str(outside) and "copy" not in saved_profiles(home)


def test_served_folders_give_only_regular_files_under_them(
        home: Home, outside: Path, daemon_factory: Callable[..., Daemon]) -> None:
    site = home.pictures / "site"
    site.mkdir()
    home.write_config({"site": {"provider": "local", "root": str(site)}, "local": {"provider": "local"}},
                      default="site")
    (outside / "secret.png").write_bytes(PNG)
    (site / "cat.png").write_bytes(PNG)
    (site / "inner").mkdir()
    (site / "inner" / "dog.png").write_bytes(PNG[::-1])
    (site / "passwd").symlink_to("/etc/passwd")
    (site / "etc").symlink_to("/etc")
    (site / "out.png").symlink_to(outside / "secret.png")
    (site / "up").symlink_to(outside)
    (site / "same.png").symlink_to(site / "cat.png")  # stays inside the folder
    os.mkfifo(site / "pipe.png")
    files = home.root / "files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "passwd").symlink_to("/etc/passwd")
    (files / "there.png").symlink_to(site / "cat.png")  # inside another served folder, but not this one
    (files / "own.png").write_bytes(PNG)
    d = daemon_factory()

    assert d.get("/local/site/cat.png")[:3:2] == (200, PNG)
    assert d.get("/local/site/inner/dog.png")[:3:2] == (200, PNG[::-1])
    assert d.get("/local/site/same.png")[:3:2] == (200, PNG)
    assert d.get("/files/own.png")[:3:2] == (200, PNG)
    status, headers, _ = d.get("/local/site/cat.png", {"Range": "bytes=0-7"})
    assert status == 206 and headers["Content-Range"] == f"bytes 0-7/{len(PNG)}"
    for path in ("/local/site/passwd", "/local/site/etc/passwd", "/local/site/etc/hostname", "/local/site/out.png",
                 "/local/site/up/secret.png", "/local/site/pipe.png", "/local/site/inner", "/local/site/inner/",
                 "/local/site/%2fetc%2fpasswd", "/local/site/..%2f..%2foutside/secret.png",
                 "/local/nosuch/cat.png", "/files/passwd", "/files/there.png", "/files/%2fetc%2fpasswd"):
        status, _, body = d.get(path)
        assert status == 404, (path, status)
        assert b"root:" not in body and PNG not in body
    assert d.get("/local/site/cat.png")[0] == 200  # the FIFO held nothing up
    assert "Traceback" not in d.log(), d.log()


def test_a_symlink_swapped_in_after_the_check_is_not_followed(
        home: Home, daemon_factory: Callable[..., Daemon]) -> None:
    """A file replaced by a symlink to /etc/passwd between the daemon's check and its open, over and over (as a
    process sharing the folder could): the daemon serves the picture or 404, never what the symlink points to."""
    site = home.pictures / "site"
    site.mkdir()
    home.write_config({"site": {"provider": "local", "root": str(site)}}, default="site")
    (site / "cat.png").write_bytes(PNG)
    (site / ".file").write_bytes(PNG)
    d = daemon_factory()
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                os.link(site / ".file", site / ".file.new")
                os.replace(site / ".file.new", site / "cat.png")
                os.symlink("/etc/passwd", site / ".link")
                os.replace(site / ".link", site / "cat.png")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            status, _, body = d.get("/local/site/cat.png")
            assert b"root:" not in body, "the daemon followed the symlink swapped in"
            assert status in (200, 404) and (status != 200 or body == PNG), status
            seen[status] = seen.get(status, 0) + 1
    finally:
        stop.set()
        swapper.join(5)
    assert seen.get(200, 0) > 0 and seen.get(404, 0) > 0, seen  # both states were met, many times
    assert "Traceback" not in d.log(), d.log()
