"""Flash-sale stock: bucketed SKUs (sql/25_stock_buckets.sql, migrations/0008_stock_buckets.sql).

The concurrency tests hammer one bucketed SKU from 20 connections whose transactions stay open a
few milliseconds after reserving (so buckets are held while others look for stock), and check:
zero oversell, no OD001 while stock remains, counters == ledger (orderdb_ops.inventory_drift
empty), stock_level == the sum of the buckets, and no deadlock or other error.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

WORKERS = 20
WAREHOUSE = 1


def _level(conn: psycopg.Connection[Any], sku: str, wh: int = WAREHOUSE) -> tuple[int, int, int]:
    row = conn.execute("SELECT * FROM orderdb.stock_level(%s, %s)", (wh, sku)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _buckets(conn: psycopg.Connection[Any], sku: str) -> list[tuple[int, int, int]]:
    return [
        (int(b), int(h), int(r))
        for b, h, r in conn.execute(
            "SELECT bucket, on_hand, reserved FROM orderdb.stock_buckets"
            " WHERE warehouse_id = %s AND sku = %s ORDER BY bucket",
            (WAREHOUSE, sku),
        ).fetchall()
    ]


def _drift(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM orderdb_ops.inventory_drift").fetchall()


def _run_workers(target: Callable[[int], None], seconds: float = 30.0) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds)
    assert not any(t.is_alive() for t in threads), "workers did not finish in time"
    return errors


def _create(conn: psycopg.Connection[Any], items: list[dict[str, Any]], hold_s: float) -> int:
    """create_order in a transaction kept open hold_s seconds after reserving."""
    with conn.transaction():
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(%s, %s, %s)",
            (random.randint(1, 10_000), WAREHOUSE, Jsonb(items)),
        ).fetchone()
        assert row is not None
        if hold_s:
            time.sleep(hold_s)
    return int(row[0])


def test_switch_keeps_every_unit_and_stock_level_reports_the_sum(conn: psycopg.Connection[Any]):
    conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SW-1', 100)", (WAREHOUSE,))
    conn.execute(
        "SELECT * FROM orderdb.create_order(1, %s, %s)",
        (WAREHOUSE, Jsonb([{"sku": "SW-1", "quantity": 7}])),
    )
    row = conn.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'SW-1', 8)", (WAREHOUSE,))
    assert row.fetchone() == (WAREHOUSE, "SW-1", 8, 100, 7, 93)
    buckets = _buckets(conn, "SW-1")
    assert [b for b, _, _ in buckets] == list(range(8))
    assert sum(h for _, h, _ in buckets) == 100 and sum(r for _, _, r in buckets) == 7
    # the available stock is spread evenly (93 over 8 buckets: 12 or 11 each)
    assert sorted(h - r for _, h, r in buckets) == [11] * 3 + [12] * 5
    inv = conn.execute(
        "SELECT on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = %s AND sku = 'SW-1'",
        (WAREHOUSE,),
    ).fetchone()
    assert inv == (0, 0)
    assert _level(conn, "SW-1") == (100, 7, 93)

    # a receipt is spread over the buckets; stock_level and receive_stock report the sum
    got = conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SW-1', 20)", (WAREHOUSE,))
    assert got.fetchone() == (WAREHOUSE, "SW-1", 120, 7, 113)
    assert _level(conn, "SW-1") == (120, 7, 113)

    # resize, then switch off: every unit and reservation is back in the inventory row
    conn.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'SW-1', 3)", (WAREHOUSE,))
    assert len(_buckets(conn, "SW-1")) == 3
    assert _level(conn, "SW-1") == (120, 7, 113)
    row = conn.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'SW-1', 1)", (WAREHOUSE,))
    assert row.fetchone() == (WAREHOUSE, "SW-1", 1, 120, 7, 113)
    assert _buckets(conn, "SW-1") == []
    inv = conn.execute(
        "SELECT on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = %s AND sku = 'SW-1'",
        (WAREHOUSE,),
    ).fetchone()
    assert inv == (120, 7)
    assert _drift(conn) == []


def test_bad_arguments(conn: psycopg.Connection[Any]):
    conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'BAD-1', 5)", (WAREHOUSE,))
    for buckets in (0, 1025, None):
        with pytest.raises(psycopg.Error) as err:
            conn.execute(
                "SELECT * FROM orderdb.set_stock_buckets(%s, 'BAD-1', %s)", (WAREHOUSE, buckets)
            )
        assert err.value.sqlstate == "22023"
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'NO-SUCH-SKU', 4)", (WAREHOUSE,))
    assert err.value.sqlstate == "OD004"
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT * FROM orderdb.rebalance_stock_buckets(%s, 'BAD-1')", (WAREHOUSE,))
    assert err.value.sqlstate == "OD004"
    assert _level(conn, "BAD-1") == (5, 0, 5)


def test_rebalance_spreads_available_stock(conn: psycopg.Connection[Any]):
    conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'RB-1', 40)", (WAREHOUSE,))
    conn.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'RB-1', 4)", (WAREHOUSE,))
    # take 10 units out of bucket 0's share, one order at a time (each claims one bucket)
    for _ in range(10):
        conn.execute(
            "SELECT * FROM orderdb.create_order(1, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "RB-1", "quantity": 1}])),
        )
    row = conn.execute("SELECT * FROM orderdb.rebalance_stock_buckets(%s, 'RB-1')", (WAREHOUSE,))
    assert row.fetchone() == (WAREHOUSE, "RB-1", 4, 40, 10, 30)
    assert sorted(h - r for _, h, r in _buckets(conn, "RB-1")) == [7, 7, 8, 8]
    assert _drift(conn) == []


def test_line_larger_than_any_bucket_is_served_from_all_buckets(conn: psycopg.Connection[Any]):
    conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'BIG-1', 64)", (WAREHOUSE,))
    conn.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'BIG-1', 16)", (WAREHOUSE,))
    conn.execute(
        "SELECT * FROM orderdb.create_order(1, %s, %s)",
        (WAREHOUSE, Jsonb([{"sku": "BIG-1", "quantity": 60}])),
    )
    assert _level(conn, "BIG-1") == (64, 60, 4)
    with pytest.raises(psycopg.Error) as err:
        conn.execute(
            "SELECT * FROM orderdb.create_order(1, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "BIG-1", "quantity": 5}])),
        )
    assert err.value.sqlstate == "OD001"
    assert err.value.diag.message_detail == "sku=BIG-1 requested=5 available=4"
    assert _drift(conn) == []


def test_flash_sale_no_oversell_no_false_insufficient_stock(db_dsn: str):
    """20 connections buy one bucketed SKU (16 buckets) until it is sold out.

    Every transaction keeps its bucket a few ms after reserving, so buyers often find every
    bucket with stock held (they must wait, not fail). No cancellations: available only falls, so
    an OD001 for q units is false if stock_level shows >= q units available after it.
    """
    stock, sku = 600, "FLASH-1"
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT * FROM orderdb.receive_stock(%s, %s, %s)", (WAREHOUSE, sku, stock))
        c.execute("SELECT * FROM orderdb.receive_stock(%s, 'PLAIN-1', 1000000)", (WAREHOUSE,))
        c.execute("SELECT * FROM orderdb.set_stock_buckets(%s, %s, 16)", (WAREHOUSE, sku))
    sold: list[int] = []
    false_od001: list[str] = []
    od001 = [0]
    lock = threading.Lock()

    def worker(i: int) -> None:
        rnd = random.Random(i)
        with psycopg.connect(db_dsn, autocommit=True) as c:
            while True:
                q = rnd.randint(1, 3)
                items: list[dict[str, Any]] = [{"sku": sku, "quantity": q}]
                if rnd.random() < 0.3:
                    items.append({"sku": "PLAIN-1", "quantity": 1})
                try:
                    _create(c, items, rnd.uniform(0, 0.004))
                except psycopg.Error as exc:
                    if exc.sqlstate != "OD001":
                        raise
                    with lock:
                        od001[0] += 1
                    available = _level(c, sku)[2]
                    if available >= q:
                        with lock:
                            false_od001.append(f"OD001 for {q} with {available} available after")
                    if available == 0:
                        return
                    continue
                with lock:
                    sold.append(q)

    errors = _run_workers(worker)
    assert errors == []
    assert false_od001 == []
    assert sum(sold) == stock  # sold out exactly: no unit left, none oversold
    with psycopg.connect(db_dsn, autocommit=True) as c:
        assert _level(c, sku) == (stock, stock, 0)
        buckets = _buckets(c, sku)
        assert len(buckets) == 16
        assert sum(h for _, h, _ in buckets) == stock
        assert all(0 <= r <= h for _, h, r in buckets)
        held = c.execute(
            "SELECT sum(qty_held) FROM orderdb.order_lines WHERE warehouse_id = %s AND sku = %s",
            (WAREHOUSE, sku),
        ).fetchone()
        assert held is not None and held[0] == stock
        assert _drift(c) == []


def test_flash_sale_with_cancels_and_shipments_keeps_counters_equal_to_ledger(db_dsn: str):
    """Buyers of two bucketed SKUs (and a plain one) race cancellations and shipments."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        for sku, qty in (("FX-A", 400), ("FX-B", 400), ("FX-P", 400)):
            c.execute("SELECT * FROM orderdb.receive_stock(%s, %s, %s)", (WAREHOUSE, sku, qty))
        c.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'FX-A', 8)", (WAREHOUSE,))
        c.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'FX-B', 16)", (WAREHOUSE,))
    deadline = time.monotonic() + 4.0
    unexpected: list[str] = []

    def worker(i: int) -> None:
        rnd = random.Random(1000 + i)
        with psycopg.connect(db_dsn, autocommit=True) as c:
            while time.monotonic() < deadline:
                items = [
                    {"sku": s, "quantity": rnd.randint(1, 2)}
                    for s in rnd.sample(["FX-A", "FX-B", "FX-P"], rnd.randint(1, 3))
                ]
                try:
                    order_id = _create(c, items, rnd.uniform(0, 0.002))
                except psycopg.Error as exc:
                    if exc.sqlstate != "OD001":
                        unexpected.append(f"create: {exc.sqlstate} {exc}")
                    continue
                action = rnd.random()
                try:
                    if action < 0.4:
                        c.execute(
                            "SELECT * FROM orderdb.transition_order(%s, 'cancelled', 1)",
                            (order_id,),
                        )
                    elif action < 0.7:
                        version = 1
                        for status in ("confirmed", "dispatched", "picked", "packed", "shipped"):
                            c.execute(
                                "SELECT * FROM orderdb.transition_order(%s, %s, %s)",
                                (order_id, status, version),
                            )
                            version += 1
                except psycopg.Error as exc:
                    unexpected.append(f"transition: {exc.sqlstate} {exc}")

    errors = _run_workers(worker)
    assert errors == []
    assert unexpected == []
    with psycopg.connect(db_dsn, autocommit=True) as c:
        assert _drift(c) == []
        for sku in ("FX-A", "FX-B"):
            on_hand, reserved, available = _level(c, sku)
            buckets = _buckets(c, sku)
            assert (sum(h for _, h, _ in buckets), sum(r for _, _, r in buckets)) == (
                on_hand,
                reserved,
            )
            assert all(0 <= r <= h for _, h, r in buckets)
            assert available >= 0
