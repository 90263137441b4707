"""What happens to a file between the queue and the store: its location removed, and a copy reused.

The engine calls ``prepare_job`` once per task, before the file is named (a ``{hash}`` in the key is the hash
of the bytes sent). The edited copy goes into the spool, so that a retry, a resume after a crash, and the
multipart parts all send the same bytes; the original file is never changed, and the copy is removed with
the task's other spooled bytes. ``Task.processing`` says what was done.

Parsing a file's metadata never runs on the event loop: it runs on the parse threads of
``metadata_bounds.GATE`` (a few at once, each within its time budget), marked in ``ParseMarks`` while it
runs, so that a file the daemon did not survive is failed at the next start instead of parsed again. A file
that cannot be read well enough fails ``metadata_unreadable`` (stripping fails closed); one over the budget,
or with a structure no valid file has, fails ``file_error``.

``copies`` is the dedup: bytes this profile already has (the journal knows each upload's SHA-256, so a new
file costs no request) are confirmed with the store (a HEAD, the same size) and reused, key and link.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..core.config import SMALL_FILE, ImageSettings
from ..core.tasks import Task
from ..errors import MetadataUnreadable, SourceError, TransferError
from ..files.paths import CheckedFile, identity_of
from ..files.sources import Source
from ..files.spool import Spool
from ..images.convert import convert
from ..images.metadata import EDITED, NOT_EDITED, Changed, GaveUp, Unreadable, strip
from ..images.metadata_bounds import GATE, ParseMarks, budget
from ..journal.journal import Journal
from ..providers.base import Provider
from .worker import INLINE_READ, Job, off_loop, sha256_ahead

log = logging.getLogger(__name__)

# image formats whose metadata pixlift does not edit yet: said in the task, so nobody assumes it was
UNEDITED_IMAGES = ("image/bmp", "image/x-icon")


@dataclass(frozen=True)
class Prepared:
    checked: CheckedFile  # what to send: the edited copy, or the file itself
    processing: dict[str, Any]


def prepare(checked: CheckedFile, images: ImageSettings, spool: Spool, source: Source | None = None,
            profile: str = "") -> Prepared | None:
    """Blocking (run it on a parse thread). None: send the file as it is, with nothing to report. ``source``:
    the file already opened (and, when small, read) for its upload; otherwise it is opened here. Raises
    MetadataUnreadable or SourceError when the file cannot go."""
    if images.convert_to or images.max_dimension:
        return _convert(checked, images, spool, profile)
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
        removed = _strip(source.fd if source.data is None else source.data, checked, mode, target, profile)
    except OSError as exc:
        _drop(made)
        raise SourceError(f"{checked.name}: its metadata could not be removed ({exc.strerror or exc}); "
                          "nothing was sent. Check the disk holding pixlift's spool.") from exc
    except BaseException:
        _drop(made)
        raise
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
                         content_type=checked.content_type, identity=identity_of(st))
    groups, notes = _split(removed)
    return Prepared(edited, _info(groups, checked.size, st.st_size, notes))


def _strip(content: int | bytes, checked: CheckedFile, mode: str, out: Path | Callable[[], Path],
           profile: str) -> list[str] | None:
    """``metadata.strip``, its failures in words a person can act on."""
    try:
        return strip(content, checked.content_type, mode, out)
    except Unreadable as exc:
        where = f"[profiles.{profile}.images]" if profile else "[images]"
        raise MetadataUnreadable(
            f"{checked.name}: pixlift cannot read its metadata well enough to be sure no "
            f"{'location' if mode == 'location' else 'metadata'} is left ({exc}), so it was not sent. To send "
            f"it as it is, set strip_metadata = \"none\" in {where}.") from exc
    except Changed as exc:
        raise SourceError(f"{checked.name} changed while pixlift was reading it ({exc}); nothing was sent. Upload "
                          "it again once the program writing it is done.") from exc
    except GaveUp as exc:
        where = f" for profile {profile}" if profile else ""
        raise SourceError(f"pixlift gave up reading {checked.name}: {exc}. Nothing was sent; if you trust the "
                          f"file, strip_metadata = \"none\"{where} sends it without reading it.") from exc


def _split(removed: list[str]) -> tuple[list[str], str | None]:
    """Tag groups, and the notes the editors added (``note:...``) for ``processing.note``."""
    notes = [r[5:] for r in removed if r.startswith("note:")]
    return [r for r in removed if not r.startswith("note:")], "; ".join(notes) or None


def _convert(checked: CheckedFile, images: ImageSettings, spool: Spool, profile: str) -> Prepared | None:
    """Re-encode (and scale) with Pillow (images/convert.py); a file that is not a picture goes as it is. What Pillow
    carried over (XMP, its own idea of EXIF) passes the same stripping as any file, within its own budget."""
    if not checked.content_type.startswith("image/") or checked.content_type == "image/svg+xml":
        return None
    source = Source.open(checked, small=0)
    folder = spool.folder()
    try:
        with os.fdopen(os.dup(source.fd), "rb") as fh:
            out, mime, removed = convert(fh, checked.name, folder, to=images.convert_to, quality=images.quality,
                                         max_dimension=images.max_dimension, strip_metadata=images.strip_metadata)
        if images.strip_metadata != "none":
            again = out.with_name("stripped-" + out.name)
            converted = CheckedFile(path=str(out), root=str(folder), name=out.name, size=out.stat().st_size,
                                    content_type=mime, identity=identity_of(out.stat()))
            with budget():
                more = _strip(out.read_bytes(), converted, images.strip_metadata, again, profile)
            if more:
                os.replace(again, out)
                removed = sorted(set(removed) | set(_split(more)[0]))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        source.close()
    st = os.stat(out)
    edited = CheckedFile(path=str(out), root=str(folder), name=out.name, size=st.st_size, content_type=mime,
                         identity=identity_of(st))
    info = _info(removed, checked.size, st.st_size, None)
    info["converted_to"] = images.convert_to or None
    return Prepared(edited, info)


def _drop(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _info(stripped: list[str], before: int, after: int, note: str | None) -> dict[str, Any]:
    return {"stripped": stripped, "converted_to": None, "bytes_before": before, "bytes_after": after, "note": note}


def _close(late: tuple[Source, Prepared | None]) -> None:
    late[0].close()


def _open_and_prepare(checked: CheckedFile, images: ImageSettings, spool: Spool, digests: Iterable[str],
                      profile: str) -> tuple[Source, Prepared | None]:
    """A small file opened, read and hashed for its upload, and its metadata checked from the same bytes."""
    source = Source.open(checked, digests=digests)
    try:
        return source, prepare(checked, images, spool, source, profile)
    except BaseException:
        source.close()
        raise


def parses(checked: CheckedFile, images: ImageSettings) -> bool:
    """Whether preparing the file reads its bytes as an image (on a parse thread, never on the loop)."""
    return bool(images.convert_to or images.max_dimension) or (
        images.strip_metadata != "none" and checked.content_type in EDITED)


async def prepare_job(job: Job, images: ImageSettings, spool: Spool, digests: Iterable[str] = (),
                      marks: ParseMarks | None = None, parts: list[tuple[str, int, int]] | None = None) -> bool:
    """Prepare a task's file once (not again on a retry or after a restart); True when the task changed.

    A small file is opened and read once, here, for both (with the ``digests`` its upload needs): the upload
    sends these bytes unless an edited copy replaces them. A file whose metadata is to be read goes to a
    parse thread (``metadata_bounds.GATE``), marked in ``marks`` while it is read; one that needs no parsing
    is opened on the loop up to ``INLINE_READ``, and on a worker thread above it. ``parts``: the checksums its
    provider sends a large file's parts with (Provider.part_checksums), taken ahead while it is hashed."""
    task = job.task
    if task.key is not None or job.original is not None or task.processing is not None:
        return False
    convert = bool(images.convert_to or images.max_dimension)
    once = job.checked.size <= SMALL_FILE and not convert
    profile = task.profile
    if not parses(job.checked, images):
        if once and job.checked.size <= INLINE_READ:
            job.source, prepared = _open_and_prepare(job.checked, images, spool, digests, profile)
        elif once:
            opened, prepared = await off_loop(
                partial(_open_and_prepare, job.checked, images, spool, digests, profile), _close)
            job.source = opened
        else:
            prepared = await asyncio.to_thread(prepare, job.checked, images, spool, None, profile)
    elif convert:  # Pillow decodes: its own time, on a worker thread; the stripping after it has its budget
        work = partial(prepare, job.checked, images, spool, None, profile)
        prepared = await asyncio.to_thread(marks.around(task.task_id, work) if marks else work)
    elif once:
        work2 = partial(_open_and_prepare, job.checked, images, spool, digests, profile)
        opened, prepared = await GATE.run(marks.around(task.task_id, work2, late=True) if marks else work2, _close)
        job.source = opened
    else:
        work3 = partial(prepare, job.checked, images, spool, None, profile)
        parse = GATE.run(marks.around(task.task_id, work3, late=True) if marks else work3)
        prepared = await (hashed_beside(parse, job, parts or []) if "sha256" in digests else parse)
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


