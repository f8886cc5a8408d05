"""Ops views that do not depend on fulfillment: order_funnel, low_stock, table_health, lock_waits,
long_transactions, server_health, and their rows in alerts. Real PostgreSQL, real sessions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row


def _rows(conn: psycopg.Connection[Any], query: str, *args: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, args).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def db(fresh_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        yield conn


def _order(conn: psycopg.Connection[Any], warehouse: int, sku: str, qty: int = 1) -> int:
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(7, %s, %s::jsonb)",
        (warehouse, f'[{{"sku": "{sku}", "quantity": {qty}}}]'),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_order_funnel_counts_every_status(db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-F', 100)")
    ids = [_order(db, 1, "SKU-F") for _ in range(5)]
    for oid in ids[:2]:
        db.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (oid,))
    db.execute("SELECT orderdb.transition_order(%s, 'cancelled', 1)", (ids[4],))

    funnel = {r["status"]: r for r in _rows(db, "SELECT * FROM orderdb_ops.order_funnel")}
    assert len(funnel) == 15  # every status, also the empty ones
    assert funnel["pending"]["orders"] == 2
    assert funnel["confirmed"]["orders"] == 2
    assert funnel["cancelled"]["orders"] == 1
    assert funnel["shipped"]["orders"] == 0
    assert not any(r["estimated"] for r in funnel.values())
    order = [r["status"] for r in _rows(db, "SELECT status FROM orderdb_ops.order_funnel")]
    assert order[:3] == ["pending", "confirmed", "dispatched"]


def test_order_funnel_estimate_from_statistics(db: psycopg.Connection[Any]) -> None:
    """Beyond the exact-count limit the funnel reads pg_stats; on a fully sampled table the
    most-common-value frequencies are exact, so the estimate equals the count."""
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-E', 100)")
    ids = [_order(db, 1, "SKU-E") for _ in range(8)]
    for oid in ids[:3]:
        db.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (oid,))
    db.execute("ANALYZE orderdb.orders")
    rows = {
        r["status"]: r
        for r in _rows(db, "SELECT * FROM orderdb._order_status_counts(0)")  # 0: always estimate
    }
    assert rows["pending"]["orders"] == 5 and rows["pending"]["estimated"]
    assert rows["confirmed"]["orders"] == 3 and rows["confirmed"]["estimated"]


def test_low_stock_default_and_override_thresholds(db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-PLENTY', 500)")
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-LOW', 12)")
    _order(db, 1, "SKU-LOW", 5)  # available 7 < 10
    db.execute("SELECT orderdb.receive_stock(2, 'SKU-GONE', 3)")
    _order(db, 2, "SKU-GONE", 3)  # available 0: critical
    db.execute("SELECT orderdb.receive_stock(2, 'SKU-CUSTOM', 40)")
    db.execute(
        "INSERT INTO orderdb.stock_thresholds (warehouse_id, sku, threshold)"
        " VALUES (2, 'SKU-CUSTOM', 50)"
    )

    low = {
        (r["warehouse_id"], r["sku"]): r for r in _rows(db, "SELECT * FROM orderdb_ops.low_stock")
    }
    assert set(low) == {(1, "SKU-LOW"), (2, "SKU-GONE"), (2, "SKU-CUSTOM")}
    assert (low[1, "SKU-LOW"]["available"], low[1, "SKU-LOW"]["threshold"]) == (7, 10)
    assert low[1, "SKU-LOW"]["level"] == "warning"
    assert (low[2, "SKU-GONE"]["available"], low[2, "SKU-GONE"]["level"]) == (0, "critical")
    assert low[2, "SKU-CUSTOM"]["threshold"] == 50

    alerts = _rows(db, "SELECT * FROM orderdb_ops.alerts WHERE source = 'stock' ORDER BY subject")
    assert [(a["subject"], a["level"]) for a in alerts] == [
        ("warehouse 1 / SKU-LOW", "warning"),
        ("warehouse 2 / SKU-CUSTOM", "warning"),
        ("warehouse 2 / SKU-GONE", "critical"),
    ]


def test_table_health_counts_hot_updates(db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-H', 100)")
    oid = _order(db, 1, "SKU-H")
    db.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (oid,))
    db.execute("SELECT orderdb.transition_order(%s, 'dispatched', 2)", (oid,))
    db.execute("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + 10
    while True:
        rows = {r["table_name"]: r for r in _rows(db, "SELECT * FROM orderdb_ops.table_health")}
        orders = rows["orderdb.orders"]
        if orders["updates"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert orders["live_tuples"] >= 1
    assert orders["updates"] == 2
    # status changes of orders are HOT (no index on status); this is what the view measures
    assert orders["hot_update_ratio"] == 1
    assert orders["fillfactor"] == 85
    assert "orderdb.order_status_history" in rows


def test_lock_waits_and_long_transactions(fresh_dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-L', 100)")
    # thresholds down to test speed: an idle transaction of 0.5 s is "long"
    db.execute(
        "UPDATE orderdb.kpi_thresholds SET warning = 0.5, critical = 0.6"
        " WHERE metric IN ('idle_in_transaction_seconds', 'lock_wait_seconds')"
    )
    dsn = fresh_dsn
    holder = psycopg.connect(dsn)
    holder.execute("UPDATE orderdb.inventory SET on_hand = on_hand WHERE sku = 'SKU-L'")
    holder_pid = holder.info.backend_pid
    waiter_pid: list[int] = []

    def wait() -> None:
        with psycopg.connect(dsn, autocommit=True) as w:
            waiter_pid.append(w.info.backend_pid)
            w.execute("SELECT orderdb.receive_stock(1, 'SKU-L', 1)")

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        waits: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            waits = [
                w
                for w in _rows(db, "SELECT * FROM orderdb_ops.lock_waits")
                if waiter_pid and w["pid"] == waiter_pid[0]
            ]
            if waits and waits[0]["wait_seconds"] > 1:
                break
            time.sleep(0.2)
        assert waits, "the blocked session is not in lock_waits"
        assert waits[0]["blocked_by"] == [holder_pid]
        assert "receive_stock" in waits[0]["query"]

        longs = {r["pid"]: r for r in _rows(db, "SELECT * FROM orderdb_ops.long_transactions")}
        assert longs[holder_pid]["state"] == "idle in transaction"
        assert longs[holder_pid]["xact_age"].total_seconds() > 0.5

        alerts = _rows(db, "SELECT * FROM orderdb_ops.alerts")
        assert {
            (a["source"], a["subject"], a["level"]) for a in alerts if a["source"] != "stock"
        } >= {
            ("lock_wait", f"pid {waiter_pid[0]}", "critical"),
            ("transaction", f"pid {holder_pid}", "critical"),
        }
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=10)
    assert _rows(db, "SELECT * FROM orderdb_ops.lock_waits WHERE pid = %s", waiter_pid[0]) == []


def test_server_health_and_notify_queue_alert(db: psycopg.Connection[Any]) -> None:
    figures = {
        r["metric"]: r["value"] for r in _rows(db, "SELECT * FROM orderdb_ops.server_health")
    }
    assert figures["notification_queue_usage"] == 0
    assert figures["max_connections"] >= figures["connections"] >= 1
    assert figures["xid_age"] > 0 and figures["database_bytes"] > 0
    assert not _rows(db, "SELECT * FROM orderdb_ops.alerts WHERE source = 'notification_queue'")
    # a threshold below the current usage raises the alert (the wiring, not a full queue)
    db.execute(
        "UPDATE orderdb.kpi_thresholds SET warning = -1, critical = -0.5"
        " WHERE metric = 'notification_queue_usage'"
    )
    alerts = _rows(db, "SELECT * FROM orderdb_ops.alerts WHERE source = 'notification_queue'")
    assert [(a["subject"], a["level"]) for a in alerts] == [
        ("pg_notification_queue_usage", "critical")
    ]


def test_alerts_lists_inventory_drift_and_relay_lag(db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT orderdb.receive_stock(1, 'SKU-D', 100)")
    _order(db, 1, "SKU-D", 2)
    db.execute("UPDATE orderdb.inventory SET reserved = 5 WHERE sku = 'SKU-D'")  # a manual write
    # a consumer that read nothing while events are 2 minutes old
    db.execute("SELECT count(*) FROM orderdb.read_events('slow-consumer', 1)")
    db.execute("UPDATE orderdb.outbox SET created_at = now() - interval '2 minutes'")
    alerts = {
        (a["source"], a["subject"]): a
        for a in _rows(db, "SELECT * FROM orderdb_ops.alerts WHERE source <> 'stock'")
    }
    drift = alerts["inventory_drift", "warehouse 1 / SKU-D"]
    assert drift["level"] == "critical" and '"counter_reserved": 5' in drift["message"]
    relay = alerts["relay", "slow-consumer"]
    assert relay["level"] == "warning"
    assert relay["since"] is not None
