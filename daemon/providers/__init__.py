"""Storage providers behind one small interface (``base.Provider``), described as data (``kind.ProviderKind``)
and listed in ``registry``."""

from .base import Provider
from .multipart import MultipartState

__all__ = ["MultipartState", "Provider"]
