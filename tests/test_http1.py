"""The lean path's HTTP/1.1 connections (providers/http1.py), against real TCP servers that answer the way
stores do, and misbehave the way they do: an error document sent chunked, an answer that ends where the
connection does, ``Connection: close``, ``100 Continue``, a kept connection closed by the store just as the
next request goes out, a store that never answers, and a port nobody listens on.

The end-to-end behaviour of the same path (signatures, refusals, a flipped byte, exact progress on a slow
link, a store restarted mid-upload) is covered by test_s3_wire.py, test_exact_progress.py and
test_reliability.py against rclone serve s3 and moto."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from conftest import free_port
from pixlift.core.config import SecuritySettings
from pixlift.files.paths import PathChecker
from pixlift.files.sources import Source
from pixlift.providers.acked import Body
from pixlift.providers.http1 import Disconnected, Pool
from pixlift.providers.network import tls_context

OK = b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n"


class Server:
    """A TCP server that reads each request whole (head and Content-Length body) and answers with ``reply``:
    the raw bytes to send for the n-th request of a connection, or None to close the connection instead."""

    def __init__(self, reply: Callable[[int, bytes], bytes | None], tls: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.tls = tls
        self.port = free_port()
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = self.reply(n, head + body)
                n += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def pool(port: int, read_timeout_s: float = 5.0) -> Pool:
    return Pool(f"http://127.0.0.1:{port}", limit=4, connect_timeout_s=2.0, read_timeout_s=read_timeout_s)


def body(data: bytes, reported: list[int]) -> Body:
    source = Source(-1, len(data), "x.jpg", "image/jpeg", data=data)
    return Body(source, 0, len(data), reported.append)


@pytest.fixture
async def chunked_refusal() -> AsyncIterator[Server]:
    xml = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>No.</Message></Error>"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (xml[:20], xml[20:])) + b"0\r\n\r\n"
    async with Server(lambda n, req: b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks) as s:
        yield s


async def test_a_put_carries_its_head_and_body_and_the_connection_is_kept() -> None:
    async with Server(lambda n, req: OK) as server:
        p = pool(server.port)
        reported: list[int] = []
        try:
            for i in range(3):
                answer = await p.request("PUT", f"/b/k{i}.jpg", {"Host": "h", "Content-MD5": "x"},
                                         body(b"abc" * 1000, reported))
                assert (answer.status, answer.headers["etag"]) == (200, '"e"')
        finally:
            await p.close()
    assert server.connections == 1  # one keep-alive connection for all three
    first = server.requests[0]
    assert first.startswith(b"PUT /b/k0.jpg HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 3000\r\n" in first and b"\r\nUser-Agent: pixlift/" in first
    assert first.endswith(b"\r\n\r\n" + b"abc" * 1000)


async def test_an_error_document_sent_chunked_is_read_whole(chunked_refusal: Server) -> None:
    p = pool(chunked_refusal.port)
    try:
        answer = await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
    finally:
        await p.close()
    assert answer.status == 403
    assert b"<Code>AccessDenied</Code>" in answer.body and answer.body.endswith(b"</Error>")


async def test_an_answer_that_ends_with_the_connection_and_connection_close() -> None:
    failing = (b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n"
               b"<Error><Code>InternalError</Code></Error>")
    answers = [failing, OK]  # the first request of the test, then every other
    async with Server(lambda n, req: answers.pop(0) if len(answers) > 1 else OK) as server:
        p = pool(server.port)
        try:
            first = await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
            second = await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
        finally:
            await p.close()
    assert first.status == 500 and first.body == b"<Error><Code>InternalError</Code></Error>"
    assert second.status == 200
    assert server.connections == 2  # the closed one was not used again


async def test_100_continue_before_the_answer_is_skipped() -> None:
    async with Server(lambda n, req: b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as server:
        p = pool(server.port)
        try:
            answer = await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
        finally:
            await p.close()
    assert answer.status == 200 and answer.headers["etag"] == '"e"'


async def test_a_kept_connection_the_store_dropped_is_tried_once_more_on_a_new_one() -> None:
    """The store closes a kept connection when the next request arrives on it, without a word (what an idle
    timeout on its side looks like when it races the request): the request goes again on a new connection,
    and the caller never sees the failure."""
    async with Server(lambda n, req: OK if n == 0 else None) as server:
        p = pool(server.port)
        try:
            await p.request("PUT", "/b/one.jpg", {"Host": "h"}, body(b"1" * 100, []))
            answer = await p.request("PUT", "/b/two.jpg", {"Host": "h"}, body(b"2" * 100, []))
        finally:
            await p.close()
    assert answer.status == 200
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/b/one.jpg", b"/b/two.jpg", b"/b/two.jpg"]


async def test_a_new_connection_dropped_before_an_answer_is_an_error_that_says_so() -> None:
    async with Server(lambda n, req: None) as server:
        p = pool(server.port)
        try:
            with pytest.raises(Disconnected, match="closed the connection"):
                await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
        finally:
            await p.close()
    assert server.connections == 1  # a new connection is not tried again: the engine's retries decide


async def test_a_refusal_before_the_body_is_read_is_the_answer_even_if_the_store_hangs_up(tmp_path: Path) -> None:
    """A store that refuses on the head alone (its upload is gone, the key is denied) answers at once and hangs
    up with most of the body unread, as Go's servers do: the caller gets that answer, not a broken connection,
    and pixlift stops sending the body."""
    refusal = (b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 46\r\n\r\n"
               b"<Error><Code>NoSuchUpload</Code></Error>\n     ")
    received = 0

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        await reader.readuntil(b"\r\n\r\n")
        received = len(await reader.read(64 * 1024))
        writer.write(refusal)
        await writer.drain()
        writer.transport.abort()  # unread bytes in its socket: the peer gets a reset, as from a real server

    listener = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + os.urandom(32 * 1024 * 1024))
    checked = PathChecker(SecuritySettings(allowed_roots=(tmp_path,))).check(str(big))
    assert not isinstance(checked, str)
    source = Source.open(checked)  # larger than SMALL_FILE: read from the file a chunk at a time
    p = pool(port)
    try:
        for _ in range(3):  # the race between the answer and the reset, more than once
            answer = await p.request("PUT", "/b/k.jpg", {"Host": "h"}, Body(source, 0, source.size, lambda d: None))
            assert answer.status == 404 and b"<Code>NoSuchUpload</Code>" in answer.body
    finally:
        await p.close()
        source.close()
        listener.close()


async def test_https_is_checked_against_the_trusted_authorities(tmp_path: Path) -> None:
    """A store whose certificate nobody vouches for is refused, saying so; once its authority is trusted (the
    context the S3 provider makes from botocore's ``verify``: a company's CA bundle), the PUT goes through TLS,
    and its body is watched at the TCP socket under the encryption: once the store has answered, that socket
    says every byte is acknowledged (a body handed something other than the TCP socket would count a whole send
    buffer as still on its way)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    data = os.urandom(3 * 1024 * 1024)
    async with Server(lambda n, req: OK, tls=tls) as server:
        untrusted = Pool(f"https://localhost:{server.port}", limit=1, connect_timeout_s=5, read_timeout_s=5)
        try:
            with pytest.raises(ConnectionError, match=rf"localhost:{server.port}'s TLS certificate is not trusted"):
                await untrusted.request("PUT", "/b/k.jpg", {"Host": "localhost"}, body(data, []))
        finally:
            await untrusted.close()
        trusted = Pool(f"https://localhost:{server.port}", limit=1, connect_timeout_s=5, read_timeout_s=5,
                       tls=tls_context(str(cert)))
        try:
            sent = body(data, [])
            answer = await trusted.request("PUT", "/b/k.jpg", {"Host": "localhost"}, sent)
            acknowledged = sent.acknowledged()
        finally:
            await trusted.close()
    assert answer.status == 200
    assert server.requests and server.requests[-1].endswith(data)
    assert acknowledged == len(data)


