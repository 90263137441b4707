"""Images downloaded from the web (``upload_urls``), without letting a URL reach into the user's own network.

Unless ``[security] allow_private_urls``, every URL is read as aiohttp reads it and judged on the addresses it
will connect to (``ssrf.py``): before the request, in the connector (its resolver and its socket factory), and
on the peer of the open connection. Redirects are followed by hand, at most ``MAX_REDIRECTS``, each hop judged
the same way before it is asked for.

The body goes into the spool as it arrives, within ``max_file_size`` and ``TIMEOUT_S``, and must be an image
by its bytes (unless images_only is off), as any other upload.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
from yarl import URL

from ..core.config import SecuritySettings
from ..errors import FileRefused
from ..files.paths import CheckedFile
from ..files.spool import Spool
from .ssrf import Policy, Refused, checking_connector, refusal_in, refused_address, target

MAX_REDIRECTS = 5
TIMEOUT_S = 60.0
MAX_URL_LEN = 4096


@dataclass(frozen=True)
class Fetched:
    url: str
    checked: CheckedFile


async def fetch_all(urls: list[str], security: SecuritySettings, spool: Spool,
                    refuse: Policy = refused_address) -> list[Fetched]:
    """Download every URL into the spool; UrlsRefused lists every URL that could not be, and none is kept.
    ``refuse`` judges each address (``allow_private_urls`` turns it off)."""
    policy: Policy | None = None if security.allow_private_urls else refuse
    connector = aiohttp.TCPConnector(limit=8) if policy is None else checking_connector(policy, limit=8)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True,
                                     cookie_jar=aiohttp.DummyCookieJar(),
                                     headers={"User-Agent": "pixlift (upload_urls)"}) as session:
        results = await asyncio.gather(*(_one(session, u, security, spool, policy) for u in urls),
                                       return_exceptions=True)
    fetched = [r for r in results if isinstance(r, Fetched)]
    problems = [(u, r) for u, r in zip(urls, results, strict=True) if not isinstance(r, Fetched)]
    if problems:
        for item in fetched:
            spool.drop(item.checked)
        raise UrlsRefused([{"url": u, "reason": _reason(exc)} for u, exc in problems])
    return fetched


class UrlsRefused(Exception):
    def __init__(self, refused: list[dict[str, str]]) -> None:
        super().__init__("some URLs were refused")
        self.refused = refused


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Refused | FileRefused):
        return str(exc.args[0]) if exc.args else str(exc)
    refusal = refusal_in(exc)
    if refusal is not None:
        return refusal
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"it did not arrive within {TIMEOUT_S:.0f} s"
    if isinstance(exc, aiohttp.ClientError):
        return f"it could not be fetched ({exc.__class__.__name__}: {exc})"[:300]
    return f"it could not be fetched ({exc.__class__.__name__})"


async def _one(session: aiohttp.ClientSession, url: str, security: SecuritySettings, spool: Spool,
               refuse: Policy | None) -> Fetched:
    if len(url) > MAX_URL_LEN:
        raise Refused(f"the URL is longer than {MAX_URL_LEN} characters")
    current, via = target(url, refuse), ""  # via: where the last redirect said to go, as it said it
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.get(current, allow_redirects=False) as resp:
                if refuse is not None:
                    _check_peer(resp, refuse)
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    via = resp.headers["Location"][:200]
                    try:
                        hop = current.join(URL(via))
                    except ValueError as exc:
                        raise Refused(f"it is not a valid URL ({exc})") from None
                    current = target(hop, refuse)
                    continue
                if resp.status != 200:
                    raise Refused(f"the server answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > security.max_file_size:
                    raise Refused(f"it is {resp.content_length} bytes; the limit is {security.max_file_size} bytes "
                                  "([security] max_file_size_mb)")
                checked = await spool.keep_stream(_name(current, resp.headers),
                                                  resp.content.iter_chunked(256 * 1024), security)
                return Fetched(url, checked)
        except (Refused, aiohttp.ClientError) as exc:
            why = refusal_in(exc) or (str(exc) if isinstance(exc, Refused) else None)
            if via and why is not None:  # say that a redirect led there: the URL given was not the problem
                raise Refused(f"it redirects to {via}, and {why}") from None
            raise
    raise Refused(f"it redirects more than {MAX_REDIRECTS} times")


def _check_peer(resp: aiohttp.ClientResponse, refuse: Policy) -> None:
    """The address the connection is open to, whatever led there."""
    transport = resp.connection.transport if resp.connection else None
    peer = transport.get_extra_info("peername") if transport else None
    why = refuse(str(peer[0])) if peer else None
    if why is not None:
        raise Refused(f"it connected to {why}; set [security] allow_private_urls = true to allow it")


def _name(url: URL, headers: Any) -> str:
    """A file name for the upload: the Content-Disposition's, else the URL path's last part."""
    found = re.search(r'filename="?([^";]+)"?', headers.get("Content-Disposition", ""))
    raw = found.group(1) if found else posixpath.basename(unquote(url.raw_path))
    name = re.sub(r"[^\w.\-]+", "-", os.path.basename(raw.replace("\\", "/"))).strip("-.")[:120]
    return name or "download"
