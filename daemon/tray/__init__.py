"""The tray icon: pixlift's face on the desktop (pystray).

Threads, and the one rule between them: the tray never touches the engine except through ``Crossing``.

    main thread     pystray's event loop (macOS requires it); GTK menu callbacks and signal handlers run here
    pixlift-loop    the asyncio daemon (``app.LoopThread``): engine, RPC, web UI
    setup thread    pystray's ``setup`` callback, used as the poller: about once a second it reads a frozen
                    ``TrayState`` through the crossing, redraws icon, title and menu, and shows notifications
    action threads  one short thread per menu click, so a slow clipboard tool never freezes the menu

``Crossing.call`` runs a function on the loop (``asyncio.run_coroutine_threadsafe``) and waits for its result;
engine events come back the other way as frozen ``Notice`` objects on a queue the poller drains.

Stopping: Quit, SIGTERM and SIGINT only set an event. The poller sees it, asks the daemon to stop (its cleanup
context stops the engine, which journals interrupted uploads as queued) and stops the icon; ``icon.run`` returns
on the main thread, which waits for the daemon thread and exits 0. ``icon.run(setup=...)`` is used, never
``run_detached``, which keeps an X11 process alive after ``stop()``.

No graphical session, or a backend that cannot load or start: one log line, and the daemon serves on without an
icon, exactly as with ``--no-tray``.

The rooms: ``state`` (what the tray shows, pure), ``icon`` (its picture, pure), ``crossing`` (the way to the
loop), ``menu`` (the items, what they do, the notifications), ``quirks`` (pystray backend workarounds) and
``lifecycle`` (``Tray``: start, poll, stop). pystray itself is imported only in ``Tray.create``, so importing
this package does not pick a backend or connect to a display.

Holds: ``state``, ``icon``, ``crossing``, ``menu``, ``quirks``, ``lifecycle``.
May import: app, application, client, core, errors, intake, settings.
Used by: ``serve`` only. It stands beside the HTTP face and the CLI and imports neither.
"""

from .crossing import Crossing, Notice
from .icon import icon_key, render_icon
from .lifecycle import Tray, missing_session, run_with_tray
from .state import Link, TrayState, latin1_safe, read_state, shorten, title_for

__all__ = ["Crossing", "Link", "Notice", "Tray", "TrayState", "icon_key", "latin1_safe", "missing_session",
           "read_state", "render_icon", "run_with_tray", "shorten", "title_for"]
