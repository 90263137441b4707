"""WebDAV (Nextcloud, ownCloud, a NAS, Apache or nginx), on pixlift's own HTTP/1.1 connections (``http1.py``).

A file is PUT under a temporary name beside its key (``.NAME.<id>.pixlift-part``), whose name the task keeps as
its ``upload_id`` (so a cancelled upload's leftover is deleted by the clean-up, even after an outage or a
restart), then MOVEd over the key with ``Overwrite: T``: a link never serves half an image. Missing folders are
made with MKCOL, top down, and remembered. The PUT's body is an ``acked.Body`` as S3's is: progress counts
what the server has acknowledged. WebDAV cannot go on inside a file, so a retried or resumed upload sends the
file again (to the same temporary name). Dedup's existence check is a PROPFIND of depth 0; links are
``public_base_url`` + key, or else the file's WebDAV URL, which needs the login to open.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import posixpath
import ssl
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..core.config import TransferSettings
from ..errors import PermanentStorageError, TransferError, TransientStorageError
from ..files.sources import Source
from .acked import Body, Ticker
from .base import OnBytes, Provider, describe, public_url
from .http1 import Answer, Pool
from .inflight import InFlight
from .multipart import MultipartState, temp_name

if TYPE_CHECKING:
    from .webdav_kind import WebDavProfile

log = logging.getLogger(__name__)
DAV = "{DAV:}"
CLEANUP_S = 10.0  # a failed upload's temporary file is deleted within this, or left to the clean-up
OK = frozenset({200, 201, 204})


class WebDavProvider(Provider):
    kind = "webdav"
    keeps_failed_uploads = False  # a half file in the user's folder: gone when the task fails (base.py)

    def __init__(self, profile: WebDavProfile, transfers: TransferSettings, in_flight: InFlight | None = None) -> None:
        self.profile = profile
        self.transfers = transfers
        parts = urlsplit(profile.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.root = parts.path.rstrip("/")  # as written: already URL-encoded where it needs to be
        self.where = profile.url
        self._headers = {"Host": parts.netloc}
        if profile.username:
            login = f"{profile.username}:{profile.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
        self._pool = Pool(self.base, limit=max(transfers.slots, 8), connect_timeout_s=transfers.connect_timeout_s,
                          read_timeout_s=transfers.read_timeout_s)
        self.ticker = Ticker()
        self.in_flight = in_flight or InFlight.of(transfers)
        self._folders: set[str] = set()  # folders under the root known to exist

    def _path(self, key: str) -> str:
        return f"{self.root}/{quote(key, safe='/')}"

    # -- one request, its failures translated -----------------------------------------------------------------
    async def _request(self, method: str, path: str, headers: dict[str, str] | None = None,
                       body: Body | None = None) -> Answer:
        try:
            return await self._pool.request(method, path, {**self._headers, **(headers or {})}, body)
        except TransferError:  # the body's reader: the file changed, or the upload was stopped
            raise
        except (OSError, TimeoutError, ValueError) as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> TransferError:
        if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            return PermanentStorageError(f"{self.where}: {describe(exc)}. Install the certificate of the server's "
                                         "authority on this computer, or fix url's host name.",
                                         code="certificate_untrusted")
        return TransientStorageError(f"Could not reach {self.where} ({describe(exc)}). Check the network and url.",
                                     code="network_error")

    def _refused(self, answer: Answer, what: str) -> TransferError:
        status, name = answer.status, self.profile.name
        if status == 401:
            return PermanentStorageError(f"{self.where} refused the login of profile {name!r} (401). Check username "
                                         "and password (Nextcloud and ownCloud with two-factor login need an app "
                                         "password).", code="invalid_credentials")
        if status == 403:
            return PermanentStorageError(f"{self.where} refused to {what} (403): the login works but lacks permission "
                                         f"to write there. Give {self.profile.username or 'it'} write access to the "
                                         "folder, or choose another url.", code="access_denied")
        if status == 405:  # a PUT, MOVE or DELETE where the server lets nobody write (rclone, read-only shares)
            return PermanentStorageError(f"{self.where} refused to {what} (405 Method Not Allowed): the server does "
                                         "not let this login write there. Give it write access, or choose another "
                                         "url.", code="access_denied")
        if status == 507:
            return PermanentStorageError(f"{self.where} has no space left (507 Insufficient Storage) to {what}. Free "
                                         "some space or raise the quota, then retry.", code="disk_full")
        if status == 413:
            return PermanentStorageError(f"{self.where} refused a file this large (413). Raise the server's upload "
                                         "limit.", code="rejected")
        if status in (301, 302, 303, 307, 308):
            return PermanentStorageError(f"{self.where} redirects to {answer.headers.get('location', '?')}: set url "
                                         "to the address it redirects to.", code="rejected")
        if status in (408, 423, 429) or status >= 500:
            return TransientStorageError(f"{self.where} answered {status} to {what}; it may be overloaded or "
                                         "restarting.", code="server_error")
        text = answer.body[:200].decode("utf-8", "replace").strip()
        return PermanentStorageError(f"{self.where} refused to {what}: {status} {text}".strip(), code="rejected")

    # -- folders -------------------------------------------------------------------------------------------------
    async def _make_folders(self, key: str) -> None:
        """MKCOL each folder of ``key`` that is not known to exist, top down."""
        folder = posixpath.dirname(key)
        if not folder or folder in self._folders:
            return
        levels = folder.split("/")
        for i in range(1, len(levels) + 1):
            sub = "/".join(levels[:i])
            if sub in self._folders:
                continue
            answer = await self._request("MKCOL", self._path(sub) + "/")
            if answer.status == 409 and i == 1:
                raise PermanentStorageError(f"The folder {self.where} does not exist. Create it, or fix url in "
                                            f"[profiles.{self.profile.name}].", code="bucket_not_found")
            if answer.status == 405:  # it exists already, or the server lets nobody make it: ask
                answer = await self._request("PROPFIND", self._path(sub) + "/", {"Depth": "0"})
                if answer.status == 404:
                    raise self._refused(Answer(405, {}, b""), f"create the folder {sub}")
                if answer.status != 207:
                    raise self._refused(answer, f"look at the folder {sub}")
            elif answer.status not in (200, 201, 204):
                raise self._refused(answer, f"create the folder {sub}")
            self._folders.add(sub)

    # -- the upload ------------------------------------------------------------------------------------------------
    async def upload(self, source: Source, key: str, *, on_bytes: OnBytes, state: MultipartState,
                     on_part: Callable[[], None]) -> None:
        if not (state.upload_id and state.key == key):
            state.reset()
            state.key, state.upload_id = key, temp_name(key)
            on_part()  # journalled before a byte is sent: a cancel deletes the leftover even after a restart
        folder = posixpath.dirname(key)
        temp = self._path(posixpath.join(folder, state.upload_id))
        try:
            await self._make_folders(key)
            for attempt in (1, 2):
                body = Body(source, 0, source.size, on_bytes)
                try:
                    async with self.in_flight.hold(min(source.size, self.transfers.part_size)):  # one stream
                        await self.ticker.send(body, self._put(temp, body, source.content_type))
                    break
                except _FolderGone:
                    self._folders.discard(folder)  # deleted behind pixlift's back: made again, then sent again
                    if attempt == 2:
                        raise PermanentStorageError(f"{self.where} keeps refusing the folder {folder!r} (409).",
                                                    code="rejected") from None
                    await self._make_folders(key)
            answer = await self._request("MOVE", temp, {"Destination": self.base + self._path(key), "Overwrite": "T"})
            if answer.status not in OK:
                raise self._refused(answer, f"rename the uploaded file to {key}")
        except TransferError:
            await self._forget_temp(state, on_part)
            raise
        state.reset()

    async def _put(self, path: str, body: Body, content_type: str) -> None:
        answer = await self._request("PUT", path, {"Content-Type": content_type}, body)
        if answer.status == 409:
            raise _FolderGone()
        if answer.status not in OK:
            raise self._refused(answer, "store the file")

    async def _forget_temp(self, state: MultipartState, on_part: Callable[[], None]) -> None:
        """A failed upload leaves no partial file: its temporary one is deleted now, or else by the clean-up."""
        if state.key and state.upload_id:
            try:
                async with asyncio.timeout(CLEANUP_S):
                    await self.abort_upload(state.key, state.upload_id)
            except (TransferError, TimeoutError) as exc:
                log.info("could not delete %s yet (%s); the clean-up will", state.upload_id, describe(exc))
                return
            state.reset()
            on_part()

    async def abort_upload(self, key: str, upload_id: str) -> None:
        answer = await self._request("DELETE", self._path(posixpath.join(posixpath.dirname(key), upload_id)))
        if answer.status not in OK and answer.status != 404:
            raise self._refused(answer, f"delete the unfinished upload {upload_id}")

    # -- links, checks, deletes ---------------------------------------------------------------------------------
    async def link(self, key: str) -> str:
        if self.profile.public_base_url:
            return public_url(self.profile.public_base_url, key)
        return public_url(self.profile.url, key)

    async def delete_object(self, key: str) -> None:
        answer = await self._request("DELETE", self._path(key))
        if answer.status not in OK and answer.status != 404:
            raise self._refused(answer, f"delete {key}")

    async def stored_size(self, key: str) -> int | None:
        answer = await self._request("PROPFIND", self._path(key), {"Depth": "0"})
        if answer.status == 404:
            return None
        if answer.status != 207:
            raise self._refused(answer, f"describe {key}")
        return _content_length(answer.body)

    async def check(self) -> str:
        answer = await self._request("PROPFIND", self.root + "/", {"Depth": "0"})
        if answer.status in (404, 409):
            raise PermanentStorageError(f"The folder {self.where} does not exist. Create it, or fix url in "
                                        f"[profiles.{self.profile.name}].", code="bucket_not_found")
        if answer.status != 207:
            raise self._refused(answer, "list the folder")
        probe = self._path(f".pixlift-check-{uuid.uuid4().hex[:8]}")
        source = Source(-1, 7, "check", "text/plain", data=b"pixlift")  # in memory: no descriptor
        try:
            await self._put(probe, Body(source, 0, source.size, lambda n: None), "text/plain")
        except _FolderGone:
            raise PermanentStorageError(f"The folder {self.where} does not exist.", code="bucket_not_found") from None
        with contextlib.suppress(TransferError):
            await self._request("DELETE", probe)
        who = f"the login of {self.profile.username}" if self.profile.username else "no login"
        return f"WebDAV folder {self.where} is writable with {who}"

    async def close(self) -> None:
        await self._pool.close()


class _FolderGone(Exception):
    """A PUT answered 409 Conflict: its folder does not exist (any more)."""


def _content_length(xml: bytes) -> int | None:
    """The size in a PROPFIND answer of depth 0; None for a folder or an answer that names none."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for prop in root.iter(f"{DAV}prop"):
        kind = prop.find(f"{DAV}resourcetype")
        if kind is not None and kind.find(f"{DAV}collection") is not None:
            return None
        length = prop.find(f"{DAV}getcontentlength")
        if length is not None and (length.text or "").strip().isdigit():
            return int((length.text or "").strip())
    return None
