"""Bytes of images, read and edited: where a photo keeps its location and how it is removed without touching
the pixels, and re-encoding (convert, compress, scale). Functions of bytes from outside, every parser bounded
and run on worker threads within a time budget.

Holds: ``metadata`` (the policy: what goes for "location" and "all", and the format each file is edited as),
one editor per container (``metadata_jpeg``, ``metadata_png``, ``metadata_webp``, ``metadata_tiff``,
``metadata_heif``), ``exif`` (TIFF/EXIF directories, in every container), ``makernotes`` (the places in
camera makers' notes), ``metadata_xmp`` (what names a place in XMP, IPTC, Photoshop resources and C2PA),
``metadata_bounds`` (bounded reads, the time budget, the parse gate and the restart marks), ``convert``
(Pillow re-encoding).
May import: errors, core.
Used by: engine (a job's processing) and settings (the choices a profile may name).
"""
