"""RFC 9457 problem details from both HTTP servers, and the OpenAPI document of
``orderdb ingest serve``: every error answer is ``application/problem+json`` with a documented
``type`` (which the server itself documents at that URI), ``title``, ``status`` equal to the HTTP
status, ``detail``, the extension members (``field``, ``sqlstate``, ``retry_after``) and the
deprecated ``error``/``message``; ``GET /openapi.json`` is a valid OpenAPI 3.1 document, equal to
docs/ingest-openapi.json, describing every route and every problem type the server answers
with; schemathesis, signing what it generates, finds no 5xx."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from orderdb import problems
from orderdb.integrations.http import IngestApp, sign, sign_status
from orderdb.web import WebServer

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: the routes of the carriers' own push formats (tests/test_carrier_push_routes.py)
PUSHES = ("/hooks/sf/", "/hooks/kuaidi100/")
SECRETS = {
    "PQ": "pq-secret-0123456789abcdef",
    "SLOWPQ": "slowpq-secret-0123456789abcdef",
    "pqwms": "pqwms-secret-0123456789abcdef",
}


@pytest.fixture(scope="module")
def ingest(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for name, kind, rate, burst in (
            ("PQ", "carrier", 100000, 100000),
            ("SLOWPQ", "carrier", 1, 1),
            ("pqwms", "wms", 100000, 100000),
        ):
            conn.execute(
                "SELECT orderdb.set_integration(%s, %s, %s, %s, %s)",
                (name, kind, SECRETS[name], rate, burst),
            )
    app = IngestApp(db_dsn, pool_size=3, status_pool_size=2).app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _problem(r: httpx.Response, status: int, type_uri: str) -> dict[str, Any]:
    """Asserts ``r`` is an RFC 9457 problem of ``type_uri`` with ``status``; returns it."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == problems.MEDIA_TYPE, r.headers
    doc = r.json()
    assert isinstance(doc, dict), doc
    assert doc["type"] == type_uri, doc
    assert doc["status"] == status, doc
    assert isinstance(doc["title"], str) and doc["title"], doc
    assert isinstance(doc["detail"], str) and doc["detail"], doc
    if type_uri == problems.ABOUT_BLANK:  # RFC 9457 4.2.1: the title is the status phrase
        from http import HTTPStatus

        assert doc["title"] == HTTPStatus(status).phrase, doc
    else:
        kind = problems.PROBLEM_TYPES[type_uri.removeprefix("/problems/")]
        assert (doc["title"], kind.status) == (kind.title, status), doc
        assert doc["error"] == kind.code, doc  # deprecated, kept for one release
    assert doc["message"] == doc["detail"], doc  # deprecated, kept for one release
    assert None not in doc.values(), doc
    return doc


