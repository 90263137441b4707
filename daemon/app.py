"""The composition root: builds the parts, wires them, and owns nothing else.

``create_app`` returns the aiohttp application with one cleanup context per long-lived resource (journal,
engine, providers). ``serve`` binds 127.0.0.1, writes daemon.json, and stops cleanly on SIGTERM/SIGINT or the
tray's Quit. With a tray, the tray owns the main thread (macOS requires it) and the event loop runs on a worker
thread (``LoopThread``); the tray reaches the application layer only through
``asyncio.run_coroutine_threadsafe`` (see tray/crossing.py). The tray imports this module, never the reverse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.payload import Payload

from . import __version__
from .api.gate import Gate
from .api.picgo import PicgoServer
from .api.web import RPC_MAX_BODY, Routes
from .application import Application
from .core.config import SettingsBox
from .core.events import EventBus
from .core.heap import settle_heap
from .core.threads import default_size, started
from .engine.changes import ChangeLog
from .engine.cleanup import Cleanup
from .engine.engine import Engine
from .files.spool import Spool
from .images.metadata_bounds import GATE as PARSES
from .intake.presigned import Presigned
from .journal.journal import Journal
from .providers.registry import ProviderPool
from .settings.home import Home
from .settings.integrations import Integrations
from .settings.private import make_private, redact_logs
from .settings.profiles import Profiles
from .settings.store import SettingsStore

log = logging.getLogger("pixlift")


@dataclass
class Runtime:
    """Facts known only once the daemon runs: its port. Everything that builds links reads it from here."""

    port: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


APPLICATION = web.AppKey("application", Application)
RUNTIME = web.AppKey("runtime", Runtime)


def create_app(home: Home, box: SettingsBox, runtime: Runtime) -> web.Application:
    home.ensure()
    home.ensure_token()
    journal = Journal(home.journal)
    events = EventBus()
    providers = ProviderPool(box, home.files, lambda: runtime.base_url)
    cleanup = Cleanup(journal, providers)
    spool = Spool(home.spool)
    engine = Engine(config=box, providers=providers, journal=journal, changes=ChangeLog(journal), events=events,
                    cleanup=cleanup, spool=spool)
    store = SettingsStore(home.config, home.root, box)
    profiles = Profiles(config=box, store=store, providers=providers, files_root=home.files, busy=engine.busy_with)
    application = Application(home=home, config=box, engine=engine, journal=journal, events=events,
                              profiles=profiles, spool=spool, port=lambda: runtime.port,
                              presigned=Presigned(box, providers, journal, spool, lambda: runtime.base_url),
                              integrations=Integrations(box, store))
    picgo = PicgoServer(application)
    gate = Gate(token=lambda: home.read_token() or "", port=lambda: runtime.port)

    app = web.Application(client_max_size=RPC_MAX_BODY, middlewares=[gate.middleware()])
    app[APPLICATION] = application
    app[RUNTIME] = runtime
    Routes(application, gate).install(app)

    async def engine_ctx(_: web.Application) -> AsyncIterator[None]:
        await engine.start()
        await application.start()
        await cleanup.start()
        await picgo.start()
        yield
        await picgo.stop()
        await cleanup.stop()
        await application.stop()
        await engine.stop()
        application.close()
        await providers.close()
        journal.close()

    async def harden(_: web.Application) -> None:
        # Before the first request: other users cannot read the home folder, and no log line carries a secret.
        make_private(home.root)
        redact_logs(lambda: [home.read_token(), *box.current.secrets()])

    app.on_startup.append(harden)
    app.cleanup_ctx.append(engine_ctx)
    return app


async def serve(home: Home, box: SettingsBox, port: int, runtime: Runtime,
                on_ready: Callable[[web.Application], None] | None = None) -> None:
    """Serve until ``runtime.stopping`` is set; then stop taking work, persist, and remove daemon.json."""
    size = default_size()  # asyncio's own pool for blocking calls and the parse threads, started (core/threads.py)
    asyncio.get_running_loop().set_default_executor(
        started(ThreadPoolExecutor(size, thread_name_prefix="pixlift-io"), size))
    PARSES.start()
    app = create_app(home, box, runtime)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # SO_REUSEADDR (asyncio's default on POSIX): a restart may bind while the old daemon's connections sit in
    # TIME_WAIT; Linux still refuses a second live listener, so two daemons never share a port.
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"pixlift: cannot listen on 127.0.0.1:{port} ({exc.strerror}). Is pixlift already "
                         "running? Check with 'pixlift status', or start with --port N (0 picks a free port).") from exc
    runtime.port = int(runner.addresses[0][1])
    home.write_daemon_info(port=runtime.port, pid=os.getpid(), version=__version__)
    log.info("pixlift %s listening on %s (home %s)", __version__, runtime.base_url, home.root)
    settle_heap()
    _fill_reply_caches()
    if on_ready is not None:
        on_ready(app)
    try:
        await runtime.stopping.wait()
    finally:
        log.info("stopping: no new work; saving state")
        await runner.cleanup()
        home.remove_daemon_info(os.getpid())
        log.info("stopped")


def _fill_reply_caches() -> None:
    """aiohttp asks of every reply whether its body is a ``Payload``, an ABC with a dozen subclasses: the first
    answer fills each one's cache. Asked now, those caches are made with the daemon's other lasting objects,
    not among the first batch's tasks, whose memory they would keep after a clear (``core/threads.py``)."""
    isinstance(b"", Payload)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux and macOS): its loop costs less per request than asyncio's own.
    ``PIXLIFT_EVENT_LOOP=asyncio`` picks the standard loop."""
    if os.environ.get("PIXLIFT_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve_headless(home: Home, box: SettingsBox, port: int) -> int:
    """Serve on this thread with no tray: ``--no-tray``, or when the tray cannot start (the tray falls back here)."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(_run_headless(home, box, port))


async def _run_headless(home: Home, box: SettingsBox, port: int) -> int:
    runtime = Runtime()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.stopping.set)
    await serve(home, box, port, runtime)
    return 0


class LoopThread:
    """The event loop on a worker thread, for when something else (the tray) owns the main thread."""

    def __init__(self, home: Home, box: SettingsBox, port: int) -> None:
        self.home, self.box, self.port = home, box, port
        self.loop = new_loop()
        self.runtime: Runtime | None = None
        self.app: web.Application | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="pixlift-loop", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the main thread, which exits with it
            self.error = exc
        finally:
            self.ready.set()
            self.loop.close()

    async def _serve(self) -> None:
        self.runtime = Runtime()

        def ready(app: web.Application) -> None:
            self.app = app
            self.ready.set()

        await serve(self.home, self.box, self.port, self.runtime, on_ready=ready)

    def stop(self) -> None:
        if self.runtime is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.runtime.stopping.set)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
