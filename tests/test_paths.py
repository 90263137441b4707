"""The path rules on a real folder tree: a call of many paths shares each folder's resolution and descriptor
(``paths._Folders``), and must still give every path the very verdict it gets on its own (``check``): the same
resolved path, root and identity for a file, the same sentence for a refusal. The daemon-level refusals, one
path per call, are in test_security_paths.py."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
from pixlift.core.config import SecuritySettings
from pixlift.errors import PathRefused
from pixlift.files.paths import PathChecker

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    pictures, shots, outside = tmp_path / "Pictures", tmp_path / "Shots", tmp_path / "outside"
    for folder in (pictures / "2026", shots, outside):
        folder.mkdir(parents=True)
    for i in range(30):
        (pictures / f"p{i:02d}.jpg").write_bytes(JPEG + bytes([i]))
        (pictures / "2026" / f"q{i:02d}.jpg").write_bytes(JPEG + bytes([i, 1]))
    (shots / "s.jpg").write_bytes(JPEG + b"s")
    (outside / "secret.jpg").write_bytes(JPEG + b"secret")
    (pictures / "notes.jpg").write_bytes(b"plain text, not an image")
    (pictures / "empty.jpg").write_bytes(b"")
    (pictures / "folder.jpg").mkdir()
    os.mkfifo(pictures / "fifo.jpg")
    (pictures / "in-link.jpg").symlink_to(pictures / "p01.jpg")  # inside: accepted, as the file it names
    (pictures / "cross-link.jpg").symlink_to(shots / "s.jpg")  # into the other root
    (pictures / "out-link.jpg").symlink_to(outside / "secret.jpg")
    (pictures / "dir-link").symlink_to(pictures / "2026")  # a folder inside, through a link
    (pictures / "out-dir").symlink_to(outside)
    (shots / "root-file.jpg").write_bytes(JPEG + b"r")
    return {"pictures": pictures, "shots": shots, "outside": outside}


def held_open(tree: dict[str, Path]) -> list[str]:
    """What this process holds open inside the tree (other tests' sockets come and go meanwhile)."""
    inside = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if any(target == str(f) or target.startswith(f"{f}/") for f in tree.values()):
            inside.append(target)
    return inside


def cases(t: dict[str, Path]) -> list[str]:
    p, s, o = str(t["pictures"]), str(t["shots"]), str(t["outside"])
    return [
        *(f"{p}/p{i:02d}.jpg" for i in range(30)), *(f"{p}/2026/q{i:02d}.jpg" for i in range(30)),
        f"{p}/in-link.jpg", f"{p}/cross-link.jpg", f"{p}/out-link.jpg", f"{p}/dir-link/q03.jpg",
        f"{p}/out-dir/secret.jpg", f"{p}/../outside/secret.jpg", f"{p}/2026/../p02.jpg", f"{p}/./p04.jpg",
        f"{p}/p05.jpg/", f"{p}/p06.jpg/.", f"{p}/2026/..", f"{p}//p07.jpg", f"{o}/secret.jpg", f"{s}/s.jpg",
        f"{p}/notes.jpg", f"{p}/empty.jpg", f"{p}/folder.jpg", f"{p}/fifo.jpg", f"{p}/sock.jpg", f"{p}/missing.jpg",
        f"{s}/root-file.jpg", p, "relative.jpg", "", "/", "/proc/self/environ", f"{p}/a\x00b",
    ]


def test_a_call_of_many_paths_judges_each_as_it_would_be_judged_alone(tree: dict[str, Path]) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree["pictures"] / "sock.jpg"))
    try:
        # One root is a file itself: the rule takes the first root a path is in, so that file is refused.
        roots = (tree["shots"] / "root-file.jpg", tree["pictures"], tree["shots"])
        checker = PathChecker(SecuritySettings(allowed_roots=roots))
        paths = cases(tree)
        alone = {path: checker.check(path) for path in paths}

        with pytest.raises(PathRefused) as refused:
            checker.check_all(paths)
        assert not held_open(tree), "a folder's descriptor was left open"
        said = {r["path"]: r["reason"] for r in refused.value.data}
        assert said == {path: v for path, v in alone.items() if isinstance(v, str)}

        accepted = [path for path, v in alone.items() if not isinstance(v, str)]
        assert checker.check_all(accepted) == [alone[path] for path in accepted]
        assert not held_open(tree)
    finally:
        sock.close()

    # What a user expects of those verdicts, so that agreeing with ``check`` is not agreeing with a wrong answer.
    p = tree["pictures"]
    got = {path: v for path, v in alone.items() if not isinstance(v, str)}
    assert got[f"{p}/in-link.jpg"].path == str(p / "p01.jpg")
    assert got[f"{p}/cross-link.jpg"].root == str(tree["shots"])
    assert got[f"{p}/dir-link/q03.jpg"].path == str(p / "2026" / "q03.jpg")
    assert got[f"{p}/2026/../p02.jpg"].path == str(p / "p02.jpg")
    assert got[f"{p}//p07.jpg"].path == str(p / "p07.jpg")
    for refused_path in (f"{p}/out-link.jpg", f"{p}/out-dir/secret.jpg", f"{p}/../outside/secret.jpg",
                         f"{tree['shots']}/root-file.jpg", "/proc/self/environ"):
        assert isinstance(alone[refused_path], str), refused_path
    assert "outside the allowed folders" in str(alone[f"{p}/out-link.jpg"])
    assert "not a regular file" in str(alone[f"{p}/sock.jpg"])
    assert "no such file" in str(alone[f"{p}/missing.jpg"])