def _post(
    client: httpx.Client, path: str, body: Any, secret: str | None, **headers: str
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", **headers}
    if secret is not None:
        hdrs["X-OrderDB-Signature"] = sign(secret, raw)
    return client.post(path, content=raw, headers=hdrs)


def _scan(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"pq-{time.monotonic_ns()}",
        "tracking_number": "PQT1",
        "status": "50",
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }


# -- ingest serve: problem details ----------------------------------------------------------------


def test_every_ingest_error_is_a_problem(ingest: str) -> None:
    with httpx.Client(base_url=ingest, timeout=10) as c:
        _problem(
            _post(c, "/hooks/carriers/NOPE", _scan(), None), 404, "/problems/unknown-integration"
        )
        doc = _problem(
            _post(c, "/hooks/carriers/PQ", _scan(), "wrong"), 401, "/problems/bad-signature"
        )
        assert "X-OrderDB-Signature" in doc["detail"]
        _problem(_post(c, "/hooks/carriers/PQ", b"[1]", SECRETS["PQ"]), 400, "/problems/bad-json")
        _problem(_post(c, "/hooks/carriers/PQ", b"{x", SECRETS["PQ"]), 400, "/problems/bad-json")
        doc = _problem(
            _post(c, "/hooks/carriers/PQ", _scan(timestamp="2026-01-01T00:00:00"), SECRETS["PQ"]),
            422,
            "/problems/invalid-field",
        )
        assert doc["field"] == "timestamp"
        # the database's own check (22023): the field and the SQLSTATE
        doc = _problem(
            _post(c, "/hooks/carriers/PQ", _scan(timestamp="2999-01-01T00:00:00Z"), SECRETS["PQ"]),
            422,
            "/problems/invalid-field",
        )
        assert (doc["field"], doc["sqlstate"]) == ("timestamp", "22023"), doc
        # a declared oversize body is answered before it is sent (so send none of it)
        host, port = ingest.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /hooks/carriers/PQ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                b"\r\nContent-Length: 70000\r\n\r\n"
            )
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            too_large = httpx.Response(
                answer.status, headers=answer.getheaders(), content=answer.read()
            )
        _problem(too_large, 413, "/problems/body-too-large")
        assert too_large.headers["connection"] == "close"
        wms = {
            "event_id": "pq-w-1",
            "order_id": 999999999,
            "event_type": "PICKED",
            "timestamp": "2026-01-01T00:00:00Z",
        }
        r = _post(c, "/hooks/wms", wms, SECRETS["pqwms"], **{"X-OrderDB-Integration": "pqwms"})
        assert _problem(r, 404, "/problems/not-found")["sqlstate"] == "OD004"
        # rate limited: retry_after as a member and as the header
        codes = [_post(c, "/hooks/carriers/SLOWPQ", _scan(), SECRETS["SLOWPQ"]) for _ in range(3)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited, [r.status_code for r in codes]
        doc = _problem(limited[0], 429, "/problems/rate-limited")
        assert doc["retry_after"] >= 1 and limited[0].headers["retry-after"] == str(
            doc["retry_after"]
        )
        # a status query without a signature
        r = c.get("/status/PQT1")
        doc = _problem(r, 401, "/problems/bad-signature")
        assert set(doc) == {"type", "title", "status", "detail", "error", "message"}
        # signed, for a number nobody knows
        target = "/status/PQ-NOBODY"
        r = c.get(
            target, headers={"X-OrderDB-Integration": "PQ", **sign_status(SECRETS["PQ"], target)}
        )
        _problem(r, 404, "/problems/not-found")
        # what the framework answers: no such path, method not allowed
        _problem(c.get("/no/such/path"), 404, problems.ABOUT_BLANK)
        r = c.get("/hooks/wms")
        _problem(r, 405, problems.ABOUT_BLANK)
        assert "POST" in r.headers["allow"]


def test_every_problem_type_is_documented_at_its_uri(ingest: str) -> None:
    with httpx.Client(base_url=ingest, timeout=10) as c:
        for kind in problems.types_for("ingest"):
            page = c.get(kind.uri)
            assert page.status_code == 200, kind
            assert page.headers["content-type"].startswith("text/html")
            assert kind.title in page.text and str(kind.status) in page.text
        _problem(c.get("/problems/no-such-type"), 404, problems.ABOUT_BLANK)


def test_problem_body_members() -> None:
    kind = problems.PROBLEM_TYPES["invalid-field"]
    body = problems.problem_body(kind, "x is required", field="x", sqlstate=None)
    assert body == {
        "type": "/problems/invalid-field",
        "title": kind.title,
        "status": 422,
        "detail": "x is required",
        "field": "x",
        "error": "invalid_field",
        "message": "x is required",
    }
    blank = problems.problem_body(405)
    assert (blank["type"], blank["title"], blank["status"]) == (
        "about:blank",
        "Method Not Allowed",
        405,
    )
    # every type's URI is a full path (RFC 9457 3.1.1) and its slug is unique
    assert all(t.uri.startswith("/problems/") for t in problems.PROBLEM_TYPES.values())


# -- ingest serve: the OpenAPI document ----------------------------------------------------------


def test_openapi_document_is_served_valid_and_equal_to_the_docs_copy(ingest: str) -> None:
    from openapi_spec_validator import validate

    r = httpx.get(f"{ingest}/openapi.json", timeout=10)  # no signature: it is documentation
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1.")
    assert (DOCS / "ingest-openapi.json").read_bytes() == r.content, (
        "docs/ingest-openapi.json is stale: python -m orderdb.integrations.openapi "
        "docs/ingest-openapi.json"
    )
    # every route of the server is described, and nothing else
    routes = {"/hooks/carriers/{carrier}", "/hooks/wms", "/status/{tracking_number}", "/healthz"}
    routes |= {"/hooks/carriers/{carrier}/batch"}
    routes |= {"/openapi.json", "/problems/{slug}"}
    routes |= {"/hooks/sf/route-push/{token}", "/hooks/kuaidi100/callback"}
    assert set(doc["paths"]) == routes
    # every problem type the server answers with is named in the document
    text = r.text
    for kind in problems.types_for("ingest"):
        assert f'"{kind.uri}"' in text, kind
    # bounds the server enforces
    carrier = doc["components"]["schemas"]["CarrierEvent"]
    assert carrier["properties"]["event_id"]["maxLength"] == 255
    assert set(carrier["required"]) == {"event_id", "tracking_number", "status", "timestamp"}
    assert "X-OrderDB-Signature" in json.dumps(doc["components"]["securitySchemes"])


def test_schemathesis_finds_no_server_error(ingest: str) -> None:
    """Cases generated from the document, signed as the document says, never answer 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{ingest}/openapi.json")
    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()
    with httpx.Client(base_url=ingest, timeout=15) as client:
        for operation in schema.get_all_operations():
            op = operation.ok()

            @given(case=op.as_strategy())
            @settings(
                max_examples=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Any) -> None:
                path = case.formatted_path
                headers = {k: str(v) for k, v in (case.headers or {}).items()}
                if "{carrier}" in case.operation.path:
                    path = "/hooks/carriers/PQ"
                if case.method.upper() == "POST":
                    if case.operation.path == "/hooks/wms":
                        headers["X-OrderDB-Integration"] = "pqwms"
                        secret = SECRETS["pqwms"]
                    else:
                        secret = SECRETS["PQ"]
                    raw = json.dumps(case.body).encode() if case.body is not None else b""
                    headers["Content-Type"] = "application/json"
                    headers["X-OrderDB-Signature"] = sign(secret, raw)
                    r = client.post(path, content=raw, headers=headers)
                else:
                    request = client.build_request("GET", path, params=case.query or None)
                    target = request.url.raw_path.decode()
                    if case.operation.path.startswith("/status/"):
                        headers["X-OrderDB-Integration"] = "PQ"
                        headers.update(sign_status(SECRETS["PQ"], target))
                    r = client.get(target, headers=headers)
                seen[(case.operation.path, r.status_code)] += 1
                if r.status_code >= 500:
                    failures.append(f"{case.method} {path}: {r.status_code} {r.text[:200]}")
                elif r.status_code >= 400 and path.startswith(PUSHES):
                    # the carriers' push routes refuse in the carrier's own format (a path they
                    # do not match, a wrong method: about:blank)
                    media = r.headers["content-type"]
                    assert media in ("application/json", problems.MEDIA_TYPE), (path, r.text)
                elif r.status_code >= 400:
                    assert r.headers["content-type"] == problems.MEDIA_TYPE, (path, r.text)

            run()
    assert not failures, failures
    # signed as documented, generated bodies get through to the database
    assert seen[("/hooks/carriers/{carrier}", 200)] > 0, seen


# -- orderdb web: problem details for JSON clients ------------------------------------------------


@pytest.fixture(scope="module")
def web(db_dsn: str) -> Iterator[str]:
    with WebServer(db_dsn, port=0, listen=False) as server:
        yield server.url


def test_web_json_errors_are_problems(web: str) -> None:
    with httpx.Client(base_url=web, timeout=10) as c:
        api = c.get("/api/track/ORD2099010199999999", params={"customer": 7})
        doc = _problem(api, 404, "/problems/not-found")
        assert doc["detail"] == "No order with this number for this customer."
        events = c.get("/api/track/ORD2099010199999999/events", params={"customer": 7})
        assert (events.status_code, events.content) == (404, api.content)
        # the HTML page keeps its HTML 404; asked for JSON, it answers the same problem
        page = c.get("/track/ORD2099010199999999", params={"customer": 7})
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        asked = c.get(
            "/track/ORD2099010199999999",
            params={"customer": 7},
            headers={"Accept": "application/json"},
        )
        assert (asked.status_code, asked.content) == (404, api.content)
        bad = c.get("/api/ops", params={"carrier": "S\x01F"})
        assert _problem(bad, 400, "/problems/invalid-parameter")["field"] == "carrier"
        html_bad = c.get("/ops", params={"carrier": "S\x01F"})
        assert html_bad.status_code == 400 and "problem" not in html_bad.headers["content-type"]
        _problem(c.get("/api/nothing-here"), 404, problems.ABOUT_BLANK)
        _problem(c.post("/api/ops"), 405, problems.ABOUT_BLANK)
        _problem(c.get("/problems/nothing"), 404, problems.ABOUT_BLANK)
        for kind in problems.types_for("web"):
            assert c.get(kind.uri).status_code == 200, kind


def test_web_database_away_is_a_problem_with_retry_after() -> None:
    socket_ = socket.socket()
    socket_.bind(("127.0.0.1", 0))
    port = socket_.getsockname()[1]
    socket_.close()
    down = f"postgresql://postgres@127.0.0.1:{port}/nothing"
    with WebServer(down, port=0, listen=False) as server:
        r = httpx.get(server.url + "/api/track/ORD1", params={"customer": 7}, timeout=30)
        doc = _problem(r, 503, "/problems/database-unavailable")
        assert doc["retry_after"] == 5 and r.headers["retry-after"] == "5"
        health = httpx.get(server.url + "/healthz", timeout=30)
        assert health.status_code == 503 and health.headers["content-type"].startswith("text/plain")
        health_json = httpx.get(
            server.url + "/healthz", headers={"Accept": "application/json"}, timeout=30
        )
        _problem(health_json, 503, "/problems/database-unavailable")
