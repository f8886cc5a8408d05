"""Automatic stock buckets: a hot SKU nobody configured splits itself, and merges back when cool.

sql/20_inventory.sql (orderdb._reserve_stock notes lock conflicts), sql/25_stock_buckets.sql
(orderdb._note_stock_conflict splits, orderdb._merge_cooled_stock_buckets merges in `orderdb
maintain`), migrations/0016_auto_buckets.sql. The concurrency test hammers one never-configured
SKU from 20 connections whose transactions stay open a few milliseconds after reserving, and
checks: zero oversell, no OD001 while stock remains (every order succeeds until the stock is
exactly exhausted, then OD001 only), counters == ledger (orderdb_ops.inventory_drift empty), the
SKU bucketed automatically (orderdb_ops.stock_buckets says why), and merged back by `orderdb
maintain` once it cooled down.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.types.json import Jsonb

from orderdb.cli import main

WORKERS = 20
WAREHOUSE = 1


def _level(conn: psycopg.Connection[Any], sku: str) -> tuple[int, int, int]:
    row = conn.execute("SELECT * FROM orderdb.stock_level(%s, %s)", (WAREHOUSE, sku)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _inventory_row(conn: psycopg.Connection[Any], sku: str) -> tuple[int, int]:
    row = conn.execute(
        "SELECT on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = %s AND sku = %s",
        (WAREHOUSE, sku),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _bucketed(conn: psycopg.Connection[Any], sku: str) -> dict[str, Any] | None:
    cur = conn.execute(
        "SELECT buckets, mode, since, reason, on_hand, reserved, available"
        " FROM orderdb_ops.stock_buckets WHERE warehouse_id = %s AND sku = %s",
        (WAREHOUSE, sku),
    )
    row = cur.fetchone()
    if row is None:
        return None
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def _drift(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM orderdb_ops.inventory_drift").fetchall()


def _maintain(dsn: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["maintain", "--dsn", dsn, "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return [r for r in rows if r["parent_table"] == "orderdb.stock_buckets"]


def _policy(conn: psycopg.Connection[Any], **values: Any) -> None:
    for column, value in values.items():
        assert column in {"enabled", "split_conflicts", "merge_after", "merge_below_rate"}
        conn.execute(
            sql.SQL("UPDATE orderdb.stock_bucket_policy SET {} = %s").format(
                sql.Identifier(column)
            ),
            (value,),
        )


def test_hot_sku_splits_itself_sells_out_exactly_and_merges_back_when_cool(fresh_dsn: str) -> None:
    db_dsn = fresh_dsn
    """20 connections buy one SKU nobody configured, 1-3 units per order, until it is sold out.

    No cancellations: available only falls, so an OD001 for q units is false if stock_level shows
    >= q units available after it; and the orders sold must add up to the stock exactly.
    """
    stock, sku = 1500, "AUTO-HOT-1"
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT * FROM orderdb.receive_stock(%s, %s, %s)", (WAREHOUSE, sku, stock))
        assert _bucketed(c, sku) is None
    sold: list[int] = []
    false_od001: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        rnd = random.Random(i)
        try:
            with psycopg.connect(db_dsn, autocommit=True) as c:
                while True:
                    q = rnd.randint(1, 3)
                    try:
                        with c.transaction():
                            c.execute(
                                "SELECT order_id FROM orderdb.create_order(%s, %s, %s)",
                                (rnd.randint(1, 10_000), WAREHOUSE,
                                 Jsonb([{"sku": sku, "quantity": q}])),
                            )  # fmt: skip
                            time.sleep(rnd.uniform(0, 0.003))  # the row or bucket stays held
                    except psycopg.Error as exc:
                        if exc.sqlstate != "OD001":
                            raise
                        available = _level(c, sku)[2]
                        if available >= q:
                            with lock:
                                false_od001.append(f"OD001 for {q} with {available} available")
                        if available == 0:
                            return
                        continue
                    with lock:
                        sold.append(q)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "workers did not finish in time"
    assert errors == []
    assert false_od001 == []
    assert sum(sold) == stock  # sold out exactly: no unit left, none oversold

    with psycopg.connect(db_dsn, autocommit=True) as c:
        info = _bucketed(c, sku)
        assert info is not None, "the hot SKU was not split into buckets"
        assert info["mode"] == "automatic"
        assert info["buckets"] == 32
        assert "lock conflicts in" in info["reason"]
        assert (info["on_hand"], info["reserved"], info["available"]) == (stock, stock, 0)
        assert _inventory_row(c, sku) == (0, 0)
        held = c.execute(
            "SELECT sum(qty_held) FROM orderdb.order_lines WHERE warehouse_id = %s AND sku = %s",
            (WAREHOUSE, sku),
        ).fetchone()
        assert held is not None and held[0] == stock
        assert _drift(c) == []

        # cooling down: the first check sees the sale's rate and only moves its check point;
        # after a quiet second the next `orderdb maintain` merges the SKU back
        _policy(c, merge_after="0 seconds")
        assert _maintain(db_dsn) == []
        assert _bucketed(c, sku) is not None
        time.sleep(1.1)
        merged = _maintain(db_dsn)
        assert [(r["action"], r["partition_name"], r["rows_moved"]) for r in merged] == [
            ("merged", f"warehouse {WAREHOUSE} sku {sku}", 0)
        ]
        assert _bucketed(c, sku) is None
        assert _inventory_row(c, sku) == (stock, stock)
        assert _level(c, sku) == (stock, stock, 0)
        assert _drift(c) == []
        _policy(c, merge_after="10 minutes")


def test_plain_skus_without_contention_stay_plain_and_a_busy_row_is_noted(fresh_dsn: str) -> None:
    db_dsn = fresh_dsn
    """One order at a time never splits a SKU; a reservation that finds the row held notes one
    conflict and then waits for the row as before (below the threshold nothing else changes)."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT * FROM orderdb.receive_stock(%s, 'CALM-1', 100)", (WAREHOUSE,))
        for _ in range(40):
            c.execute(
                "SELECT * FROM orderdb.create_order(1, %s, %s)",
                (WAREHOUSE, Jsonb([{"sku": "CALM-1", "quantity": 1}])),
            )
        assert _bucketed(c, "CALM-1") is None
        assert _level(c, "CALM-1") == (100, 40, 60)

        with psycopg.connect(db_dsn) as holder, psycopg.connect(db_dsn) as waiter:
            holder.execute(
                "SELECT * FROM orderdb.create_order(1, %s, %s)",
                (WAREHOUSE, Jsonb([{"sku": "CALM-1", "quantity": 1}])),
            )
            done = threading.Event()

            def wait_for_row() -> None:
                waiter.execute(
                    "SELECT * FROM orderdb.create_order(2, %s, %s)",
                    (WAREHOUSE, Jsonb([{"sku": "CALM-1", "quantity": 2}])),
                )
                waiter.commit()
                done.set()

            t = threading.Thread(target=wait_for_row)
            t.start()
            time.sleep(0.5)
            assert not done.is_set(), "the second reservation did not wait for the row"
            holder.commit()
            t.join(10)
            assert done.is_set()
        conflicts = c.execute(
            "SELECT count(*) FROM orderdb.stock_lock_conflicts WHERE warehouse_id = %s"
            " AND sku = 'CALM-1'",
            (WAREHOUSE,),
        ).fetchone()
        assert conflicts == (1,)
        assert _bucketed(c, "CALM-1") is None
        assert _level(c, "CALM-1") == (100, 43, 57)
        assert _drift(c) == []


