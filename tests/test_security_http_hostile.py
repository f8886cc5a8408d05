"""Hostile HTTP against the real servers, started as processes (``orderdb ingest serve`` and
``orderdb web``) on a free port over a real database, spoken to with raw sockets: malformed
signatures, bad encodings, NUL bytes, deep JSON, oversize and chunked bodies, stalled bodies,
floods of unsigned requests, the status query without credentials, a database that is down or
not migrated. Every answer must be 2xx or 4xx (503 only where the database is really away), and
the server's peak memory must not grow with what a client sends."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from orderdb.integrations.http import sign
from orderdb.web import WebServer
from tests.conftest import PgServer

SECRETS = {
    "HX": "hx-secret-0123456789abcdef",
    "FLOOD": "flood-secret-0123456789abcdef",
    "hwms": "hwms-secret-0123456789abcdef",
}
BODY_LIMIT = 65536
#: default read timeout of a request body in ``orderdb ingest serve`` (docs/integrations.md)
READ_TIMEOUT = 10.0
#: the most a server's peak memory may grow while a client sends 31 MB it must refuse
MAX_GROWTH_KB = 16 * 1024


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(server: Server, path: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert server.proc.poll() is None, server.proc.stderr.read() if server.proc.stderr else ""
        try:
            httpx.get(server.url + path, timeout=2)
            return
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _peak_rss_kb(pid: int) -> int:
    """VmHWM: the peak resident set size of the process so far."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def ingest(db_dsn: str) -> Iterator[Server]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for name, kind, rate, burst in (
            ("HX", "carrier", 1000, 1000),
            ("FLOOD", "carrier", 1, 3),
            ("hwms", "wms", 1000, 1000),
        ):
            conn.execute(
                "SELECT orderdb.set_integration(%s, %s, %s, %s, %s)",
                (name, kind, SECRETS[name], rate, burst),
            )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderdb",
            "ingest",
            "serve",
            "--dsn",
            db_dsn,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(proc, "127.0.0.1", port)
    try:
        _wait_ready(server, "/healthz")
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def web(db_dsn: str) -> Iterator[Server]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderdb", "web", "--dsn", db_dsn, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match, proc.stderr.read() if proc.stderr else ""
        server = Server(proc, "127.0.0.1", int(match.group(1)))
        _wait_ready(server, "/healthz")
        yield server
    finally:
        _stop(proc)


# -- raw HTTP -----------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _read_answer(sock: socket.socket) -> Answer:
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    body = resp.read()
    return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)


