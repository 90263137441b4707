"""Images downloaded from the web (``upload_urls``), without letting a URL reach into the user's own network.

A URL given to a local daemon can point at the machine itself or its LAN (a router's admin page, a cloud
metadata address): server-side request forgery. So, unless ``[security] allow_private_urls``:

- every address a host name resolves to is checked before anything connects, in the resolver aiohttp
  connects with (no second lookup that DNS rebinding could answer differently), and a literal IP likewise;
- loopback, private, link-local, multicast, reserved and unspecified addresses are refused, IPv4-mapped IPv6
  judged by the IPv4 inside; and the peer address of the connection is checked again once it is open;
- redirects are followed by hand, at most ``MAX_REDIRECTS``, each hop checked the same way.

The body goes into the spool as it arrives, within ``max_file_size`` and ``TIMEOUT_S``, and must be an image
by its bytes (unless images_only is off), as any other upload.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import posixpath
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..core.config import SecuritySettings
from ..errors import FileRefused
from ..files.paths import CheckedFile
from ..files.spool import Spool

MAX_REDIRECTS = 5
TIMEOUT_S = 60.0
MAX_URL_LEN = 4096


class Refused(Exception):
    """A URL that cannot be fetched; the message says why, in words for the caller."""


@dataclass(frozen=True)
class Fetched:
    url: str
    checked: CheckedFile


def refused_address(ip: str) -> str | None:
    """Why an address may not be fetched from, or None when it is a public one."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "an address that is not an IP address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for test, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved"), ("is_unspecified", "unspecified")):
        if getattr(addr, test):
            return f"a {what} address ({addr})"
    return None


Policy = Callable[[str], str | None]  # an address -> why it may not be fetched from, or None


class CheckingResolver(AbstractResolver):
    """aiohttp's resolver, refusing private addresses before a connection is made to them."""

    def __init__(self, refuse: Policy) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._refuse = refuse

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for item in found:
            why = self._refuse(item["host"])
            if why is not None:
                raise Refused(f"{host} is {why}; set [security] allow_private_urls = true to allow it")
        return found

    async def close(self) -> None:
        await self._inner.close()


async def fetch_all(urls: list[str], security: SecuritySettings, spool: Spool,
                    refuse: Policy = refused_address) -> list[Fetched]:
    """Download every URL into the spool; UrlsRefused lists every URL that could not be, and none is kept.
    ``refuse`` judges each address (``allow_private_urls`` turns it off)."""
    policy: Policy | None = None if security.allow_private_urls else refuse
    connector = aiohttp.TCPConnector(resolver=None if policy is None else CheckingResolver(policy), limit=8)
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
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"it did not arrive within {TIMEOUT_S:.0f} s"
    if isinstance(exc, aiohttp.ClientError):
        return f"it could not be fetched ({exc.__class__.__name__}: {exc})"[:300]
    return f"it could not be fetched ({exc.__class__.__name__})"


async def _one(session: aiohttp.ClientSession, url: str, security: SecuritySettings, spool: Spool,
               refuse: Policy | None) -> Fetched:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(current, refuse)
        async with session.get(current, allow_redirects=False) as resp:
            if refuse is not None:
                peer = resp.connection.transport.get_extra_info("peername") if resp.connection and \
                    resp.connection.transport else None
                why = refuse(str(peer[0])) if peer else None
                if why is not None:
                    raise Refused(f"it connected to {why}; set [security] allow_private_urls = true to allow it")
            if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                current = urljoin(current, resp.headers["Location"])
                continue
            if resp.status != 200:
                raise Refused(f"the server answered HTTP {resp.status}")
            if resp.content_length is not None and resp.content_length > security.max_file_size:
                raise Refused(f"it is {resp.content_length} bytes; the limit is {security.max_file_size} bytes "
                              "([security] max_file_size_mb)")
            checked = await spool.keep_stream(_name(current, resp.headers), resp.content.iter_chunked(256 * 1024),
                                              security)
            return Fetched(url, checked)
    raise Refused(f"it redirects more than {MAX_REDIRECTS} times")


def _check_url(url: str, refuse: Policy | None) -> None:
    if len(url) > MAX_URL_LEN:
        raise Refused(f"the URL is longer than {MAX_URL_LEN} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http:// and https:// URLs with a host can be fetched")
    if parts.username or parts.password:
        raise Refused("a URL with a user name or password is not fetched")
    if refuse is None:
        return
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        if parts.hostname.lower() == "localhost" or parts.hostname.lower().endswith(".localhost"):
            raise Refused(f"{parts.hostname} is this machine; set [security] allow_private_urls = true to "
                          "allow it") from None
        return  # a name: its addresses are checked by the resolver, before connecting
    why = refuse(parts.hostname)
    if why is not None:
        raise Refused(f"{parts.hostname} is {why}; set [security] allow_private_urls = true to allow it")


def _name(url: str, headers: Any) -> str:
    """A file name for the upload: the Content-Disposition's, else the URL path's last part."""
    found = re.search(r'filename="?([^";]+)"?', headers.get("Content-Disposition", ""))
    raw = found.group(1) if found else posixpath.basename(unquote(urlsplit(url).path))
    name = re.sub(r"[^\w.\-]+", "-", os.path.basename(raw.replace("\\", "/"))).strip("-.")[:120]
    return name or "download"