def test_the_split_moves_every_unit_and_waiters_are_served_from_the_buckets(fresh_dsn: str) -> None:
    db_dsn = fresh_dsn
    """The threshold crossed while other reservations wait for the row: the split empties the
    row under its lock, and the waiters (single- and multi-line) are served from the buckets."""
    sku = "SPLIT-1"
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT * FROM orderdb.receive_stock(%s, %s, 50)", (WAREHOUSE, sku))
        c.execute("SELECT * FROM orderdb.receive_stock(%s, 'SPLIT-PLAIN', 50)", (WAREHOUSE,))
        _policy(c, split_conflicts=1)  # the first conflict splits
        try:
            with psycopg.connect(db_dsn) as holder:
                holder.execute(
                    "SELECT * FROM orderdb.create_order(1, %s, %s)",
                    (WAREHOUSE, Jsonb([{"sku": sku, "quantity": 5}])),
                )
                results: dict[str, Any] = {}

                def order(name: str, items: list[dict[str, Any]]) -> None:
                    with psycopg.connect(db_dsn, autocommit=True) as w:
                        try:
                            w.execute(
                                "SELECT * FROM orderdb.create_order(1, %s, %s)",
                                (WAREHOUSE, Jsonb(items)),
                            )
                            results[name] = "ok"
                        except psycopg.Error as exc:
                            results[name] = exc.sqlstate

                lines = {
                    "single-1": [{"sku": sku, "quantity": 10}],
                    "single-2": [{"sku": sku, "quantity": 10}],
                    "multi": [{"sku": sku, "quantity": 20}, {"sku": "SPLIT-PLAIN", "quantity": 1}],
                }
                threads = [
                    threading.Thread(target=order, args=(name, items))
                    for name, items in lines.items()
                ]
                for t in threads:
                    t.start()
                    time.sleep(0.3)  # in this order: a conflict that splits (waiting for the
                holder.commit()  # row), one that finds it split, a multi-line order waiting
                for t in threads:
                    t.join(10)
            assert results == {"single-1": "ok", "single-2": "ok", "multi": "ok"}
            info = _bucketed(c, sku)
            assert info is not None and info["mode"] == "automatic"
            assert info["reason"].startswith("1 lock conflicts in ")
            assert _level(c, sku) == (50, 45, 5)
            assert _inventory_row(c, sku) == (0, 0)
            assert _drift(c) == []
            # the last 5 units, then OD001 (and the reported availability is the real one)
            c.execute(
                "SELECT * FROM orderdb.create_order(1, %s, %s)",
                (WAREHOUSE, Jsonb([{"sku": sku, "quantity": 5}])),
            )
            with pytest.raises(psycopg.Error) as err:
                c.execute(
                    "SELECT * FROM orderdb.create_order(1, %s, %s)",
                    (WAREHOUSE, Jsonb([{"sku": sku, "quantity": 1}])),
                )
            assert err.value.sqlstate == "OD001"
            assert err.value.diag.message_detail == f"sku={sku} requested=1 available=0"
        finally:
            _policy(c, split_conflicts=16)


