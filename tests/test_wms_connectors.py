"""The WMS connectors (orderdb/integrations/wms): ``http`` against a fake WMS that implements
docs/wms-protocol.md (signature checked with the document's own code, idempotency keys replayed,
problem details and every class of error), and ``sim`` on a real database, calling back directly
and through a running ingestion server."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import standardwebhooks
import uvicorn
from psycopg.types.json import Jsonb

from orderdb.integrations import wms
from orderdb.integrations.carriers.simulated import SimulatedCarrier
from orderdb.integrations.http import IngestApp
from orderdb.integrations.wms import (
    WmsAccepted,
    WmsCommand,
    WmsRejected,
    WmsUnavailable,
)
from orderdb.integrations.wms.http import (
    classify,
    request_body,
    request_headers,
    retry_after_seconds,
)
from orderdb.integrations.wms.sim import SimWmsConnector

DOC = Path(__file__).resolve().parents[1] / "docs" / "wms-protocol.md"
SECRET = "wms-connector-secret-0123456789"
WAREHOUSE = 4301


def _doc_verifier() -> Any:
    """verify_orderdb_request, exactly as docs/wms-protocol.md prints it."""
    text = DOC.read_text()
    block = re.search(r"```python\n(import base64.*?def verify_orderdb_request.*?)```", text, re.S)
    assert block, "docs/wms-protocol.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(block[1], str(DOC), "exec"), namespace)  # noqa: S102 - the document's own code
    return namespace["verify_orderdb_request"]


verify_orderdb_request = _doc_verifier()


# -- a fake WMS that implements the protocol -------------------------------------------------------


@dataclass
class FakeWms:
    """What the fake WMS saw and remembers; ``script`` maps an order_no to a canned answer
    (status, headers, body bytes, seconds to wait first)."""

    secret: bytes
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, tuple[bytes, int, bytes]] = field(default_factory=dict)  # key -> body, ..
    script: dict[str, tuple[int, dict[str, str], bytes, float]] = field(default_factory=dict)
    connections: set[tuple[str, int]] = field(default_factory=set)
    orders: dict[str, str] = field(default_factory=dict)  # wms_order_id -> state
    lock: threading.Lock = field(default_factory=threading.Lock)


def _problem(status: int, title: str, detail: str, **extra: Any) -> tuple[int, bytes]:
    body = {"type": f"https://wms.example/problems/{status}", "title": title, "status": status}
    return status, json.dumps({**body, "detail": detail, **extra}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    wms: FakeWms

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _answer(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        media: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _problem(self, status: int, title: str, detail: str, **extra: Any) -> None:
        code, body = _problem(status, title, detail, **extra)
        self._answer(code, body, media="application/problem+json")

    def _handle(self) -> None:
        wms = self.wms
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with wms.lock:
            wms.connections.add(self.client_address)
            wms.requests.append(
                {"method": self.command, "path": self.path, "headers": headers, "body": body}
            )
        if not verify_orderdb_request(wms.secret, headers, body):
            self._problem(401, "Bad signature", "webhook-signature does not verify")
            return
        key = headers.get("idempotency-key", "")
        if key != headers.get("webhook-id") or not key.startswith("orderdb-"):
            self._problem(400, "Bad idempotency key", f"Idempotency-Key {key!r}")
            return
        document = json.loads(body)
        scripted = wms.script.get(document["order_no"])
        if scripted is not None:
            status, extra, answer, pause = scripted
            time.sleep(pause)
            self._answer(status, answer, extra)
            return
        with wms.lock:
            seen = wms.answers.get(key)
        if seen is not None:
            first_body, status, answer = seen
            if first_body != body:
                self._problem(422, "Idempotency key reused", f"{key} came with another body")
            else:
                self._answer(status, answer, {"Idempotent-Replayed": "true"})
            return
        status, answer = self._route(document)
        if status < 500:
            with wms.lock:
                wms.answers[key] = (body, status, answer)
        self._answer(status, answer)

    def _route(self, document: dict[str, Any]) -> tuple[int, bytes]:
        wms = self.wms
        match = re.fullmatch(r"/api/orders(?:/([^/]+)(/cancel)?)?", self.path)
        if match is None:
            return _problem(404, "Not found", self.path)
        from urllib.parse import unquote

        wms_order_id = unquote(match[1]) if match[1] else None
        kind = {
            ("POST", False, False): "create",
            ("PUT", True, False): "update",
            ("POST", True, True): "cancel",
        }.get((self.command, wms_order_id is not None, match[2] is not None))
        if kind is None or kind != document["kind"]:
            return _problem(400, "Kind does not match", f"{self.command} {self.path}")
        if kind == "create":
            new_id = f"W/{document['order_id']} a"  # a slash and a blank: quoted in paths
            with wms.lock:
                wms.orders[new_id] = "open"
            return 201, json.dumps({"wms_order_id": new_id, "state": "open"}).encode()
        if wms_order_id != document["wms_order_id"] or wms_order_id not in wms.orders:
            return _problem(404, "Unknown order", f"no order {wms_order_id}")
        with wms.lock:
            state = wms.orders[wms_order_id]
            if state == "cancelled":
                return _problem(422, "Order cancelled", f"{wms_order_id} is cancelled")
            wms.orders[wms_order_id] = "cancelled" if kind == "cancel" else "open"
            answer = {"wms_order_id": wms_order_id, "state": wms.orders[wms_order_id]}
        return 200, json.dumps(answer).encode()


@pytest.fixture
def fake_wms() -> Iterator[tuple[FakeWms, str]]:
    wms_state = FakeWms(SECRET.encode())
    handler = type("Handler", (_Handler,), {"wms": wms_state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield wms_state, f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


def _command(kind: str = "create", **changes: Any) -> WmsCommand:
    base = WmsCommand(
        command_id=changes.pop("command_id", 1042),
        kind=kind,
        warehouse_id=1,
        order_id=77,
        order_no=changes.pop("order_no", "ORD2026120600000077"),
        wms_order_id=None,
        payload={
            "order_id": 77,
            "order_no": "ORD2026120600000077",
            "items": [{"sku": "DEMO-004", "quantity": 2, "unit_price": "19.90"}],
            "ship_to": {"name": "李雷", "city": "深圳市"},
        },
        attempt=1,
    )
    return replace(base, **changes)


# -- http: the happy path ------------------------------------------------------------------------


def test_both_connectors_are_installed_and_an_unknown_one_names_them() -> None:
    assert {"http", "sim"} <= set(wms.available())
    with pytest.raises(LookupError, match=r"no WMS connector 'acme'.*available: .*http.*sim"):
        wms.load("acme", {})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"secret": SECRET}, "url is required"),
        ({"url": "ftp://wms.example", "secret": SECRET}, "url must be an http or https URL"),
        ({"url": "https://wms.example/api?x=1", "secret": SECRET}, "query or a fragment"),
        ({"url": "https://wms.example/api"}, "secret is required"),
        ({"url": "https://wms.example", "secret": SECRET, "timeout": 0}, "timeout must be"),
        ({"url": "https://wms.example", "secret": SECRET, "timeout": "soon"}, "timeout must be"),
    ],
)
def test_http_settings_are_checked_naming_the_setting(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wms.load("http", config)


def test_http_create_update_cancel_signed_with_one_key_per_command(
    fake_wms: tuple[FakeWms, str],
) -> None:
    state, url = fake_wms
    connector = wms.load("http", {"url": url + "/", "secret": SECRET, "timeout": 5})
    assert SECRET not in repr(connector)
    try:
        created = connector.send(_command())
        assert created.wms_order_id == "W/77 a"
        assert created.response == {
            "http_status": 201,
            "body": {"wms_order_id": "W/77 a", "state": "open"},
        }
        updated = connector.send(_command("update", command_id=1043, wms_order_id="W/77 a"))
        assert updated.wms_order_id == "W/77 a"
        cancelled = connector.send(
            _command(
                "cancel",
                command_id=1044,
                wms_order_id="W/77 a",
                payload={"order_id": 77, "order_no": "ORD2026120600000077", "reason": "changed"},
            )
        )
        assert cancelled.response["body"]["state"] == "cancelled"
    finally:
        connector.close()
    seen = state.requests
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", "/api/orders"),
        ("PUT", "/api/orders/W%2F77%20a"),
        ("POST", "/api/orders/W%2F77%20a/cancel"),
    ]
    for request, command_id in zip(seen, (1042, 1043, 1044), strict=True):
        headers = request["headers"]
        assert headers["idempotency-key"] == f"orderdb-{command_id}" == headers["webhook-id"]
        assert headers["x-orderdb-attempt"] == "1"
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("orderdb/")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        # any Standard Webhooks library verifies it too
        standardwebhooks.Webhook(SECRET.encode()).verify(request["body"], headers)
    first = json.loads(seen[0]["body"])
    assert first == {
        "command_id": 1042,
        "kind": "create",
        "warehouse_id": 1,
        "order_id": 77,
        "order_no": "ORD2026120600000077",
        "wms_order_id": None,
        "order": _command().payload,
    }
    assert "李雷".encode() in seen[0]["body"]  # UTF-8, not escaped
    assert len(state.connections) == 1, "one kept-alive connection for the three requests"


def test_http_resent_command_gets_the_first_answer(fake_wms: tuple[FakeWms, str]) -> None:
    state, url = fake_wms
    connector = wms.load("http", {"url": url, "secret": SECRET})
    try:
        first = connector.send(_command())
        again = connector.send(_command(attempt=2))
    finally:
        connector.close()
    assert again == first
    bodies = [r["body"] for r in state.requests]
    assert len(bodies) == 2 and bodies[0] == bodies[1], "the same bytes on every attempt"
    assert [r["headers"]["x-orderdb-attempt"] for r in state.requests] == ["1", "2"]
    assert len(state.orders) == 1, "the WMS created one order"


def test_http_wrong_secret_is_refused_for_good(fake_wms: tuple[FakeWms, str]) -> None:
    _state, url = fake_wms
    connector = wms.load("http", {"url": url, "secret": "not-the-secret"})
    try:
        with pytest.raises(WmsRejected, match=r"refused command 1042 with 401 .*Bad signature"):
            connector.send(_command())
    finally:
        connector.close()


def test_http_same_key_with_another_body_is_refused(fake_wms: tuple[FakeWms, str]) -> None:
    _state, url = fake_wms
    connector = wms.load("http", {"url": url, "secret": SECRET})
    try:
        connector.send(_command())
        with pytest.raises(WmsRejected, match=r"422 .*Idempotency key reused"):
            connector.send(_command(payload={"items": [{"sku": "OTHER", "quantity": 1}]}))
    finally:
        connector.close()


def test_http_update_without_the_wms_order_id_is_refused_without_a_request(
    fake_wms: tuple[FakeWms, str],
) -> None:
    state, url = fake_wms
    connector = wms.load("http", {"url": url, "secret": SECRET})
    try:
        with pytest.raises(WmsRejected, match="never accepted a create"):
            connector.send(_command("update"))
    finally:
        connector.close()
    assert state.requests == []


# -- http: every class of error ------------------------------------------------------------------


def _problem_body(status: int, title: str) -> bytes:
    return _problem(status, title, f"detail of {status}")[1]


PROBLEM = {"Content-Type": "application/problem+json"}
ERRORS = [
    # order_no, (status, headers, body), expected class, message pattern, retry_after
    (
        "E503",
        (503, {**PROBLEM, "Retry-After": "7"}, _problem_body(503, "Maintenance")),
        WmsUnavailable,
        r"answered 503 \(type https://wms.example/problems/503; title Maintenance; "
        r"detail detail of 503\); retry after 7 s",
        7.0,
    ),
    ("E500", (500, {}, b"Internal Server Error"), WmsUnavailable, r"500 \(Internal", None),
    (
        "E429",
        (429, {**PROBLEM, "Retry-After": "2"}, _problem_body(429, "Slow down")),
        WmsUnavailable,
        r"429 .*Slow down.*retry after 2 s",
        2.0,
    ),
    ("E408", (408, {}, b""), WmsUnavailable, r"answered 408 \(no body\)", None),
    ("E409", (409, PROBLEM, _problem_body(409, "In progress")), WmsUnavailable, r"409", None),
    (
        "E400",
        (400, PROBLEM, _problem(400, "Bad order", "no ship_to", field="order.ship_to")[1]),
        WmsRejected,
        r"refused command 1042 with 400 \(.*title Bad order; detail no ship_to; "
        r"field order.ship_to\)",
        None,
    ),
    ("E404", (404, PROBLEM, _problem_body(404, "Gone")), WmsRejected, r"with 404", None),
    (
        "E422",
        (422, PROBLEM, _problem_body(422, "Unknown SKU")),
        WmsRejected,
        r"422 .*Unknown SKU",
        None,
    ),
    (
        "E302",
        (302, {"Location": "https://elsewhere.example/api/orders"}, b""),
        WmsRejected,
        r"302, a redirect to https://elsewhere.example/api/orders: redirects are not followed",
        None,
    ),
    ("NOID", (201, {}, b'{"state": "open"}'), WmsRejected, r"201 without wms_order_id", None),
    ("TEXT", (201, {}, b"created"), WmsRejected, r"201 with a body that is not JSON", None),
    ("LIST", (200, {}, b"[1]"), WmsRejected, r"JSON that is not an object", None),
    (
        "BADID",
        (201, {}, b'{"wms_order_id": 17}'),
        WmsRejected,
        r"wms_order_id 17: it must be a string of 1 to 255",
        None,
    ),
    (
        "HUGE",
        (201, {}, b'{"wms_order_id": "x", "pad": "' + b"x" * 70000 + b'"}'),
        WmsRejected,
        r"body over 65536 bytes",
        None,
    ),
]


@pytest.mark.parametrize(
    ("order_no", "answer", "error", "message", "retry_after"),
    ERRORS,
    ids=[e[0] for e in ERRORS],
)
def test_http_error_answers_map_to_unavailable_or_rejected(
    fake_wms: tuple[FakeWms, str],
    order_no: str,
    answer: tuple[int, dict[str, str], bytes],
    error: type[Exception],
    message: str,
    retry_after: float | None,
) -> None:
    state, url = fake_wms
    state.script[order_no] = (*answer, 0.0)
    connector = wms.load("http", {"url": url, "secret": SECRET})
    try:
        with pytest.raises(error, match=message) as raised:
            connector.send(_command(order_no=order_no))
    finally:
        connector.close()
    assert f"POST {url}/orders" in str(raised.value)
    if isinstance(raised.value, WmsUnavailable):
        assert raised.value.retry_after == retry_after


def test_http_timeout_and_refused_connection_are_unavailable(
    fake_wms: tuple[FakeWms, str],
) -> None:
    state, url = fake_wms
    state.script["SLOW"] = (201, {}, b'{"wms_order_id": "late"}', 1.5)
    connector = wms.load("http", {"url": url, "secret": SECRET, "timeout": 0.3})
    started = time.monotonic()
    try:
        with pytest.raises(WmsUnavailable, match=r"no answer within 0.3 s \(ReadTimeout\)"):
            connector.send(_command(order_no="SLOW"))
    finally:
        connector.close()
    assert time.monotonic() - started < 1.4
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = wms.load("http", {"url": f"http://127.0.0.1:{port}", "secret": SECRET})
    try:
        with pytest.raises(WmsUnavailable, match=r"POST http://127.0.0.1:\d+/orders: ConnectError"):
            closed.send(_command())
    finally:
        closed.close()


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30", now) == 30.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert retry_after_seconds("86400000", now) == 3600.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_an_update_may_answer_204_without_a_body() -> None:
    command = _command("update", wms_order_id="W-9")
    accepted = classify(command, "PUT x", 204, {}, b"")
    assert accepted == WmsAccepted("W-9", {"http_status": 204, "body": {}})


def test_request_body_is_stable() -> None:
    assert request_body(_command()) == request_body(_command(attempt=3))
    assert request_body(_command()).startswith(b'{"command_id":1042,"kind":"create",')
    # money read as Decimal goes out as JSON numbers, as the database stores it
    money = _command(payload={"shipping_fee": Decimal("8.00"), "items": [{"unit_price": 19.9}]})
    assert b'"order":{"items":[{"unit_price":19.9}],"shipping_fee":8.0}' in request_body(money)


# -- sim on a real database ----------------------------------------------------------------------


def _dispatched_order(dsn: str, sku: str = "WMS-SIM-A") -> tuple[int, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, %s, 1000)", (WAREHOUSE, sku))
        row = conn.execute(
            "SELECT order_id, order_no FROM orderdb.create_order(1, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": sku, "quantity": 1}])),
        ).fetchone()
        assert row is not None
        for version, status in enumerate(("confirmed", "dispatched"), start=1):
            conn.execute("SELECT orderdb.transition_order(%s, %s, %s)", (row[0], status, version))
    return int(row[0]), str(row[1])


_command_ids = iter(range(5000, 10**6))


def _sim_command(order_id: int, order_no: str, kind: str = "create", **changes: Any) -> WmsCommand:
    return WmsCommand(
        command_id=changes.pop("command_id", None) or next(_command_ids),
        kind=kind,
        warehouse_id=WAREHOUSE,
        order_id=order_id,
        order_no=order_no,
        wms_order_id=changes.pop("wms_order_id", None),
        payload={
            "order_id": order_id,
            "order_no": order_no,
            "items": [{"sku": "x", "quantity": 1}],
        },
        attempt=changes.pop("attempt", 1),
    )


def _order(dsn: str, order_id: int) -> tuple[str, str | None, str | None]:
    """status, the shipment's carrier and tracking number."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT o.status, s.carrier, s.tracking_number FROM orderdb.orders o"
            " LEFT JOIN orderdb.shipments s USING (warehouse_id, order_id)"
            " WHERE o.order_id = %s",
            (order_id,),
        ).fetchone()
    assert row is not None
    return str(row[0]), row[1], row[2]


