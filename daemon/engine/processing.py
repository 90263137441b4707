"""What happens to a file between the queue and the store: its location removed, and a copy reused.

The engine calls ``prepare_job`` once per task, before the file is named (a ``{hash}`` in the key is the hash
of the bytes sent). The edited copy goes into the spool, so that a retry, a resume after a crash, and the
multipart parts all send the same bytes; the original file is never changed, and the copy is removed with
the task's other spooled bytes. ``Task.processing`` says what was done.

``copies`` is the dedup: bytes this profile already has (the journal knows each upload's SHA-256, so a new
file costs no request) are confirmed with the store (a HEAD, the same size) and reused, key and link.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..core.config import SMALL_FILE, ImageSettings
from ..core.tasks import Task
from ..errors import SourceError, TransferError
from ..files.paths import CheckedFile, Identity
from ..files.sources import Source
from ..files.spool import Spool
from ..images.convert import convert
from ..images.metadata import EDITED, NOT_EDITED, NotAnImage, strip
from ..journal.journal import Journal
from ..providers.base import Provider
from .worker import INLINE_READ, Job, off_loop

log = logging.getLogger(__name__)

# image formats whose metadata pixlift does not edit yet: said in the task, so nobody assumes it was
UNEDITED_IMAGES = ("image/jxl", "image/bmp", "image/x-icon")


@dataclass(frozen=True)
class Prepared:
    checked: CheckedFile  # what to send: the edited copy, or the file itself
    processing: dict[str, Any]


def prepare(checked: CheckedFile, images: ImageSettings, spool: Spool, source: Source | None = None) -> Prepared | None:
    """Blocking (run it on a worker thread). None: send the file as it is, with nothing to report. ``source``:
    the file already opened (and, when small, read) for its upload; otherwise it is opened here."""
    if images.convert_to or images.max_dimension:
        return _convert(checked, images, spool)
    if checked.content_type == "image/tiff" and images.strip_metadata == "all":  # its tags describe the image
        prepared = _convert(checked, images, spool)
        if prepared is not None:
            prepared.processing["note"] = ("re-encoded as a lossless TIFF: a TIFF's tags cannot be removed in "
                                           "place")
        return prepared
    mode = images.strip_metadata
    if mode == "none":
        return None
    if checked.content_type not in EDITED:
        if checked.content_type in UNEDITED_IMAGES:
            return Prepared(checked, _info([], checked.size, checked.size, NOT_EDITED))
        return None
    opened = source is None
    if source is None:
        source = Source.open(checked, small=0)  # the same checks as an upload: still the file that was queued
    made: list[Path] = []

    def target() -> Path:  # a spool folder only for a file that has something to remove
        made.append(spool.folder())
        return made[0] / checked.name

    try:
        removed = strip(source.fd if source.data is None else source.data, checked.content_type, mode, target)
    except NotAnImage:
        _drop(made)
        return Prepared(checked, _info([], checked.size, checked.size,
                                       "its bytes do not parse as the image they start like; sent as it is"))
    except OSError as exc:
        _drop(made)
        raise SourceError(f"{checked.name}: its metadata could not be removed ({exc.strerror or exc}); "
                          "nothing was sent. Check the disk holding pixlift's spool.") from exc
    finally:
        if opened:
            source.close()
    if removed is None or not made:
        _drop(made)
        return None
    folder = made[0]
    out = folder / checked.name
    st = os.stat(out)
    edited = CheckedFile(path=str(out), root=str(folder), name=checked.name, size=st.st_size,
                         content_type=checked.content_type, identity=Identity.of(st))
    return Prepared(edited, _info(removed, checked.size, st.st_size, None))


def _convert(checked: CheckedFile, images: ImageSettings, spool: Spool) -> Prepared | None:
    """Re-encode (and scale) with Pillow (images/convert.py); a file that is not a picture goes as it is."""
    if not checked.content_type.startswith("image/") or checked.content_type == "image/svg+xml":
        return None
    source = Source.open(checked, small=0)
    folder = spool.folder()
    try:
        with os.fdopen(os.dup(source.fd), "rb") as fh:
            out, mime, removed = convert(fh, checked.name, folder, to=images.convert_to, quality=images.quality,
                                         max_dimension=images.max_dimension, strip_metadata=images.strip_metadata)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        source.close()
    st = os.stat(out)
    edited = CheckedFile(path=str(out), root=str(folder), name=out.name, size=st.st_size, content_type=mime,
                         identity=Identity.of(st))
    info = _info(removed, checked.size, st.st_size, None)
    info["converted_to"] = images.convert_to or None
    return Prepared(edited, info)


def _drop(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _info(stripped: list[str], before: int, after: int, note: str | None) -> dict[str, Any]:
    return {"stripped": stripped, "converted_to": None, "bytes_before": before, "bytes_after": after, "note": note}


def _open_and_prepare(checked: CheckedFile, images: ImageSettings, spool: Spool,
                      digests: Iterable[str]) -> tuple[Source, Prepared | None]:
    """A small file opened, read and hashed for its upload, and its metadata checked from the same bytes."""
    source = Source.open(checked, digests=digests)
    try:
        return source, prepare(checked, images, spool, source)
    except BaseException:
        source.close()
        raise


async def prepare_job(job: Job, images: ImageSettings, spool: Spool, digests: Iterable[str] = ()) -> bool:
    """Prepare a task's file once (not again on a retry or after a restart); True when the task changed.

    A small file is opened and read once, here, for both (with the ``digests`` its upload needs): the upload
    sends these bytes unless an edited copy replaces them. Up to ``INLINE_READ`` that happens on the loop (a
    header or two to parse), above it in one hop to a worker thread."""
    task = job.task
    if task.key is not None or job.original is not None or task.processing is not None:
        return False
    once = job.checked.size <= SMALL_FILE and not (images.convert_to or images.max_dimension)
    if once and job.checked.size <= INLINE_READ:
        job.source, prepared = _open_and_prepare(job.checked, images, spool, digests)
    elif once:
        opened = await off_loop(partial(_open_and_prepare, job.checked, images, spool, digests),
                                lambda late: late[0].close())
        job.source, prepared = opened
    else:
        prepared = await asyncio.to_thread(prepare, job.checked, images, spool)
    if prepared is None:
        return False
    task.processing = prepared.processing
    if prepared.checked is not job.checked:
        job.close_source()  # what was read is the original: the edited copy goes instead
        if task.source.spooled:  # bytes handed over: the edited copy replaces them
            spool.drop(job.checked)
        else:
            job.original = job.checked
        job.checked = prepared.checked
        task.bytes_total = prepared.checked.size
    return True


def copies(journal: Journal, provider: Provider, task: Task) -> Callable[[str], Awaitable[str | None]]:
    """For the worker: the key of an object of this profile holding exactly these bytes, or None."""

    async def find(sha256: str) -> str | None:
        known = journal.find_upload(task.profile, sha256)
        if known is None or known[1] != task.bytes_total:
            return None
        key = known[0]
        try:
            stored = await provider.stored_size(key)
        except TransferError as exc:  # the store could not say: send the bytes, as without dedup
            log.info("%s: could not check %s for a copy (%s); uploading", task.name, key, exc.message)
            return None
        return key if stored == task.bytes_total else None

    return find
