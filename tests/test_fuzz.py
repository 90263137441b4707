"""Hostile input, generated: a property-based fuzz of ``/rpc`` and the HTTP routes against the real daemon.

Hypothesis sends bodies of random bytes, random JSON, JSON-RPC calls of every registered method with random
params, random charsets and content types, and random paths and queries on the other routes, on a fixed
budget. Whatever it sends: no 5xx, a JSON answer that is strict JSON (no NaN, no Infinity), no Python text
(tracebacks, exception names, "unexpected keyword"), and afterwards a daemon that still uploads.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from conftest import Daemon, Home, make_image, start_daemon
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixlift.api.rpc import REGISTRY

PYTHON_TEXT = re.compile(r"Traceback|Error\(|Exception|NoneType|object has no attribute|unexpected keyword|"
                         r"positional argument|multiple values for|\bsys\.|File \"|line \d+, in ")
BUDGET = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
param_names = st.sampled_from(sorted({p.name for m in REGISTRY.values() for p in m.params} | {"ctx", "x"}))
calls = st.fixed_dictionaries({
    "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
    "id": st.one_of(st.integers(-2**70, 2**70), st.text(max_size=10), st.none(), st.floats(allow_nan=False)),
    "method": st.one_of(st.sampled_from(sorted(REGISTRY)), st.text(max_size=20)),
    "params": st.one_of(st.dictionaries(param_names, values, max_size=4), st.lists(values, max_size=4), values),
})
bodies = st.one_of(
    st.binary(max_size=300),
    calls.map(lambda c: json.dumps(c).encode()),
    st.lists(calls, min_size=0, max_size=5).map(lambda c: json.dumps(c).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'{"jsonrpc":"2.0","id":NaN,"method":"get_daemon_info"}', b'{"id":1e999}',
                     b'{"jsonrpc":"2.0","id":1,"method":"get_upload_history","params":{"query":"\\ud800"}}',
                     b"[" * 5000, b'{"a":' * 3000, "{\"x\": \"\xe9\"}".encode("latin-1")]),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "application/json; "
                                 "charset=bogus-xyz", "application/json; charset=utf-16", "text/plain", "",
                                 "multipart/form-data; boundary=x", "application/json; charset=\u00e9"])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("fuzz")
    home = Home(root / "home", root / "Pictures")
    home.root.mkdir()
    home.pictures.mkdir()
    home.write_config(security={"calls_per_second": 10000, "call_burst": 100000, "files_per_minute": 10000000})
    d = start_daemon(home)
    d.rpc("pause_upload")
    yield d
    d.proc.kill()
    d.proc.wait(10)


def send(d: Daemon, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{d.port}")
        for k, v in headers.items():
            conn.putheader(k, v.encode("utf-8", "surrogateescape").decode("latin-1"))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


def check(status: int, body: bytes, ctype: str, echoed: Iterable[str] = ()) -> None:
    """No 5xx, no Python text, strict JSON. A word the client sent itself may come back in a message that
    names what was asked ("No batch 'Exception'"): ``echoed`` lists what the request carried."""
    assert status < 500, (status, body[:300])
    text = body.decode("utf-8", "replace")
    sent = [e for e in echoed if e]
    python = [m.group() for m in PYTHON_TEXT.finditer(text) if not any(m.group() in e for e in sent)]
    assert not python, text[:300]
    if ctype.startswith("application/json") and body:
        json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} in the answer: {text[:200]}"))


@BUDGET
@given(body=bodies, ctype=content_types)
def test_rpc_answers_any_body_in_words(target: Daemon, body: bytes, ctype: str) -> None:
    headers = {"Authorization": f"Bearer {target.home.token}"}
    if ctype:
        headers["Content-Type"] = ctype
    check(*send(target, "POST", "/rpc", body, headers))


paths = st.one_of(
    st.sampled_from(["/", "/rpc", "/api/upload", "/events", "/ws", "/files/", "/static/", "/static/app.js"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n #"), max_size=30).map(lambda s: "/" + s),
)
queries = st.dictionaries(st.sampled_from(["name", "profile", "batch_id", "batch_size", "since", "interval_ms",
                                           "token", "x"]), st.text(max_size=20), max_size=4)


@BUDGET
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]), path=paths, query=queries,
       body=st.binary(max_size=200), ctype=content_types, auth=st.booleans())
def test_every_route_answers_hostile_requests_without_5xx(target: Daemon, method: str, path: str,
                                                          query: dict[str, str], body: bytes, ctype: str,
                                                          auth: bool) -> None:
    from urllib.parse import quote, urlencode

    if path in ("/events", "/ws") and method == "GET" and auth:
        return  # a stream that opens stays open by design: its parameters are fuzzed in the next test
    target_path = quote(path, safe="/%") + ("?" + urlencode(query) if query else "")
    headers = {"Content-Type": ctype} if ctype else {}
    if auth:
        headers["Authorization"] = f"Bearer {target.home.token}"
    check(*send(target, method, target_path, body, headers), echoed=[path, *query.values()])


@BUDGET
@given(query=queries)
def test_event_stream_parameters_are_judged_before_the_stream_opens(target: Daemon, query: dict[str, Any]) -> None:
    from urllib.parse import urlencode

    q = {k: v for k, v in query.items() if k in ("since", "interval_ms", "batch_id")}
    if not q or (q.get("interval_ms") is None and q.get("batch_id") is None and q.get("since") is None):
        return
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        conn.request("GET", "/events?" + urlencode(q), headers={"Host": f"127.0.0.1:{target.port}",
                                                               "Authorization": f"Bearer {target.home.token}"})
        resp = conn.getresponse()
        assert resp.status < 500
        if resp.status != 200:  # refused: a JSON error in words
            check(resp.status, resp.read(), resp.getheader("Content-Type") or "", echoed=list(q.values()))
    finally:
        conn.close()


def test_the_daemon_still_uploads_after_the_fuzz(target: Daemon) -> None:
    target.rpc("resume_upload")
    image = make_image(target.home.pictures / "after-fuzz.jpg", 50_000, seed=99)
    task = target.rpc("upload_images", {"paths": [str(image)], "profile": "local"})["tasks"][0]
    done = target.wait_task(task["task_id"], timeout=30)
    assert done["status"] == "completed"
    status, body, _ = send(target, "GET", done["url"].removeprefix(target.url), b"", {})
    assert status == 200 and body == image.read_bytes()
