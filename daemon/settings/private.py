"""Secrets at rest and in logs: the home folder and its private files closed to other users, and every log
record scrubbed of the secrets pixlift knows (the token, storage keys)."""

from __future__ import annotations

import logging
import os
import stat
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)


PRIVATE_FILES = ("config.toml", "token", "daemon.json", "journal.sqlite3*", "pixlift.log*")
def make_private(root: Path) -> list[str]:
    """Close the home folder (0700) and its files that hold secrets or history (0600) to other users.

    A config.toml written by an editor, a home folder made by hand, or SQLite's WAL files created before the
    database was chmod-ed may be readable by everyone. Returns the names that were tightened."""
    tightened = []
    for path in [root, *(p for pattern in PRIVATE_FILES for p in root.glob(pattern))]:
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) & ~want:
                os.chmod(path, want)
                tightened.append(path.name)
        except OSError as exc:
            log.warning("cannot make %s private: %s", path.name, exc.strerror or exc)
    if tightened:
        log.warning("other users could read %s; made private (0600, home folder 0700)", ", ".join(tightened))
    return tightened


class Redactor(logging.Filter):
    """Blanks secrets out of every record a log handler writes.

    Our own messages never contain a secret; this is for the ones we do not write: aiohttp logs the raw header
    lines of a malformed request (``Authorization: Bearer ...``), SDKs may log URLs and signatures."""

    MASK = "[redacted]"

    def __init__(self, source: Callable[[], Iterable[str | None]]) -> None:
        super().__init__("pixlift.redact")
        self.source = source
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            found: set[str] = set()
            for secret in self.source():
                if secret and len(secret) >= 4:
                    found.update({secret, urllib.parse.quote(secret, safe=""), repr(secret)[1:-1]})
            if not found:
                return True
            message = record.getMessage()
            clean = self._redact(message, found)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._redact(record.exc_text, found)
            if record.stack_info:
                record.stack_info = self._redact(record.stack_info, found)
        except Exception:  # a filter must never lose the record; the handler reports formatting errors
            return True
        return True

    def _redact(self, text: str, found: set[str]) -> str:
        for secret in sorted(found, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text


def redact_logs(source: Callable[[], Iterable[str | None]]) -> None:
    """Put a Redactor for ``source`` on every handler of the root logger (the log file and stderr), once."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, Redactor) and f.source == source for f in handler.filters):
            handler.addFilter(Redactor(source))
