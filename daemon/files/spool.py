"""The spool: bytes handed to the daemon (by the browser, the clipboard) kept on disk until they are uploaded.

Each upload gets a private folder of its own under ``<home>/spool``; the folder is removed once the task no
longer needs its bytes (completed, or cleared from the list). What goes in is checked on the way: not empty,
not over the size limit, and an image by its bytes unless the settings allow any file.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from ..core.config import SecuritySettings
from ..errors import FileRefused, JournalUnavailable
from .paths import IMAGE_FORMATS, CheckedFile, identity_of, sniff_image

_SAFE_NAME = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)

SNIFF_BYTES = 1024


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.path.normpath(root)

    def folder(self) -> Path:
        """A new private folder for one file's bytes (blocking)."""
        return self._folder()

    def owns(self, checked: CheckedFile) -> bool:
        """The file is one of the spool's: bytes handed over, or an edited copy."""
        return os.path.dirname(os.path.dirname(checked.path)) == self._root  # asked of every completed file

    def _folder(self) -> Path:
        folder = self.root / uuid.uuid4().hex
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._unavailable(exc) from exc
        return folder

    def _unavailable(self, exc: OSError) -> JournalUnavailable:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return JournalUnavailable(f"The disk holding pixlift's spool ({self.root}) is "
                                  f"{'full' if full else 'not writable'}, so nothing was queued. Free some space "
                                  "there, then send the file again.")

    @staticmethod
    def content_type(name: str, head: bytes, security: SecuritySettings) -> str:
        kind = sniff_image(head)
        if kind is not None:
            return kind
        if security.images_only:
            raise FileRefused(f"{name} is not an image ({IMAGE_FORMATS}).", http_status=415)
        return "application/octet-stream"

    @staticmethod
    def check_size(name: str, size: int, security: SecuritySettings) -> None:
        if size > security.max_file_size:
            raise FileRefused(f"{name} is {size} bytes; the limit is {security.max_file_size} bytes "
                              "([security] max_file_size_mb).", http_status=413)

    def keep_bytes(self, name: str, data: bytes, security: SecuritySettings) -> CheckedFile:
        """Bytes held in memory (a clipboard image), checked and written; blocking."""
        if not data:
            raise FileRefused(f"{name} is empty.")
        self.check_size(name, len(data), security)
        kind = self.content_type(name, data[:SNIFF_BYTES], security)
        folder = self._folder()
        path = folder / name
        try:
            path.write_bytes(data)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise self._unavailable(exc) from exc
        return CheckedFile(path=str(path), root=str(folder), name=name, size=len(data), content_type=kind,
                           identity=identity_of(path.stat()))

    async def keep_stream(self, name: str, chunks: AsyncIterator[bytes], security: SecuritySettings) -> CheckedFile:
        """A body streamed in (a browser upload), checked as it arrives; nothing is left behind on a refusal."""
        folder = await asyncio.to_thread(self._folder)
        path = folder / name
        size = 0
        head = b""
        try:
            with path.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    self.check_size(name, size, security)
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    await asyncio.to_thread(fh.write, chunk)
            if size == 0:
                raise FileRefused(f"{name} is empty.")
            kind = self.content_type(name, head, security)
            st = os.stat(path)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise self._unavailable(exc) from exc
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return CheckedFile(path=str(path), root=str(folder), name=name, size=size, content_type=kind,
                           identity=identity_of(st))

    def drop_owned(self, files: Iterable[CheckedFile]) -> None:
        """Remove the spooled ones among forgotten tasks' files; a user's own files are left alone."""
        for checked in files:
            if self.owns(checked):
                self.drop(checked)

    def drop(self, checked: CheckedFile) -> None:
        """Remove a spooled file's folder (never anything outside the spool)."""
        folder = Path(checked.path).parent
        if folder.parent == self.root:
            shutil.rmtree(folder, ignore_errors=True)


def safe_name(raw: str) -> str:
    """A name a browser or an editor sent, as a file name of its own: the last path part, no odd characters."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip(" .")[:200]
    return cleaned or "pasted-image"
