"""Which local files may be uploaded: the path rules and the content sniffing.

A path is accepted only when its real location (``..`` and symlinks resolved) lies inside an allowed root, it
is a regular file, non-empty, under the size limit and, unless the config allows any file, an image by its
bytes. The file is then opened by walking down from the root one component at a time with ``O_NOFOLLOW``, so
a symlink swapped in later is never followed, and its identity (device, inode, size, mtime) is recorded. At
upload time it is opened the same way again (``sources.Source.open``) and must still be that same file: a file
swapped or edited after the check is never sent.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NewType

from ..core.config import SecuritySettings
from ..errors import PathRefused

MAX_PATH_LEN = 4096
NOT_REGULAR = "not a regular file (a folder, device, FIFO or socket cannot be uploaded)"
_SNIFF_BYTES = 1024
# Every format sniff_image knows, as messages name them: keep the two together.
IMAGE_FORMATS = "PNG, JPEG, GIF, WebP, AVIF, HEIC, JPEG XL, BMP, TIFF, ICO or SVG"


def sniff_image(head: bytes) -> str | None:
    """The MIME type of an image judged by its first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM" and len(head) >= 14:
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:4] == b"\x00\x00\x01\x00":
        return "image/x-icon"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "image/heic"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "image/jxl"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if (text.startswith(b"<svg") or text.startswith(b"<?xml") or text.startswith(b"<!--")) and b"<svg" in text:
        return "image/svg+xml"
    return None


_IDENTITY = struct.Struct("<QQQq")
Identity = NewType("Identity", bytes)
"""A file's device, inode, size and mtime, packed in one immutable ``bytes`` that compares and hashes by value. A
record of four fields took a record and three integers of its own (about 160 bytes a queued file, 16 MB for
100,000 queued files); this is one object of 72 bytes that the garbage collector need not visit."""


def identity(dev: int, ino: int, size: int, mtime_ns: int) -> Identity:
    """TypeError for values no file has (a damaged journal record), as ``CheckedFile.from_json`` promises."""
    try:
        return Identity(_IDENTITY.pack(dev, ino, size, mtime_ns))
    except struct.error as exc:
        raise TypeError(f"not a file's identity: {exc}") from None


