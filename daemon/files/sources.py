"""The streaming reader every provider sends from: an opened file that is still the one that was checked
(``paths.py`` has the rules a path passes first), read by offset, hashed once per slice, and stopped at once
on pause or cancel.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import stat
from collections.abc import Iterable, Iterator

from ..core.config import SMALL_FILE
from ..errors import Interrupted, SourceError
from .paths import CheckedFile, identity_of, open_beneath


class StopFlag:
    """A flag another thread may raise: what ``threading.Event`` offers readers here, without its lock and
    condition (an Event costs more to make than a small file costs to send; nobody waits on this one)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class Source:
    """An opened file that is still the one that was checked. Readers share its descriptor via pread.

    A small file (up to ``small`` bytes) is read whole when it is opened, with the digests its upload needs,
    in the one worker-thread call that opens it, and closed at once (``fd`` is then -1): sending it then needs
    no thread, hashing it no second read, and the event loop no system call to close it.
    """

    def __init__(self, fd: int, size: int, name: str, content_type: str, data: bytes | None = None) -> None:
        self.fd = fd
        self.size = size
        self.name = name
        self.content_type = content_type
        self.data = data  # the whole content, for a small file
        self.stop = StopFlag()  # set on pause/cancel: readers in worker threads raise at once
        self._digests: dict[str, str] = {}

    @classmethod
    def open(cls, checked: CheckedFile, *, small: int = SMALL_FILE, digests: Iterable[str] = ()) -> Source:
        """Open the checked file (blocking: run it on a worker thread); a small one is read and hashed too."""
        try:
            fd = open_beneath(checked.root, checked.path)
        except FileNotFoundError as exc:
            raise SourceError(f"{checked.path} no longer exists; it was moved or deleted after it was queued.") from exc
        except OSError as exc:
            raise SourceError(f"{checked.path} cannot be opened now ({exc.strerror or exc}).") from exc
        st = os.fstat(fd)
        if identity_of(st) != checked.identity or not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise SourceError(f"{checked.path} changed after it was queued; nothing was sent. "
                              "Upload it again to send the new version.")
        source = cls(fd, checked.size, checked.name, checked.content_type)
        if checked.size <= small:
            try:
                source.data = b"".join(source.chunks(0, checked.size))
                for name in digests:
                    source.digest(name)
            finally:
                source.close()  # all of it is in memory: closed here, on this thread, not later on the loop
        return source

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)

    def chunks(self, offset: int, length: int, size: int = 1024 * 1024) -> Iterator[bytes | memoryview]:
        """``[offset, offset+length)`` of the content, in pieces; SourceError if the file got shorter."""
        if self.data is not None:
            yield memoryview(self.data)[offset:offset + length]
            return
        pos = 0
        while pos < length:
            try:
                chunk = os.pread(self.fd, min(size, length - pos), offset + pos)
            except OSError as exc:
                raise SourceError(f"{self.name}: read failed ({exc.strerror or exc}).") from exc
            if not chunk:
                raise SourceError(f"{self.name} got shorter while it was being uploaded; nothing was kept.")
            yield chunk
            pos += len(chunk)

    def has(self, name: str, offset: int = 0, length: int | None = None) -> bool:
        """The digest (of the whole content, or of a slice) is known already: asking for it costs nothing."""
        return _slice(name, offset, self.size if length is None else length, self.size) in self._digests

    def digest(self, name: str, offset: int = 0, length: int | None = None) -> str:
        """The ``sha256`` (hex) or ``md5`` (base64, as Content-MD5 wants it) of the whole content, or of the
        slice ``[offset, offset+length)`` (a part); computed once (blocking when not known yet: run it on a
        worker thread). Slices may be hashed on several threads at once."""
        length = self.size if length is None else length
        key = _slice(name, offset, length, self.size)
        if key not in self._digests:
            self._digests[key] = _digest(name, self.chunks(offset, length))
        return self._digests[key]

    def sha256(self) -> str:
        """The content's SHA-256 as hex (blocking when not known yet: run it on a worker thread)."""
        return self.digest("sha256")

    def reader(self, offset: int, length: int) -> SliceReader:
        return SliceReader(self, offset, length)


def _slice(name: str, offset: int, length: int, size: int) -> str:
    return name if offset == 0 and length == size else f"{name}@{offset}+{length}"


def _digest(name: str, chunks: Iterable[bytes | memoryview]) -> str:
    if name == "sha256":
        h = hashlib.sha256()
    elif name == "md5":
        h = hashlib.md5(usedforsecurity=False)
    else:
        raise ValueError(f"unknown digest {name!r}")
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest() if name == "sha256" else base64.b64encode(h.digest()).decode()


class SliceReader(io.RawIOBase):
    """A seekable, read-only file object over ``[offset, offset+length)`` of a Source.

    It counts nothing itself: bytes an SDK has read are not yet at the store, so progress is measured where
    they leave, at the socket (``providers/acked.py``); ``tell()`` says how far the SDK has read. Raises
    Interrupted as soon as the source is stopped.
    """

    def __init__(self, source: Source, offset: int, length: int) -> None:
        super().__init__()
        self._src = source
        self._start = offset
        self._len = length
        self._pos = 0

    def __len__(self) -> int:
        return self._len

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._len}[whence]
        self._pos = max(0, min(self._len, base + pos))
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def md5_base64(self) -> str:
        """The slice's MD5, as a Content-MD5 header wants it (blocking unless known: run it on a worker thread)."""
        return self._src.digest("md5", self._start, self._len)

    def md5_known(self) -> bool:
        return self._src.has("md5", self._start, self._len)

    def stopped(self) -> bool:
        return self._src.stop.is_set()

    def view(self) -> memoryview | None:
        """The slice's bytes in memory (a small file), or None when they must be read from the file."""
        data = self._src.data
        return None if data is None else memoryview(data)[self._start:self._start + self._len]

    def read(self, n: int | None = -1) -> bytes:
        if self._src.stop.is_set():
            raise Interrupted("upload interrupted")
        left = self._len - self._pos
        if n is None or n < 0 or n > left:
            n = left
        if n == 0:
            return b""
        if self._src.data is not None:
            self._pos += n
            return self._src.data[self._start + self._pos - n:self._start + self._pos]
        try:
            data = os.pread(self._src.fd, n, self._start + self._pos)
        except OSError as exc:
            raise SourceError(f"{self._src.name}: read failed ({exc.strerror or exc}).") from exc
        if not data:
            raise SourceError(f"{self._src.name} got shorter while it was being uploaded; nothing was kept.")
        self._pos += len(data)
        return data

    def close(self) -> None:
        """SDKs close bodies when a request ends; the shared descriptor belongs to the Source, and a resent
        request reads this body again, so closing is a no-op."""
