"""Which addresses a URL fetched for ``upload_urls`` may reach, decided on what will be connected to.

A URL handed to a local daemon can point at the machine itself or its network (a router's admin page, a cloud
metadata address): server-side request forgery. Judging the host as it is written is not enough, because the
HTTP client reads it otherwise: yarl applies IDNA/UTS 46 mapping, so full-width digits (``１２７.０.０.１``),
ideographic dots (``127。0。0。1``) and circled digits are the IP address ``127.0.0.1`` to aiohttp, which then
connects without asking any resolver. So:

- ``target`` reads a URL with yarl, the parser aiohttp uses, and judges the host aiohttp will connect to: a
  literal IP (or a legacy IPv4 form such as ``0x7f.1`` or ``2130706433``, which the C library reads as one) by
  its address, ``localhost`` as this machine;
- the connector from ``checking_connector`` judges again what it is about to connect to: its resolver refuses
  a name when any of its addresses is refused (one lookup, so DNS rebinding cannot answer differently later),
  and its socket factory refuses every address a socket is made for, literal or resolved, cached or not, so
  no path reaches ``connect()`` unchecked;
- ``fetch.py`` checks every redirect hop this way and the peer address of each connection once it is open.

Only globally routable addresses pass: ``ipaddress``'s ``is_global`` and the ranges below, written out so that
the answer does not depend on the Python version (3.11 counts ``fec0::/10``, 6to4 and NAT64 as global). An
address that carries an IPv4 address inside it (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo) is judged by
that IPv4 address too. The reason names the kind: loopback, private, link-local, multicast, reserved, or not
globally routable.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Policy = Callable[[str], str | None]  # an address -> why it may not be fetched from, or None
ALLOW_HINT = "set [security] allow_private_urls = true to allow it"

_net = ipaddress.ip_network
PRIVATE = tuple(_net(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10"))
NOT_GLOBAL = tuple(_net(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "255.255.255.255/32",
    "::/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16"))
NAT64 = _net("64:ff9b::/96")
COMPATIBLE = _net("::/96")  # ::a.b.c.d, the deprecated IPv4-compatible form


def refused_address(ip: str) -> str | None:
    """Why an address may not be fetched from, or None when it is a globally routable one."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "an address that is not an IP address"
    inner = _embedded(addr)
    if inner is not None:
        how, v4 = inner
        why = _kind(v4)
        if why is not None:
            return f"{why} ({v4}, inside the {how} address {addr})"
        if how == "Teredo":
            return f"an address that is not globally routable (a Teredo tunnel address, {addr})"
        return None  # 6to4, NAT64 or IPv4-mapped forms of a public IPv4 address
    why = _kind(addr)
    if why is None:
        return None
    return f"{why[:-1]}, {addr})" if why.endswith(")") else f"{why} ({addr})"


def _embedded(addr: Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, and the name of the form, if it is one of those forms."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr in COMPATIBLE and int(addr) > 1:  # not :: or ::1, which are themselves
        return "IPv4-compatible", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr in NAT64:
        return "NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.teredo is not None:
        server, client = addr.teredo
        return "Teredo", client if _kind(client) is not None or _kind(server) is None else server
    return None


def _kind(addr: Address) -> str | None:
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_unspecified:
        return "an address that is not globally routable (the unspecified address: it reaches this machine)"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast:
        return "a multicast address"
    if any(addr in n for n in PRIVATE):
        return "a private address"
    if addr.is_reserved:
        return "a reserved address"
    if not addr.is_global or any(addr in n for n in NOT_GLOBAL):
        return "an address that is not globally routable"
    return None


class Refused(Exception):
    """A URL that cannot be fetched; the message says why, in words for the caller."""


class AddressRefused(OSError):
    """An address the connector will not connect to. An OSError, so that aiohttp and aiohappyeyeballs treat it
    as a connection that failed (and keep it as the cause) whichever path raised it."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def target(url: str | URL, refuse: Policy | None) -> URL:
    """The URL as aiohttp reads it, once its scheme, credentials and (unless ``refuse`` is None) its host
    are acceptable; Refused says why not."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        host = parsed.raw_host
    except (ValueError, TypeError) as exc:  # UnicodeError is a ValueError: a host IDNA cannot map
        raise Refused(f"it is not a valid URL ({exc})"[:300]) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise Refused("only http:// and https:// URLs with a host can be fetched")
    if parsed.raw_user or parsed.raw_password:
        raise Refused("a URL with a user name or password is not fetched")
    if refuse is not None:
        why = refused_host(host, refuse)
        if why is not None:
            raise Refused(f"{_named(parsed, url)} is {why}; {ALLOW_HINT}")
    return parsed


def refused_host(host: str, refuse: Policy) -> str | None:
    """Why ``host`` (as yarl gives it: lower case, IDNA applied) is refused before any lookup, or None when only
    its addresses can tell (a name: the resolver judges them)."""
    bare = host.rstrip(".") or host
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
        return refuse(bare)
    except ValueError:
        pass
    try:  # a legacy IPv4 form (127.1, 0x7f.1, 2130706433, 0177.0.0.1) the C library reads as an address
        legacy = socket.inet_ntoa(socket.inet_aton(bare))
    except (OSError, ValueError):
        legacy = None
    if legacy is not None:
        return refuse(legacy)
    if bare == "localhost" or bare.endswith(".localhost"):
        return "this machine (a loopback name)"
    return None


def _named(parsed: URL, url: str | URL) -> str:
    """The host as written, and as the HTTP client reads it when that differs (``１２７.０.０.１``)."""
    host = parsed.raw_host or ""
    try:
        written = urlsplit(str(url)).hostname or host
    except ValueError:
        written = host
    return host if written == host else f"{written} (read as {host})"


class CheckingResolver(AbstractResolver):
    """aiohttp's threaded resolver, refusing a name when any address it resolves to is refused."""

    def __init__(self, refuse: Policy) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._refuse = refuse

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for item in found:
            why = self._refuse(item["host"])
            if why is not None:
                raise AddressRefused(f"{host} is {why}; {ALLOW_HINT}")
        return found

    async def close(self) -> None:
        await self._inner.close()


def checking_connector(refuse: Policy, **kwargs: Any) -> aiohttp.TCPConnector:
    """A connector that connects only to addresses ``refuse`` lets through: names through ``CheckingResolver``,
    and every socket it makes, for a literal IP or a resolved one, through the factory below."""

    def socket_factory(addr_info: Any) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        why = refuse(str(sockaddr[0]))
        if why is not None:
            raise AddressRefused(f"{sockaddr[0]} is {why}; {ALLOW_HINT}")
        return socket.socket(family=family, type=kind, proto=proto)

    return aiohttp.TCPConnector(resolver=CheckingResolver(refuse), socket_factory=socket_factory, **kwargs)


def refusal_in(exc: BaseException) -> str | None:
    """The message of an AddressRefused that ``exc`` is or wraps (aiohttp wraps connection errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AddressRefused):
            return current.message
        seen.add(id(current))
        nested = getattr(current, "os_error", None)
        if not isinstance(nested, BaseException):
            nested = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        current = nested
    return None
