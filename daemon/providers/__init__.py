"""Storage providers behind one small interface (``base.Provider``), described as data (``kind.ProviderKind``)
and listed in ``registry``."""

from .base import MultipartState, Provider

__all__ = ["MultipartState", "Provider"]
