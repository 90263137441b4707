"""The networks users have, made real on loopback: a corporate proxy, a private certificate authority, a store
that checks regions as AWS does, and a name whose IPv6 address drops packets.

- ``hosts_view(path, entries)``: a command prefix that runs a process with its own ``/etc/hosts`` (a private
  mount namespace, ``unshare -m``, with a file bind-mounted over it): names resolve for that process alone,
  through the C library's real resolver, and the machine's own ``/etc/hosts`` is untouched. This is how a
  store name resolves only at the proxy (as on a corporate network), and how a name lists an IPv6 address
  first for the daemon.
- ``Tinyproxy``: Debian's tinyproxy, with Basic credentials, in such a view.
- ``CA``: a private certificate authority made by ``openssl``, which issues server certificates.
- ``TlsFront``: TLS on loopback, piping to a plain server (the S3 test server).
- ``RegionFront``: answers as AWS does to a request signed for another region than the bucket's (400
  ``AuthorizationHeaderMalformed`` with ``<Region>``, or 301 ``PermanentRedirect``; HEAD answers carry
  ``x-amz-bucket-region``), and forwards the others; it records the region of every request.
- ``DroppingV6``: a listener on ``[::1]:port`` whose queue is full, so the kernel drops every further SYN:
  an IPv6 address that swallows connection attempts, as a broken route does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from conftest import wait_until
from netproxy import stop_proxy


def hosts_view(path: Path, entries: Sequence[tuple[str, str]]) -> list[str]:
    """A prefix for a command: it then sees ``entries`` ((address, name) pairs) as its /etc/hosts."""
    path.write_text("".join(f"{address} {name}\n" for address, name in entries))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', str(path)]


def can_view_hosts() -> bool:
    """Whether this machine lets a process have an /etc/hosts of its own (root, mount namespaces)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*hosts_view(Path("/tmp/pixlift-hosts-probe"), [("127.0.0.1", "probe.pixlift.test")]),
                            "getent", "hosts", "probe.pixlift.test"], capture_output=True, check=False)
    return probe.returncode == 0


