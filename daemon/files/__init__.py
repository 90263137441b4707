"""The user's files, read safely: which paths may be read and how they are opened, the readers a provider
pulls bytes from, and the spool that keeps bytes arriving without a path (a browser drop, the clipboard, a URL,
an edited copy).

Holds: ``paths`` (the path rules: roots, symlinks, regular files, image sniffing), ``sources`` (an opened file or
spooled bytes as a source of bytes), ``spool`` (bytes kept on disk until their upload ends, and safe names).
May import: core, errors.
Used by: providers, engine, intake, the application layer and the faces (a path's limits, a sent name).
"""
