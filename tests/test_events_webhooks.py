"""Webhooks against a real local HTTP server (http.server on 127.0.0.1 in a thread, HTTP/1.1 keep-
alive): Standard Webhooks signatures verified by the receiver with the `standardwebhooks` library,
a receiver that fails and then recovers (retries with backoff and the same webhook-id, order kept
per order), dead-letter after max_attempts, every attempt recorded (status, response headers, a
bounded body, duration), manual retry, the CLI's whsec_ secrets."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
import standardwebhooks
from click.testing import CliRunner

from orderdb import events as ev
from orderdb.cli import main

SECRET = "test-secret-0123456789"


class Receiver:
    """A local webhook endpoint. ``plan(n)`` returns the status for the n-th request (1-based).

    With ``verify_with`` (a secret, as ``standardwebhooks.Webhook`` takes it) it verifies every
    request as a Standard Webhooks receiver does and answers 401 when that fails. ``answer`` is
    the response body, ``answer_headers`` extra response headers, ``delay`` seconds before
    answering. Speaks HTTP/1.1 with keep-alive; ``ports`` are the client ports seen.
    """

    def __init__(
        self,
        plan: Callable[[int, dict[str, Any]], int],
        *,
        verify_with: str | bytes | None = None,
        answer: bytes = b"",
        answer_headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.plan = plan
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.verify_failures: list[str] = []
        self.ports: list[int] = []
        self.lock = threading.Lock()
        receiver = self
        self.webhook = None if verify_with is None else standardwebhooks.Webhook(verify_with)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers)
                verified = True
                if receiver.webhook is not None:
                    try:
                        receiver.webhook.verify(body, headers)
                    except standardwebhooks.WebhookVerificationError as exc:
                        verified = False
                        receiver.verify_failures.append(str(exc))
                with receiver.lock:
                    n = len(receiver.requests) + 1
                    status = receiver.plan(n, json.loads(body)) if verified else 401
                    receiver.requests.append((headers, body, status))
                    receiver.ports.append(self.client_address[1])
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in (answer_headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ok_events(self) -> list[int]:
        with self.lock:
            return [json.loads(b)["event_id"] for _, b, s in self.requests if 200 <= s < 300]


@pytest.fixture
def db(fresh_dsn: str) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-1', 100000)")
        yield fresh_dsn, conn


def _subscribe(
    conn: psycopg.Connection[Any], url: str, max_attempts: int = 8, secret: str | None = SECRET
) -> tuple[int, str]:
    """A subscription with ``secret`` (None: a generated one); returns its id and secret."""
    row = conn.execute(
        "SELECT subscription_id, secret"
        "  FROM orderdb.create_webhook_subscription(%s, NULL, %s, %s)",
        (url, secret, max_attempts),
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _order_with_changes(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(1, 1, "
        """'[{"sku": "SKU-1", "quantity": 1, "unit_price": 3}]')"""
    ).fetchone()
    assert row is not None
    conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (row[0],))
    conn.execute("SELECT orderdb.transition_order(%s, 'cancelled', 2)", (row[0],))
    return int(row[0])


def _relay(dsn: str, **kw: Any) -> ev.Relay:
    return ev.Relay(
        dsn,
        consumer="wh",
        poll_interval=0.02,
        webhook_poll_interval=0.05,
        backoff_base=timedelta(milliseconds=100),
        backoff_max=timedelta(seconds=1),
        webhook_timeout=5,
        **kw,
    )


def _run(relay: ev.Relay, until: Callable[[], bool], timeout: float = 30) -> None:
    t = threading.Thread(target=relay.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)
    finally:
        relay.stop()
        t.join(30)


def test_signed_posts_delivered_once_in_order(db: tuple[str, Any]) -> None:
    """A secret of the earlier, non-whsec_ form: the Standard Webhooks key is its UTF-8 bytes, and
    the deprecated X-Orderdb-Signature still comes along. One kept-alive connection pool."""
    dsn, conn = db
    rx = Receiver(lambda n, body: 200, verify_with=SECRET.encode())
    try:
        _subscribe(conn, rx.url)
        orders = [_order_with_changes(conn) for _ in range(3)]  # 9 events
        relay = _relay(dsn)
        _run(relay, lambda: len(rx.requests) >= 9)
        time.sleep(0.3)  # nothing more arrives
    finally:
        rx.close()
    assert len(rx.requests) == 9
    assert rx.verify_failures == []
    # kept alive: nine POSTs over at most as many connections as requests in flight
    assert len(set(rx.ports)) < 9, rx.ports
    for headers, body, _ in rx.requests:
        assert headers["Content-Type"] == "application/json"
        assert headers["webhook-id"] == f"evt_{json.loads(body)['event_id']}"
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        assert headers["webhook-signature"].startswith("v1,")
        assert ev.verify_signature(SECRET, body, headers["X-Orderdb-Signature"])
        assert not ev.verify_signature("another-secret-0000", body, headers["X-Orderdb-Signature"])
        assert headers["X-Orderdb-Signature"].startswith("sha256=")
        payload = json.loads(body)
        assert set(payload) == {"event_id", "event_type", "order_id", "payload", "created_at"}
        assert headers["X-Orderdb-Event-Id"] == str(payload["event_id"])
    for order_id in orders:
        types = [
            json.loads(b)["event_type"]
            for _, b, _ in rx.requests
            if json.loads(b)["order_id"] == order_id
        ]
        assert types == ["order.created", "order.status_changed", "order.status_changed"]
    rows = conn.execute(
        "SELECT status, attempts, count(*) FROM orderdb.webhook_deliveries GROUP BY 1, 2"
    ).fetchall()
    assert rows == [("delivered", 1, 9)]
    assert conn.execute("SELECT count(*) FROM orderdb.webhook_attempts").fetchone() == (9,)


def test_failing_receiver_recovers_and_order_is_kept(db: tuple[str, Any]) -> None:
    """The first three requests fail (500); retries with backoff deliver everything, and one
    order's later events never overtake its earlier ones."""
    dsn, conn = db
    rx = Receiver(lambda n, body: 500 if n <= 3 else 204)
    try:
        _subscribe(conn, rx.url)
        orders = [_order_with_changes(conn) for _ in range(2)]
        relay = _relay(dsn)
        _run(relay, lambda: len(rx.ok_events()) >= 6)
    finally:
        rx.close()
    # a retry is the same message: the same webhook-id, a fresh timestamp and signature
    by_event: dict[int, list[dict[str, str]]] = {}
    for headers, body, _ in rx.requests:
        by_event.setdefault(json.loads(body)["event_id"], []).append(headers)
    retried = {e: hs for e, hs in by_event.items() if len(hs) > 1}
    assert retried, by_event
    for event_id, hs in by_event.items():
        assert {h["webhook-id"] for h in hs} == {f"evt_{event_id}"}
        stamps = [int(h["webhook-timestamp"]) for h in hs]
        assert stamps == sorted(stamps)
    delivered = [json.loads(b) for _, b, s in rx.requests if s == 204]
    for order_id in orders:
        ids = [d["event_id"] for d in delivered if d["order_id"] == order_id]
        assert ids == sorted(ids) and len(ids) == 3
    # per order, nothing after an event was sent before that event was delivered
    for order_id in orders:
        seq = [
            (json.loads(b)["event_id"], s)
            for _, b, s in rx.requests
            if json.loads(b)["order_id"] == order_id
        ]
        for i, (event_id, _) in enumerate(seq):
            earlier_ok = {e for e, s in seq[:i] if s == 204}
            earlier_all = {e for e, _ in seq[:i]}
            assert earlier_all <= earlier_ok | {event_id}, seq
    attempts = conn.execute(
        "SELECT status_code, count(*) FROM orderdb.webhook_attempts GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert attempts == [(204, 6), (500, 3)]
    assert conn.execute(
        "SELECT count(*) FROM orderdb.webhook_deliveries WHERE status = 'delivered'"
    ).fetchone() == (6,)
    assert relay.stats.webhook_failed == 3


def test_dead_letter_after_max_attempts_then_retry(db: tuple[str, Any]) -> None:
    dsn, conn = db
    healthy = threading.Event()
    rx = Receiver(lambda n, body: 200 if healthy.is_set() else 503)
    try:
        _subscribe(conn, rx.url, max_attempts=3)
        conn.execute(
            "SELECT orderdb.create_order(1, 1, "
            """'[{"sku": "SKU-1", "quantity": 1, "unit_price": 3}]')"""
        )
        relay = _relay(dsn)
        _run(relay, lambda: relay.stats.webhook_dead >= 1)
        assert len(rx.requests) == 3
        row = conn.execute(
            "SELECT delivery_id, status, attempts, last_status_code, last_error"
            " FROM orderdb.webhook_deliveries"
        ).fetchone()
        assert row is not None
        delivery_id = row[0]
        assert row[1:4] == ("dead", 3, 503)
        attempts = conn.execute(
            "SELECT attempt, status_code, attempted_at FROM orderdb.webhook_attempts"
            " WHERE delivery_id = %s ORDER BY attempt",
            (delivery_id,),
        ).fetchall()
        assert [(a, s) for a, s, _ in attempts] == [(1, 503), (2, 503), (3, 503)]
        gaps = [(b[2] - a[2]).total_seconds() for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19, f"exponential backoff: {gaps}"

        # the CLI lists the dead letter and puts it back
        runner = CliRunner()
        listed = runner.invoke(main, ["--dsn", dsn, "webhooks", "list", "--dead", "--json"])
        assert listed.exit_code == 0, listed.output
        assert [d["delivery_id"] for d in json.loads(listed.output)] == [delivery_id]
        retried = runner.invoke(main, ["--dsn", dsn, "webhooks", "retry", str(delivery_id)])
        assert retried.exit_code == 0, retried.output
        healthy.set()
        relay2 = _relay(dsn)
        _run(relay2, lambda: relay2.stats.webhook_delivered >= 1)
    finally:
        rx.close()
    assert conn.execute(
        "SELECT status, attempts FROM orderdb.webhook_deliveries WHERE delivery_id = %s",
        (delivery_id,),
    ).fetchone() == ("delivered", 1)
    assert conn.execute("SELECT count(*) FROM orderdb.webhook_attempts").fetchone() == (4,)


def test_unreachable_endpoint_is_recorded_as_an_error(db: tuple[str, Any]) -> None:
    dsn, conn = db
    rx = Receiver(lambda n, body: 200)
    url = rx.url
    rx.close()  # nothing listens there any more
    _subscribe(conn, url, max_attempts=2)
    conn.execute(
        "SELECT orderdb.create_order(1, 1, "
        """'[{"sku": "SKU-1", "quantity": 1, "unit_price": 3}]')"""
    )
    relay = _relay(dsn)
    _run(relay, lambda: relay.stats.webhook_dead >= 1)
    rows = conn.execute(
        "SELECT status_code, error FROM orderdb.webhook_attempts ORDER BY attempt_id"
    ).fetchall()
    assert len(rows) == 2
    assert all(code is None and "ConnectError" in err for code, err in rows)


def test_cli_add_and_list(db: tuple[str, Any]) -> None:
    dsn, _ = db
    runner = CliRunner()
    added = runner.invoke(
        main,
        [
            "--dsn",
            dsn,
            "webhooks",
            "add",
            "https://example.invalid/h",
            "--event-type",
            "order.created",
        ],
    )
    assert added.exit_code == 0, added.output
    info = json.loads(added.stdout)
    secret = info["secret"]
    # Standard Webhooks form: whsec_ + base64 of at least 24 random bytes, printed once
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
    assert added.output.count(secret) == 1
    assert "not shown again" in added.stderr
    listed = runner.invoke(main, ["--dsn", dsn, "webhooks", "list", "--json"])
    assert json.loads(listed.output)[0]["event_types"] == ["order.created"]
    # no listing shows it (nor any part of it)
    for args in (["list"], ["list", "--json"], ["list", "--dead"], ["list", "--dead", "--json"]):
        shown = runner.invoke(main, ["--dsn", dsn, "webhooks", *args])
        assert shown.exit_code == 0, shown.output
        assert secret not in shown.output and secret[6:26] not in shown.output
        assert "secret" not in shown.output
    bad = runner.invoke(main, ["--dsn", dsn, "webhooks", "add", "ftp://x"])
    assert bad.exit_code == 2  # bad input
    assert "22023" in bad.output


def test_whsec_secret_verified_by_standardwebhooks_and_attempts_recorded(
    db: tuple[str, Any],
) -> None:
    """A generated whsec_ secret: the receiver verifies every delivery with
    ``standardwebhooks.Webhook(secret).verify(body, headers)``. Each attempt keeps the status,
    the response headers, the start of the body (4096 characters) and the duration."""
    dsn, conn = db
    answer = b"busy\x00" + "é".encode() * 6000  # NUL and multi-byte text, far over the bound
    rx = Receiver(
        lambda n, body: 503 if n == 1 else 200,
        answer=answer,
        answer_headers={"X-Receiver": "r1", "Retry-After": "0"},
        delay=0.05,
    )
    try:
        _, secret = _subscribe(conn, rx.url, secret=None)
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
        rx.webhook = standardwebhooks.Webhook(secret)
        conn.execute(
            "SELECT orderdb.create_order(1, 1, "
            """'[{"sku": "SKU-1", "quantity": 1, "unit_price": 3}]')"""
        )
        relay = _relay(dsn)
        _run(relay, lambda: relay.stats.webhook_delivered >= 1)
    finally:
        rx.close()
    assert rx.verify_failures == []
    assert [s for _, _, s in rx.requests] == [503, 200]
    # what the library checks, by hand: the same message id, its own timestamp per attempt
    for headers, body, _ in rx.requests:
        wh = standardwebhooks.Webhook(secret)
        stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        assert wh.sign(headers["webhook-id"], stamp, body) == headers["webhook-signature"]
        assert headers["X-Orderdb-Signature"] == ev.sign(secret, body)  # deprecated, still sent
    rows = conn.execute(
        "SELECT a.attempt, a.status_code, a.error, a.duration_ms, a.response_headers,"
        "       a.response_body"
        "  FROM orderdb.webhook_attempts a ORDER BY a.attempt"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, 503), (2, 200)]
    first, second = rows
    assert first[2] == "HTTP 503 Service Unavailable" and second[2] is None
    for row in rows:
        assert row[3] >= 50, "duration covers the receiver's delay"
        assert row[4]["x-receiver"] == "r1" and row[4]["retry-after"] == "0"
        assert row[4]["content-length"] == str(len(answer))
        # the first 4096 bytes, as text (a cut character and NUL replaced)
        assert row[5] == answer[:4096].decode("utf-8", "replace").replace("\x00", "\ufffd")
        assert row[5].startswith("busy\ufffdéé") and row[5].endswith("é\ufffd")


def test_webhook_signature_is_the_standard_one() -> None:
    """orderdb's signer and the standardwebhooks library agree, for both secret forms."""
    body = b'{"event_id":7,"event_type":"order.created"}'
    stamp = 1_700_000_000
    whsec = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    for secret, key in (
        (whsec, whsec),
        ("0123456789abcdef" * 4, ("0123456789abcdef" * 4).encode()),
    ):
        ours = ev.webhook_signature(secret, "evt_7", stamp, body)
        theirs = standardwebhooks.Webhook(key).sign(
            "evt_7", datetime.fromtimestamp(stamp, UTC), body
        )
        assert ours == theirs
    assert ev.secret_key(whsec) == bytes(range(32))
    assert ev.secret_key(whsec.rstrip("=")) == bytes(range(32))  # unpadded base64
    assert ev.secret_key("legacy-secret-000") == b"legacy-secret-000"
    headers = ev.webhook_headers(whsec, 7, body)
    assert standardwebhooks.Webhook(whsec).verify(body, headers) == {
        "event_id": 7,
        "event_type": "order.created",
    }
    assert set(headers) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Orderdb-Signature",
    }
