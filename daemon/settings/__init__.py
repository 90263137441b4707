"""The user's settings and the home folder: config.toml read, checked and written, profiles tested and
saved, secrets kept private on disk and out of logs, and links re-signed before they expire.

Holds: ``home`` (the home folder, its files and lock), ``config_file`` (config.toml to typed settings, with
errors that say what to write), ``store`` (``SettingsStore``: atomic, checked writes), ``profiles`` (profile
listing, checks and saves), ``integrations`` (the PicGo server's settings), ``links`` (presigned links signed
again when due), ``private`` (file modes, log redaction).
May import: core, errors, images, providers.
Used by: engine, intake, the application layer, the composition root, the faces (the CLI's config check, the
tray's home) and ``client``.
"""