def identity_of(st: os.stat_result) -> Identity:
    return identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def identity_fields(ident: Identity) -> dict[str, int]:
    dev, ino, size, mtime_ns = _IDENTITY.unpack(ident)
    return {"dev": dev, "ino": ino, "size": size, "mtime_ns": mtime_ns}


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file that passed the path rules, and how to find exactly it again."""

    path: str  # the real, resolved path
    root: str  # the allowed root it lies in
    name: str
    size: int
    content_type: str
    identity: Identity

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "root": self.root, "name": self.name, "size": self.size,  # by hand: asdict
                "content_type": self.content_type, "identity": identity_fields(self.identity)}  # deep-copies

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CheckedFile:
        """Raises KeyError or TypeError for a record that is not one."""
        return cls(path=raw["path"], root=raw["root"], name=raw["name"], size=int(raw["size"]),
                   content_type=raw["content_type"], identity=identity(**raw["identity"]))


def open_dir_beneath(root: str, path: str) -> int:
    """Open the folder ``path`` (``root`` itself, or a folder under it) as ``open_beneath`` opens a file."""
    if path == root:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return open_beneath(root, path, os.O_DIRECTORY)


def open_beneath(root: str, path: str, flags: int = os.O_NONBLOCK) -> int:
    """Open ``path`` (which must lie under ``root``) without following any symlink below the root.

    Returns a read-only descriptor; raises OSError (ELOOP for a symlink, ENOTDIR, ENOENT ...). Linux 5.6 and
    later do it in one ``openat2`` (``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``), the kernel walking the path as
    the loop below does; elsewhere, and where a sandbox refuses that call, one ``openat`` per component.
    """
    prefix = _inside(root)
    rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)  # resolved paths: no ".."
    parts = [p for p in rel.split(os.sep) if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(13, "outside its root")
    # O_NONBLOCK (the default ``flags``): opening a FIFO must never wait for a writer.
    last = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | flags
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _openat2.works:
            fd = _openat2(dir_fd, "/".join(parts), last)
            if fd is not None:
                return fd
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = nxt
        return os.open(parts[-1], last, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


class _OpenAt2:
    """Linux's ``openat2(2)`` through libc's ``syscall`` (Python has no binding): None, and never again, where
    the kernel lacks it or a sandbox (seccomp) refuses it."""

    NUMBER = 437  # the same on every architecture Linux numbers its newer calls alike (all but alpha)
    RESOLVE = 0x02 | 0x04 | 0x08  # RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH

    def __init__(self) -> None:
        self.works = False
        if sys.platform != "linux":
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # CDLL: the GIL is let go during the call
            self._call = libc.syscall
        except (OSError, AttributeError):
            return
        self._call.restype = ctypes.c_long
        self._how = ctypes.c_uint64 * 3  # struct open_how {flags, mode, resolve}
        self.works = True

    def __call__(self, dir_fd: int, rel: str, flags: int) -> int | None:
        name = os.fsencode(rel)
        if b"\0" in name:  # C would read the name only up to it: refused, as os.open refuses it
            raise ValueError("embedded null byte")
        how = self._how(flags, 0, self.RESOLVE)
        fd = int(self._call(ctypes.c_long(self.NUMBER), ctypes.c_int(dir_fd), name, ctypes.byref(how),
                            ctypes.c_size_t(ctypes.sizeof(how))))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):  # not here: the walk does it
            self.works = False
            return None
        if err == errno.EXDEV:  # RESOLVE_BENEATH's own refusal: the path left the root
            raise OSError(errno.EACCES, "outside its root")
        raise OSError(err, os.strerror(err), rel)


_openat2 = _OpenAt2()


def open_served(root: str | os.PathLike[str], key: str) -> int | None:
    """The regular file ``key`` names under ``root`` (a served store's folder), opened read-only beneath the
    folder's real location as ``open_beneath`` opens it: a symlink that leads out of the folder, or one swapped
    in after the path was resolved, is never followed. None for anything else (missing, a folder, a FIFO or
    device, outside the folder, a name the system refuses). The caller closes the descriptor."""
    try:
        base = os.path.realpath(root)
        real = os.path.realpath(os.path.join(base, key))
        if not real.startswith(_inside(base)):
            return None
        fd = open_beneath(base, real)
    except (OSError, ValueError):  # too long, too deep, a NUL byte, gone: not a file we serve
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


class PathChecker:
    def __init__(self, security: SecuritySettings) -> None:
        self.security = security
        self._roots = tuple(str(r) for r in security.allowed_roots)

    def check_all(self, paths: Iterable[object]) -> list[CheckedFile]:
        """Check every path; one refusal refuses the call, listing every refused path with its reason.

        The files of one folder share that folder's resolution and descriptor (``_Folders``): a call of
        10,000 files in one folder resolves the folder once and opens each file with one ``openat``. Any file
        that way does not take (a symlink, a missing file, a folder outside the roots) is checked on its own
        by ``check``, which says why it is refused: both ways give the same answer for every path."""
        ok: list[CheckedFile] = []
        refused: list[dict[str, str]] = []
        with _Folders(self) as folders:
            for raw in paths:
                result = folders.check(raw)
                if isinstance(result, str):
                    refused.append({"path": raw if isinstance(raw, str) else repr(raw), "reason": result})
                else:
                    ok.append(result)
        if refused:
            raise PathRefused(refused)
        return ok

    def check(self, raw: object) -> CheckedFile | str:
        """A CheckedFile, or the reason (a sentence a person can act on) why the path is refused."""
        expanded, why = self.expand(raw)
        if expanded is None:
            return why
        if not self._roots:
            return "no folders are allowed: add one to [security] allowed_roots in config.toml"
        real = os.path.realpath(expanded)
        root = self.root_of(real)
        if root is None:
            listed = ", ".join(_tilde(r) for r in self.security.allowed_roots)
            return (f"outside the allowed folders ({listed}); move the file there or add its folder to "
                    "[security] allowed_roots in config.toml")
        try:
            fd = open_beneath(root, real)
        except FileNotFoundError:
            return "no such file"
        except PermissionError:
            return "permission denied: the daemon's user cannot read this file"
        except OSError as exc:
            with contextlib.suppress(OSError):  # a socket cannot be opened at all (ENXIO): say what it is
                if stat.S_ISSOCK(os.lstat(real).st_mode):
                    return NOT_REGULAR
            return f"cannot be opened ({exc.strerror or exc})"
        return self.judge(fd, real, root)

    @staticmethod
    def expand(raw: object) -> tuple[str | None, str]:
        """``(path, "")``, the path with ``~`` expanded, for a valid absolute path; ``(None, why)`` for any other."""
        if not isinstance(raw, str) or not raw:
            return None, "not a path: give the file's absolute path as a string"
        if len(raw) > MAX_PATH_LEN:
            return None, f"not a valid path: {len(raw)} characters, the limit is {MAX_PATH_LEN}"
        if "\x00" in raw:
            return None, "not a valid path: it contains a NUL byte"
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            return None, "not a valid path: it is not valid Unicode text (a lone surrogate)"
        expanded = os.path.expanduser(raw)
        if not os.path.isabs(expanded):
            return None, "relative path: give the absolute path (the daemon does not know your working directory)"
        return expanded, ""

    def root_of(self, real: str) -> str | None:
        """The first allowed root that the resolved path lies in (or is), as ``Path.is_relative_to`` says."""
        for root in self._roots:
            if real == root or real.startswith(_inside(root)):
                return root
        return None

    def judge(self, fd: int, real: str, root: str) -> CheckedFile | str:
        """The opened file's verdict; closes ``fd``."""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return NOT_REGULAR
            if st.st_size == 0:
                return "the file is empty"
            if st.st_size > self.security.max_file_size:
                return (f"too large: {st.st_size} bytes, the limit is {self.security.max_file_size} bytes "
                        "([security] max_file_size_mb)")
            try:
                head = os.pread(fd, _SNIFF_BYTES, 0)
            except OSError as exc:
                return f"cannot be read ({exc.strerror or exc})"
            kind = sniff_image(head)
            if kind is None:
                if self.security.images_only:
                    return (f"not an image: its content is not {IMAGE_FORMATS} "
                            "(set [security] images_only = false to allow any file)")
                kind = "application/octet-stream"
            return CheckedFile(path=real, root=root, name=os.path.basename(real), size=st.st_size,
                               content_type=kind, identity=identity_of(st))
        finally:
            os.close(fd)


class _Folders:
    """The folders of one ``check_all`` call, each resolved and opened (beneath its root, as ``open_beneath``
    opens) once; their descriptors are closed when the call is over."""

    def __init__(self, checker: PathChecker) -> None:
        self._checker = checker
        self._open: dict[str, tuple[str, str, int] | None] = {}  # folder as given -> (real, root, fd)

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *_: object) -> None:
        for entry in self._open.values():
            if entry is not None:
                os.close(entry[2])

    def check(self, raw: object) -> CheckedFile | str:
        checker = self._checker
        expanded, why = checker.expand(raw)
        if expanded is None:
            return why
        folder, name = os.path.split(expanded)
        entry = self._folder(folder) if name not in ("", ".", "..") else None
        if entry is None:
            return checker.check(raw)
        real_folder, root, dir_fd = entry
        real = os.path.join(real_folder, name)
        if checker.root_of(real) != root:  # a root that is this very file: ``check`` refuses it
            return checker.check(raw)
        try:  # O_NOFOLLOW: a symlink fails here (ELOOP) and is resolved by ``check``
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return checker.check(raw)
        return checker.judge(fd, real, root)

    def _folder(self, folder: str) -> tuple[str, str, int] | None:
        if folder not in self._open:
            self._open[folder] = None
            real = os.path.realpath(folder)
            root = self._checker.root_of(real)
            if root is not None:
                with contextlib.suppress(OSError):
                    self._open[folder] = (real, root, open_dir_beneath(root, real))
        return self._open[folder]


def _inside(root: str) -> str:
    """What every path under ``root`` starts with: the root and one separator ("/" itself for "/")."""
    return root if root.endswith(os.sep) else root + os.sep


def _tilde(p: Path) -> str:
    home = Path.home()
    return "~/" + str(p.relative_to(home)) if p.is_relative_to(home) and p != home else str(p)
