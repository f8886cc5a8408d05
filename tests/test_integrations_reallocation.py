"""Cross-warehouse reallocation under concurrency: 16 connections create orders (with and without a
warehouse), reallocate them between warehouses (including crosswise moves that lock the same two
warehouses in opposite directions; one sku keeps its stock in flash-sale buckets), confirm and
cancel them, all at once. Afterwards: no deadlock,
no oversell, every counter agrees with the ledger, every order lives in exactly one warehouse."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

WAREHOUSES = (3601, 3602, 3603)
SKUS = ("RC-A", "RC-B", "RC-C", "RC-D")
STOCK = 120  # per (warehouse, sku): small enough that OD001 happens
THREADS = 16
SECONDS = 6.0
EXPECTED = {"OD001", "OD002", "OD003", "40001"}


@pytest.fixture(scope="module")
def stocked(db_dsn: str) -> str:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # only this module's warehouses take part in the automatic choice
        conn.execute(
            "INSERT INTO orderdb.warehouse_priority (warehouse_id, auto_allocate) "
            "SELECT warehouse_id, false FROM orderdb.warehouses "
            "ON CONFLICT (warehouse_id) DO UPDATE SET auto_allocate = false"
        )
        for wh in WAREHOUSES:
            for sku in SKUS:
                conn.execute("SELECT orderdb.receive_stock(%s, %s, %s)", (wh, sku, STOCK))
        # one flash-sale sku keeps its stock in buckets in two of the warehouses
        for wh in WAREHOUSES[:2]:
            conn.execute("SELECT orderdb.set_stock_buckets(%s, %s, 4)", (wh, SKUS[-1]))
    return db_dsn


def _worker(
    dsn: str,
    seed: int,
    stop_at: float,
    orders: list[int],
    lock: threading.Lock,
    stats: Counter[str],
    failures: list[str],
    barrier: threading.Barrier,
) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        barrier.wait()
        while time.monotonic() < stop_at:
            op = rng.random()
            try:
                if op < 0.35 or not orders:
                    skus = rng.sample(SKUS, rng.randint(1, 3))
                    items = [{"sku": s, "quantity": rng.randint(1, 3)} for s in skus]
                    wh = None if rng.random() < 0.6 else rng.choice(WAREHOUSES)
                    row = conn.execute(
                        "SELECT order_id FROM orderdb.create_order(%s, %s, %s)",
                        (rng.randint(1, 50), wh, Jsonb(items)),
                    ).fetchone()
                    assert row is not None
                    with lock:
                        orders.append(int(row[0]))
                    stats["created"] += 1
                    continue
                with lock:
                    order_id = rng.choice(orders[-40:])
                cur = conn.execute(
                    "SELECT d.warehouse_id, o.version, o.status FROM orderdb.order_directory d "
                    "JOIN orderdb.orders o USING (warehouse_id, order_id) WHERE d.order_id = %s",
                    (order_id,),
                ).fetchone()
                if cur is None:  # moved between the two reads of the join: try another
                    continue
                wh_now, version, status = int(cur[0]), int(cur[1]), str(cur[2])
                if op < 0.85:
                    target = rng.choice([w for w in WAREHOUSES if w != wh_now])
                    conn.execute(
                        "SELECT * FROM orderdb.reallocate_order(%s, %s, %s, 'stress', 'test')",
                        (order_id, target, version),
                    )
                    stats["reallocated"] += 1
                elif op < 0.93 and status == "pending":
                    conn.execute(
                        "SELECT * FROM orderdb.transition_order(%s, 'confirmed', %s)",
                        (order_id, version),
                    )
                    stats["confirmed"] += 1
                else:
                    conn.execute(
                        "SELECT * FROM orderdb.transition_order(%s, 'cancelled', %s)",
                        (order_id, version),
                    )
                    stats["cancelled"] += 1
            except psycopg.Error as exc:
                state = exc.sqlstate or "?"
                if state in EXPECTED:
                    stats[state] += 1
                else:
                    failures.append(f"{state}: {exc}")
                    return


def test_concurrent_reallocation_creation_and_cancellation(stocked: str) -> None:
    orders: list[int] = []
    lock = threading.Lock()
    stats: Counter[str] = Counter()
    failures: list[str] = []
    barrier = threading.Barrier(THREADS)
    stop_at = time.monotonic() + SECONDS + 1.0
    threads = [
        threading.Thread(
            target=_worker,
            args=(stocked, 1000 + i, stop_at, orders, lock, stats, failures, barrier),
        )
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker hung (lock wait?)"
    assert failures == [], failures[:5]
    assert stats["reallocated"] > 50, stats
    assert stats["created"] > 50, stats
    assert stats["OD001"] > 0, f"the test should run out of stock somewhere: {stats}"
    print(dict(stats))

    with psycopg.connect(stocked, autocommit=True) as conn:
        drift = conn.execute(
            "SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = ANY(%s)",
            (list(WAREHOUSES),),
        ).fetchall()
        assert drift == []
        # no oversell: what is held never exceeds what is on hand, per (warehouse, sku)
        over = conn.execute(
            "SELECT i.warehouse_id, i.sku, i.on_hand, sum(l.qty_held) "
            "FROM orderdb.inventory_levels i JOIN orderdb.order_lines l USING (warehouse_id, sku) "
            "WHERE i.warehouse_id = ANY(%s) GROUP BY 1, 2, 3 HAVING sum(l.qty_held) > i.on_hand",
            (list(WAREHOUSES),),
        ).fetchall()
        assert over == []
        # every order in exactly one place; directory, orders and lines agree
        mismatched = conn.execute(
            "SELECT d.order_id FROM orderdb.order_directory d "
            "LEFT JOIN orderdb.orders o USING (warehouse_id, order_id) "
            "WHERE d.order_id = ANY(%s) AND o.order_id IS NULL "
            "UNION ALL "
            "SELECT l.order_id FROM orderdb.order_lines l "
            "JOIN orderdb.order_directory d USING (order_id) "
            "WHERE l.order_id = ANY(%s) AND l.warehouse_id <> d.warehouse_id "
            "UNION ALL "
            "SELECT order_id FROM orderdb.orders WHERE order_id = ANY(%s) "
            "GROUP BY order_id HAVING count(*) > 1",
            (orders, orders, orders),
        ).fetchall()
        assert mismatched == []
        # history is complete: one row per version, in the order's warehouse
        gaps = conn.execute(
            "SELECT o.order_id FROM orderdb.orders o "
            "WHERE o.order_id = ANY(%s) AND o.version - 1 <> "
            "(SELECT count(*) FROM orderdb.order_status_history h "
            " WHERE h.warehouse_id = o.warehouse_id AND h.order_id = o.order_id)",
            (orders,),
        ).fetchall()
        assert gaps == []
        moves = conn.execute(
            "SELECT count(*) FROM orderdb.outbox WHERE event_type = 'order.reallocated' "
            "AND order_id = ANY(%s)",
            (orders,),
        ).fetchone()
        assert moves is not None and moves[0] == stats["reallocated"]


def test_crosswise_moves_do_not_deadlock(stocked: str) -> None:
    """Orders of the same skus moving 3601 -> 3602 and 3602 -> 3601 at the same moment lock the
    same inventory rows of both warehouses: in (warehouse_id, sku) order, so no deadlock."""
    pairs = 8
    pair_wh = (3611, 3612)
    created: list[tuple[int, int]] = []
    with psycopg.connect(stocked, autocommit=True) as conn:
        for wh in pair_wh:
            for sku in SKUS:
                # room for about half of the moves: some rounds find the target short (OD001)
                conn.execute("SELECT orderdb.receive_stock(%s, %s, %s)", (wh, sku, pairs + 3))
        for i in range(pairs * 2):
            wh = pair_wh[i % 2]
            row = conn.execute(
                "SELECT order_id FROM orderdb.create_order(7, %s, %s)",
                (wh, Jsonb([{"sku": s, "quantity": 1} for s in SKUS])),
            ).fetchone()
            assert row is not None
            created.append((int(row[0]), wh))
    errors: list[str] = []
    barrier = threading.Barrier(len(created))

    def other(wh: int) -> int:
        return pair_wh[1] if wh == pair_wh[0] else pair_wh[0]

    def move(order_id: int, wh: int) -> None:
        here, version = wh, 1
        with psycopg.connect(stocked, autocommit=True) as conn:
            barrier.wait()
            for _ in range(4):
                try:
                    conn.execute(
                        "SELECT * FROM orderdb.reallocate_order(%s, %s, %s)",
                        (order_id, other(here), version),
                    )
                except psycopg.Error as exc:
                    if exc.sqlstate != "OD001":  # out of stock in the target this round
                        errors.append(f"{exc.sqlstate}: {exc}")
                        return
                    continue
                here, version = other(here), version + 1

    threads = [threading.Thread(target=move, args=pair) for pair in created]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [], errors[:5]
    with psycopg.connect(stocked, autocommit=True) as conn:
        assert (
            conn.execute(
                "SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = ANY(%s)",
                (list(pair_wh),),
            ).fetchall()
            == []
        )
        moved = conn.execute(
            "SELECT count(*) FROM orderdb.outbox WHERE event_type = 'order.reallocated' "
            "AND (payload ->> 'from_warehouse_id')::integer = ANY(%s)",
            (list(pair_wh),),
        ).fetchone()
        assert moved is not None and moved[0] >= pairs


def _sqlstate(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> str | None:
    try:
        conn.execute(query, params)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def test_reallocation_through_the_python_error_classes(stocked: str) -> None:
    """The contract's SQLSTATEs arrive as orderdb.errors classes."""
    from orderdb.errors import from_psycopg

    with psycopg.connect(stocked, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(3631, 'EC-A', 5)")
        conn.execute("SELECT orderdb.receive_stock(3632, 'EC-A', 5)")
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(9, 3631, %s)",
            (Jsonb([{"sku": "EC-A", "quantity": 1}]),),
        ).fetchone()
        assert row is not None
        try:
            conn.execute("SELECT * FROM orderdb.reallocate_order(%s, 3632, 99)", (row[0],))
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            assert mapped is not None and type(mapped).__name__ == "VersionConflictError"
            assert mapped.detail == "status=pending version=1"
        else:
            pytest.fail("stale version accepted")
        assert _sqlstate(conn, "SELECT orderdb.reallocate_order(%s, 3631, 1)", (row[0],)) == "22023"


