"""What happens to a file between the queue and the store: its location (or all its metadata) removed.

The engine calls ``prepare`` once per task, before the file is named (a ``{hash}`` in the key is the hash of
the bytes sent). The edited copy goes into the spool, so that a retry, a resume after a crash, and the
multipart parts all send the same bytes; the original file is never changed, and the copy is removed with
the task's other spooled bytes. ``Task.processing`` says what was done.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from .errors import SourceError
from .metadata import EDITED, NOT_EDITED, NotAnImage, strip
from .sources import CheckedFile, Identity, Source
from .spool import Spool

# image formats whose metadata pixlift does not edit yet: said in the task, so nobody assumes it was
UNEDITED_IMAGES = ("image/gif", "image/heic", "image/avif", "image/tiff", "image/jxl")


@dataclass(frozen=True)
class Prepared:
    checked: CheckedFile  # what to send: the edited copy, or the file itself
    processing: dict[str, Any]


def prepare(checked: CheckedFile, mode: str, spool: Spool) -> Prepared | None:
    """Blocking (run it on a worker thread). None: send the file as it is, with nothing to report."""
    if mode == "none":
        return None
    if checked.content_type not in EDITED:
        if checked.content_type in UNEDITED_IMAGES:
            return Prepared(checked, _info([], checked.size, checked.size, NOT_EDITED))
        return None
    source = Source.open(checked, small=0)  # the same checks as an upload: still the file that was queued
    folder = spool.folder()
    out = folder / checked.name
    try:
        removed = strip(source.fd, checked.content_type, mode, out)
    except NotAnImage:
        shutil.rmtree(folder, ignore_errors=True)
        return Prepared(checked, _info([], checked.size, checked.size,
                                       "its bytes do not parse as the image they start like; sent as it is"))
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise SourceError(f"{checked.name}: its metadata could not be removed ({exc.strerror or exc}); "
                          "nothing was sent. Check the disk holding pixlift's spool.") from exc
    finally:
        source.close()
    if removed is None:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    st = os.stat(out)
    edited = CheckedFile(path=str(out), root=str(folder), name=checked.name, size=st.st_size,
                         content_type=checked.content_type, identity=Identity.of(st))
    return Prepared(edited, _info(removed, checked.size, st.st_size, None))


def _info(stripped: list[str], before: int, after: int, note: str | None) -> dict[str, Any]:
    return {"stripped": stripped, "converted_to": None, "bytes_before": before, "bytes_after": after, "note": note}

