"""The embedded default: files under a folder, served read-only by the daemon at ``/files/<key>`` (a profile
with a folder of its own: ``/local/<profile>/<key>``).

Works with no cloud account. The daemon serves a profile's folder to anyone who can reach its port, without the
token, so the API may only point a profile at a folder under pixlift's home or inside ``allowed_roots``
(``guard``); a ``root`` the user wrote in config.toml is taken as written. Only regular files under the folder
are served, opened beneath it without following a symlink out of it (``paths.open_served``).

A file is written to a temporary name of its own beside its target, every write
checked (a short write is written on, a full disk is a ``disk_full`` failure), synced, then read back and
compared (size and SHA-256) before it is renamed into place: a link never serves half a file, a truncated
copy is never reported completed, and a cancelled upload leaves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.config import Checker, ProfileBase, SecuritySettings
from ..errors import InvalidParams, PermanentStorageError, SourceError, TransientStorageError
from ..files.paths import open_served
from ..files.sources import Source
from .base import OnBytes, Provider, public_url
from .kind import BuildContext, FormField, ProviderKind
from .multipart import MultipartState

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalProfile(ProfileBase):
    provider: str = "local"
    root: Path | None = None  # None: <home>/files


def parse(check: Checker, where: str, common: dict[str, Any], t: dict[str, Any]) -> LocalProfile:
    root = check.folder(f"{where}.root", t["root"]) if t.get("root") else None
    return LocalProfile(**common, root=Path(os.path.expanduser(root)) if root else None)


def guard(p: LocalProfile, saved: Mapping[str, Any] | None, table: Mapping[str, Any], security: SecuritySettings,
          home: Path) -> None:
    """A folder set through the API must lie under pixlift's home or inside an allowed root, and must not hold
    pixlift's home (its token would be served); one already in config.toml, unchanged, is the user's choice."""
    if p.root is None or (saved is not None and saved.get("provider") == "local" and _written(saved) == p.root):
        return  # the folder as config.toml has it (the settings page sends it back expanded: ~ is /home/...)
    real, own = Path(os.path.realpath(p.root)), Path(os.path.realpath(home))
    inside = (real != own and real.is_relative_to(own)) or any(real.is_relative_to(r) for r in security.allowed_roots)
    if inside and not own.is_relative_to(real):
        return
    roots = ", ".join(str(r) for r in security.allowed_roots) or "none"
    raise InvalidParams(
        f"Not saved: {p.root} is served to every program on this computer, so a folder set here must lie under "
        f"pixlift's home ({own}) or inside one of [security] allowed_roots ({roots}), and must not contain "
        f"pixlift's home; {real} does not. Choose a folder there, or write root = \"{p.root}\" under "
        f"[profiles.{p.name}] in config.toml yourself.", data={"param": "profile", "key": "root", "root": str(real)})


def _written(table: Mapping[str, Any]) -> Path | None:
    root = table.get("root")
    return Path(os.path.expanduser(root.strip())) if isinstance(root, str) and root.strip() else None


def summary(p: LocalProfile, files_root: Path) -> str:
    return f"Folder {p.root or files_root}"


def build(p: LocalProfile, ctx: BuildContext) -> LocalProvider:
    return LocalProvider(p, p.root or ctx.files_root, ctx.base_url)


KIND = ProviderKind(
    name="local", label="Local folder", legend="Local", profile_type=LocalProfile, keys={"root": (str, False)},
    parse=parse, build=build, summary=summary,
    form=(FormField("root", "Folder", placeholder="empty: pixlift's own files folder"),), api_guard=guard,
)


class LocalProvider(Provider):
    kind = "local"

    def __init__(self, profile: LocalProfile, root: Path, base_url: Callable[[], str]) -> None:
        self.profile = profile
        self.root = root
        self._base_url = base_url

    def target(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise PermanentStorageError(f"Key {key!r} would leave the storage folder.", code="rejected")
        return path

    async def upload(self, source: Source, key: str, *, on_bytes: OnBytes, state: MultipartState,
                     on_part: Callable[[], None]) -> None:
        dest = self.target(key)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")  # unique: same-named uploads race

        def open_tmp() -> int:
            dest.parent.mkdir(parents=True, exist_ok=True)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

        def copy_chunk(fd: int, pos: int, digest: Any) -> int:
            data = source.data[pos:pos + CHUNK] if source.data is not None else os.pread(source.fd, CHUNK, pos)
            view = memoryview(data)
            while view:  # os.write may write less than asked (a filling disk): write on until all is down
                view = view[os.write(fd, view):]
            digest.update(data)
            return len(data)

        try:
            fd = await asyncio.to_thread(open_tmp)
        except OSError as exc:
            raise _os_error(exc, self.root) from exc
        try:
            sent = hashlib.sha256()
            try:
                pos = 0
                while pos < source.size:
                    n = await asyncio.to_thread(copy_chunk, fd, pos, sent)
                    if n == 0:
                        raise SourceError(f"{source.name} got shorter while it was being uploaded.")
                    pos += n
                    on_bytes(n)
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
            await asyncio.to_thread(_verify, tmp, source.size, sent.hexdigest())
            await asyncio.to_thread(os.replace, tmp, dest)
        except OSError as exc:
            raise _os_error(exc, self.root) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    async def link(self, key: str) -> str:
        if self.profile.public_base_url:
            return public_url(self.profile.public_base_url, key)
        if self.profile.root is None:
            return public_url(f"{self._base_url()}/files", key)
        return public_url(f"{self._base_url()}/local/{quote(self.profile.name, safe='')}", key)

    def served_file(self, key: str) -> int | None:
        """The stored file a link of this store names, opened, if it is a regular file under the folder."""
        return open_served(self.root, key)

    async def delete_object(self, key: str) -> None:
        path = self.target(key)  # PermanentStorageError for a key outside the store
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _os_error(exc, self.root) from exc

    async def stored_size(self, key: str) -> int | None:
        fd = await asyncio.to_thread(self.served_file, key)
        if fd is None:
            return None
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    async def check(self) -> str:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".pixlift-check"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise _os_error(exc, self.root) from exc
        return f"folder {self.root} is writable"

def _verify(path: Path, size: int, sha256: str) -> None:
    """What the disk holds is what was sent: the size, then the bytes read back."""
    if os.stat(path).st_size != size:
        raise PermanentStorageError(f"The store kept {os.stat(path).st_size} of {size} bytes; the disk may be full. "
                                    "Free some space, then retry.", code="disk_full")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise TransientStorageError("The stored copy differs from the file; writing it again.",
                                    code="checksum_mismatch")


def _os_error(exc: OSError, root: Path) -> PermanentStorageError | TransientStorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return PermanentStorageError(f"The disk holding {root} is full. Free some space, then retry.",
                                     code="disk_full")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermanentStorageError(f"Cannot write to {root} ({exc.strerror}). Fix its permissions or set "
                                     "root in [profiles.local].", code="access_denied")
    return TransientStorageError(f"Writing to {root} failed ({exc.strerror or exc}).", code="io_error")
