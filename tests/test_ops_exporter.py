"""`orderdb exporter` (Prometheus metrics over HTTP, scraped on 127.0.0.1) and
`orderdb monitor --once [--json]`, on a real database."""

from __future__ import annotations

import functools
import itertools
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
        assert s["orderdb_fulfillment_time_threshold_seconds", ()] == 48 * 3600
        assert s["orderdb_fulfillment_window_delivered_orders", ()] == 0
        assert s["orderdb_fulfillment_window_duration_seconds", ()] == 0
        assert s["orderdb_fulfillment_window_seconds", ()] == 7 * 86400
        assert s["orderdb_fulfillment_kpi_level", (("metric", "on_time_delivery_rate"),)] == 0
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
    for part in ("order funnel", "SLA breaches", "unpaid", "fulfillment KPIs", "low stock"):
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


# --- naming, counters, sums and counts ---------------------------------------------------------

#: what postgres_exporter (default collectors) already exports: table tuples, vacuum and HOT
#: statistics (pg_stat_user_tables), connections and max_connections (pg_stat_activity,
#: pg_settings), database size (pg_database), transaction and xid ages (pg_stat_activity,
#: pg_database_wraparound), locks (pg_locks)
POSTGRES_EXPORTER_WORDS = (
    "tuples",
    "autovacuum",
    "vacuum",
    "hot_update",
    "connections",
    "database_size",
    "database_xid",
    "xid_age",
    "oldest_transaction",
    "long_transactions",
)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _check_names(text: str) -> None:
    """Prometheus naming rules, as promtool check metrics applies them."""
    import re

    for name, family in _families(text).items():
        assert re.fullmatch(r"orderdb_[a-z][a-z0-9_]*", name), name
        assert family.documentation, f"{name} has no HELP"
        for word in ("hours", "minutes", "milliseconds", "_avg", "_mean", "average"):
            assert word not in name, f"{name}: base units, no precomputed mean"
        if family.type == "counter":
            assert all(smp.name == name + "_total" for smp in family.samples), name
        else:
            assert not any(smp.name.endswith("_total") for smp in family.samples), name
            for suffix in ("_sum", "_count", "_bucket"):
                assert not name.endswith(suffix), f"{name}: {suffix} is for summaries/histograms"
        for smp in family.samples:
            for label in smp.labels:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", label), (name, label)


def _serve(dsn: str) -> tuple[Any, Any, Any, int]:
    connect = functools.partial(psycopg.connect, dsn, autocommit=True)
    server, thread, collector = exporter.serve(connect, host="127.0.0.1", port=0)
    return server, thread, collector, server.server_address[1]


def test_exporter_default_port_is_not_postgres_exporters() -> None:
    import inspect

    assert exporter.DEFAULT_PORT != 9187
    assert not 9100 <= exporter.DEFAULT_PORT <= 9999  # the allocated exporters' range
    assert inspect.signature(exporter.serve).parameters["port"].default == exporter.DEFAULT_PORT
    command = main.get_command(click_context(), "exporter")
    assert command is not None
    port = next(p for p in command.params if p.name == "port")
    assert port.default == exporter.DEFAULT_PORT
    result = CliRunner().invoke(main, ["exporter", "--help"])
    assert f"default: {exporter.DEFAULT_PORT}" in result.output


def click_context() -> Any:
    import click

    return click.Context(main)


def test_exporter_names_follow_the_conventions_and_leave_postgres_to_postgres_exporter(
    fresh_dsn: str, db: psycopg.Connection[Any]
) -> None:
    server, thread, collector, port = _serve(fresh_dsn)
    try:
        text = _scrape(port)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        collector.close()
    _check_names(text)
    families = _families(text)
    for name in families:
        for word in POSTGRES_EXPORTER_WORDS:
            assert word not in name, f"{name} duplicates postgres_exporter ({word})"
    assert "orderdb_fulfillment_avg_seconds" not in families
    # the counters, with their _total samples
    for name in (
        "orderdb_events_acked",
        "orderdb_webhook_attempts",
        "orderdb_webhook_deliveries_delivered",
        "orderdb_carrier_polls",
        "orderdb_carrier_poll_errors",
    ):
        assert families[name].type == "counter", name