async def test_a_store_that_never_answers_times_out_with_the_setting_named() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    p = pool(port, read_timeout_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=r"read_timeout_s"):
            await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
    finally:
        await p.close()
        listener.close()
    assert 0.4 < time.monotonic() - started < 3


async def test_a_store_that_answers_slowly_but_steadily_is_not_cut_off() -> None:
    """The timeout is on silence, not on the whole answer: an answer trickling in a byte every 0.2 s for longer
    than read_timeout_s (0.5 s) arrives whole; then the same kept connection falls silent, and times out."""
    answer = b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 8\r\n\r\n12345678"
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
            served += 1
            if served > 1:
                await asyncio.sleep(3)  # the second request: silence
                writer.close()
                return
            for at in range(0, len(answer), 8):
                writer.write(answer[at:at + 8])
                await writer.drain()
                await asyncio.sleep(0.2)

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    p = pool(listener.sockets[0].getsockname()[1], read_timeout_s=0.5)
    try:
        started = time.monotonic()
        first = await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
        assert time.monotonic() - started > 1.0  # longer than read_timeout_s, in pieces
        assert (first.status, first.body) == (200, b"12345678")
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"read_timeout_s"):
            await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
        assert 0.4 < time.monotonic() - started < 3
    finally:
        await p.close()
        listener.close()


async def test_nobody_listening_is_a_connection_error_naming_the_place() -> None:
    port = free_port()
    p = pool(port)
    try:
        with pytest.raises(ConnectionError, match=rf"cannot connect to 127\.0\.0\.1:{port} \(.*refused"):
            await p.request("PUT", "/b/k.jpg", {"Host": "h"}, body(b"x" * 10, []))
    finally:
        await p.close()


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    async with Server(lambda n, req: OK) as server:
        p = pool(server.port)
        try:
            with pytest.raises(ValueError, match="line break"):
                await p.request("PUT", "/b/k.jpg", {"Host": "h", "Content-Type": "image/jpeg\r\nX-Evil: 1"},
                                body(b"x", []))
        finally:
            await p.close()
    assert server.requests == []