def test_python_client_chooses_and_reallocates(stocked: str) -> None:
    from orderdb import Client
    from orderdb.errors import InsufficientStock, InvalidTransition, VersionConflict

    with Client.connect(stocked, max_size=2) as db:
        db.receive_stock(3621, "PC-A", 5)
        db.receive_stock(3622, "PC-A", 50)
        created = db.create_order(11, None, [{"sku": "PC-A", "quantity": 10}])
        assert db.get_order(created.order_id).warehouse_id == 3622  # only 3622 serves it
        with pytest.raises(InsufficientStock) as short:
            db.reallocate(created.order_id, 3621, expected_version=1)
        assert short.value.detail == "sku=PC-A requested=10 available=5"
        db.receive_stock(3621, "PC-A", 20)
        moved = db.reallocate(created.order_id, 3621, expected_version=1, actor="ops", reason="r")
        assert (moved.warehouse_id, moved.status, moved.version) == (3621, "pending", 2)
        with pytest.raises(VersionConflict):
            db.reallocate(created.order_id, 3622, expected_version=1)
        assert db.stock_level(3621, "PC-A").reserved == 10
        assert db.stock_level(3622, "PC-A").reserved == 0
        db.transition(created.order_id, "cancelled", expected_version=2)
        with pytest.raises(InvalidTransition):
            db.reallocate(created.order_id, 3622, expected_version=3)
