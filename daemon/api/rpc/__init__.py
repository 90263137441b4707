"""The JSON-RPC 2.0 surface: the machinery (params, registry, dispatch) and the methods registered in it."""

from . import methods  # noqa: F401  (importing it registers every method in REGISTRY)
from .machinery import REGISTRY, Call, Dispatcher, openrpc_document

__all__ = ["REGISTRY", "Call", "Dispatcher", "openrpc_document"]
