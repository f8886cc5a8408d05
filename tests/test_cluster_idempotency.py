"""Idempotency keys through the proxy behave as on one database (docs/scaling.md, Idempotency
keys): requests of one key racing from warehouses on different shards make one order, the same
request gets it, another request gets OD006 and nobody gets 40001; a key whose first request
failed is free at once; a claim whose proxy backend died never makes a second order and never
keeps the key."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from orderdb import Client
from orderdb.cluster import setup
from orderdb.errors import IdempotencyConflict
from tests.cluster_fixtures import Cluster, cluster  # noqa: F401  (fixture)

#: warehouse -> shard, one warehouse on each shard
WAREHOUSES = {1901: 0, 1902: 1, 1903: 2}


def _items(quantity: int) -> str:
    return json.dumps([{"sku": "SKU-IK", "quantity": quantity, "unit_price": "1.50"}])


def _orders_with_key(cl: Cluster, key: str) -> list[tuple[int, int, str]]:
    """(shard, order_id, order_no) of every order made with ``key``, asked of each shard."""
    found = []
    for shard, dsn in enumerate(cl.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for row in conn.execute(
                "SELECT order_id, order_no FROM orderdb.order_directory WHERE idempotency_key = %s",
                (key,),
            ):
                found.append((shard, int(row[0]), str(row[1])))
    return found


def _reserved(cl: Cluster) -> int:
    total = 0
    for dsn in cl.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(reserved), 0) FROM orderdb.inventory_levels"
                " WHERE sku = 'SKU-IK'"
            ).fetchone()
        total += int(row[0]) if row else 0
    return total


@pytest.fixture(scope="module")
def stocked(cluster: Cluster) -> Cluster:  # noqa: F811
    for warehouse, shard in WAREHOUSES.items():
        setup.map_warehouse(cluster.proxy_dsn, warehouse, shard)
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        for warehouse in WAREHOUSES:
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-IK', 10000)", (warehouse,))
    return cluster


def test_map_is_one_warehouse_per_shard(stocked: Cluster) -> None:
    with psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT warehouse_id, shard FROM orderdb_cluster.warehouses"
            " WHERE warehouse_id = ANY(%s) ORDER BY warehouse_id",
            (list(WAREHOUSES),),
        ).fetchall()
    assert dict(rows) == WAREHOUSES


#: the racing requests: (warehouse, quantity); each on its own shard, each another request
VARIANTS = ((1901, 1), (1902, 2), (1903, 3))
CLIENTS = 18
ROUNDS = 6


def test_racing_requests_of_one_key_make_one_order_and_no_40001(stocked: Cluster) -> None:
    reserved_before = _reserved(stocked)
    outcomes: dict[str, list[tuple[int, str, Any]]] = {}
    failures: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(i: int) -> None:
        variant = i % len(VARIANTS)
        warehouse, quantity = VARIANTS[variant]
        try:
            with psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn:
                for round_ in range(ROUNDS):
                    key = f"race-{round_}"
                    barrier.wait(timeout=60)
                    try:
                        row = conn.execute(
                            "SELECT order_id, replayed FROM orderdb.create_order(77, %s, %s, %s)",
                            (warehouse, _items(quantity), key),
                        ).fetchone()
                        assert row is not None
                        outcome: tuple[int, str, Any] = (variant, "ok", (int(row[0]), row[1]))
                    except psycopg.Error as exc:
                        outcome = (variant, str(exc.sqlstate), exc.diag.message_detail)
                    with lock:
                        outcomes.setdefault(key, []).append(outcome)
        except BaseException as exc:
            with lock:
                failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    reserved = 0
    for round_ in range(ROUNDS):
        key = f"race-{round_}"
        results = outcomes[key]
        assert len(results) == CLIENTS
        orders = _orders_with_key(stocked, key)
        assert len(orders) == 1, (key, orders, results)
        shard, order_id, order_no = orders[0]
        winner = next(v for v, (w, _) in enumerate(VARIANTS) if WAREHOUSES[w] == shard)
        reserved += VARIANTS[winner][1]
        states = Counter(state for _, state, _ in results)
        assert set(states) <= {"ok", "OD006"}, results  # no 40001, nothing else
        for variant, state, value in results:
            if variant == winner:
                assert state == "ok", (key, results)
                assert value[0] == order_id
            else:
                assert (state, value) == (
                    "OD006",
                    f"idempotency_key={key} order_no={order_no}",
                ), (key, results)
        created = [value for variant, state, value in results if variant == winner]
        assert sorted(replayed for _, replayed in created) == [False] + [True] * (len(created) - 1)
    # one order's stock per key: nothing reserved by a request that lost
    assert _reserved(stocked) - reserved_before == reserved


def test_a_failed_first_request_frees_the_key_for_racing_requests(stocked: Cluster) -> None:
    # the first request fails on its shard (more than the stock); then requests of every
    # variant race: one order, as on one database, without waiting for a claim to expire
    with (
        psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn,
        pytest.raises(psycopg.Error) as short,
    ):
        conn.execute(
            "SELECT * FROM orderdb.create_order(78, 1901, %s, 'failed-then-raced')",
            (_items(100000),),
        )
    assert short.value.sqlstate == "OD001"
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(9)

    def client(i: int) -> None:
        warehouse, quantity = VARIANTS[i % 3]
        with psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn:
            barrier.wait(timeout=60)
            try:
                conn.execute(
                    "SELECT * FROM orderdb.create_order(78, %s, %s, 'failed-then-raced')",
                    (warehouse, _items(quantity)),
                )
                state = "ok"
            except psycopg.Error as exc:
                state = str(exc.sqlstate)
        with lock:
            results.append((i % 3, state))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    orders = _orders_with_key(stocked, "failed-then-raced")
    assert len(orders) == 1, results
    winner = next(v for v, (w, _) in enumerate(VARIANTS) if WAREHOUSES[w] == orders[0][0])
    assert sorted(results) == sorted((v, "ok" if v == winner else "OD006") for v, _ in results), (
        results
    )


def _home(cl: Cluster, key: str) -> int:
    with psycopg.connect(cl.proxy_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT orderdb_cluster.key_shard(%s)", (key,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_claim_whose_proxy_backend_died_before_its_creation_is_taken_over(
    stocked: Cluster,
) -> None:
    key = "died-after-claim"
    # a request claimed the key for shard 0 and its proxy backend died before the creation
    # reached shard 0: its claim is there, no order anywhere
    with psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn:
        claim = conn.execute(
            "SELECT * FROM orderdb_cluster.claim_idempotency_key(%s, %s, 79, 1901, %s, '{}',"
            " 0, NULL)",
            (_home(stocked, key), key, _items(1)),
        ).fetchone()
    assert claim == (0, True, 1, True)
    # another request is accepted at once, on its own shard
    with Client.connect(stocked.proxy_dsn) as db:
        made = db.create_order(
            customer_id=79,
            warehouse_id=1903,
            items=json.loads(_items(3)),
            idempotency_key=key,
        )
        assert made.replayed is False
        # the dead request's creation reaching shard 0 late makes nothing: its claim was revoked
        with psycopg.connect(stocked.shard_dsns[0], autocommit=True) as conn:
            late = conn.execute(
                "SELECT revoked, order_id, err_sqlstate FROM orderdb_shard.create_order_claimed("
                "1, 79, 1901, %s, %s, NULL, '{}')",
                (_items(1), key),
            ).fetchone()
        assert late == (True, None, None)
        # the dead request sent again is another request now: OD006
        with pytest.raises(IdempotencyConflict) as conflict:
            db.create_order(
                customer_id=79, warehouse_id=1901, items=json.loads(_items(1)), idempotency_key=key
            )
    assert conflict.value.detail == f"idempotency_key={key} order_no={made.order_no}"
    assert _orders_with_key(stocked, key) == [(2, made.order_id, made.order_no)]


def test_a_claim_revoked_by_a_request_that_died_is_taken_over_by_the_same_request(
    stocked: Cluster,
) -> None:
    key = "revoked-then-died"
    with psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT * FROM orderdb_cluster.claim_idempotency_key(%s, %s, 80, 1902, %s, '{}',"
            " 1, NULL)",
            (_home(stocked, key), key, _items(2)),
        )
        # a request revoked that claim and died before it took the key over
        revoked = conn.execute(
            "SELECT orderdb_cluster.revoke_idempotency_claim(1, %s, 1)", (key,)
        ).fetchone()
        assert revoked == (True,)
        row = conn.execute(
            "SELECT order_id, replayed FROM orderdb.create_order(80, 1902, %s, %s)",
            (_items(2), key),
        ).fetchone()
    assert row is not None and row[1] is False
    assert [o[:2] for o in _orders_with_key(stocked, key)] == [(1, row[0])]


def _pids(cl: Cluster, dsn: str, pattern: str, lock_wait: bool = False) -> list[int]:
    dbname = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(cl.admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_catalog.pg_stat_activity WHERE datname = %s AND query LIKE %s"
            " AND pid <> pg_backend_pid() AND (NOT %s OR wait_event_type = 'Lock')",
            (dbname, pattern, lock_wait),
        ).fetchall()
    return [int(r[0]) for r in rows]


def _wait_for(what: str, probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_creation_running_when_its_proxy_backend_died_decides_the_key(
    stocked: Cluster,
) -> None:
    key = "died-while-creating"
    shard1 = stocked.shard_dsns[1]
    blocker = psycopg.connect(shard1)
    errors: list[str] = []
    results: list[Any] = []
    try:
        # the creation on shard 1 waits for the orders table
        blocker.execute("LOCK TABLE orderdb.orders IN SHARE MODE")

        def first() -> None:
            try:
                with psycopg.connect(
                    stocked.proxy_dsn, autocommit=True, application_name="idem-first"
                ) as conn:
                    conn.execute(
                        "SELECT * FROM orderdb.create_order(81, 1902, %s, %s)", (_items(2), key)
                    )
            except psycopg.Error as exc:
                errors.append(type(exc).__name__)

        t1 = threading.Thread(target=first)
        t1.start()
        orphan = _wait_for(
            "the creation waiting on shard 1",
            lambda: _pids(stocked, shard1, "%create_order_claimed%", lock_wait=True),
        )
        # its proxy backend dies; the creation on shard 1 goes on
        with psycopg.connect(stocked.admin_dsn, autocommit=True) as conn:
            proxy_db = conninfo_to_dict(stocked.proxy_dsn)["dbname"]
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
                " WHERE datname = %s AND application_name = 'idem-first'",
                (proxy_db,),
            ).fetchall()
        assert killed == [(True,)]
        t1.join(timeout=30)
        assert errors == ["AdminShutdown"]
        assert _pids(stocked, shard1, "%create_order_claimed%", lock_wait=True) == orphan

        def second() -> None:
            with psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn:
                try:
                    conn.execute(
                        "SELECT * FROM orderdb.create_order(81, 1901, %s, %s)", (_items(1), key)
                    )
                    results.append("ok")
                except psycopg.Error as exc:
                    results.append((exc.sqlstate, exc.diag.message_detail))

        t2 = threading.Thread(target=second)
        t2.start()
        # another request waits for that creation (the revocation of its claim on shard 1)
        _wait_for(
            "the revocation waiting on shard 1",
            lambda: _pids(stocked, shard1, "%revoke_idempotency_claim%", lock_wait=True),
        )
        blocker.rollback()
        t2.join(timeout=30)
    finally:
        blocker.close()
    # the creation finished on shard 1 (its order is the key's) and the other request got OD006
    orders = _orders_with_key(stocked, key)
    assert [o[0] for o in orders] == [1], (orders, results)
    assert results == [("OD006", f"idempotency_key={key} order_no={orders[0][2]}")]


def test_a_creation_still_running_10_seconds_after_its_proxy_backend_died_is_40001(
    stocked: Cluster,
) -> None:
    key = "died-and-stuck"
    shard2 = stocked.shard_dsns[2]
    blocker = psycopg.connect(shard2)
    try:
        blocker.execute("LOCK TABLE orderdb.orders IN SHARE MODE")

        def first() -> None:
            try:
                with psycopg.connect(
                    stocked.proxy_dsn, autocommit=True, application_name="idem-stuck"
                ) as conn:
                    conn.execute(
                        "SELECT * FROM orderdb.create_order(82, 1903, %s, %s)", (_items(1), key)
                    )
            except psycopg.Error:
                pass

        t1 = threading.Thread(target=first)
        t1.start()
        _wait_for(
            "the creation waiting on shard 2",
            lambda: _pids(stocked, shard2, "%create_order_claimed%", lock_wait=True),
        )
        with psycopg.connect(stocked.admin_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
                " WHERE datname = %s AND application_name = 'idem-stuck'",
                (conninfo_to_dict(stocked.proxy_dsn)["dbname"],),
            )
        t1.join(timeout=30)
        started = time.monotonic()
        with (
            psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn,
            pytest.raises(psycopg.errors.SerializationFailure) as busy,
        ):
            conn.execute("SELECT * FROM orderdb.create_order(82, 1901, %s, %s)", (_items(1), key))
        assert time.monotonic() - started >= 9.5
        assert busy.value.diag.message_detail == f"idempotency_key={key}"
    finally:
        blocker.rollback()
        blocker.close()
    # the stuck creation ends: the key is its order's; the request that got 40001, sent again,
    # gets OD006
    orders = _wait_for("the stuck creation's order", lambda: _orders_with_key(stocked, key))
    assert [o[0] for o in orders] == [2]
    with (
        psycopg.connect(stocked.proxy_dsn, autocommit=True) as conn,
        pytest.raises(psycopg.Error) as conflict,
    ):
        conn.execute("SELECT * FROM orderdb.create_order(82, 1901, %s, %s)", (_items(1), key))
    assert conflict.value.sqlstate == "OD006"


def test_the_same_request_after_its_order_moved_shards_gets_it(stocked: Cluster) -> None:
    key = "moved-away"
    with Client.connect(stocked.proxy_dsn) as db:
        first = db.create_order(
            customer_id=83, warehouse_id=1901, items=json.loads(_items(2)), idempotency_key=key
        )
        confirmed = db.transition(first.order_id, "confirmed", expected_version=first.version)
        moved = db.reallocate(first.order_id, 1902, expected_version=confirmed.version)
        assert moved.warehouse_id == 1902
        again = db.create_order(
            customer_id=83, warehouse_id=1901, items=json.loads(_items(2)), idempotency_key=key
        )
        assert (again.order_id, again.replayed, again.version) == (first.order_id, True, 3)
        with pytest.raises(IdempotencyConflict):
            db.create_order(
                customer_id=83, warehouse_id=1903, items=json.loads(_items(1)), idempotency_key=key
            )
    assert [o[:2] for o in _orders_with_key(stocked, key)] == [(1, first.order_id)]
