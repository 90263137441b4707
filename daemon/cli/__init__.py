"""The command line face: ``pixlift upload|watch|retry|status|open|history|delete|config|token|serve``.

Every command but ``serve`` talks to the running daemon through ``client`` (JSON-RPC and the event stream);
``serve`` hands over to ``serve``.
Holds: ``commands`` (argument parsing and each command), ``progress`` (progress lines on a terminal),
``history`` (the history and delete commands).
May import: client, errors, files, intake, pixlift, serve, settings.
Used by: ``__main__`` and the ``pixlift`` command. It stands beside the HTTP face and the tray and imports neither.
"""