def test_manual_buckets_win_and_are_never_merged_automatically(fresh_dsn: str) -> None:
    db_dsn = fresh_dsn
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT * FROM orderdb.receive_stock(%s, 'MAN-1', 80)", (WAREHOUSE,))
        c.execute("SELECT * FROM orderdb.receive_stock(%s, 'AUTO-2', 80)", (WAREHOUSE,))
        c.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'MAN-1', 4, 'ops')", (WAREHOUSE,))
        # AUTO-2 crosses the threshold (conflicts noted as the reservation path notes them)
        _policy(c, split_conflicts=3)
        try:
            with c.transaction():
                for _ in range(3):
                    c.execute("SELECT orderdb._note_stock_conflict(%s, 'AUTO-2')", (WAREHOUSE,))
        finally:
            _policy(c, split_conflicts=16)
        auto = _bucketed(c, "AUTO-2")
        assert auto is not None and auto["mode"] == "automatic" and auto["buckets"] == 20
        assert auto["reason"].startswith("3 lock conflicts in ")
        manual = _bucketed(c, "MAN-1")
        assert manual is not None and manual["mode"] == "manual" and manual["buckets"] == 4
        assert manual["reason"] == "set with orderdb.set_stock_buckets"

        _policy(c, merge_after="0 seconds")
        try:
            time.sleep(0.05)
            dry = _maintain_dry_run(db_dsn)
            assert [r["partition_name"] for r in dry] == [f"warehouse {WAREHOUSE} sku AUTO-2"]
            assert _bucketed(c, "AUTO-2") is not None  # a dry run changes nothing
            merged = _maintain(db_dsn)
            assert [r["partition_name"] for r in merged] == [f"warehouse {WAREHOUSE} sku AUTO-2"]
        finally:
            _policy(c, merge_after="10 minutes")
        assert _bucketed(c, "AUTO-2") is None
        assert _inventory_row(c, "AUTO-2") == (80, 0)
        assert _bucketed(c, "MAN-1") is not None  # set by hand: stays
        c.execute("SELECT * FROM orderdb.set_stock_buckets(%s, 'MAN-1', 1)", (WAREHOUSE,))
        assert _bucketed(c, "MAN-1") is None
        assert _drift(c) == []


def test_an_automatic_sku_set_by_hand_becomes_manual(fresh_dsn: str) -> None:
    db_dsn = fresh_dsn
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT * FROM orderdb.receive_stock(%s, 'AUTO-3', 60)", (WAREHOUSE,))
        _policy(c, split_conflicts=1)
        try:
            assert c.execute(
                "SELECT orderdb._note_stock_conflict(%s, 'AUTO-3')", (WAREHOUSE,)
            ).fetchone() == (True,)
        finally:
            _policy(c, split_conflicts=16)
        info = _bucketed(c, "AUTO-3")
        assert info is not None and info["mode"] == "automatic"
        row = c.execute(
            "SELECT buckets, on_hand FROM orderdb.set_stock_buckets(%s, 'AUTO-3', 8, 'ops')",
            (WAREHOUSE,),
        ).fetchone()
        assert row == (8, 60)
        info = _bucketed(c, "AUTO-3")
        assert info is not None and (info["mode"], info["buckets"]) == ("manual", 8)
        _policy(c, merge_after="0 seconds")
        try:
            assert _maintain(db_dsn) == []
        finally:
            _policy(c, merge_after="10 minutes")
        assert _bucketed(c, "AUTO-3") is not None
        assert _level(c, "AUTO-3") == (60, 0, 60)
        assert _drift(c) == []


def _maintain_dry_run(dsn: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["maintain", "--dsn", dsn, "--json", "--dry-run"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return [r for r in rows if r["parent_table"] == "orderdb.stock_buckets"]