def test_counters_only_grow_while_events_flow_and_sums_match_the_kpi(
    fresh_dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Counters are read from the database: exact, they survive an exporter restart, and they
    never decrease across scrapes while events are read, acknowledged, purged and delivered."""
    db.execute("SELECT orderdb.read_events('exporter-test', 1000)")  # the consumer exists
    sub = db.execute(
        "SELECT subscription_id FROM orderdb.create_webhook_subscription('https://hooks.test/x')"
    ).fetchone()
    assert sub is not None
    db.execute(
        "INSERT INTO orderdb.shipment_polls (warehouse_id, shipment_id, carrier, tracking_number)"
        " VALUES (987654, 987654321, 'test-carrier', 'TN-EXPORTER-1')"
    )
    history: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []
    acked = 0
    for round_no in range(4):
        server, thread, collector, port = _serve(fresh_dsn)  # a new exporter process each time
        try:
            history.append(_samples(_scrape(port)))
        finally:
            server.shutdown()
            thread.join(timeout=5)
            collector.close()
        # events flow: new orders, read and acknowledged; a webhook attempt fails, one succeeds
        for _ in range(round_no + 1):
            db.execute('SELECT orderdb.create_order(7, 1, \'[{"sku": "SKU-X", "quantity": 1}]\')')
        rows = db.execute("SELECT event_id FROM orderdb.read_events('exporter-test', 1000)")
        ids = [r[0] for r in rows.fetchall()]
        assert ids
        acked += len(ids)
        db.execute("SELECT orderdb.ack_events('exporter-test', %s)", (ids[-1],))
        db.execute("SELECT orderdb._webhook_enqueue(%s)", (ids,))
        claims = db.execute(
            "SELECT delivery_id, attempt FROM orderdb._webhook_claim(2, '1 minute')"
        ).fetchall()
        for (delivery_id, attempt), code in zip(claims, (500, 204), strict=False):
            db.execute(
                "SELECT orderdb._webhook_record(%s, %s, %s, NULL, 5)",
                (delivery_id, attempt, code),
            )
        db.execute(
            "UPDATE orderdb.shipment_polls SET polls = polls + 2, errors = errors + 1"
            " WHERE tracking_number = 'TN-EXPORTER-1'"
        )
        db.execute("SELECT orderdb.purge_events('0 seconds', 1000)")  # acked events go
    last = history[-1]
    consumer = ("consumer", "exporter-test")
    # exact: every acknowledged event counted once, purged or not
    assert last["orderdb_events_acked_total", (consumer,)] == acked - len(ids)
    assert last["orderdb_carrier_polls_total", (("carrier", "test-carrier"),)] == 6
    assert last["orderdb_carrier_poll_errors_total", (("carrier", "test-carrier"),)] == 3
    assert last["orderdb_webhook_attempts_total", (("result", "failure"),)] >= 1
    assert last["orderdb_webhook_attempts_total", (("result", "success"),)] >= 1
    assert last["orderdb_webhook_deliveries_delivered_total", ()] >= 1
    for earlier, later in itertools.pairwise(history):
        for key, value in earlier.items():
            if key[0].endswith("_total"):
                assert later[key] >= value, (key, value, later[key])
    assert (
        history[0]["orderdb_events_acked_total", (consumer,)]
        < last["orderdb_events_acked_total", (consumer,)]
    )


def test_fulfillment_time_sum_and_count_give_the_kpi_mean(
    fresh_dsn: str, db: psycopg.Connection[Any]
) -> None:
    """orderdb_ops.fulfillment_times: sum / count is avg_fulfillment_hours (in seconds)."""
    row = db.execute(
        "SELECT t.delivered_orders, t.fulfillment_seconds, k.value, k.sample"
        " FROM orderdb_ops.fulfillment_times t, orderdb_ops.fulfillment_kpis k"
        " WHERE k.metric = 'avg_fulfillment_hours'"
    ).fetchone()
    assert row is not None
    count, total, mean_hours, sample = row
    assert count == sample
    if count:
        assert abs(float(total) / count / 3600 - float(mean_hours)) < 0.0001
    else:
        assert total == 0 and mean_hours is None
