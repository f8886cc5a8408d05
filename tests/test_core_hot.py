"""Inventory updates stay HOT: a workload of receipts, reservations, releases, shipments and
restocks leaves at least 90% of the updates of orderdb.inventory heap-only (no index change).

Statistics reach pg_stat_user_tables lazily: the workload's backends flush theirs with
pg_stat_force_next_flush() (PostgreSQL 15+) before they disconnect, and the reader looks from a
new transaction after pg_stat_clear_snapshot(). Through a proxy (the cluster variant of
tests/deployments.py) the workload's calls run in the shard's backends of PL/Proxy, which stay
connected: they flush their statistics on their own once idle (at most about 10 s later), and
the counters are the sum of every shard's."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.deployments import Deployment


def _inventory_updates(deployment: Deployment) -> tuple[int, int]:
    upd = hot = 0
    for dsn in deployment.data_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE schemaname = 'orderdb' AND relname = 'inventory'"
            ).fetchone()
        assert row is not None
        upd, hot = upd + int(row[0]), hot + int(row[1])
    return upd, hot


def _settled(deployment: Deployment, expected_min: int) -> tuple[int, int]:
    """Counters once they include at least expected_min updates (the flush is asynchronous)."""
    deadline = time.monotonic() + (30 if deployment.is_cluster else 10)
    upd, hot = _inventory_updates(deployment)
    while upd < expected_min and time.monotonic() < deadline:
        time.sleep(0.2)
        upd, hot = _inventory_updates(deployment)
    return upd, hot


def _workload(dsn: str, worker: int, rounds: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for r in range(rounds):
            sku = f"HOT-{(worker + r) % 4}"
            items = Jsonb([{"sku": sku, "quantity": 1}, {"sku": "HOT-SHARED", "quantity": 1}])
            order_id, version = conn.execute(
                "SELECT order_id, version FROM orderdb.create_order(1, 1, %s)", (items,)
            ).fetchone() or (0, 0)
            path = ["cancelled"] if r % 3 else ["confirmed", "dispatched", "picked", "packed",
                                                "shipped", "delivered", "return_requested",
                                                "returning", "returned"]  # fmt: skip
            for to in path:
                (version,) = conn.execute(
                    "SELECT version FROM orderdb.transition_order(%s, %s, %s)",
                    (order_id, to, version),
                ).fetchone() or (0,)
            if r % 10 == 0:
                conn.execute("SELECT orderdb.receive_stock(1, %s, 5)", (sku,))
        conn.execute("SELECT pg_stat_force_next_flush()")


def test_inventory_updates_are_hot(deployment: Deployment) -> None:
    dsn = deployment.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in ["HOT-SHARED", *[f"HOT-{i}" for i in range(4)]]:
            conn.execute("SELECT orderdb.receive_stock(1, %s, 100000)", (s,))
        conn.execute("SELECT pg_stat_force_next_flush()")
    before_upd, before_hot = _settled(deployment, 0)

    workers, rounds = 4, 150
    threads = [threading.Thread(target=_workload, args=(dsn, w, rounds)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)

    # per round: 2 rows reserved, 2 released or consumed (+2 restocked on returns), 1 receipt/10
    minimum = workers * rounds * 4
    upd, hot = _settled(deployment, before_upd + minimum)
    updates, hot_updates = upd - before_upd, hot - before_hot
    ratio = hot_updates / updates if updates else 0.0
    print(f"inventory: {updates} updates, {hot_updates} HOT ({ratio:.1%})")
    assert updates >= minimum
    assert ratio >= 0.90, f"only {ratio:.1%} of inventory updates were HOT"


def test_stats_reader_sees_a_new_snapshot(fresh_dsn: str) -> None:
    """Guard for the method above: within one transaction the stats snapshot is frozen unless
    cleared; pg_stat_clear_snapshot() makes a later read see the flushed counters."""
    with psycopg.connect(fresh_dsn) as reader:
        reader.execute("SET stats_fetch_consistency = snapshot")
        first: Any = reader.execute(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'orderdb.inventory'::regclass"
        ).fetchone()
        with psycopg.connect(fresh_dsn, autocommit=True) as writer:
            writer.execute("SELECT orderdb.receive_stock(1, 'SNAP', 1)")
            writer.execute("SELECT orderdb.receive_stock(1, 'SNAP', 1)")
            writer.execute("SELECT pg_stat_force_next_flush()")
        deadline = time.monotonic() + 10
        while True:
            reader.execute("SELECT pg_stat_clear_snapshot()")
            now: Any = reader.execute(
                "SELECT n_tup_upd FROM pg_stat_user_tables"
                " WHERE relid = 'orderdb.inventory'::regclass"
            ).fetchone()
            if now[0] > first[0] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert now[0] == first[0] + 1
        reader.rollback()
