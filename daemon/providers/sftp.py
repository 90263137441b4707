"""SFTP (a VPS, a NAS with SSH), through asyncssh: one SSH connection per profile, shared by its uploads.

The server's host key must be in ``known_hosts`` (unknown or changed: ``host_key_unknown``, before a login is
tried or a byte is written; ``sftp_login.py`` builds the login). A file is written to a temporary name beside
its key (``.NAME.<id>.pixlift-part``, kept in the task's ``upload_id`` so that a cancel deletes it even after an
outage or a restart), then renamed over the key (posix-rename where the server has it, else remove and
rename): a link never serves half a file. Missing folders are made (mkdir -p) and remembered.

Progress is what the server acknowledged, write by write: the writes are pipelined (a window of requests in
flight), and each counts when its status reply arrives, in order, so ``MultipartState.held`` is always a prefix
of the file that the server has. An upload that was paused, cut or crashed goes on from the smaller of that
and the temporary file's size as the server reports it, where the server lets a file be written at an offset
(OpenSSH's sftp-server does; ``rclone serve sftp`` only with ``--vfs-cache-mode writes``); where it refuses,
the file starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import stat
import uuid
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

with warnings.catch_warnings():  # cryptography's deprecation of DSA, raised as asyncssh imports it
    warnings.simplefilter("ignore")
    import asyncssh

from ..core.config import TransferSettings
from ..errors import ConfigError, Interrupted, PermanentStorageError, SourceError, TransferError, TransientStorageError
from ..files.sources import Source
from .base import OnBytes, Provider, chain, describe, public_url
from .inflight import InFlight
from .multipart import MultipartState, temp_name
from .sftp_login import host_key_error, login_options

if TYPE_CHECKING:
    from .sftp_kind import SftpProfile

T = TypeVar("T")
log = logging.getLogger(__name__)
logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per channel and request at INFO

MAX_WRITE = 256 * 1024  # per write request, below what the server allows
WINDOW = 2 * 1024 * 1024  # bytes written and not yet acknowledged, per file
READ_BLOCK = 1024 * 1024  # read off the loop at a time
CLEANUP_S = 10.0
REFUSED_OFFSET = (asyncssh.SFTPFailure, asyncssh.SFTPOpUnsupported)  # a server that writes files in order only
UNREACHABLE = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection, asyncssh.ConnectionLost,
               asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError, TimeoutError)


class SftpProvider(Provider):
    kind = "sftp"
    keeps_failed_uploads = False  # a half file in the user's folder: gone when the task fails (base.py)

    def __init__(self, profile: SftpProfile, transfers: TransferSettings, in_flight: InFlight | None = None) -> None:
        self.profile = profile
        self.transfers = transfers
        self.where = f"{profile.host}:{profile.port}"
        self.in_flight = in_flight or InFlight.of(transfers)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._folders: set[str] = set()

    def _path(self, key: str) -> str:
        return posixpath.join(self.profile.root, key) if self.profile.root else key

    # -- the connection ------------------------------------------------------------------------------------------
    async def _client(self) -> asyncssh.SFTPClient:
        async with self._lock:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            self._drop()
            options = await asyncio.to_thread(login_options, self.profile, self.transfers)  # reads files
            try:
                conn = await asyncssh.connect(**options)
            except Exception as exc:
                raise self._translate(exc) from exc
            try:
                sftp = await conn.start_sftp_client()
            except Exception as exc:
                conn.close()
                raise self._translate(exc) from exc
            self._conn, self._sftp = conn, sftp
            return sftp

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._sftp = None

    async def close(self) -> None:
        conn = self._conn
        self._drop()
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await conn.wait_closed()

    # -- what went wrong, for a person ------------------------------------------------------------------------
    def _translate(self, exc: BaseException) -> TransferError:
        for cur in chain(exc):
            if isinstance(cur, SourceError | Interrupted):
                return cur
        p = self.profile
        if isinstance(exc, TransferError):
            return exc
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            return host_key_error(p, f"it is not in {p.known_hosts}, or it changed since it was added")
        if isinstance(exc, asyncssh.PermissionDenied):
            what = " and ".join(n for n, v in (("password", p.password), ("key_file", p.key_file)) if v) or \
                "the keys of your SSH agent (or set password or key_file)"
            return PermanentStorageError(f"{self.where} refused the login of {p.username or 'this user'} (profile "
                                         f"{p.name!r}). Check username and {what}.", code="invalid_credentials")
        if isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
            return PermanentStorageError(f"{self.where}: {p.username or 'the login'} may not write in "
                                         f"{p.root or 'its home folder'} ({describe(exc)}). Fix the folder's "
                                         "permissions, or set root to a folder it may write.", code="access_denied")
        if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded):
            return _disk_full(self.where)
        if isinstance(exc, UNREACHABLE):
            self._drop()  # the next attempt connects anew
            return TransientStorageError(f"Could not reach {self.where} ({describe(exc)}). Check the network, host "
                                         "and port.", code="network_error")
        if isinstance(exc, asyncssh.SFTPError):
            return TransientStorageError(f"{self.where} refused a request: {describe(exc)}", code="io_error")
        log.warning("unexpected error talking to %s", self.where, exc_info=exc)
        return TransientStorageError(f"Unexpected error talking to {self.where}: {describe(exc)}", code="io_error")

    # -- the upload ------------------------------------------------------------------------------------------------
    async def upload(self, source: Source, key: str, *, on_bytes: OnBytes, state: MultipartState,
                     on_part: Callable[[], None]) -> None:
        try:
            await self._upload(source, key, on_bytes, state, on_part)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._translate(exc)
            if not error.retryable and not isinstance(error, Interrupted):
                await self._forget_temp(state, on_bytes, on_part)  # nothing to go on from: leave no partial file
            raise error from exc

    async def _upload(self, source: Source, key: str, on_bytes: OnBytes, state: MultipartState,
                      on_part: Callable[[], None]) -> None:
        sftp = await self._client()
        dest = self._path(key)
        folder = posixpath.dirname(dest)
        kept = state.bytes_done(source.size)  # the caller shows these already
        offset = 0
        if state.upload_id and state.key == key:
            held = await self._size(sftp, posixpath.join(folder, state.upload_id))
            offset = min(state.held, held or 0, source.size)  # in order, acknowledged, and still there
        else:
            state.reset()
            state.key, state.upload_id = key, temp_name(key)
            on_part()  # journalled before a byte is written: a cancel deletes it even after a restart
        temp = posixpath.join(folder, state.upload_id or "")
        if offset != kept:
            on_bytes(offset - kept)  # kept bytes the server turned out not to have, or more that it has
        state.held = offset
        await self._make_folders(sftp, folder)
        async with self.in_flight.hold(min(max(source.size - offset, 1), WINDOW)):
            handle: asyncssh.SFTPClientFile | None = None
            if offset:
                try:  # the first write at the offset says whether the server takes one
                    handle = await sftp.open(temp, asyncssh.FXF_WRITE, block_size=0, encoding=None)
                    await self._write(handle, source, offset, min(source.size, offset + MAX_WRITE), on_bytes,
                                      state, on_part, close=False)
                except REFUSED_OFFSET as exc:
                    log.info("%s will not write %s at an offset (%s); starting the file again", self.where, key,
                             describe(exc))
                    if handle is not None:
                        with contextlib.suppress(Exception):
                            await handle.close()
                    on_bytes(-state.held)
                    state.held = offset = 0
            if not offset:
                handle = await sftp.open(temp, asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC,
                                         block_size=0, encoding=None)
            assert handle is not None
            await self._write(handle, source, state.held, source.size, on_bytes, state, on_part, close=True)
        stored = await self._size(sftp, temp)
        if stored != source.size:
            await self._forget_temp(state, on_bytes, on_part)
            raise TransientStorageError(f"{self.where} kept {stored} of {source.size} bytes of {key}; writing it "
                                        "again.", code="checksum_mismatch")
        try:
            await sftp.posix_rename(temp, dest)
        except asyncssh.SFTPOpUnsupported:  # SFTP v3's rename refuses an existing target
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(dest)
            await sftp.rename(temp, dest)
        state.reset()

    async def _write(self, handle: asyncssh.SFTPClientFile, source: Source, start: int, end: int, on_bytes: OnBytes,
                     state: MultipartState, on_part: Callable[[], None], *, close: bool) -> None:
        """Write ``[start, end)`` of the file, a window of requests in flight; each counts once acknowledged."""
        limit = self._sftp.limits.max_write_len if self._sftp is not None else 0
        size = min(MAX_WRITE, limit or 32 * 1024)
        pending: deque[tuple[asyncio.Future[int], int]] = deque()
        waiting = 0
        saved = state.held

        async def acknowledged() -> None:
            nonlocal waiting, saved
            future, n = pending.popleft()
            async with asyncio.timeout(self.transfers.read_timeout_s):
                await future
            waiting -= n
            state.held += n
            on_bytes(n)
            if state.held - saved >= self.transfers.part_size:  # journalled now and then, not per write
                saved = state.held
                on_part()

        try:
            pos = start
            async for block in _blocks(source, start, end):
                for i in range(0, len(block), size):
                    piece = bytes(block[i:i + size])
                    # Sent in this order: each write's request goes out when its task first runs.
                    pending.append((asyncio.ensure_future(handle.write(piece, pos)), len(piece)))
                    pos += len(piece)
                    waiting += len(piece)
                    while waiting > WINDOW:
                        await acknowledged()
            while pending:
                await acknowledged()
            if close:
                await handle.close()
        finally:
            for future, _ in pending:
                future.cancel()
            if pending:
                await asyncio.gather(*(f for f, _ in pending), return_exceptions=True)
            if close or pending:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await handle.close()

    async def _size(self, sftp: asyncssh.SFTPClient, path: str) -> int | None:
        try:
            attrs = await sftp.stat(path)
        except asyncssh.SFTPNoSuchFile:
            return None
        if attrs.permissions is not None and stat.S_ISDIR(attrs.permissions):
            return None
        return attrs.size

    async def _make_folders(self, sftp: asyncssh.SFTPClient, folder: str) -> None:
        if folder in ("", ".", "/") or folder in self._folders:
            return
        # mkdir -p of our own: asyncssh's makedirs hides a refused mkdir behind a later "no such file".
        path = "/" if folder.startswith("/") else ""
        for part in (p for p in folder.split("/") if p):
            path = posixpath.join(path, part)
            if path in self._folders:
                continue
            try:
                await sftp.mkdir(path)
            except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists, asyncssh.SFTPPermissionDenied):
                if not await sftp.isdir(path):  # it exists (OpenSSH answers "Failure"), or it was refused
                    raise
            self._folders.add(path)

    async def _forget_temp(self, state: MultipartState, on_bytes: OnBytes, on_part: Callable[[], None]) -> None:
        """Delete a temporary file that will not be gone on from, now or else by the clean-up."""
        if not (state.key and state.upload_id):
            return
        try:
            async with asyncio.timeout(CLEANUP_S):
                await self.abort_upload(state.key, state.upload_id)
        except (TransferError, TimeoutError) as exc:
            log.info("could not delete %s yet (%s); the clean-up will", state.upload_id, describe(exc))
            return
        on_bytes(-state.held)
        state.reset()
        on_part()

    async def abort_upload(self, key: str, upload_id: str) -> None:
        await self._guarded(self._remove(posixpath.join(posixpath.dirname(self._path(key)), upload_id)))

    async def _remove(self, path: str) -> None:
        sftp = await self._client()
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(path)

    async def _guarded(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except TransferError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    # -- links, checks, deletes ---------------------------------------------------------------------------------
    async def link(self, key: str) -> str:
        if not self.profile.public_base_url:
            raise ConfigError(f"Profile {self.profile.name!r} has no public_base_url: SFTP has no links of its own.")
        return public_url(self.profile.public_base_url, key)

    async def delete_object(self, key: str) -> None:
        await self._guarded(self._remove(self._path(key)))

    async def stored_size(self, key: str) -> int | None:
        async def size() -> int | None:
            return await self._size(await self._client(), self._path(key))

        return await self._guarded(size())

    async def check(self) -> str:
        async def probe() -> None:
            sftp = await self._client()
            root = self.profile.root
            if root:
                await self._make_folders(sftp, root)
            path = self._path(f".pixlift-check-{uuid.uuid4().hex[:8]}")
            async with sftp.open(path, "wb") as f:
                await f.write(b"pixlift")
            await sftp.remove(path)

        await self._guarded(probe())
        p = self.profile
        return (f"{p.username + '@' if p.username else ''}{self.where}: the host key is known, the login works and "
                f"{p.root or 'the home folder'} is writable")


def _disk_full(where: str) -> PermanentStorageError:
    return PermanentStorageError(f"{where} has no space left for the file. Free some space or raise the quota, then "
                                 "retry.", code="disk_full")


async def _blocks(source: Source, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
    """``[start, end)`` of the file in blocks: from memory for a small file, else read off the loop."""
    if source.data is not None:
        yield memoryview(source.data)[start:end]
        return
    pos = start
    while pos < end:
        block = await asyncio.to_thread(source.reader(pos, min(READ_BLOCK, end - pos)).read)
        yield block
        pos += len(block)
