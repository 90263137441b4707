"""How the lean path opens a connection: happy eyeballs over a name's addresses, and an HTTP proxy's tunnel.

RFC 8305 (happy eyeballs): a name's addresses are tried in the resolver's order, families interleaved, the next
one 250 ms after the previous one unless that one has connected, so an address that drops packets (a broken
IPv6 route listed first) costs a quarter of a second instead of the whole connect timeout. asyncio's loop has
this (``happy_eyeballs_delay``), uvloop's has not; ``aiohappyeyeballs`` (aiohttp's, already installed with it)
does it for any loop, on sockets that the loop then takes over.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import aiohappyeyeballs

HAPPY_EYEBALLS_S = 0.25  # RFC 8305's "Connection Attempt Delay"
MAX_HEAD = 64 * 1024  # of a proxy's answer to CONNECT


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it listens, its ``Proxy-Authorization``, and its URL without credentials."""

    scheme: str
    host: str
    port: int
    authorization: str | None = None
    shown: str = ""


class ProxyRefused(ConnectionError):
    """The proxy answered a CONNECT with something other than 200."""

    def __init__(self, proxy: str, status: int, reason: str) -> None:
        super().__init__(f"the proxy {proxy} answered {status} {reason}".strip() if status else
                         f"the proxy {proxy} gave {reason}")
        self.proxy = proxy
        self.status = status


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected socket to ``host``, its addresses tried with happy eyeballs (RFC 8305); an IP address
    costs no lookup."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:  # a name: resolved off the loop
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=HAPPY_EYEBALLS_S, interleave=1)


async def tunnel(sock: socket.socket, where: str, proxy: Proxy, user_agent: str) -> None:
    """Ask the proxy for a tunnel to ``where`` (``host:port``) on ``sock``; raises ProxyRefused."""
    loop = asyncio.get_running_loop()
    lines = [f"CONNECT {where} HTTP/1.1", f"Host: {where}", f"User-Agent: {user_agent}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    answer = b""
    while b"\r\n\r\n" not in answer:  # a tunnel's answer is its head alone: nothing follows until we speak
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk or len(answer) > MAX_HEAD:
            raise ProxyRefused(proxy.shown, 0, "no tunnel: it closed the connection")
        answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    if status != 200:
        raise ProxyRefused(proxy.shown, status, status_line[2] if len(status_line) > 2 else "")
