"""``pixlift serve``: the daemon started for real, with a tray icon on the desktop or without one.

It takes the home's lock (one daemon per home), sets up the log file, loads the settings (a broken config.toml
stops it here, saying what to fix), and hands over to the composition root (``app.serve_headless``) or to the
tray, which runs the same daemon on a thread of its own. The CLI calls it; nothing else in pixlift imports it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from .app import serve_headless
from .core.config import SettingsBox
from .errors import ConfigError, PixliftError
from .settings.config_file import load_settings
from .settings.home import Home

log = logging.getLogger("pixlift")


def serve(home: Home, *, port: int, log_level: str, tray: bool) -> int:
    """Load the settings (refusing a broken file), then serve until stopped; the exit status."""
    os.umask(0o077)  # everything the daemon creates (logs, rotated logs, spool, journal) is private
    home.ensure()
    if home.lock() is None:  # before anything of the home is touched: the log, the journal, daemon.json
        info = home.read_daemon_info() or {}
        running = f"pid {info['pid']}, {info['url']}" if info.get("pid") and info.get("url") else "starting up"
        print(f"pixlift: another pixlift is already serving {home.root} ({running}); use it, stop it first, or "
              "set PIXLIFT_HOME to another folder.", file=sys.stderr)
        return 1
    _setup_logging(home, log_level)
    box = SettingsBox(load_settings(home.config, home.root))
    try:
        if not tray:
            return serve_headless(home, box, port)
        from .tray import run_with_tray  # imports pystray only when a tray is wanted

        return run_with_tray(home, box, port)
    except ConfigError:
        raise  # the CLI says what to fix in config.toml
    except PixliftError as exc:  # foreseen, and said in words already
        log.error("pixlift stopped: %s", exc.message)
        print(f"pixlift: {exc.message}", file=sys.stderr)
        return 1
    except Exception:  # a bug, or a home pixlift cannot use: said in words here, the traceback in the log
        log.critical("pixlift stopped on an error it did not expect", exc_info=True)
        print(f"pixlift: the daemon stopped on an error it did not expect. What happened is at the end of "
              f"{home.log_file}; please report it with that file.", file=sys.stderr)
        return 1


class _Brief(logging.Formatter):
    """The terminal's log lines: without a traceback, which goes to pixlift.log alone."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        return line + (" (the details are in pixlift.log)" if saved[0] or saved[1] else "")


LINE = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _setup_logging(home: Home, level: str) -> None:
    fmt = logging.Formatter(LINE)
    logging.raiseExceptions = False  # a log line the full disk refuses is dropped, not a traceback on stderr
    root = logging.getLogger()
    root.setLevel(level.upper())
    err = logging.StreamHandler()
    err.setFormatter(_Brief(LINE))
    root.addHandler(err)
    fileh = logging.handlers.RotatingFileHandler(home.log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    fileh.setFormatter(fmt)
    root.addHandler(fileh)
    os.chmod(home.log_file, 0o600)
    for noisy in ("botocore", "aiobotocore", "aioboto3", "urllib3", "oss2", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