def _wms_events(dsn: str, order_id: int, source: str = "sim") -> list[tuple[str, str]]:
    """(event_id, event_type) of the order's callbacks from ``source``, as they arrived."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_id, event_type FROM orderdb.wms_events"
            " WHERE order_id = %s AND source = %s ORDER BY received_at, event_id",
            (order_id, source),
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_sim_settings_are_checked_naming_the_setting() -> None:
    for config, message in (
        ({}, "callback_url or dsn is required"),
        ({"dsn": "x", "delay_seconds": -1}, "delay_seconds must be between 0 and 3600"),
        ({"dsn": "x", "exception_rate": 2}, "exception_rate must be between 0 and 1"),
        ({"dsn": "x", "unavailable_rate": "often"}, "unavailable_rate must be a number"),
        ({"callback_url": "http://127.0.0.1:1/hooks/wms"}, "callback_secret is required"),
        ({"callback_url": "ftp://x", "callback_secret": "s"}, "callback_url must be an http"),
    ):
        with pytest.raises(ValueError, match=message):
            wms.load("sim", config)


def test_sim_ships_a_dispatched_order_once_with_a_carrier_tracking_number(db_dsn: str) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    connector = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 0.05, "warehouse_id": WAREHOUSE})
    command = _sim_command(order_id, order_no)
    accepted = connector.send(command)
    assert accepted.wms_order_id == f"SIM-{order_no}"
    # the answer was lost: the dispatcher sends the command again
    assert connector.send(replace(command, attempt=2)) == accepted
    connector.close()
    assert connector.pending() == 0
    status, carrier, number = _order(db_dsn, order_id)
    assert (status, carrier) == ("shipped", "SIM")
    assert number is not None and re.fullmatch(r"SIM\d{16}", number)
    # a number the simulated carrier tells a story for, starting when the parcel shipped
    started = SimulatedCarrier().start_of(number)
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60
    cid = command.command_id
    assert _wms_events(db_dsn, order_id) == [
        (f"sim-{cid}-PICKED", "PICKED"),
        (f"sim-{cid}-PACKED", "PACKED"),
        (f"sim-{cid}-SHIPPED", "SHIPPED"),
    ]
    assert isinstance(connector, SimWmsConnector)
    assert connector.callbacks == {"PICKED": 1, "PACKED": 1, "SHIPPED": 1}
    # a simulated warehouse that never saw it (other settings: another process, say) plays the
    # command again: its callbacks are duplicates, nothing changes
    other = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 0})
    assert other.send(command).wms_order_id == accepted.wms_order_id
    other.close()
    assert len(_wms_events(db_dsn, order_id)) == 3
    assert _order(db_dsn, order_id)[0] == "shipped"


def test_sim_exception_puts_the_order_on_hold(db_dsn: str) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    connector = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 0, "exception_rate": 1})
    connector.send(_sim_command(order_id, order_no))
    connector.close()
    assert _order(db_dsn, order_id)[0] == "on_hold"
    events = _wms_events(db_dsn, order_id)
    assert [t for _, t in events] == ["EXCEPTION"]
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT payload ->> 'exception_type' FROM orderdb.wms_events WHERE event_id = %s",
            (events[0][0],),
        ).fetchone()
    assert row is not None and row[0] in ("STOCK_NOT_FOUND", "DAMAGED_IN_PICKING")


def test_sim_holds_an_incomplete_address_until_an_update_brings_the_flat(db_dsn: str) -> None:
    ship_to = {"name": "王芳", "phone": "13800138000", "city": "深圳市", "line1": "科技园路8号"}
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, 'WMS-SIM-ADDR', 10)", (WAREHOUSE,))
        row = conn.execute(
            "SELECT order_id, order_no FROM orderdb.create_order(1, %s, %s, NULL, NULL, %s)",
            (
                WAREHOUSE,
                Jsonb([{"sku": "WMS-SIM-ADDR", "quantity": 1}]),
                Jsonb({"ship_to": ship_to}),
            ),
        ).fetchone()
        assert row is not None
        order_id, order_no = int(row[0]), str(row[1])
        for version, status in enumerate(("confirmed", "dispatched"), start=1):
            conn.execute("SELECT orderdb.transition_order(%s, %s, %s)", (order_id, status, version))
    connector = wms.load(
        "sim", {"dsn": db_dsn, "delay_seconds": 0, "hold_incomplete_addresses": "true"}
    )
    create = _sim_command(order_id, order_no)
    connector.send(replace(create, payload={**create.payload, "ship_to": ship_to}))
    connector.close()
    assert _order(db_dsn, order_id)[0] == "on_hold"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        reason = conn.execute(
            "SELECT payload ->> 'exception_type' FROM orderdb.wms_events WHERE order_id = %s",
            (order_id,),
        ).fetchone()
        assert reason == ("ADDRESS_INCOMPLETE",)
        # customer service adds the flat and resumes the order; the WMS gets an update
        version = conn.execute(
            "SELECT version FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ).fetchone()
        assert version is not None
        fixed = {**ship_to, "line2": "3栋1201室"}
        amended = conn.execute(
            "SELECT version FROM orderdb.amend_order(%s, %s, %s)",
            (order_id, version[0], Jsonb({"ship_to": fixed})),
        ).fetchone()
        assert amended is not None
        conn.execute(
            "SELECT orderdb.transition_order(%s, 'dispatched', %s)", (order_id, amended[0])
        )
    update = _sim_command(order_id, order_no, "update", wms_order_id=f"SIM-{order_no}")
    resumed = connector.send(replace(update, payload={**update.payload, "ship_to": fixed}))
    assert resumed.response["result"] == "updated; picking resumed"
    connector.close()
    assert _order(db_dsn, order_id)[0] == "shipped"
    assert [t for _, t in _wms_events(db_dsn, order_id)] == [
        "EXCEPTION",
        "PICKED",
        "PACKED",
        "SHIPPED",
    ]
    with pytest.raises(ValueError, match="hold_incomplete_addresses must be true or false"):
        wms.load("sim", {"dsn": db_dsn, "hold_incomplete_addresses": "maybe"})


def test_sim_connectors_with_the_same_settings_are_one_warehouse(db_dsn: str) -> None:
    """Dispatcher threads each load their connector: to the orders they are one WMS."""
    order_id, order_no = _dispatched_order(db_dsn)
    settings = {"dsn": db_dsn, "delay_seconds": 0, "exception_rate": 1, "warehouse_id": 7}
    first, second = wms.load("sim", settings), wms.load("sim", dict(settings))
    assert isinstance(first, SimWmsConnector) and isinstance(second, SimWmsConnector)
    assert first.warehouse is second.warehouse
    create = _sim_command(order_id, order_no)
    accepted = first.send(create)
    first.close()
    assert _order(db_dsn, order_id)[0] == "on_hold"
    assert second.send(replace(create, attempt=2)) == accepted  # the first answer, no callbacks
    update = _sim_command(order_id, order_no, "update", wms_order_id=accepted.wms_order_id)
    assert second.send(update).response["result"] == "updated; picking resumed"
    second.close()
    assert [t for _, t in _wms_events(db_dsn, order_id)] == [
        "EXCEPTION",
        "PICKED",
        "PACKED",
        "SHIPPED",
    ]
    assert second.warehouse._threads == [], "the last connector closed stops the workers"


def test_sim_cancel_stops_the_callbacks_and_is_refused_once_shipped(db_dsn: str) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    connector = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 30})
    connector.send(_sim_command(order_id, order_no))
    wms_order_id = f"SIM-{order_no}"
    cancelled = connector.send(
        _sim_command(order_id, order_no, "cancel", wms_order_id=wms_order_id)
    )
    assert cancelled.wms_order_id == wms_order_id
    started = time.monotonic()
    connector.close()
    assert time.monotonic() - started < 5, "nothing left to wait for"
    assert _wms_events(db_dsn, order_id) == []
    assert _order(db_dsn, order_id)[0] == "dispatched"

    shipped_id, shipped_no = _dispatched_order(db_dsn)
    fast = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 0})
    fast.send(_sim_command(shipped_id, shipped_no))
    fast.close()
    with pytest.raises(WmsRejected, match=f"SIM-{shipped_no} has already shipped"):
        fast.send(_sim_command(shipped_id, shipped_no, "cancel", wms_order_id=f"SIM-{shipped_no}"))
    updated = fast.send(_sim_command(shipped_id, shipped_no, "update"))
    assert updated.wms_order_id == f"SIM-{shipped_no}"


def test_sim_outages_and_refusals(db_dsn: str) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    down = wms.load("sim", {"dsn": db_dsn, "unavailable_rate": 1})
    with pytest.raises(WmsUnavailable, match="simulated WMS outage"):
        down.send(_sim_command(order_id, order_no))
    down.close()
    connector = wms.load("sim", {"dsn": db_dsn})
    empty = replace(_sim_command(order_id, order_no), payload={"items": []})
    with pytest.raises(WmsRejected, match="has no items"):
        connector.send(empty)
    with pytest.raises(WmsRejected, match="kind 'waybill' is not one of create, update, cancel"):
        connector.send(_sim_command(order_id, order_no, "waybill"))
    connector.close()
    assert _wms_events(db_dsn, order_id) == []


def test_sim_close_is_bounded(db_dsn: str) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    connector = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 60, "close_timeout": 0.3})
    connector.send(_sim_command(order_id, order_no))
    started = time.monotonic()
    connector.close()
    assert time.monotonic() - started < 3
    assert connector.pending() == 0
    assert _order(db_dsn, order_id)[0] == "dispatched"


def test_sim_many_orders_at_once_each_called_back_in_order(db_dsn: str) -> None:
    orders = [_dispatched_order(db_dsn, sku="WMS-SIM-MANY") for _ in range(40)]
    connector = wms.load("sim", {"dsn": db_dsn, "delay_seconds": 0.02, "workers": 6})
    commands = [_sim_command(order_id, order_no) for order_id, order_no in orders]
    threads = [
        threading.Thread(target=lambda c=c: [connector.send(c) for _ in range(3)]) for c in commands
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connector.close()
    for (order_id, _), command in zip(orders, commands, strict=True):
        assert _order(db_dsn, order_id)[0] == "shipped"
        with psycopg.connect(db_dsn) as conn:
            rows = conn.execute(
                "SELECT event_type, outcome FROM orderdb.wms_events WHERE order_id = %s"
                " ORDER BY received_at",
                (order_id,),
            ).fetchall()
        assert rows == [("PICKED", "applied"), ("PACKED", "applied"), ("SHIPPED", "applied")], (
            command
        )


# -- sim through the ingestion server ------------------------------------------------------------


@pytest.fixture(scope="module")
def ingest_url(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT orderdb.set_integration('wms-sim', 'wms', %s, 1000, 1000)",
            ("sim-callback-secret-0123456789",),
        )
    app = IngestApp(db_dsn, pool_size=4, status_pool_size=1).app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/hooks/wms"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def test_sim_calls_back_through_the_ingestion_server(db_dsn: str, ingest_url: str) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    connector = wms.load(
        "sim",
        {
            "dsn": db_dsn,
            "delay_seconds": 0.05,
            "callback_url": ingest_url,
            "callback_secret": "sim-callback-secret-0123456789",
            "callback_integration": "wms-sim",
        },
    )
    assert "secret" not in repr(connector).replace("callback", "")
    command = _sim_command(order_id, order_no)
    connector.send(command)
    connector.close()
    status, carrier, number = _order(db_dsn, order_id)
    assert (status, carrier) == ("shipped", "SIM") and number is not None
    # the integration's name is the callbacks' source, as for any WMS posting to the hook
    cid = command.command_id
    assert _wms_events(db_dsn, order_id, source="wms-sim") == [
        (f"sim-{cid}-PICKED", "PICKED"),
        (f"sim-{cid}-PACKED", "PACKED"),
        (f"sim-{cid}-SHIPPED", "SHIPPED"),
    ]


def test_sim_callbacks_with_a_wrong_secret_are_refused_and_reported(
    db_dsn: str, ingest_url: str
) -> None:
    order_id, order_no = _dispatched_order(db_dsn)
    connector = wms.load(
        "sim",
        {
            "dsn": db_dsn,
            "delay_seconds": 0,
            "callback_url": ingest_url,
            "callback_secret": "wrong",
            "callback_integration": "wms-sim",
        },
    )
    command = _sim_command(order_id, order_no)
    connector.send(command)
    connector.close()
    assert isinstance(connector, SimWmsConnector)
    failures = connector.failures
    assert len(failures) == 1 and "answered 401" in failures[0], failures
    assert f"sim-{command.command_id}-PICKED" in failures[0]
    assert _order(db_dsn, order_id)[0] == "dispatched"


def test_the_documented_create_request_is_what_the_connector_sends() -> None:
    text = DOC.read_text()
    example = re.search(r"```http\n(POST /api/orderdb/orders HTTP/1.1\n.*?)\n```", text, re.S)
    assert example, "docs/wms-protocol.md lost its example request"
    head, body = example[1].split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    document = json.loads(body)
    command = WmsCommand(
        command_id=document["command_id"],
        kind=document["kind"],
        warehouse_id=document["warehouse_id"],
        order_id=document["order_id"],
        order_no=document["order_no"],
        wms_order_id=document["wms_order_id"],
        payload=document["order"],
        attempt=int(headers["X-OrderDB-Attempt"]),
    )
    assert request_body(command) == body.encode()
    sent = request_headers(
        command, "wms-connector-secret-change-me", body.encode(), int(headers["webhook-timestamp"])
    )
    for name, value in headers.items():
        if name != "Host":
            assert sent[name] == value, name


def _http_warehouse_orders(
    dsn: str, url: str, warehouse: int, sku: str, quantity: int, count: int
) -> list[tuple[int, str]]:
    """A warehouse whose WMS is the fake at ``url`` (http connector), stock of ``sku``, and
    ``count`` orders of ``quantity`` of it moved to dispatched (each queues a create command);
    their (order_id, order_no)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, %s, 100)", (warehouse, sku))
        conn.execute(
            "SELECT orderdb.set_warehouse_wms(%s, 'http', %s, %s, NULL, %s)",
            (warehouse, url, SECRET, Jsonb({"timeout": 5})),
        )
        orders = []
        for _ in range(count):
            row = conn.execute(
                "SELECT order_id, order_no FROM orderdb.create_order(1, %s, %s)",
                (warehouse, Jsonb([{"sku": sku, "quantity": quantity}])),
            ).fetchone()
            assert row is not None
            for version, status in enumerate(("confirmed", "dispatched"), start=1):
                conn.execute(
                    "SELECT orderdb.transition_order(%s, %s, %s)", (row[0], status, version)
                )
            orders.append((int(row[0]), str(row[1])))
    return orders


