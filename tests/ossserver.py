"""A small Aliyun-OSS-protocol server for the test suite (no OSS emulator exists).

It speaks enough of OSS for ``oss2`` to work against it unmodified: path-style (and virtual-host
style) addressing, V1 header signatures, V1 presigned URLs, V4 (``OSS4-HMAC-SHA256``) headers,
put/get/head/delete, multipart uploads, ListObjects, ListMultipartUploads and GetBucketInfo.
Signatures are verified, replies carry ``x-oss-hash-crc64ecma`` so oss2's CRC checks run, and a few
attributes let tests inject faults. Objects live as plain files under ``root/<bucket>/<key>``.

The server itself is in the ``ossproto`` package next to this file (protocol basics, signatures, storage,
HTTP handlers); this module runs it in a thread for tests, or standalone.

Run standalone: ``python tests/ossserver.py --port 9000 --root DIR --ak AK --sk SK --bucket test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import threading
from collections.abc import Iterable
from typing import Any

from ossproto.handlers import OssServer
from ossproto.wire import OssError

__all__ = ["OssError", "OssServer", "OssServerThread", "main", "run_in_thread"]


class OssServerThread:
    """An OssServer running on its own event loop in a daemon thread."""

    def __init__(self, server: OssServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ossserver", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(host, port), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        self.endpoint = server.endpoint

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> OssServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(root: pathlib.Path, ak: str, sk: str, buckets: Iterable[str] = ("test",),
                  **kwargs: Any) -> OssServerThread:
    return OssServerThread(OssServer(root, ak, sk, buckets, **kwargs))


def main() -> None:
    parser = argparse.ArgumentParser(description="Aliyun-OSS-protocol test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    parser.add_argument("--ak", required=True)
    parser.add_argument("--sk", required=True)
    parser.add_argument("--bucket", action="append", help="may be repeated (default: test)")
    parser.add_argument("--public-read", action="append", default=[], help="bucket readable anonymously")
    args = parser.parse_args()

    async def serve() -> None:
        server = OssServer(args.root, args.ak, args.sk, args.bucket or ["test"],
                           public_read_buckets=args.public_read)
        await server.start(args.host, args.port)
        print(f"ossserver listening on {server.endpoint}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
