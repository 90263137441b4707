"""Bytes of images, read and edited: where a photo keeps its location and how it is removed without touching
the pixels, and re-encoding (convert, compress, scale). Pure functions of bytes, run on worker threads.

Holds: ``metadata`` (the policy: what goes for "location" and "all", per format), ``exif`` (TIFF/EXIF
directories), ``metadata_heif`` (HEIF/AVIF boxes and items), ``convert`` (Pillow re-encoding).
May import: errors.
Used by: engine (a job's processing) and settings (the choices a profile may name).
"""