async def hashed_beside(parse: Awaitable[Prepared | None], job: Job,
                        parts: list[tuple[str, int, int]]) -> Prepared | None:
    """A large file's SHA-256 (for its key and dedup) taken on a worker thread while a parse thread reads its
    metadata: the two reads of the file run at once, on both cores, instead of one after the other. Once the
    parse is done and the file goes as it is, the first ``parts``' checksums are taken on the core it leaves
    until the hash is known (``worker.sha256_ahead``); not before: a third busy thread on two cores slowed the
    hash every upload waits for by half (1.24 -> 1.98 s for 1 GiB, measured beside a scan). The opened, hashed
    file is the job's source, unless an edited copy replaces it (its hashes are then taken of the copy)."""
    parsed = threading.Event()
    hashing = asyncio.ensure_future(off_loop(partial(_open_hashed, job.checked, parts, parsed), Source.close))
    hashing.add_done_callback(lambda f: f.cancelled() or f.exception())  # a failure is read, whoever wins
    try:
        prepared = await parse
    except BaseException:
        hashing.cancel()  # off_loop closes the file once its thread is done
        raise
    if prepared is None or prepared.checked is job.checked:
        parsed.set()
    try:
        job.source = await hashing
    except SourceError:
        if prepared is None or prepared.checked is job.checked:
            raise
    return prepared


def _open_hashed(checked: CheckedFile, parts: list[tuple[str, int, int]], parsed: threading.Event) -> Source:
    source = Source.open(checked, small=0)
    try:
        sha256_ahead(source, parts, parsed)
    except BaseException:
        source.close()
        raise
    return source


def unsurvived(name: str) -> SourceError:
    """The failure of a task whose parse the daemon did not survive (ParseMarks): said, not tried again."""
    return SourceError(f"pixlift stopped while it was reading {name} (the daemon crashed, hung or was killed "
                       "meanwhile), so it gave up on this file instead of reading it again at this start. Retry it "
                       "to try once more, or set strip_metadata = \"none\" for its profile to send it without "
                       "reading it.")


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