def _exchange(server: Server, request: bytes, timeout: float = 15.0) -> Answer:
    """Sends ``request`` (bytes as they go on the wire) and reads one answer."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(request)
        return _read_answer(sock)


def _request(
    server: Server,
    method: str,
    target: bytes | str,
    body: bytes = b"",
    headers: dict[str, bytes | str] | None = None,
) -> Answer:
    target_b = target.encode() if isinstance(target, str) else target
    lines = [method.encode() + b" " + target_b + b" HTTP/1.1", b"Host: test"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + (value.encode() if isinstance(value, str) else value))
    if method == "POST" and "Content-Length" not in (headers or {}):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return _exchange(server, b"\r\n".join(lines) + b"\r\n\r\n" + body)


def _signed(
    server: Server,
    path: str,
    raw: bytes,
    secret: str,
    headers: dict[str, bytes | str] | None = None,
) -> Answer:
    hdrs: dict[str, bytes | str] = {
        "Content-Type": "application/json",
        "X-OrderDB-Signature": sign(secret, raw),
        **(headers or {}),
    }
    return _request(server, "POST", path, raw, hdrs)


def _scan(**fields: Any) -> dict[str, Any]:
    scan = {
        "event_id": f"hx-{secrets.token_hex(6)}",
        "tracking_number": "HXT0001",
        "status": "50",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    scan.update(fields)
    return scan


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _assert_client_error(answer: Answer, *statuses: int) -> None:
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    if statuses:
        assert answer.status in statuses, (answer.status, answer.body[:300])


def _assert_field(answer: Answer, status: int, field: str) -> None:
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    doc = answer.json()
    assert doc["field"] == field, doc
    assert (doc["type"], doc["status"]) == ("/problems/invalid-field", status), doc
    assert doc["title"] and doc["detail"], doc


def _status_headers(
    secret: str, target: str, integration: str, ts: int | None = None
) -> dict[str, bytes | str]:
    """The documented signature of a status query: HMAC-SHA256 of "<unix time>.<path?query>"."""
    stamp = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), f"{stamp}.{target}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-OrderDB-Integration": integration,
        "X-OrderDB-Timestamp": stamp,
        "X-OrderDB-Signature": f"sha256={mac}",
    }


# -- ingest serve: signatures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=\u00e9\u00e9".encode(),  # non-ASCII (UTF-8)
        b"sha256=\xff\xfe",  # not UTF-8 at all
        "\u00e9".encode("latin-1"),
        b"sha256=" + b"g" * 64,
        b"sha256=",
        b"",
        b"sha256=" + b"a" * 8000,
        b"sha512=" + b"0" * 128,
        b"   ",
    ],
)
def test_malformed_signatures_are_401(ingest: Server, signature: bytes) -> None:
    raw = json.dumps(_scan()).encode()
    answer = _request(ingest, "POST", "/hooks/carriers/HX", raw, {"X-OrderDB-Signature": signature})
    _assert_client_error(answer, 400, 401)


def test_a_flood_of_unsigned_requests_does_not_lock_the_carrier_out(ingest: Server) -> None:
    """FLOOD allows 1 request/s with a burst of 3. 40 unsigned or wrongly signed posts: each is
    401, none takes the carrier's tokens, and the carrier's next signed post is accepted."""
    raw = json.dumps(_scan(tracking_number="FLOOD1")).encode()
    codes = []
    for i in range(40):
        headers: dict[str, bytes | str] = (
            {} if i % 2 else {"X-OrderDB-Signature": sign("not-the-secret-at-all", raw)}
        )
        codes.append(_request(ingest, "POST", "/hooks/carriers/FLOOD", raw, headers).status)
    assert set(codes) == {401}, codes
    good = _signed(ingest, "/hooks/carriers/FLOOD", raw, SECRETS["FLOOD"])
    assert good.status == 200, good.body
    # the bucket still limits the carrier's own signed requests
    signed = [
        _signed(
            ingest,
            "/hooks/carriers/FLOOD",
            json.dumps(_scan(tracking_number="FLOOD1")).encode(),
            SECRETS["FLOOD"],
        ).status
        for _ in range(6)
    ]
    assert 429 in signed and set(signed) <= {200, 429}, signed


# -- ingest serve: encodings and depth ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        # a lone surrogate in a JSON escape: valid JSON, not valid text
        (b'"event_id": "a\\ud800b"', 422, "event_id"),
        (b'"location": "\\udfff"', 422, "location"),
        (b'"data": {"note": ["ok", "\\ud800"]}', 422, "data"),
        (b'"data": {"\\ud800": 1}', 422, "data"),
        # NUL, escaped: PostgreSQL text cannot hold it
        (b'"tracking_number": "HX\\u0000T"', 422, "tracking_number"),
        (b'"description": "a\\u0000"', 422, "description"),
        (b'"data": {"a": "\\u0000"}', 422, "data"),
        (b'"data": {"a\\u0000": 1}', 422, "data"),
        # nested deeper than a JSON argument may be (32 levels)
        (b'"data": {"a": ' + _nested(20000).encode() + b"}", 422, "data"),
        (b'"data": {"a": ' + _nested(40).encode() + b"}", 422, "data"),
    ],
)
def test_bad_text_and_depth_in_carrier_fields_are_422_naming_the_field(
    ingest: Server, raw: bytes, status: int, field: str
) -> None:
    base = json.dumps(_scan()).encode()
    body = base[:-1] + b", " + raw + b"}"
    assert len(body) <= BODY_LIMIT
    _assert_field(_signed(ingest, "/hooks/carriers/HX", body, SECRETS["HX"]), status, field)


@pytest.mark.parametrize(
    "body",
    [
        _nested(20000).encode(),  # deep, as the whole body
        b'{"a": ' + b'{"b": ' * 5000 + b"1" + b"}" * 5001,
        b"\xff\xfe{}",  # not UTF-8
        b'{"event_id": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"event_id": "x\x00y"}',  # a raw NUL byte
        b"\x00",
        b"\xef\xbb\xbf{}",  # a byte order mark
        b"",
        b'{"order_id": 1' + b"0" * 5000 + b"}",  # an integer with more digits than Python parses
        b"[" * 30 + b"]" * 29,  # unbalanced
    ],
)
def test_bodies_that_are_not_usable_json_are_4xx(ingest: Server, body: bytes) -> None:
    for path, secret, headers in (
        ("/hooks/carriers/HX", SECRETS["HX"], {}),
        ("/hooks/wms", SECRETS["hwms"], {"X-OrderDB-Integration": "hwms"}),
    ):
        answer = _signed(ingest, path, body, secret, headers)
        _assert_client_error(answer, 400, 422)
        assert answer.headers["content-type"] == "application/problem+json", answer.headers
        assert answer.json()["type"] in ("/problems/bad-json", "/problems/invalid-field")
        assert answer.json()["status"] == answer.status, answer.body


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"1e400"])
def test_nan_infinity_and_overflowing_numbers_are_400(ingest: Server, number: bytes) -> None:
    """Python's parser takes NaN, Infinity and 1e400 (as inf); JSON and jsonb do not."""
    scan = json.dumps(_scan()).encode()[:-1] + b', "data": {"a": ' + number + b"}}"
    answer = _signed(ingest, "/hooks/carriers/HX", scan, SECRETS["HX"])
    assert (answer.status, answer.json()["type"]) == (400, "/problems/bad-json"), answer.body
    wms = (
        b'{"event_id": "nan-1", "order_id": 1, "event_type": "PICKED", "timestamp": "'
        + datetime.now(UTC).isoformat().encode()
        + b'", "payload": {"a": '
        + number
        + b"}}"
    )
    answer = _signed(ingest, "/hooks/wms", wms, SECRETS["hwms"], {"X-OrderDB-Integration": "hwms"})
    assert (answer.status, answer.json()["type"]) == (400, "/problems/bad-json"), answer.body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"note": "\ud800"}, "payload"),
        ({"note": "a\u0000"}, "payload"),
        ({"deep": json.loads(_nested(40))}, "payload"),
    ],
)
def test_bad_wms_payloads_are_422_naming_the_field(
    ingest: Server, payload: dict[str, Any], field: str
) -> None:
    body = json.dumps(
        {
            "event_id": f"hw-{secrets.token_hex(4)}",
            "order_id": 1,
            "event_type": "PICKED",
            "timestamp": datetime.now(UTC).isoformat(),
            "payload": payload,
        }
    ).encode()
    answer = _signed(ingest, "/hooks/wms", body, SECRETS["hwms"], {"X-OrderDB-Integration": "hwms"})
    _assert_field(answer, 422, field)


