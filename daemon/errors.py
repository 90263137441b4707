"""pixlift's one error hierarchy.

Every failure a client can see is one of these. The RPC layer is the only place that turns them into
JSON-RPC error objects (``rpc_code`` + ``message`` + ``data``); a failed task carries ``code`` + ``message``
in its ``error`` field. Third-party exceptions (botocore, oss2, OSError) are translated once, at the
boundary where they are raised (``raise StorageError(...) from exc``).

    PixliftError
    ├── RequestError                 the caller asked for something it cannot have
    │   ├── InvalidParams            -32602  a parameter is missing, of the wrong type or out of range
    │   │   └── FileRefused                  bytes handed in (browser, clipboard) are empty, too large or no image
    │   ├── PathRefused              -32001  one or more paths refused; ``data`` lists {path, reason}
    │   ├── UrlRefused               -32001  upload_urls: URLs refused or not fetched; ``data`` lists {url, reason}
    │   ├── NotFound                 -32002  no such task or batch
    │   ├── InvalidState             -32003  the task's state does not allow this
    │   ├── RateLimited              -32029  too many calls; ``data.retry_after_s``
    │   └── ClipboardError                   the clipboard holds no image, or the desktop cannot read it
    ├── ConfigError                  -32004  no valid storage profile, unknown profile, broken config.toml
    ├── JournalUnavailable           -32005  the daemon could not store its own data (its disk is full)
    ├── StoreActionFailed            -32006  a request of the caller's to a store (delete) failed; data.code says why
    ├── DaemonGone                           the tray's event loop has stopped (the daemon is shutting down)
    └── TransferError                        an upload failed (lives in Task.error, not in an RPC error)
        ├── SourceError                      the local file changed, vanished or cannot be read (or pixlift
        │   │                                gave up reading it: over its time budget, an impossible structure)
        │   └── MetadataUnreadable           its metadata cannot be read well enough to be sure none is left
        ├── StorageError                     the store refused or could not be reached
        │   ├── TransientStorageError        worth retrying: timeouts, resets, 5xx, throttling
        │   └── PermanentStorageError        retrying cannot help: credentials, bucket, permissions
        │       └── CertificateUntrusted     the store's TLS certificate is not trusted, or names another host
        └── Interrupted                      the upload was paused or cancelled (internal)
"""

from __future__ import annotations

from typing import Any

PATH_REFUSED = -32001
NOT_FOUND = -32002
INVALID_STATE = -32003
CONFIG_ERROR = -32004
JOURNAL_UNAVAILABLE = -32005
STORE_ACTION_FAILED = -32006
RATE_LIMITED = -32029
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class PixliftError(Exception):
    """Base of every error pixlift raises on purpose."""

    rpc_code: int = INTERNAL_ERROR
    code: str = "internal_error"

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        """The ``{"code", "message"}`` shape a task's ``error`` field carries."""
        return {"code": self.code, "message": self.message}


class RequestError(PixliftError):
    """The caller asked for something it cannot have."""


class InvalidParams(RequestError):
    rpc_code = INVALID_PARAMS
    code = "invalid_params"


class FileRefused(InvalidParams):
    """Bytes handed in (a browser upload, the clipboard) that cannot be queued; ``http_status`` for the HTTP route."""

    code = "file_refused"

    def __init__(self, message: str, *, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


class PathRefused(RequestError):
    rpc_code = PATH_REFUSED
    code = "path_refused"

    def __init__(self, refused: list[dict[str, str]]) -> None:
        n = len(refused)
        first = refused[0]
        more = f" (and {n - 1} more)" if n > 1 else ""
        super().__init__(
            f"{n} path{'s' if n > 1 else ''} refused; nothing was queued. "
            f"{first['path']}: {first['reason']}{more}",
            data=refused,
        )


class UrlRefused(RequestError):
    """``upload_urls``: one or more URLs could not be fetched (or may not be); ``data`` lists {url, reason}."""

    rpc_code = PATH_REFUSED
    code = "url_refused"

    def __init__(self, refused: list[dict[str, str]]) -> None:
        n = len(refused)
        more = f" (and {n - 1} more)" if n > 1 else ""
        super().__init__(f"{n} URL{'s' if n > 1 else ''} refused; nothing was queued. "
                         f"{refused[0]['url']}: {refused[0]['reason']}{more}", data=refused)


class NotFound(RequestError):
    rpc_code = NOT_FOUND
    code = "not_found"


class InvalidState(RequestError):
    rpc_code = INVALID_STATE
    code = "invalid_state"


class RateLimited(RequestError):
    rpc_code = RATE_LIMITED
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, data={"retry_after_s": round(retry_after_s, 3)})
        self.retry_after_s = retry_after_s


class ClipboardError(RequestError):
    """The clipboard holds no image, or this desktop has no way to read it."""

    code = "clipboard"


class DaemonGone(PixliftError):
    code = "daemon_gone"


class ConfigError(PixliftError):
    rpc_code = CONFIG_ERROR
    code = "config_error"


class JournalUnavailable(PixliftError):
    """The daemon could not store its own data; the call that needed it changed nothing."""

    rpc_code = JOURNAL_UNAVAILABLE
    code = "journal_unavailable"


class StoreActionFailed(PixliftError):
    """A store refused, or could not be asked, what the caller asked of it directly (a delete)."""

    rpc_code = STORE_ACTION_FAILED
    code = "store_action_failed"


class TransferError(PixliftError):
    """An upload failed; the message says what to do about it."""

    code = "transfer_failed"
    retryable = False


class SourceError(TransferError):
    code = "file_error"


class MetadataUnreadable(SourceError):
    """strip_metadata is "location" or "all" and the file's metadata cannot be read well enough to be sure
    nothing that must go is left: it is not sent (stripping fails closed)."""

    code = "metadata_unreadable"


class StorageError(TransferError):
    code = "storage_error"


class TransientStorageError(StorageError):
    code = "network_error"
    retryable = True

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.retry_after_s = retry_after_s  # the store's Retry-After: wait at least this long before trying again


class PermanentStorageError(StorageError):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


CERTIFICATE_UNTRUSTED = "certificate_untrusted"  # a task's error.code: the store's TLS certificate is refused


class CertificateUntrusted(PermanentStorageError):
    """The store's TLS certificate is not trusted by the settings that decide trust, or names another host:
    a setting to change, never an outage to wait out."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=CERTIFICATE_UNTRUSTED)


class Interrupted(TransferError):
    """Raised inside a provider's reader when the task was paused or cancelled mid-send."""

    code = "interrupted"