@pytest.mark.parametrize("kernel_walk", [True, False], ids=["openat2", "one-openat-per-folder"])
def test_a_file_is_opened_beneath_its_root_without_following_any_symlink(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_walk: bool) -> None:
    """Both ways of opening beneath the root (the kernel's ``openat2`` walk, and one ``openat`` per folder where
    it is missing) open a file below it and refuse the same things: a symlinked folder or file on the way (even
    one that leads back inside), a file used as a folder, a name that is not there, a NUL byte."""
    import errno

    from pixlift.files import paths

    assert sys.platform != "linux" or paths._openat2.works, "this Linux should have openat2"
    monkeypatch.setattr(paths._openat2, "works", kernel_walk and paths._openat2.works)
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.jpg").write_bytes(JPEG)
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    (root / "link-dir").symlink_to(root / "a")
    (root / "a" / "link.jpg").symlink_to(root / "a" / "b" / "f.jpg")
    (root / "a" / "out.jpg").symlink_to(tmp_path / "outside.jpg")
    fd = paths.open_beneath(str(root), str(root / "a" / "b" / "f.jpg"))
    try:
        assert os.read(fd, 4) == JPEG[:4]
    finally:
        os.close(fd)
    symlink = (errno.ELOOP, errno.ENOTDIR)  # a symlinked folder: the kernel's walk says ELOOP, O_DIRECTORY ENOTDIR
    for path, codes in ((root / "link-dir" / "b" / "f.jpg", symlink), (root / "a" / "link.jpg", (errno.ELOOP,)),
                        (root / "a" / "out.jpg", (errno.ELOOP,)), (root / "a" / "b" / "f.jpg" / "x", (errno.ENOTDIR,)),
                        (root / "a" / "missing.jpg", (errno.ENOENT,))):
        with pytest.raises(OSError) as refused:
            paths.open_beneath(str(root), str(path))
        assert refused.value.errno in codes, path
    with pytest.raises(ValueError):
        paths.open_beneath(str(root), str(root / "a" / "b" / "f.jpg\0x"))
    with pytest.raises(OSError):
        paths.open_beneath(str(root), str(tmp_path / "outside.jpg"))
    assert paths._openat2.works == (kernel_walk and sys.platform == "linux")  # used, never given up on
