"""pixlift: a local upload daemon with byte-accurate progress, a web UI, a tray icon and a JSON-RPC API."""

__version__ = "0.1.0"