def test_http_through_the_dispatcher_end_to_end(db_dsn: str, fake_wms: tuple[FakeWms, str]) -> None:
    """set_warehouse_wms(http) + a dispatched order + one dispatcher round: the fake WMS gets the
    signed order document, get_order shows its id; a 503 is retried, a 422 is a dead letter."""
    from orderdb.integrations.wms.dispatch import Dispatcher

    state, url = fake_wms
    orders = _http_warehouse_orders(db_dsn, url, WAREHOUSE + 1, "WMS-HTTP-A", 2, 3)
    (ok_id, _), (busy_id, busy_no), (bad_id, bad_no) = orders
    state.script[busy_no] = (503, {"Retry-After": "30"}, _problem_body(503, "Maintenance"), 0.0)
    state.script[bad_no] = (422, PROBLEM, _problem_body(422, "Unknown SKU"), 0.0)
    with Dispatcher(db_dsn, worker="test-http") as dispatcher:
        report = dispatcher.run_once()
    assert (report.done, report.retried, report.dead) == (1, 1, 1), report
    with psycopg.connect(db_dsn) as conn:
        got = conn.execute("SELECT orderdb.get_order(%s)", (ok_id,)).fetchone()
        assert got is not None and got[0]["wms_order_id"] == f"W/{ok_id} a"
        rows = conn.execute(
            "SELECT order_id, status, last_error, next_attempt_at - now() > interval '20 s'"
            "  FROM orderdb.wms_commands WHERE order_id = ANY(%s) ORDER BY order_id",
            ([busy_id, bad_id],),
        ).fetchall()
    (_, busy_status, busy_error, waits), (_, bad_status, bad_error, _) = rows
    assert busy_status == "pending" and "503" in busy_error and "Maintenance" in busy_error
    assert waits, "Retry-After: 30 is honoured"
    assert bad_status == "dead" and "422" in bad_error and "Unknown SKU" in bad_error
    sent = json.loads(next(r["body"] for r in state.requests if r["path"] == "/api/orders"))
    assert sent["kind"] == "create" and sent["order"]["items"] == [
        {"sku": "WMS-HTTP-A", "quantity": 2, "unit_price": None}
    ]