def test_nul_and_odd_bytes_in_paths_are_4xx(ingest: Server) -> None:
    raw = json.dumps(_scan()).encode()
    for target in (b"/hooks/carriers/HX%00", b"/hooks/carriers/%ED%A0%80", b"/hooks/carriers/%FF"):
        _assert_client_error(_signed(ingest, target.decode(), raw, SECRETS["HX"]), 404)
    headers = _status_headers(SECRETS["hwms"], "/status/HX%00T", "hwms")
    _assert_client_error(_request(ingest, "GET", "/status/HX%00T", headers=headers))
    target = "/status/HXT?carrier=H%00X"
    headers = _status_headers(SECRETS["hwms"], target, "hwms")
    _assert_client_error(_request(ingest, "GET", target, headers=headers))


# -- ingest serve: sizes, chunks, stalls ----------------------------------------------------------


def test_a_declared_oversize_body_is_refused_before_it_is_sent(ingest: Server) -> None:
    head = (
        b"POST /hooks/carriers/HX HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    with socket.create_connection((ingest.host, ingest.port), timeout=10) as sock:
        sock.sendall(head)  # and nothing of the body
        answer = _read_answer(sock)
    assert answer.status == 413, answer.body


def _send_chunked(server: Server, path: str, total: int, chunk: int = 65536) -> tuple[Answer, int]:
    """Posts ``total`` bytes of chunked body (no Content-Length) while reading the answer;
    returns the answer and how many body bytes the server let us send."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sent = [0]

    def sender() -> None:
        try:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            piece = b"%x\r\n" % chunk + b" " * chunk + b"\r\n"
            while sent[0] < total:
                sock.sendall(piece)
                sent[0] += chunk
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: what we want

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        answer = _read_answer(sock)
    finally:
        sock.close()
        thread.join(30)
    return answer, sent[0]


def test_a_chunked_oversize_body_is_cut_off_with_bounded_memory(ingest: Server) -> None:
    before = _peak_rss_kb(ingest.proc.pid)
    answer, sent = _send_chunked(ingest, "/hooks/carriers/HX", 31 * 1024 * 1024)
    grown = _peak_rss_kb(ingest.proc.pid) - before
    assert answer.status == 413, answer.body
    assert answer.json()["type"] == "/problems/body-too-large", answer.body
    print(f"ingest: 31 MB chunked -> {answer.status}; {sent} bytes sent; peak RSS +{grown} kB")
    assert grown < MAX_GROWTH_KB, f"peak RSS grew by {grown} kB"
    # still serving
    assert (
        _signed(ingest, "/hooks/carriers/HX", json.dumps(_scan()).encode(), SECRETS["HX"]).status
        == 200
    )


def test_stalled_bodies_are_closed_after_the_read_timeout(ingest: Server) -> None:
    """Slowloris: a body that stops half-way (declared length, or chunked) is answered 408 and
    its connection closed once the read timeout has passed; meanwhile the server answers others."""
    requests = [
        b'POST /hooks/carriers/HX HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{"event_id"',
        b"POST /hooks/wms HTTP/1.1\r\nHost: t\r\nX-OrderDB-Integration: hwms\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n10\r\n{"event',
    ]
    results: list[tuple[float, int | None]] = []
    lock = threading.Lock()

    def slow(request: bytes) -> None:
        started = time.monotonic()
        status: int | None = None
        with socket.create_connection((ingest.host, ingest.port), timeout=READ_TIMEOUT + 10) as s:
            s.sendall(request)
            try:
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                if data:
                    status = int(data.split(b" ", 2)[1])
            except TimeoutError:
                status = -1  # still open
        with lock:
            results.append((time.monotonic() - started, status))

    threads = [threading.Thread(target=slow, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert (
        _signed(ingest, "/hooks/carriers/HX", json.dumps(_scan()).encode(), SECRETS["HX"]).status
        == 200
    )
    for t in threads:
        t.join(READ_TIMEOUT + 15)
    assert len(results) == 2
    for elapsed, status in results:
        assert status == 408, results
        assert READ_TIMEOUT - 1 <= elapsed <= READ_TIMEOUT + 5, results


# -- ingest serve: the status query -------------------------------------------------------------


def test_the_status_query_needs_a_signature(ingest: Server, db_dsn: str) -> None:
    tn = f"HXS{secrets.randbelow(10**9):09d}"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT orderdb.record_tracking_event('HX', %s, now(), '50', 'Hub', NULL, %s)",
            (tn, f"hxs-{tn}"),
        )
    target = f"/status/{tn}"
    # no credentials, or wrong ones: refused before anything is read
    for headers in (
        {},
        {"X-OrderDB-Integration": "hwms"},
        _status_headers("wrong-secret-0123456789", target, "hwms"),
        _status_headers(SECRETS["hwms"], "/status/OTHER", "hwms"),  # signed for another number
        _status_headers(SECRETS["hwms"], target, "nobody"),
        _status_headers(SECRETS["hwms"], target, "hwms", ts=int(time.time()) - 3600),  # replayed
        {**_status_headers(SECRETS["hwms"], target, "hwms"), "X-OrderDB-Timestamp": "soon"},
        {**_status_headers(SECRETS["hwms"], target, "hwms"), "X-OrderDB-Signature": b"\xc3\xa9"},
    ):
        answer = _request(ingest, "GET", target, headers=headers)
        assert answer.status in (401, 403), (headers, answer.status, answer.body)
        # a problem that tells nothing of the parcel
        problem = {"type", "title", "status", "detail", "error", "message"}
        assert set(answer.json()) == problem, answer.body
        assert answer.json()["type"] == "/problems/bad-signature", answer.body
    # signed by any enabled integration (a carrier or a WMS): answered
    for name in ("hwms", "HX"):
        ok = _request(ingest, "GET", target, headers=_status_headers(SECRETS[name], target, name))
        assert ok.status == 200, ok.body
        assert ok.json()["tracking_number"] == tn
    target_q = f"{target}?carrier=HX"
    ok = _request(ingest, "GET", target_q, headers=_status_headers(SECRETS["HX"], target_q, "HX"))
    assert ok.status == 200, ok.body


def test_every_hostile_answer_of_the_ingest_server_was_4xx(ingest: Server) -> None:
    """After everything above, the server is alive and answers its health check."""
    assert ingest.proc.poll() is None
    assert httpx.get(ingest.url + "/healthz", timeout=5).status_code == 200


# -- web ------------------------------------------------------------------------------------------


def test_web_nul_and_odd_order_numbers_get_the_404_rule(web: Server) -> None:
    reference = _request(web, "GET", "/track/ORD2099010199999999?customer=7")
    reference_json = _request(web, "GET", "/api/track/ORD2099010199999999?customer=7")
    assert reference.status == reference_json.status == 404
    for number in ("ORD%00", "%00", "ORD%0A1", "%ED%A0%80", "%FF%FE", "ORD%C3%28", "%7F"):
        page = _request(web, "GET", f"/track/{number}?customer=7")
        assert (page.status, page.body) == (404, reference.body), number
        doc = _request(web, "GET", f"/api/track/{number}?customer=7")
        assert (doc.status, doc.body) == (404, reference_json.body), number
        stream = _request(web, "GET", f"/api/track/{number}/events?customer=7")
        assert (stream.status, stream.body) == (404, reference_json.body), number
    for query in (
        "carrier=%00",
        "carrier=%ED%A0%80",
        "warehouse=%00",
        "warehouse=99999999999999999999",
    ):
        for path in ("/ops", "/api/ops"):
            answer = _request(web, "GET", f"{path}?{query}")
            assert answer.status in (200, 400), (path, query, answer.status)


def test_web_chunked_bodies_are_not_buffered(web: Server) -> None:
    before = _peak_rss_kb(web.proc.pid)
    answer, _sent = _send_chunked(web, "/track/ORD1?customer=7", 31 * 1024 * 1024)
    grown = _peak_rss_kb(web.proc.pid) - before
    _assert_client_error(answer, 405)
    assert grown < MAX_GROWTH_KB, f"peak RSS grew by {grown} kB"
    assert httpx.get(web.url + "/healthz", timeout=5).status_code == 200


def test_web_with_the_database_down_answers_503_within_a_second() -> None:
    down = f"postgresql://postgres@127.0.0.1:{_free_port()}/nothing"
    with WebServer(down, port=0, listen=False) as server:
        for path in (
            "/healthz",
            "/track/ORD1?customer=7",
            "/api/track/ORD1?customer=7",
            "/api/ops",
        ):
            started = time.monotonic()
            r = httpx.get(server.url + path, timeout=40)
            elapsed = time.monotonic() - started
            assert elapsed < 2.5, (path, elapsed)
            if path == "/api/ops":  # the board shows that it could not read, as panels
                assert r.status_code in (200, 503), (path, r.status_code)
                if r.status_code == 200:
                    assert r.json()["snapshot_error"], r.text
            else:
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers.get("retry-after"), path


def test_web_healthz_on_an_unmigrated_database_is_503_with_a_hint(pg_server: PgServer) -> None:
    name = f"test_empty_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with WebServer(pg_server.dsn(name), port=0, listen=False) as server:
            r = httpx.get(server.url + "/healthz", timeout=10)
            assert r.status_code == 503, r.text
            assert "orderdb migrate" in r.text
    finally:
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_web_waits_longer_for_a_busy_pool_than_for_an_absent_database(db_dsn: str) -> None:
    """The 1 s limit is for a database that does not answer: while every connection of the pool
    is lent out (the database is there, busy), a page waits for one to come back."""
    from psycopg_pool import ConnectionPool

    from orderdb.web.data import CONNECT_WAIT, Gate

    with ConnectionPool(db_dsn, min_size=1, max_size=1, open=True) as pool:
        gate = Gate(pool)
        held = gate.getconn()
        releaser = threading.Timer(CONNECT_WAIT + 0.5, gate.putconn, args=(held,))
        releaser.start()
        started = time.monotonic()
        with gate.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - started >= CONNECT_WAIT + 0.4
        releaser.join()
        assert gate.in_use == 0
