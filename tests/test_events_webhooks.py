"""Webhooks against a real local HTTP server (http.server on 127.0.0.1 in a thread): signed JSON
POSTs, a receiver that fails and then recovers (retries with backoff, order kept per order),
dead-letter after max_attempts, every attempt recorded, manual retry."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from orderdb import events as ev
from orderdb.cli import main

SECRET = "test-secret-0123456789"


class Receiver:
    """A local webhook endpoint. ``plan(n)`` returns the status for the n-th request (1-based)."""

    def __init__(self, plan: Callable[[int, dict[str, Any]], int]) -> None:
        self.plan = plan
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    n = len(receiver.requests) + 1
                    status = receiver.plan(n, json.loads(body))
                    receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

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


def _subscribe(conn: psycopg.Connection[Any], url: str, max_attempts: int = 8) -> int:
    row = conn.execute(
        "SELECT subscription_id FROM orderdb.create_webhook_subscription(%s, NULL, %s, %s)",
        (url, SECRET, max_attempts),
    ).fetchone()
    assert row is not None
    return int(row[0])


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
    dsn, conn = db
    rx = Receiver(lambda n, body: 200)
    try:
        _subscribe(conn, rx.url)
        orders = [_order_with_changes(conn) for _ in range(3)]  # 9 events
        relay = _relay(dsn)
        _run(relay, lambda: len(rx.requests) >= 9)
        time.sleep(0.3)  # nothing more arrives
    finally:
        rx.close()
    assert len(rx.requests) == 9
    for headers, body, _ in rx.requests:
        assert headers["Content-Type"] == "application/json"
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
    assert all(code is None and "URLError" in err for code, err in rows)


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
    info = json.loads(added.output)
    assert len(info["secret"]) == 64
    listed = runner.invoke(main, ["--dsn", dsn, "webhooks", "list", "--json"])
    assert json.loads(listed.output)[0]["event_types"] == ["order.created"]
    bad = runner.invoke(main, ["--dsn", dsn, "webhooks", "add", "ftp://x"])
    assert bad.exit_code == 1
    assert "22023" in bad.output