def test_http_409_is_retried_then_dead_after_the_last_attempt(
    db_dsn: str, fake_wms: tuple[FakeWms, str]
) -> None:
    """409 means "this Idempotency-Key is still being processed" (docs/wms-protocol.md): retried,
    and the first answer after it is taken as any other; a WMS that answers 409 forever does not
    keep the command retrying: dead after the policy's last attempt, the answer in last_error."""
    from orderdb.integrations.wms.dispatch import Dispatcher, RetryPolicy

    state, url = fake_wms
    orders = _http_warehouse_orders(db_dsn, url, WAREHOUSE + 2, "WMS-HTTP-409", 1, 2)
    (later_id, later_no), (stuck_id, stuck_no) = orders
    in_progress = (409, PROBLEM, _problem_body(409, "In progress"), 0.0)
    state.script[later_no] = in_progress
    state.script[stuck_no] = in_progress
    policy = RetryPolicy(backoff_seconds=0.01, backoff_max_seconds=0.01, max_attempts=3)
    reports = []
    with Dispatcher(db_dsn, worker="test-http-409", policy=policy) as dispatcher:
        for attempt in range(1, 4):
            if attempt == 2:
                del state.script[later_no]  # the first request is done: its answer comes next
            time.sleep(0.1)
            reports.append(dispatcher.run_once())
    assert [(r.done, r.retried, r.dead) for r in reports] == [(0, 2, 0), (1, 1, 0), (0, 0, 1)]
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT order_id, status, attempts, last_error FROM orderdb.wms_commands"
            " WHERE order_id = ANY(%s) ORDER BY order_id",
            ([later_id, stuck_id],),
        ).fetchall()
    (_, later_status, later_attempts, _), (_, stuck_status, stuck_attempts, stuck_error) = rows
    assert (later_status, later_attempts) == ("done", 2)
    assert (stuck_status, stuck_attempts) == ("dead", 3)
    assert "409" in stuck_error and "In progress" in stuck_error
    stuck_requests = [r for r in state.requests if json.loads(r["body"])["order_no"] == stuck_no]
    assert len(stuck_requests) == 3
    assert len({r["headers"]["idempotency-key"] for r in stuck_requests}) == 1
