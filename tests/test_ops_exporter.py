"""`orderdb exporter` (Prometheus metrics over HTTP, scraped on 127.0.0.1) and
`orderdb monitor --once [--json]`, on a real database."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from orderdb.cli import main
from orderdb.ops import exporter


@pytest.fixture
def db(fresh_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-X', 100)")
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-LOW', 4)")
        for _ in range(3):
            conn.execute('SELECT orderdb.create_order(7, 1, \'[{"sku": "SKU-X", "quantity": 1}]\')')
        # one order pending for an hour: an unpaid breach (30 minutes)
        conn.execute(
            "UPDATE orderdb.orders SET created_at = now() - interval '1 hour'"
            " WHERE order_id = (SELECT min(order_id) FROM orderdb.orders)"
        )
        yield conn


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def test_exporter_serves_the_views_over_http(fresh_dsn: str, db: psycopg.Connection[Any]) -> None:
    connect = functools.partial(psycopg.connect, fresh_dsn, autocommit=True)
    server, thread, collector = exporter.serve(connect, host="127.0.0.1", port=0)
    try:
        port = server.server_address[1]
        s = _samples(_scrape(port))
        assert s["orderdb_up", ()] == 1
        assert s["orderdb_orders", (("status", "pending"),)] == 3
        assert s["orderdb_orders", (("status", "shipped"),)] == 0
        assert s["orderdb_sla_breaches", (("level", "warning"), ("rule", "unpaid"))] == 1
        assert s["orderdb_sla_breaches", (("level", "critical"), ("rule", "unpaid"))] == 0
        assert s["orderdb_sla_breaches", (("level", "warning"), ("rule", "unsigned"))] == 0
        assert 1700 < s["orderdb_sla_breach_oldest_seconds", (("rule", "unpaid"),)] < 3700
        assert s["orderdb_low_stock_skus", (("level", "warning"),)] == 1
        assert s["orderdb_alerts", (("level", "warning"), ("source", "sla"))] == 1
        assert s["orderdb_alerts", (("level", "warning"), ("source", "stock"))] == 1
        assert (
            s["orderdb_fulfillment_kpi_ratio_threshold", (("metric", "delayed_shipment_rate"),)]
            == 0.05
        )
        assert s["orderdb_fulfillment_avg_seconds_threshold", ()] == 48 * 3600
        assert s["orderdb_fulfillment_avg_seconds", ()] != s["orderdb_fulfillment_avg_seconds", ()]
        assert s["orderdb_fulfillment_kpi_level", (("metric", "on_time_delivery_rate"),)] == 0
        assert s["orderdb_table_live_tuples", (("table", "orderdb.kpi_thresholds"),)] >= 0
        assert s["orderdb_notification_queue_usage_ratio", ()] == 0
        assert s["orderdb_lock_waits", ()] == 0

        # each scrape reads the database again: a new order shows up in the next one
        db.execute('SELECT orderdb.create_order(7, 1, \'[{"sku": "SKU-X", "quantity": 1}]\')')
        assert _samples(_scrape(port))["orderdb_orders", (("status", "pending"),)] == 4
    finally:
        server.shutdown()
        thread.join(timeout=5)
        collector.close()


def test_exporter_reports_down_when_the_database_is_unreachable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    dsn = f"postgresql://postgres@127.0.0.1:{dead_port}/postgres?connect_timeout=2"
    connect = functools.partial(psycopg.connect, dsn, autocommit=True)
    server, thread, collector = exporter.serve(connect, host="127.0.0.1", port=0)
    try:
        s = _samples(_scrape(server.server_address[1]))
        assert s["orderdb_up", ()] == 0
        assert ("orderdb_orders", (("status", "pending"),)) not in s
    finally:
        server.shutdown()
        thread.join(timeout=5)
        collector.close()


def test_exporter_command_serves_metrics(fresh_dsn: str, db: psycopg.Connection[Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderdb", "--dsn", fresh_dsn, "exporter", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                text = _scrape(port)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert _samples(text)["orderdb_orders", (("status", "pending"),)] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_monitor_once_json_is_one_snapshot(fresh_dsn: str, db: psycopg.Connection[Any]) -> None:
    result = CliRunner().invoke(main, ["--dsn", fresh_dsn, "monitor", "--once", "--json"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    assert snap["errors"] == {}
    assert {r["status"]: r["orders"] for r in snap["funnel"]}["pending"] == 3
    assert [(b["rule"], b["level"]) for b in snap["sla_breaches"]] == [("unpaid", "warning")]
    lanes = {lane["rule"]: lane for lane in snap["sla_summary"]}
    assert lanes["unpaid"] == {"rule": "unpaid", "breaches": 1, "critical": 0, "level": "warning"}
    assert lanes["no_tracking_update"]["level"] == "ok"
    assert {r["metric"] for r in snap["kpis"]} == {
        "delayed_shipment_rate",
        "out_of_stock_rate",
        "delivery_failure_rate",
        "avg_fulfillment_hours",
        "on_time_delivery_rate",
    }
    assert [(r["sku"], r["available"]) for r in snap["low_stock"]] == [("SKU-LOW", 4)]
    assert {"relay_lag", "table_health", "lock_waits", "long_transactions", "server"} <= set(snap)


def test_monitor_once_renders_the_dashboard(fresh_dsn: str, db: psycopg.Connection[Any]) -> None:
    result = CliRunner().invoke(main, ["--dsn", fresh_dsn, "monitor", "--once"])
    assert result.exit_code == 0, result.output
    for part in ("order funnel", "SLA breaches", "unpaid", "fulfilment KPIs", "low stock"):
        assert part in result.output


def test_monitor_json_needs_once(fresh_dsn: str) -> None:
    result = CliRunner().invoke(main, ["--dsn", fresh_dsn, "monitor", "--json"])
    assert result.exit_code == 2
    assert "--json needs --once" in result.output


def test_monitor_live_refreshes_and_survives_a_lost_connection(
    fresh_dsn: str, db: psycopg.Connection[Any]
) -> None:
    from orderdb.ops import monitor

    calls: list[int] = []

    def connect() -> psycopg.Connection[Any]:
        calls.append(1)
        conn = psycopg.connect(fresh_dsn, autocommit=True)
        if len(calls) == 1:
            conn.close()  # the first connection is dead at once: the loop must reconnect
        return conn

    monitor.run_live(connect, interval=0.2, iterations=3)
    assert len(calls) == 2
