"""Drive tests/ossserver.py with the real oss2 client: the server must satisfy oss2 as Aliyun would."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import oss2
import pytest
from oss2.exceptions import (
    AccessDenied,
    InconsistentError,
    InvalidDigest,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    RequestError,
    ServerError,
    SignatureDoesNotMatch,
)
from oss2.models import PartInfo
from ossserver import OssServerThread, run_in_thread

AK, SK = "test-key-id", "test-key-secret"
KEY = "photos/2024/a cat ü.png"


def crc64(data: bytes) -> int:
    c = oss2.utils.Crc64()
    c.update(data)
    return int(c.crc)


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


@pytest.fixture
def oss(tmp_path: pathlib.Path) -> Iterator[OssServerThread]:
    server = run_in_thread(tmp_path / "oss", AK, SK, buckets=("test", "public"), public_read_buckets=("public",))
    yield server
    server.stop()


@pytest.fixture
def bucket(oss: OssServerThread) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(AK, SK), oss.endpoint, "test", enable_crc=True)


def test_put_get_head_delete_round_trip(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    data = payload(300_000)
    put = bucket.put_object(KEY, data, headers={"x-oss-meta-origin": "unit"})
    assert put.status == 200
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    assert put.crc == crc64(data)
    assert put.request_id

    stored = oss.server.objects("test")
    assert list(stored) == [KEY]
    assert stored[KEY].read_bytes() == data

    got = bucket.get_object(KEY)
    assert got.read() == data
    assert got.headers["Content-Type"] == "image/png"  # oss2 guessed it from the key; the server kept it
    assert got.headers["x-oss-meta-origin"] == "unit"
    assert got.etag == put.etag

    head = bucket.head_object(KEY)
    assert got.request_id and head.request_id and len({put.request_id, got.request_id, head.request_id}) == 3
    assert head.content_length == len(data)
    assert head.etag == put.etag
    assert head.server_crc == crc64(data)

    part = bucket.get_object(KEY, byte_range=(10, 19)).read()
    assert part == data[10:20]

    assert bucket.delete_object(KEY).status == 204
    assert not bucket.object_exists(KEY)
    assert oss.server.objects("test") == {}
    assert not (oss.server.root / "test" / "photos").exists()  # empty prefix directories are pruned
    with pytest.raises(NoSuchKey):
        bucket.get_object(KEY)
    with pytest.raises(NoSuchKey):  # HEAD has no body: the error comes through x-oss-err
        bucket.head_object(KEY)


def test_odd_keys_and_chunked_bodies(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    keys = ["a+b c%2F.txt", "ä/€.txt", "q?x=1&y#frag", "deep/er/still"]
    for key in keys:
        bucket.put_object(key, (key.encode() for _ in range(3)))  # a generator: sent chunked
        assert bucket.get_object(key).read() == key.encode() * 3
    assert sorted(oss.server.objects("test")) == sorted(keys)
    for bad in ["a/../b", "a//b", "folder/"]:  # keys are stored as paths, so these are refused
        with pytest.raises(ServerError) as err:
            bucket.put_object(bad, b"x")
        assert (err.value.status, err.value.code) == (400, "InvalidObjectName")


def test_resumable_upload_goes_multipart(
        oss: OssServerThread, bucket: oss2.Bucket, tmp_path: pathlib.Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(payload(550 * 1024))
    oss2.resumable_upload(bucket, "r.bin", str(source), multipart_threshold=200 * 1024, part_size=100 * 1024,
                          num_threads=3, store=oss2.ResumableStore(root=str(tmp_path)))
    part_puts = [q for m, _, q in oss.server.requests if m == "PUT" and "partNumber=" in q]
    assert len(part_puts) == 6
    assert bucket.get_object("r.bin").read() == source.read_bytes()
    assert oss.server.pending_uploads("test") == []


def test_files_placed_by_hand_are_served(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    bucket.put_object("seeded/x.bin", b"old")
    path = oss.server.objects("test")["seeded/x.bin"]
    path.write_bytes(b"new")
    os.utime(path, (1_000_000, 1_000_000))  # same size, different mtime: the metadata must be rebuilt
    got = bucket.get_object("seeded/x.bin")
    assert got.read() == b"new"
    assert got.etag == hashlib.md5(b"new").hexdigest().upper()
    assert got.server_crc == crc64(b"new")
    with pytest.raises(NoSuchKey):  # a key that is a directory on disk is no object
        bucket.get_object("seeded")
    assert bucket.delete_object("seeded").status == 204
    assert bucket.get_object("seeded/x.bin").read() == b"new"


def test_request_log_records_path_and_query(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    bucket.put_object("a.txt", b"x")
    bucket.init_multipart_upload("b.bin")
    assert ("PUT", "/test/a.txt", "") in oss.server.requests
    assert ("POST", "/test/b.bin", "uploads=") in oss.server.requests


def test_progress_callback_reports_every_byte(bucket: oss2.Bucket) -> None:
    data = payload(1024 * 1024)
    seen: list[tuple[int, int | None]] = []
    bucket.put_object("big.bin", data, progress_callback=lambda done, total: seen.append((done, total)))
    assert len(seen) > 2
    assert seen[-1] == (len(data), len(data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert bucket.get_object("big.bin").read() == data


def test_multipart_upload_is_byte_identical(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    chunks = [payload(150 * 1024, 1), payload(120 * 1024, 2), payload(100 * 1024 + 7, 3)]
    upload_id = bucket.init_multipart_upload("mp/obj.bin").upload_id
    assert oss.server.pending_uploads("test") == [upload_id]
    parts = []
    for number, chunk in enumerate(chunks, 1):
        result = bucket.upload_part("mp/obj.bin", upload_id, number, chunk)
        assert result.etag == hashlib.md5(chunk).hexdigest().upper()
        assert result.crc == crc64(chunk)
        parts.append(PartInfo(number, result.etag, size=len(chunk), part_crc=result.crc))

    listed = bucket.list_parts("mp/obj.bin", upload_id).parts
    assert [(p.part_number, p.etag, p.size) for p in listed] == [(p.part_number, p.etag, p.size) for p in parts]
    uploads = bucket.list_multipart_uploads().upload_list
    assert [(u.key, u.upload_id) for u in uploads] == [("mp/obj.bin", upload_id)]

    # part_crc set on every PartInfo makes oss2 combine them and check the server's whole-object CRC.
    done = bucket.complete_multipart_upload("mp/obj.bin", upload_id, parts)
    whole = b"".join(chunks)
    assert done.crc == crc64(whole)
    assert done.etag.endswith("-3")
    assert bucket.get_object("mp/obj.bin").read() == whole
    assert oss.server.objects("test")["mp/obj.bin"].read_bytes() == whole
    assert oss.server.pending_uploads("test") == []
    assert bucket.list_multipart_uploads().upload_list == []
    assert os.listdir(oss.server.root / ".uploads") == []


def test_multipart_abort_leaves_nothing(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload("gone.bin").upload_id
    bucket.upload_part("gone.bin", upload_id, 1, payload(200 * 1024))
    assert bucket.abort_multipart_upload("gone.bin", upload_id).status == 204
    assert oss.server.pending_uploads("test") == []
    assert oss.server.objects("test") == {}
    assert os.listdir(oss.server.root / ".uploads") == []
    assert os.listdir(oss.server.root / ".tmp") == []
    with pytest.raises(NoSuchUpload):
        bucket.list_parts("gone.bin", upload_id)
    with pytest.raises(NoSuchUpload):
        bucket.upload_part("gone.bin", upload_id, 2, b"late")


def test_multipart_complete_rejects_bad_parts(bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload("bad.bin").upload_id
    first = bucket.upload_part("bad.bin", upload_id, 1, payload(10 * 1024))
    second = bucket.upload_part("bad.bin", upload_id, 2, payload(10 * 1024, 5))
    with pytest.raises(ServerError) as wrong_etag:
        bucket.complete_multipart_upload("bad.bin", upload_id, [PartInfo(1, "0" * 32)])
    assert (wrong_etag.value.status, wrong_etag.value.code) == (400, "InvalidPart")
    with pytest.raises(ServerError) as too_small:
        bucket.complete_multipart_upload("bad.bin", upload_id, [PartInfo(1, first.etag), PartInfo(2, second.etag)])
    assert (too_small.value.status, too_small.value.code) == (400, "EntityTooSmall")
    assert not bucket.object_exists("bad.bin")


def test_wrong_secret_is_refused(oss: OssServerThread) -> None:
    bad = oss2.Bucket(oss2.Auth(AK, "not-the-secret"), oss.endpoint, "test")
    with pytest.raises(SignatureDoesNotMatch) as err:
        bad.put_object("x.txt", b"data")
    assert (err.value.status, err.value.code) == (403, "SignatureDoesNotMatch")
    assert err.value.request_id
    assert oss.server.objects("test") == {}


def test_wrong_key_id_is_refused(oss: OssServerThread) -> None:
    bad = oss2.Bucket(oss2.Auth("someone-else", SK), oss.endpoint, "test")
    with pytest.raises(ServerError) as err:
        bad.get_object("x.txt")
    assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")


def test_missing_bucket(oss: OssServerThread) -> None:
    other = oss2.Bucket(oss2.Auth(AK, SK), oss.endpoint, "nope")
    with pytest.raises(NoSuchBucket):
        other.put_object("x.txt", b"data")


def test_invalid_content_md5_is_refused(bucket: oss2.Bucket) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(InvalidDigest):
        bucket.put_object("x.txt", b"data", headers={"Content-MD5": wrong})
    right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    assert bucket.put_object("x.txt", b"data", headers={"Content-MD5": right}).status == 200


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_signed_urls(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    data = payload(5000)
    bucket.put_object(KEY, data)
    url = bucket.sign_url("GET", KEY, 60)
    assert http(url) == (200, data)

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    signature = query["Signature"][0]
    tampered = url.replace(urllib.parse.quote(signature, safe=""),
                           urllib.parse.quote(("A" if signature[0] != "A" else "B") + signature[1:], safe=""))
    assert tampered != url
    status, body = http(tampered)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    other_key = url.replace(urllib.parse.quote(KEY, safe=""), "other.png")
    status, body = http(other_key)
    assert status == 403 and b"SignatureDoesNotMatch" in body

    status, body = http(bucket.sign_url("GET", KEY, -5))
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"expired" in body

    # A presigned PUT must be replayed with exactly the headers that were signed.
    put_url = bucket.sign_url("PUT", "up.png", 60, headers={"Content-Type": "image/png"})
    assert http(put_url, "PUT", b"pixels", {"Content-Type": "image/png"})[0] == 200
    assert http(put_url, "PUT", b"pixels", {"Content-Type": "text/plain"})[0] == 403
    assert bucket.get_object("up.png").read() == b"pixels"


def test_anonymous_access(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    bucket.put_object("private.txt", b"secret")
    status, body = http(f"{oss.endpoint}/test/private.txt")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    public = oss2.Bucket(oss2.Auth(AK, SK), oss.endpoint, "public")
    public.put_object("open.txt", b"hello")
    assert http(f"{oss.endpoint}/public/open.txt") == (200, b"hello")
    assert http(f"{oss.endpoint}/public/open.txt", "PUT", b"overwrite")[0] == 403


def test_fail_next_gives_503_then_recovers(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    oss.server.fail_next = 2
    for _ in range(2):
        with pytest.raises(ServerError) as err:
            bucket.put_object("flaky.bin", payload(200_000))
        assert (err.value.status, err.value.code) == (503, "ServiceUnavailable")
    assert oss.server.fail_next == 0
    assert oss.server.objects("test") == {}
    assert bucket.put_object("flaky.bin", b"ok").status == 200


def test_crc_mismatch_is_detected_by_oss2(
        oss: OssServerThread, bucket: oss2.Bucket, tmp_path: pathlib.Path) -> None:
    oss.server.corrupt_crc_next = 1
    with pytest.raises(InconsistentError):
        bucket.put_object("c.bin", payload(1000))
    assert bucket.put_object("c.bin", payload(1000)).crc == crc64(payload(1000))  # one shot
    # oss2 checks a download's CRC in get_object_to_file (get_object().read() leaves it to the caller).
    oss.server.corrupt_crc_next = 1
    with pytest.raises(InconsistentError):
        bucket.get_object_to_file("c.bin", str(tmp_path / "c.bin"))
    got = bucket.get_object("c.bin")
    assert got.read() == payload(1000)
    assert got.client_crc == got.server_crc == crc64(payload(1000))


def test_die_after_bytes_drops_the_connection(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    oss.server.die_after_bytes = 100_000
    with pytest.raises(RequestError):
        bucket.put_object("cut.bin", payload(1024 * 1024))
    assert oss.server.die_after_bytes is None
    assert oss.server.objects("test") == {}
    assert os.listdir(oss.server.root / ".tmp") == []
    assert bucket.put_object("cut.bin", b"whole").status == 200


def test_put_delay_slows_uploads(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    oss.server.put_delay_s = 0.05
    start = time.monotonic()
    bucket.put_object("slow.bin", payload(512 * 1024))  # 8 chunks of 64 KiB -> at least 0.4 s
    assert time.monotonic() - start >= 0.35


def test_list_objects_with_prefix_delimiter_and_paging(bucket: oss2.Bucket) -> None:
    keys = ["a/1.png", "a/2.png", "a/sub/3.png", "b.png", "c d.png"]
    for key in keys:
        bucket.put_object(key, key.encode())
    everything = list(oss2.ObjectIterator(bucket, max_keys=2))
    assert [o.key for o in everything] == keys
    assert [o.size for o in everything] == [len(k) for k in keys]
    top = [(o.key, o.is_prefix()) for o in oss2.ObjectIterator(bucket, delimiter="/")]
    assert top == [("a/", True), ("b.png", False), ("c d.png", False)]
    assert [(o.key, o.is_prefix()) for o in oss2.ObjectIterator(bucket, delimiter="/", max_keys=1)] == top
    assert [o.key for o in oss2.ObjectIterator(bucket, prefix="a/", delimiter="/")] == [
        "a/1.png", "a/2.png", "a/sub/"]


def test_bucket_info(oss: OssServerThread, bucket: oss2.Bucket) -> None:
    info = bucket.get_bucket_info()
    assert info.name == "test"
    assert info.acl.grant == "private"


def test_v4_signatures(oss: OssServerThread) -> None:
    v4 = oss2.Bucket(oss2.AuthV4(AK, SK), oss.endpoint, "test", region="cn-hangzhou")
    data = payload(70_000)
    v4.put_object("v4/obj.png", data)
    assert v4.get_object("v4/obj.png").read() == data
    assert http(v4.sign_url("GET", "v4/obj.png", 60)) == (200, data)
    bad = oss2.Bucket(oss2.AuthV4(AK, "wrong"), oss.endpoint, "test", region="cn-hangzhou")
    with pytest.raises(SignatureDoesNotMatch):
        bad.get_object("v4/obj.png")


def test_standalone_main(tmp_path: pathlib.Path) -> None:
    script = pathlib.Path(__file__).with_name("ossserver.py")
    command = [sys.executable, str(script), "--port", "0", "--root", str(tmp_path), "--ak", AK, "--sk", SK,
               "--bucket", "test"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("ossserver listening on http://127.0.0.1:")
            endpoint = line.rsplit(" ", 1)[1].strip()
            standalone = oss2.Bucket(oss2.Auth(AK, SK), endpoint, "test")
            standalone.put_object("k.txt", b"standalone")
            assert standalone.get_object("k.txt").read() == b"standalone"
            assert (tmp_path / "test" / "k.txt").read_bytes() == b"standalone"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_anonymous_oss2_client_is_refused_on_private_bucket(oss: OssServerThread) -> None:
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), oss.endpoint, "test")
    with pytest.raises(AccessDenied):
        anonymous.get_object("whatever.txt")
