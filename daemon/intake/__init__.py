"""Ways bytes come in besides a path: images fetched from URLs (with the SSRF rules), the clipboard, and
presigned uploads that apps send themselves.

Holds: ``fetch`` (``upload_urls``: redirects, limits), ``ssrf`` (the addresses a fetch may reach, decided on
what will be connected to), ``clipboard`` (reading and writing the
desktop clipboard through xclip, wl-clipboard, pbpaste or PowerShell), ``presigned`` (``create_upload_urls`` and
``confirm_uploads``).
May import: core, engine, errors, files, images, journal, providers, settings.
Used by: the application layer and the composition root; the faces that read the clipboard themselves (the
tray's menu, the PicGo server).
"""