# -- a corporate proxy ------------------------------------------------------------------------------------------
@dataclass
class Tinyproxy:
    port: int
    user: str
    password: str
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines the proxy took ("PUT http://host:port/... HTTP/1.1", "CONNECT host:port ...")."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"Request \(file descriptor \d+\): (.+)", text)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_tinyproxy(folder: Path, names: Sequence[tuple[str, str]], port: int, user: str = "corp",
                    password: str = "pr0xy-Pass_w0rd") -> Tinyproxy:
    """tinyproxy on 127.0.0.1:``port``, resolving ``names`` itself, asking for Basic credentials."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "tinyproxy.log"
    conf = folder / "tinyproxy.conf"
    conf.write_text(f'Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 200\nLogLevel Connect\n'
                    f'LogFile "{log}"\nBasicAuth {user} {password}\nDisableViaHeader Yes\n')
    proc = subprocess.Popen([*hosts_view(folder / "hosts", names), "tinyproxy", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"tinyproxy exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, 10, message="tinyproxy")
    return Tinyproxy(port, user, password, log, proc)


# -- a private certificate authority ----------------------------------------------------------------------------
class CA:
    """A certificate authority of our own (``openssl req -x509``); ``issue`` signs server certificates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = folder / "ca.pem", folder / "ca.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Pixlift Test Corp CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", str(self.key), "-out", str(self.cert))

    def issue(self, name: str, dns: Sequence[str] = (), ips: Sequence[str] = ()) -> tuple[Path, Path]:
        """A server certificate for ``dns`` names and ``ips``: (certificate, key)."""
        key, csr, cert = (self.folder / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext = self.folder / f"{name}.ext"
        alt = ",".join([*(f"DNS:{d}" for d in dns), *(f"IP:{i}" for i in ips)])
        ext.write_text(f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={(list(dns) or list(ips))[0]}",
                 "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-CAcreateserial",
                 "-days", "2", "-extfile", str(ext), "-out", str(cert))
        return cert, key


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


# -- servers on their own loop and thread -----------------------------------------------------------------------
class _Threaded:
    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    def _run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop_proxy(self._loop, self._thread, self._server, self._conns)


class TlsFront(_Threaded):
    """TLS on 127.0.0.1 with ``cert``/``key``, piping the plain bytes to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int, cert: Path, key: Path, port: int = 0) -> None:
        super().__init__()
        self.target_port = target_port
        self.handshakes_failed = 0
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert, key)
        self._thread.start()
        self._run(self._start(port))

    async def _start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, ssl=self._tls,
                                                  ssl_handshake_timeout=5)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._conns.update((writer, up_w))
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer), return_exceptions=True)
        for w in (writer, up_w):
            self._conns.discard(w)
            w.transport.abort()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(64 * 1024):
        dst.write(data)
        await dst.drain()
    if dst.can_write_eof():
        dst.write_eof()


@dataclass
class Seen:
    method: str
    path: str
    region: str
    length: int
    answered: int


SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")
QUERY_SCOPE = re.compile(r"X-Amz-Credential=[^&]*?(?:%2F|/)\d{8}(?:%2F|/)([^&%/]+)(?:%2F|/)s3")


@dataclass
class RegionFront:
    """A store front that holds the bucket in ``region``, answering requests signed for another as AWS does
    (``mode`` "400": AuthorizationHeaderMalformed; "301": PermanentRedirect; "307": TemporaryRedirect),
    forwarding the rest to ``127.0.0.1:target_port``."""

    target_port: int
    region: str
    mode: str = "400"
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def start(self) -> RegionFront:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.ServerRunner(web.Server(self._handle))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wrong(self) -> list[Seen]:
        """Requests signed for another region than the bucket's."""
        return [s for s in self.seen if s.region != self.region]

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.content.read()  # the whole body, without the 1 MiB cap of request.read()
        found = SCOPE.search(request.headers.get("Authorization", "")) or QUERY_SCOPE.search(request.query_string)
        region = found.group(1) if found else ""
        if region != self.region:
            answer = self._refuse(request.method, region)
        else:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length",
                                                                                     "transfer-encoding")}
            async with self._session.request(request.method, f"http://127.0.0.1:{self.target_port}"
                                             f"{request.raw_path}", headers=headers, data=body or None,
                                             skip_auto_headers={"Content-Type", "User-Agent", "Accept-Encoding"},
                                             allow_redirects=False) as up:
                data = await up.read()
                answer = web.Response(status=up.status, body=data if request.method != "HEAD" else None,
                                      headers={k: v for k, v in up.headers.items()
                                               if k.lower() not in ("content-length", "transfer-encoding",
                                                                    "connection", "content-encoding")})
        self.seen.append(Seen(request.method, request.path, region, len(body), answer.status))
        return answer

    def _refuse(self, method: str, region: str) -> web.Response:
        headers = {"x-amz-bucket-region": self.region, "Content-Type": "application/xml"}
        status = int(self.mode)
        if method == "HEAD":  # as AWS: no document, the header says it
            return web.Response(status=status, headers=headers)
        if status in (301, 307):
            code = "PermanentRedirect" if status == 301 else "TemporaryRedirect"
            doc = (f"<Error><Code>{code}</Code><Message>The bucket you are attempting to access must be "
                   "addressed using the specified endpoint.</Message><Endpoint>s3.amazonaws.com</Endpoint>"
                   f"<Region>{self.region}</Region></Error>")
        else:
            doc = ("<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is "
                   f"malformed; the region '{region}' is wrong; expecting '{self.region}'</Message>"
                   f"<Region>{self.region}</Region><RequestId>0</RequestId></Error>")
        return web.Response(status=status, body=doc.encode(), headers=headers)

    def stop(self) -> None:
        async def close() -> None:
            await self._runner.cleanup()
            await self._session.close()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# -- an IPv6 address that drops packets -------------------------------------------------------------------------
class DroppingV6:
    """``[::1]:port`` listening, its accept queue full and never drained: the kernel drops every new SYN, so a
    connection attempt there hangs as towards an address whose route swallows packets."""

    def __init__(self, port: int) -> None:
        self.listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.listener.bind(("::1", port))
        self.listener.listen(0)
        self.fillers: list[socket.socket] = []
        for _ in range(4):
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("::1", port))
            self.fillers.append(s)

    def drops(self, timeout: float = 1.0) -> bool:
        """Whether a connection attempt now hangs (as it must for the test to mean anything)."""
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.settimeout(timeout)
        try:
            probe.connect(("::1", self.listener.getsockname()[1]))
        except TimeoutError:
            return True
        except OSError:
            return False
        finally:
            probe.close()
        return False

    def close(self) -> None:
        for s in [*self.fillers, self.listener]:
            s.close()
