"""One orderdb over three shard databases behind a PL/Proxy proxy (docs/scaling.md):
`orderdb cluster init|status|map-warehouse`, ids unique across shards, the Python client
through the proxy, errors that keep SQLSTATE/MESSAGE/DETAIL/HINT without a reconnect, and
concurrent orders through the proxy that never oversell."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from orderdb import Client
from orderdb.cli import main
from orderdb.cluster import operations, routing, setup
from orderdb.errors import (
    IdempotencyConflict,
    InsufficientStock,
    NotFound,
    OrderDBError,
    VersionConflict,
)
from orderdb.server import migrate
from tests.cluster_fixtures import SHARDS, Cluster, cluster, make_cluster  # noqa: F401  (fixture)
from tests.conftest import PgServer

ITEMS = '[{"sku": "SKU-C", "quantity": 1, "unit_price": 2.50}]'


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def status_json(cl: Cluster) -> Any:
    result = run("cluster", "status", "--dsn", cl.proxy_dsn, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def proxy(cl: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cl.proxy_dsn, autocommit=True)


def pin(cl: Cluster, warehouse_id: int, shard: int) -> None:
    done = run("cluster", "map-warehouse", "--dsn", cl.proxy_dsn, str(warehouse_id), str(shard))
    assert done.exit_code == 0, done.output


def shard_of(cl: Cluster, warehouse_id: int) -> int:
    with proxy(cl) as conn:
        row = conn.execute(
            "SELECT shard FROM orderdb_cluster.warehouses WHERE warehouse_id = %s",
            (warehouse_id,),
        ).fetchone()
    assert row is not None, f"warehouse {warehouse_id} is not mapped"
    return int(row[0])


# -- init, status, map-warehouse ------------------------------------------------------------------


def test_status_shows_every_shard_reachable_and_migrated(cluster: Cluster) -> None:  # noqa: F811
    st = status_json(cluster)
    assert st["schema_revision"] == migrate.required_revision()
    assert [s["shard"] for s in st["shards"]] == list(range(SHARDS))
    for s in st["shards"]:
        assert s["reachable"] is True, s
        assert s["schema_revision"] == migrate.required_revision()
        assert s["id_space_ok"] is True
        assert s["error"] is None
        assert "password" not in s["dsn"] and "user=" not in s["dsn"]
    text = run("cluster", "status", "--dsn", cluster.proxy_dsn)
    assert text.exit_code == 0, text.output
    assert "shard" in text.stdout


def test_init_again_changes_nothing_and_refuses_other_shards(cluster: Cluster) -> None:  # noqa: F811
    again = run(
        "cluster",
        "init",
        "--proxy",
        cluster.proxy_dsn,
        *[a for d in cluster.shard_dsns for a in ("--shard", d)],
    )
    assert again.exit_code == 0, again.output
    assert status_json(cluster)["shards"] == status_json(cluster)["shards"]
    swapped = list(reversed(cluster.shard_dsns))
    refused = run(
        "cluster",
        "init",
        "--proxy",
        cluster.proxy_dsn,
        *[a for d in swapped for a in ("--shard", d)],
    )
    assert refused.exit_code == 2
    assert "shard" in refused.stderr


def test_migrate_through_the_proxy_migrates_every_shard(cluster: Cluster) -> None:  # noqa: F811
    result = run("migrate", "--dsn", cluster.proxy_dsn)
    assert result.exit_code == 0, result.output
    for dsn in cluster.shard_dsns:
        assert migrate.plan(dsn).up_to_date
    assert migrate.plan(cluster.proxy_dsn).up_to_date  # the shards' plans, merged
    check = run("migrate", "--dsn", cluster.proxy_dsn, "--check")
    assert check.exit_code == 0, check.output
    assert all(s["id_space_ok"] for s in status_json(cluster)["shards"])


def test_map_warehouse_pins_and_placement_picks_the_emptiest_shard(cluster: Cluster) -> None:  # noqa: F811
    for warehouse, shard in ((101, 0), (102, 1), (103, 2), (104, 2)):
        pin(cluster, warehouse, shard)
    assert status_json(cluster)["warehouses"]["104"] == 2
    # unmapped: placed by the first call that creates its data, on a shard with the fewest
    with proxy(cluster) as conn:
        counts = dict(
            conn.execute(
                "SELECT s.shard, count(w.warehouse_id) FROM orderdb_cluster.shards s"
                " LEFT JOIN orderdb_cluster.warehouses w USING (shard) GROUP BY s.shard"
            ).fetchall()
        )
        conn.execute("SELECT * FROM orderdb.receive_stock(105, 'SKU-C', 5)")
    assert counts[shard_of(cluster, 105)] == min(counts.values())
    # a read does not place; stock of an unmapped warehouse does not exist anywhere: OD004
    with proxy(cluster) as conn, pytest.raises(psycopg.Error) as missing:
        conn.execute("SELECT * FROM orderdb.stock_level(106, 'SKU-C')")
    assert missing.value.sqlstate == "OD004"
    with proxy(cluster) as conn:
        assert conn.execute(
            "SELECT count(*) FROM orderdb_cluster.warehouses WHERE warehouse_id = 106"
        ).fetchone() == (0,)
    # no such shard; a warehouse with stock is not moved
    bad = run("cluster", "map-warehouse", "--dsn", cluster.proxy_dsn, "107", "9")
    assert bad.exit_code == 2 and "no shard 9" in bad.stderr
    moved = run(
        "cluster",
        "map-warehouse",
        "--dsn",
        cluster.proxy_dsn,
        "105",
        str((shard_of(cluster, 105) + 1) % SHARDS),
    )
    assert moved.exit_code == 2 and "has stock or orders" in moved.stderr


# -- ids --------------------------------------------------------------------------------------


def test_ids_are_unique_across_shards_and_say_where_the_order_lives(cluster: Cluster) -> None:  # noqa: F811
    warehouses = {}
    for shard in range(SHARDS):
        warehouse = 200 + shard
        pin(cluster, warehouse, shard)
        warehouses[shard] = warehouse
    orders: list[tuple[int, int, str]] = []
    with proxy(cluster) as conn:
        for shard, warehouse in warehouses.items():
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-C', 50)", (warehouse,))
            for _ in range(4):
                row = conn.execute(
                    "SELECT order_id, order_no FROM orderdb.create_order(1, %s, %s)",
                    (warehouse, ITEMS),
                ).fetchone()
                assert row is not None
                orders.append((shard, int(row[0]), str(row[1])))
    ids = [o[1] for o in orders]
    assert len(set(ids)) == len(ids)
    assert len({o[2] for o in orders}) == len(orders)
    stride = status_json(cluster)["id_stride"]
    for shard, order_id, order_no in orders:
        assert (order_id - 1) % stride == shard
        assert order_no.endswith(str(order_id)) and len(order_no) >= 3 + 8 + 8
    # every other id a caller can pass back too: events of each shard's outbox
    event_ids: list[int] = []
    for shard, dsn in enumerate(cluster.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute("SELECT event_id FROM orderdb.read_events('ids-check', 1000)")
            mine = [int(r[0]) for r in rows.fetchall()]
        assert mine and all((e - 1) % stride == shard for e in mine)
        event_ids += mine
    assert len(set(event_ids)) == len(event_ids)


# -- the Python client through the proxy ---------------------------------------------------------


def test_python_client_through_the_proxy(cluster: Cluster) -> None:  # noqa: F811
    for warehouse, shard in ((301, 0), (302, 2)):
        pin(cluster, warehouse, shard)
    with Client.connect(cluster.proxy_dsn) as db:
        for warehouse in (301, 302):
            db.receive_stock(warehouse, "SKU-P", 10)
        a = db.create_order(
            customer_id=7,
            warehouse_id=301,
            items=[{"sku": "SKU-P", "quantity": 2, "unit_price": "19.90"}],
            idempotency_key="cluster-cart-1",
        )
        b = db.create_order(
            customer_id=7,
            warehouse_id=302,
            items=[{"sku": "SKU-P", "quantity": 3, "unit_price": "5.00"}],
        )
        assert orderdb_shard(cluster, a.order_id) == 0
        assert orderdb_shard(cluster, b.order_id) == 2
        again = db.create_order(
            customer_id=7,
            warehouse_id=301,
            items=[{"sku": "SKU-P", "quantity": 2, "unit_price": "19.90"}],
            idempotency_key="cluster-cart-1",
        )
        assert (again.order_id, again.replayed) == (a.order_id, True)
        t = db.transition(a.order_id, "confirmed", expected_version=a.version, actor="pay")
        assert (t.status, t.version) == ("confirmed", 2)
        got = db.get_order(b.order_id)
        assert (got.order_id, got.warehouse_id, got.status) == (b.order_id, 302, "pending")
        assert got.items[0].quantity == 3 and got.items[0].unit_price == Decimal("5.00")
        assert db.stock_level(302, "SKU-P").reserved == 3
        with pytest.raises(VersionConflict):
            db.transition(a.order_id, "cancelled", expected_version=1)
        with pytest.raises(InsufficientStock):
            db.create_order(
                customer_id=7,
                warehouse_id=302,
                items=[{"sku": "SKU-P", "quantity": 99, "unit_price": "1"}],
            )
        with pytest.raises(NotFound):
            db.get_order(a.order_id + 64 * 1000)


def orderdb_shard(cl: Cluster, order_id: int) -> int:
    """The shard whose database holds the order (asked directly, not through the proxy)."""
    found = []
    for shard, dsn in enumerate(cl.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            if conn.execute(
                "SELECT 1 FROM orderdb.order_directory WHERE order_id = %s", (order_id,)
            ).fetchone():
                found.append(shard)
    assert len(found) == 1, found
    return found[0]


# -- errors -------------------------------------------------------------------------------------

#: one business error of each kind: (SQLSTATE, SQL, parameters)
FAILING_CALLS = [
    (
        "OD001",
        "SELECT * FROM orderdb.create_order(1, %s, "
        '\'[{"sku": "SKU-E", "quantity": 999, "unit_price": 1}]\')',
        "warehouse",
    ),
    ("OD002", "SELECT * FROM orderdb.transition_order(%s, 'confirmed', 7)", "order"),
    ("OD004", "SELECT orderdb.get_order(%s)", "missing order"),
    ("22023", "SELECT * FROM orderdb.receive_stock(%s, 'SKU-E', -1)", "warehouse"),
]


def _diag(exc: psycopg.Error) -> tuple[str | None, str | None, str | None, str | None]:
    d = exc.diag
    return (exc.sqlstate, d.message_primary, d.message_detail, d.message_hint)


def _error_of(conn: psycopg.Connection[Any], query: str, param: int) -> psycopg.Error:
    try:
        conn.execute(query, (param,))
    except psycopg.Error as exc:
        return exc
    raise AssertionError(f"{query} did not fail")


def _proxy_backends(cl: Cluster, shard: int) -> list[tuple[int, Any]]:
    with psycopg.connect(cl.shard_dsns[shard], autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, backend_start FROM pg_stat_activity"
            " WHERE datname = current_database() AND usename = 'orderdb_proxy' ORDER BY pid"
        ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def test_errors_keep_every_field_and_cost_no_reconnect(cluster: Cluster) -> None:  # noqa: F811
    warehouse, shard = 401, 1
    pin(cluster, warehouse, shard)
    with proxy(cluster) as conn:
        conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-E', 5)", (warehouse,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(1, %s, "
            '\'[{"sku": "SKU-E", "quantity": 1, "unit_price": 1}]\')',
            (warehouse,),
        ).fetchone()
    assert row is not None
    order_id = int(row[0])
    params = {"warehouse": warehouse, "order": order_id, "missing order": order_id + 64 * 500}
    timings: dict[str, tuple[float, float]] = {}
    with (
        proxy(cluster) as via_proxy,
        psycopg.connect(cluster.shard_dsns[shard], autocommit=True) as direct,
    ):
        _error_of(via_proxy, FAILING_CALLS[0][1], warehouse)  # the proxy's connection is made
        before = _proxy_backends(cluster, shard)
        assert len(before) == 1
        for sqlstate, query, kind in FAILING_CALLS:
            through = _error_of(via_proxy, query, params[kind])
            local = _error_of(direct, query, params[kind])
            assert _diag(through) == _diag(local)
            assert through.sqlstate == sqlstate
            assert "REMOTE" not in (through.diag.message_primary or "")
            n = 200
            started = time.perf_counter()
            for _ in range(n):
                _error_of(via_proxy, query, params[kind])
            per_proxy = (time.perf_counter() - started) / n
            started = time.perf_counter()
            for _ in range(n):
                _error_of(direct, query, params[kind])
            per_direct = (time.perf_counter() - started) / n
            timings[sqlstate] = (per_proxy * 1000, per_direct * 1000)
        # still the same connection from the proxy: no failing call made it reconnect
        assert _proxy_backends(cluster, shard) == before
    print(
        "\nms per failing call (proxy, direct):",
        {k: (round(a, 3), round(b, 3)) for k, (a, b) in timings.items()},
    )


def test_every_public_function_of_a_shard_exists_on_the_proxy(cluster: Cluster) -> None:  # noqa: F811
    signature = (
        "SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ') '"
        " || pg_get_function_result(p.oid) FROM pg_proc p"
        " WHERE p.pronamespace = 'orderdb'::regnamespace"
        " AND (has_function_privilege('orderdb_app', p.oid, 'EXECUTE')"
        " OR has_function_privilege('orderdb_ingest', p.oid, 'EXECUTE')) ORDER BY 1"
    )
    with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as conn:
        on_shard = [r[0] for r in conn.execute(signature).fetchall()]
    with proxy(cluster) as conn:
        on_proxy = [r[0] for r in conn.execute(signature).fetchall()]
    assert on_proxy == on_shard
    for name in (*routing.NOT_YET, *routing.HAND_WRITTEN):
        assert any(s.startswith(f"{name}(") for s in on_proxy), name
    assert not routing.NOT_YET  # every public function of a shard is routed


def test_proxy_grants_follow_the_shards(cluster: Cluster) -> None:  # noqa: F811
    with proxy(cluster) as conn:
        rows = conn.execute(
            "SELECT p.proname, has_function_privilege('orderdb_app', p.oid, 'EXECUTE'),"
            " has_function_privilege('orderdb_ingest', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE p.pronamespace = 'orderdb'::regnamespace"
        ).fetchall()
        internal = conn.execute(
            "SELECT count(*) FROM pg_proc p"
            " WHERE p.pronamespace = 'orderdb_cluster'::regnamespace"
            " AND (has_function_privilege('orderdb_app', p.oid, 'EXECUTE')"
            " OR has_function_privilege('orderdb_ingest', p.oid, 'EXECUTE'))"
        ).fetchone()
        role = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = 'orderdb_proxy'"
        ).fetchone()
    grants = {r[0]: (r[1], r[2]) for r in rows}
    assert grants["create_order"] == (True, False)
    assert grants["wms_callback"] == (False, True)
    assert grants["schema_revision"] == (True, True)
    assert internal == (0,)
    assert role == (False, False, False)


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_orders_through_the_proxy_never_oversell(cluster: Cluster) -> None:  # noqa: F811
    stock = 120
    warehouses = {501: 0, 502: 2}
    for warehouse, shard in warehouses.items():
        pin(cluster, warehouse, shard)
    with proxy(cluster) as conn:
        for warehouse in warehouses:
            for sku in ("SKU-X", "SKU-Y"):
                conn.execute(
                    "SELECT * FROM orderdb.receive_stock(%s, %s, %s)", (warehouse, sku, stock)
                )
    created: list[tuple[int, int, dict[str, int]]] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
                for _ in range(25):
                    warehouse = rnd.choice(list(warehouses))
                    lines = {sku: rnd.randint(1, 4) for sku in rnd.sample(["SKU-X", "SKU-Y"], 2)}
                    items = json.dumps(
                        [{"sku": s, "quantity": q, "unit_price": 1} for s, q in lines.items()]
                    )
                    try:
                        row = conn.execute(
                            "SELECT order_id FROM orderdb.create_order(%s, %s, %s)",
                            (seed, warehouse, items),
                        ).fetchone()
                    except psycopg.Error as exc:
                        with lock:
                            refused.append(str(exc.sqlstate))
                        continue
                    assert row is not None
                    with lock:
                        created.append((warehouse, int(row[0]), lines))
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i + 1,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(refused) <= {"OD001"}
    assert refused, "the load must exhaust the stock"
    with proxy(cluster) as conn:
        for warehouse in warehouses:
            for sku in ("SKU-X", "SKU-Y"):
                level = conn.execute(
                    "SELECT on_hand, reserved, available FROM orderdb.stock_level(%s, %s)",
                    (warehouse, sku),
                ).fetchone()
                ordered = sum(lines.get(sku, 0) for w, _, lines in created if w == warehouse)
                assert level == (stock, ordered, stock - ordered), (warehouse, sku)
    for warehouse, shard in warehouses.items():
        with psycopg.connect(cluster.shard_dsns[shard], autocommit=True) as conn:
            assert conn.execute("SELECT * FROM orderdb_ops.inventory_drift").fetchall() == []
            ids = {
                int(r[0])
                for r in conn.execute(
                    "SELECT order_id FROM orderdb.orders WHERE warehouse_id = %s", (warehouse,)
                ).fetchall()
            }
        assert ids == {o for w, o, _ in created if w == warehouse}


def test_errors_raised_by_the_client_keep_detail_and_hint(cluster: Cluster) -> None:  # noqa: F811
    pin(cluster, 601, 0)
    with Client.connect(cluster.proxy_dsn) as db:
        db.receive_stock(601, "SKU-H", 1)
        with pytest.raises(OrderDBError) as exc:
            db.create_order(
                customer_id=1,
                warehouse_id=601,
                items=[{"sku": "SKU-H", "quantity": 2, "unit_price": "1"}],
            )
    assert exc.value.sqlstate == "OD001"
    assert exc.value.detail == "sku=SKU-H requested=2 available=1"
    assert exc.value.hint == "Nothing was reserved."


def test_status_of_a_database_that_is_not_a_proxy_says_so(cluster: Cluster) -> None:  # noqa: F811
    for args in (("status", "--json"), ("map-warehouse", "1", "0")):
        result = run("cluster", *args[:1], "--dsn", cluster.shard_dsns[0], *args[1:])
        assert result.exit_code == 2, result.output
        assert "not the proxy of an orderdb cluster" in result.stderr


def test_cluster_errors_are_clear(cluster: Cluster) -> None:  # noqa: F811
    with pytest.raises(setup.ClusterError, match="twice"):
        setup.init(cluster.proxy_dsn, [cluster.shard_dsns[0], cluster.shard_dsns[0]])
    with pytest.raises(setup.ClusterError, match="proxy cannot be one of its shards"):
        setup.init(cluster.proxy_dsn, [cluster.proxy_dsn])
    with pytest.raises(setup.ClusterError, match="positive"):
        setup.map_warehouse(cluster.proxy_dsn, 0, 0)


# -- idempotency keys across shards -----------------------------------------------------------


def _order_with_key(cl: Cluster, key: str) -> list[tuple[int, int]]:
    """(shard, order_id) of every order created with ``key``, asked of each shard directly."""
    found = []
    for shard, dsn in enumerate(cl.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT order_id FROM orderdb.order_directory WHERE idempotency_key = %s", (key,)
            ).fetchone()
        if row is not None:
            found.append((shard, int(row[0])))
    return found


def test_idempotency_keys_are_global(cluster: Cluster) -> None:  # noqa: F811
    pin(cluster, 701, 0)
    pin(cluster, 702, 1)
    items = [{"sku": "SKU-K", "quantity": 1, "unit_price": "3.00"}]
    with Client.connect(cluster.proxy_dsn) as db:
        db.receive_stock(701, "SKU-K", 10)
        db.receive_stock(702, "SKU-K", 10)
        first = db.create_order(
            customer_id=9, warehouse_id=701, items=items, idempotency_key="global-key-1"
        )
        # the same request again: the original order (lines in another spelling, as on one db)
        again = db.create_order(
            customer_id=9,
            warehouse_id=701,
            items=[{"sku": "SKU-K", "quantity": 1, "unit_price": 3}],
            idempotency_key="global-key-1",
        )
        assert (again.order_id, again.replayed) == (first.order_id, True)
        # the same key naming a warehouse of another shard: another request, OD006
        with pytest.raises(IdempotencyConflict) as conflict:
            db.create_order(
                customer_id=9, warehouse_id=702, items=items, idempotency_key="global-key-1"
            )
    assert conflict.value.detail == f"idempotency_key=global-key-1 order_no={first.order_no}"
    assert conflict.value.hint == "Use a new key for a new order."
    assert _order_with_key(cluster, "global-key-1") == [(0, first.order_id)]


def test_a_key_whose_request_failed_is_free_at_once(cluster: Cluster) -> None:  # noqa: F811
    pin(cluster, 711, 1)
    pin(cluster, 712, 2)
    with Client.connect(cluster.proxy_dsn) as db:
        db.receive_stock(711, "SKU-F", 1)
        db.receive_stock(712, "SKU-F", 5)
        with pytest.raises(InsufficientStock):
            db.create_order(
                customer_id=3,
                warehouse_id=711,
                items=[{"sku": "SKU-F", "quantity": 2, "unit_price": "1"}],
                idempotency_key="failed-first",
            )
        # as on one database: another request with the key is accepted at once, on its shard
        other = [{"sku": "SKU-F", "quantity": 2, "unit_price": "1"}]
        made = db.create_order(
            customer_id=3, warehouse_id=712, items=other, idempotency_key="failed-first"
        )
        assert made.replayed is False
        again = db.create_order(
            customer_id=3, warehouse_id=712, items=other, idempotency_key="failed-first"
        )
        assert (again.order_id, again.replayed) == (made.order_id, True)
        # the request that failed first is now another request: OD006
        with pytest.raises(IdempotencyConflict):
            db.create_order(
                customer_id=3,
                warehouse_id=711,
                items=[{"sku": "SKU-F", "quantity": 2, "unit_price": "1"}],
                idempotency_key="failed-first",
            )
        # a request that failed and is sent again once the stock is there: its order
        with pytest.raises(InsufficientStock):
            db.create_order(
                customer_id=3,
                warehouse_id=711,
                items=[{"sku": "SKU-F", "quantity": 3, "unit_price": "1"}],
                idempotency_key="failed-then-stocked",
            )
        db.receive_stock(711, "SKU-F", 5)
        stocked = db.create_order(
            customer_id=3,
            warehouse_id=711,
            items=[{"sku": "SKU-F", "quantity": 3, "unit_price": "1"}],
            idempotency_key="failed-then-stocked",
        )
        assert stocked.replayed is False
    assert _order_with_key(cluster, "failed-first") == [(2, made.order_id)]
    assert _order_with_key(cluster, "failed-then-stocked") == [(1, stocked.order_id)]


def test_one_key_raced_from_two_shards_makes_one_order(cluster: Cluster) -> None:  # noqa: F811
    pin(cluster, 721, 0)
    pin(cluster, 722, 2)
    with proxy(cluster) as conn:
        for warehouse in (721, 722):
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-R', 100)", (warehouse,))
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def attempt(i: int) -> None:
        warehouse = 721 if i % 2 else 722
        try:
            with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
                barrier.wait()
                try:
                    row = conn.execute(
                        "SELECT replayed FROM orderdb.create_order(5, %s,"
                        ' \'[{"sku": "SKU-R", "quantity": 1, "unit_price": 1}]\','
                        " 'raced-key')",
                        (warehouse,),
                    ).fetchone()
                    outcome = f"{warehouse}:{'replayed' if row and row[0] else 'created'}"
                except psycopg.Error as exc:
                    outcome = f"{warehouse}:{exc.sqlstate}"
            with lock:
                outcomes.append(outcome)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    orders = _order_with_key(cluster, "raced-key")
    assert len(orders) == 1, (orders, outcomes)
    winner = 721 if orders[0][0] == 0 else 722
    loser = 722 if winner == 721 else 721
    assert sorted(outcomes).count(f"{winner}:created") == 1, outcomes
    assert set(outcomes) <= {
        f"{winner}:created",
        f"{winner}:replayed",
        f"{loser}:OD006",
    }, outcomes


def test_customer_orders_merges_every_shard(cluster: Cluster) -> None:  # noqa: F811
    for warehouse, shard in ((801, 0), (802, 1), (803, 2)):
        pin(cluster, warehouse, shard)
    made: list[int] = []
    with Client.connect(cluster.proxy_dsn) as db:
        for warehouse in (801, 802, 803):
            db.receive_stock(warehouse, "SKU-M", 10)
        for _ in range(3):
            for warehouse in (801, 802, 803):
                o = db.create_order(
                    customer_id=4242,
                    warehouse_id=warehouse,
                    items=[{"sku": "SKU-M", "quantity": 1, "unit_price": "2"}],
                )
                made.append(o.order_id)
    newest_first = sorted(made, reverse=True)
    with proxy(cluster) as conn:
        page = [
            r[0]
            for r in conn.execute(
                "SELECT order_id FROM orderdb.customer_orders(4242, 4)"
            ).fetchall()
        ]
        assert page == newest_first[:4]
        rest = [
            r[0]
            for r in conn.execute(
                "SELECT order_id FROM orderdb.customer_orders(4242, 100, %s)", (page[-1],)
            ).fetchall()
        ]
        assert rest == newest_first[4:]
        totals = conn.execute(
            "SELECT DISTINCT total, currency FROM orderdb.customer_orders(4242, 100)"
        ).fetchall()
        assert totals == [(Decimal("2.00"), "CNY")] or totals == [(Decimal("2"), "CNY")]
        with pytest.raises(psycopg.errors.InvalidParameterValue) as bad:
            conn.execute("SELECT * FROM orderdb.customer_orders(4242, 0)")
    assert bad.value.diag.message_detail == "limit=0"


def test_create_order_without_a_warehouse_chooses_across_shards(cluster: Cluster) -> None:  # noqa: F811
    for warehouse, shard in ((901, 0), (902, 1), (903, 2)):
        pin(cluster, warehouse, shard)
    with Client.connect(cluster.proxy_dsn) as db:
        db.receive_stock(901, "SKU-A1", 3)
        db.receive_stock(902, "SKU-A1", 8)  # the only warehouse that serves 5
        db.receive_stock(903, "SKU-A1", 4)
        db.receive_stock(903, "SKU-A2", 4)
        lines = [{"sku": "SKU-A1", "quantity": 5, "unit_price": "1"}]
        made = db.create_order(
            customer_id=11, warehouse_id=None, items=lines, idempotency_key="auto-1"
        )
        assert db.get_order(made.order_id).warehouse_id == 902
        again = db.create_order(
            customer_id=11, warehouse_id=None, items=lines, idempotency_key="auto-1"
        )
        assert (again.order_id, again.replayed) == (made.order_id, True)
        # both lines: only 903 has SKU-A2, but not enough SKU-A1 any more: OD001 names the closest
        with pytest.raises(InsufficientStock) as short:
            db.create_order(
                customer_id=11,
                warehouse_id=None,
                items=[
                    {"sku": "SKU-A1", "quantity": 4, "unit_price": "1"},
                    {"sku": "SKU-A2", "quantity": 5, "unit_price": "1"},
                ],
            )
    assert short.value.hint is not None and "warehouse 903" in short.value.hint
    assert orderdb_shard(cluster, made.order_id) == 1


def test_adding_a_shard_keeps_ids_keys_and_warehouses(
    pg_server: PgServer, template_db: str
) -> None:
    """A cluster of two grows to three: init again with the recorded shards first. Existing
    warehouses and key homes stay; new warehouses go to the new, emptiest shard."""
    clusters = make_cluster(pg_server, template_db, shards=2)
    cl = next(clusters)
    try:
        pin(cl, 1, 0)
        with Client.connect(cl.proxy_dsn) as db:
            db.receive_stock(1, "SKU-G", 10)
            db.receive_stock(2, "SKU-G", 10)  # placed on shard 1
            before = db.create_order(
                customer_id=1,
                warehouse_id=2,
                idempotency_key="grow-1",
                items=[{"sku": "SKU-G", "quantity": 1, "unit_price": "1"}],
            )
        third_name = f"{conninfo_to_dict(cl.shard_dsns[0])['dbname']}x"
        third = pg_server.dsn(third_name)
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(third_name), sql.Identifier(template_db)
                )
            )
        try:
            setup.init(cl.proxy_dsn, [*cl.shard_dsns, third])
            st = setup.status(cl.proxy_dsn)
            assert [s.shard for s in st.shards] == [0, 1, 2]
            assert all(s.reachable and s.id_space_ok for s in st.shards)
            with Client.connect(cl.proxy_dsn) as db:
                db.receive_stock(3, "SKU-G", 10)  # the new shard has no warehouse: it goes there
                made = db.create_order(
                    customer_id=1,
                    warehouse_id=3,
                    items=[{"sku": "SKU-G", "quantity": 1, "unit_price": "1"}],
                )
                again = db.create_order(
                    customer_id=1,
                    warehouse_id=2,
                    idempotency_key="grow-1",
                    items=[{"sku": "SKU-G", "quantity": 1, "unit_price": "1"}],
                )
                assert db.get_order(before.order_id).warehouse_id == 2
            assert st.warehouses == {1: 0, 2: 1}
            assert shard_of(cl, 3) == 2
            assert (made.order_id - 1) % st.id_stride == 2
            assert (again.order_id, again.replayed) == (before.order_id, True)
        finally:
            with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(third_name)
                    )
                )
    finally:
        clusters.close()


# -- carrier events -----------------------------------------------------------------------------


def _tracking_rows(cl: Cluster, number: str) -> list[tuple[int, str, int | None]]:
    """(shard, carrier status, order id) of every stored carrier event of ``number``."""
    rows = []
    for shard, dsn in enumerate(cl.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows += [
                (shard, str(r[0]), r[1])
                for r in conn.execute(
                    "SELECT carrier_status, order_id FROM orderdb.tracking_events"
                    " WHERE tracking_number = %s ORDER BY event_time",
                    (number,),
                ).fetchall()
            ]
    return rows


def test_a_carrier_event_before_its_shipment_on_another_shard_ends_matched(
    cluster: Cluster,  # noqa: F811
) -> None:
    pin(cluster, 1001, 1)
    with proxy(cluster) as conn:
        # a tracking number whose home is not the order's shard
        number = next(
            n
            for n in (f"GN{i:08d}" for i in range(100))
            if conn.execute("SELECT orderdb_cluster.tracking_home('GENERIC', %s)", (n,)).fetchone()
            != (1,)
        )
        home_row = conn.execute(
            "SELECT orderdb_cluster.tracking_home('GENERIC', %s)", (number,)
        ).fetchone()
    assert home_row is not None
    home = int(home_row[0])
    with Client.connect(cluster.proxy_dsn) as db:
        db.receive_stock(1001, "SKU-T", 5)
        o = db.create_order(
            customer_id=8,
            warehouse_id=1001,
            items=[{"sku": "SKU-T", "quantity": 1, "unit_price": "1"}],
        )
        db.transition(o.order_id, "confirmed", expected_version=o.version)
    with proxy(cluster) as conn:
        early = conn.execute(
            "SELECT order_id FROM orderdb.record_tracking_event('GENERIC', %s,"
            " now() - interval '20 minutes', 'in_transit', 'Hangzhou', NULL, 'early-1')",
            (number,),
        ).fetchone()
        assert early == (None,)  # parked: no shipment yet
        assert _tracking_rows(cluster, number) == [(home, "in_transit", None)]
        shipped = conn.execute(
            "SELECT status FROM orderdb.wms_callback('ship-1', %s, 'SHIPPED', %s)",
            (o.order_id, json.dumps({"carrier": "GENERIC", "tracking_number": number})),
        ).fetchone()
        assert shipped == ("shipped",)
        # moved to the order's shard and matched there; nothing left at the home
        assert _tracking_rows(cluster, number) == [(1, "in_transit", o.order_id)]
        timeline = conn.execute("SELECT orderdb.order_timeline(%s)", (o.order_id,)).fetchone()
        assert timeline is not None
        assert timeline[0]["status"] == "delivering"
        assert timeline[0]["current_location"] == "Hangzhou"
        # later events go straight to the order's shard; a duplicate stays a duplicate
        later = conn.execute(
            "SELECT order_id, order_status, duplicate FROM orderdb.record_tracking_event("
            "'GENERIC', %s, now() - interval '5 minutes', 'delivered', 'Hangzhou', NULL,"
            " 'late-1')",
            (number,),
        ).fetchone()
        assert later == (o.order_id, "delivered", False)
        again = conn.execute(
            "SELECT duplicate FROM orderdb.record_tracking_event('GENERIC', %s,"
            " now() - interval '20 minutes', 'in_transit', 'Hangzhou', NULL, 'early-1')",
            (number,),
        ).fetchone()
        assert again == (True,)
    assert [r[0] for r in _tracking_rows(cluster, number)] == [1, 1]


def test_a_carrier_event_for_a_shipment_made_on_a_shard_finds_it(cluster: Cluster) -> None:  # noqa: F811
    """A shipment the proxy did not see being made (its SHIPPED callback went to the shard):
    the proxy asks every shard, registers the number and records the event there."""
    pin(cluster, 1002, 2)
    with proxy(cluster) as conn:
        number = next(
            n
            for n in (f"GS{i:08d}" for i in range(100))
            if conn.execute("SELECT orderdb_cluster.tracking_home('GENERIC', %s)", (n,)).fetchone()
            != (2,)
        )
        conn.execute("SELECT * FROM orderdb.receive_stock(1002, 'SKU-T', 5)")
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(8, 1002,"
            ' \'[{"sku": "SKU-T", "quantity": 1, "unit_price": 1}]\')'
        ).fetchone()
    assert row is not None
    with psycopg.connect(cluster.shard_dsns[2], autocommit=True) as shard:
        shard.execute("SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (row[0],))
        shard.execute(
            "SELECT * FROM orderdb.wms_callback('ship-2', %s, 'SHIPPED', %s)",
            (row[0], json.dumps({"carrier": "GENERIC", "tracking_number": number})),
        )
    with proxy(cluster) as conn:
        got = conn.execute(
            "SELECT order_id, order_status FROM orderdb.record_tracking_event('GENERIC', %s,"
            " now(), 'in_transit')",
            (number,),
        ).fetchone()
    assert got == (row[0], "delivering")
    assert _tracking_rows(cluster, number) == [(2, "in_transit", row[0])]


# -- events -----------------------------------------------------------------------------------


def _outbox_ids(cl: Cluster) -> set[int]:
    ids: set[int] = set()
    for dsn in cl.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ids |= {int(r[0]) for r in conn.execute("SELECT event_id FROM orderdb.outbox")}
    return ids


def test_one_consumer_reads_every_shard_while_orders_are_written(cluster: Cluster) -> None:  # noqa: F811
    """16 writers on three shards while one consumer reads through the proxy in batches of 7,
    acknowledging the last event of each batch: every event of every shard arrives, each shard's
    in its own order, none twice."""
    for warehouse, shard in ((1101, 0), (1102, 1), (1103, 2)):
        pin(cluster, warehouse, shard)
    with proxy(cluster) as conn:
        for warehouse in (1101, 1102, 1103):
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-V', 100000)", (warehouse,))
        # start after everything written so far: read and acknowledge it
        while rows := conn.execute(
            "SELECT event_id FROM orderdb.read_events('all', 1000)"
        ).fetchall():
            conn.execute("SELECT orderdb.ack_events('all', %s)", (rows[-1][0],))
    before = _outbox_ids(cluster)
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
                for _ in range(15):
                    conn.execute(
                        "SELECT * FROM orderdb.create_order(%s, %s,"
                        ' \'[{"sku": "SKU-V", "quantity": 1, "unit_price": 1}]\')',
                        (seed, rnd.choice((1101, 1102, 1103))),
                    )
        except BaseException as exc:
            failures.append(exc)

    received: list[int] = []

    def consume() -> None:
        try:
            with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
                idle = 0
                while idle < 3:
                    rows = conn.execute(
                        "SELECT event_id FROM orderdb.read_events('all', 7)"
                    ).fetchall()
                    if rows:
                        received.extend(int(r[0]) for r in rows)
                        conn.execute("SELECT orderdb.ack_events('all', %s)", (rows[-1][0],))
                        idle = 0
                    elif stop.is_set():
                        idle += 1
                    else:
                        time.sleep(0.01)
        except BaseException as exc:
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(i + 1,)) for i in range(16)]
    reader = threading.Thread(target=consume)
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert failures == []
    written = _outbox_ids(cluster) - before
    assert len(written) >= 16 * 15
    assert len(received) == len(set(received)), "an event arrived twice"
    assert set(received) == written
    stride = setup.status(cluster.proxy_dsn).id_stride
    for shard in range(SHARDS):
        mine = [e for e in received if (e - 1) % stride == shard]
        with psycopg.connect(cluster.shard_dsns[shard], autocommit=True) as conn:
            order = [
                int(r[0])
                for r in conn.execute(
                    "SELECT event_id FROM orderdb.outbox WHERE event_id = ANY(%s)"
                    " ORDER BY tx_id, event_id",
                    (mine,),
                ).fetchall()
            ]
        assert mine == order, f"shard {shard}: not in its read order"


# -- operations views -------------------------------------------------------------------------


def test_ops_views_on_the_proxy_cover_every_shard(cluster: Cluster) -> None:  # noqa: F811
    columns = (
        "SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relnamespace = 'orderdb_ops'::regnamespace AND c.relkind IN ('v', 'm')"
        " GROUP BY c.relname ORDER BY c.relname"
    )
    with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as conn:
        on_shard = {str(r[0]): [*r[1], "shard"] for r in conn.execute(columns).fetchall()}
    with proxy(cluster) as conn:
        on_proxy = {str(r[0]): list(r[1]) for r in conn.execute(columns).fetchall()}
    assert on_proxy == on_shard
    pin(cluster, 1201, 0)
    pin(cluster, 1202, 2)
    with proxy(cluster) as conn:
        for warehouse in (1201, 1202):
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-LOW', 2)", (warehouse,))
        # as the operators' role (least privilege: it reads the views, nothing else)
        conn.execute("SET ROLE orderdb_ops")
        low = conn.execute(
            "SELECT warehouse_id, shard FROM orderdb_ops.low_stock WHERE sku = 'SKU-LOW'"
            " ORDER BY warehouse_id"
        ).fetchall()
        assert low == [(1201, 0), (1202, 2)]
        assert {r[0] for r in conn.execute("SELECT shard FROM orderdb_ops.table_health")} == {
            0,
            1,
            2,
        }
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM orderdb_cluster.shards")
    monitor = run("monitor", "--once", "--json", "--dsn", cluster.proxy_dsn)
    assert monitor.exit_code == 0, monitor.output
    assert json.loads(monitor.stdout)["errors"] == {}


# -- reference data ---------------------------------------------------------------------------


def test_status_names_reference_tables_that_drift(cluster: Cluster) -> None:  # noqa: F811
    assert all(s["reference_drift"] == [] for s in status_json(cluster)["shards"])
    # a new carrier code written on one shard only
    with psycopg.connect(cluster.shard_dsns[2], autocommit=True) as conn:
        row = conn.execute(
            "SELECT carrier, normalized_status FROM orderdb.carrier_status_map LIMIT 1"
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status)"
            " VALUES (%s, 'DRIFT-1', %s)",
            (row[0], row[1]),
        )
    try:
        drift = {s["shard"]: s["reference_drift"] for s in status_json(cluster)["shards"]}
        assert drift == {0: [], 1: [], 2: ["carrier_status_map"]}
        text = run("cluster", "status", "--dsn", cluster.proxy_dsn)
        assert "DIFFERS" in text.stdout
    finally:
        with psycopg.connect(cluster.shard_dsns[2], autocommit=True) as conn:
            conn.execute("DELETE FROM orderdb.carrier_status_map WHERE carrier_status = 'DRIFT-1'")
    assert all(s["reference_drift"] == [] for s in status_json(cluster)["shards"])


# -- reallocation across shards ----------------------------------------------------------------


def _drift(cl: Cluster) -> list[Any]:
    rows: list[Any] = []
    for dsn in cl.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows += conn.execute("SELECT * FROM orderdb_ops.inventory_drift").fetchall()
    return rows


def test_reallocation_across_shards_is_a_saga(cluster: Cluster) -> None:  # noqa: F811
    pin(cluster, 1301, 0)
    pin(cluster, 1302, 2)
    pin(cluster, 1303, 1)
    with Client.connect(cluster.proxy_dsn) as db:
        db.receive_stock(1301, "SKU-RA", 10)
        db.receive_stock(1302, "SKU-RA", 10)
        db.receive_stock(1303, "SKU-RA", 1)
        o = db.create_order(
            customer_id=21,
            warehouse_id=1301,
            items=[{"sku": "SKU-RA", "quantity": 3, "unit_price": "2"}],
        )
        t = db.transition(o.order_id, "confirmed", expected_version=o.version)
        # the target cannot serve: nothing changes anywhere
        with pytest.raises(InsufficientStock) as short:
            db.reallocate(o.order_id, 1303, expected_version=t.version)
        assert short.value.detail == "sku=SKU-RA requested=3 available=1"
        assert db.stock_level(1303, "SKU-RA").reserved == 0
        # a stale version: OD002, as on one database
        with pytest.raises(VersionConflict):
            db.reallocate(o.order_id, 1302, expected_version=1)
        moved = db.reallocate(
            o.order_id, 1302, expected_version=t.version, actor="ops", reason="closer"
        )
        assert (moved.warehouse_id, moved.status, moved.version) == (1302, "confirmed", 3)
        assert db.stock_level(1301, "SKU-RA").reserved == 0
        assert db.stock_level(1302, "SKU-RA").reserved == 3
        # the order answers from its new shard under its old id (a forward)
        got = db.get_order(o.order_id)
        assert (got.warehouse_id, got.version, got.order_no) == (1302, 3, o.order_no)
        history = db.order_history(o.order_id)
        assert [h.to_status for h in history] == ["pending", "confirmed", "confirmed"]
        assert history[-1].source == "reallocation"
        assert history[-1].context == {"from_warehouse_id": 1301, "to_warehouse_id": 1302}
        after = db.transition(o.order_id, "cancelled", expected_version=3)
        assert after.status == "cancelled"
        assert db.stock_level(1302, "SKU-RA").reserved == 0
    assert orderdb_shard(cluster, o.order_id) == 2
    assert _drift(cluster) == []
    with psycopg.connect(cluster.shard_dsns[2], autocommit=True) as conn:
        event = conn.execute(
            "SELECT payload FROM orderdb.outbox WHERE order_id = %s"
            " AND event_type = 'order.reallocated'",
            (o.order_id,),
        ).fetchone()
    assert event is not None
    assert event[0]["from_warehouse_id"] == 1301 and event[0]["lines"] == [
        {"sku": "SKU-RA", "quantity": 3}
    ]


def test_racing_cross_shard_reallocations_move_an_order_once(cluster: Cluster) -> None:  # noqa: F811
    pin(cluster, 1311, 1)
    pin(cluster, 1312, 0)
    pin(cluster, 1313, 2)
    with proxy(cluster) as conn:
        for warehouse in (1311, 1312, 1313):
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-RB', 50)", (warehouse,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(22, 1311,"
            ' \'[{"sku": "SKU-RB", "quantity": 4, "unit_price": 1}]\')'
        ).fetchone()
    assert row is not None
    order_id = int(row[0])
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        target = 1312 if i % 2 else 1313
        with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
            barrier.wait()
            try:
                conn.execute(
                    "SELECT * FROM orderdb.reallocate_order(%s, %s, 1)", (order_id, target)
                )
                outcome = f"moved to {target}"
            except psycopg.Error as exc:
                outcome = str(exc.sqlstate)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    moved = [o for o in outcomes if o.startswith("moved")]
    assert len(moved) == 1, outcomes
    assert set(outcomes) - set(moved) <= {"OD002"}, outcomes
    target = int(moved[0].split()[-1])
    with proxy(cluster) as conn:
        levels = {
            w: conn.execute(
                "SELECT reserved FROM orderdb.stock_level(%s, 'SKU-RB')", (w,)
            ).fetchone()
            for w in (1311, 1312, 1313)
        }
        assert conn.execute(
            "SELECT (orderdb.get_order(%s)->>'warehouse_id')::integer", (order_id,)
        ).fetchone() == (target,)
    assert levels == {w: ((4,) if w == target else (0,)) for w in (1311, 1312, 1313)}
    assert _drift(cluster) == []


def test_a_reallocation_stopped_in_flight_is_finished(cluster: Cluster) -> None:  # noqa: F811
    """The source sent the order and the proxy lost the target's answer: the order is in
    flight until orderdb_cluster.finish_reallocation receives it from the source's copy."""
    pin(cluster, 1321, 0)
    pin(cluster, 1322, 1)
    with proxy(cluster) as conn:
        for warehouse in (1321, 1322):
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-RC', 5)", (warehouse,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(23, 1321,"
            ' \'[{"sku": "SKU-RC", "quantity": 2, "unit_price": 1}]\')'
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        # steps 1 and 2 by hand, as the saga does them, then stop
        conn.execute(
            "SELECT * FROM orderdb_cluster.reallocation_reserve(1, %s, 1322, '{SKU-RC}', '{2}')",
            (order_id,),
        )
        sent = conn.execute(
            "SELECT err_sqlstate FROM orderdb_cluster.reallocation_send(0, %s, 1322, 1, 1)",
            (order_id,),
        ).fetchone()
        assert sent == (None,)
        finished = conn.execute(
            "SELECT warehouse_id, version FROM orderdb_cluster.finish_reallocation(%s)",
            (order_id,),
        ).fetchone()
        assert finished == (1322, 2)
        again = conn.execute(
            "SELECT warehouse_id, version FROM orderdb_cluster.finish_reallocation(%s)",
            (order_id,),
        ).fetchone()
        assert again is None  # not in flight any more: nothing to finish
        assert conn.execute(
            "SELECT status FROM orderdb.transition_order(%s, 'confirmed', 2)", (order_id,)
        ).fetchone() == ("confirmed",)
    assert _drift(cluster) == []


#: a saga worker: one reallocate_order through the proxy (argv: proxy DSN, order, warehouse,
#: expected version)
SAGA_WORKER = """
import sys
import psycopg
with psycopg.connect(sys.argv[1], autocommit=True, application_name="saga-worker") as conn:
    conn.execute("SELECT * FROM orderdb.reallocate_order(%s, %s, %s)",
                 (int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""


def _wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _backends(cl: Cluster, dsn: str, pattern: str, waiting: bool = False) -> list[int]:
    """The pids of the backends of ``dsn``'s database running a query like ``pattern``."""
    dbname = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(cl.admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s AND query LIKE %s AND pid <> pg_backend_pid()"
            "   AND (NOT %s OR wait_event_type = 'Lock')",
            (dbname, pattern, waiting),
        ).fetchall()
    return [int(r[0]) for r in rows]


@pytest.mark.parametrize("receive_ends", ["committed", "terminated"])
def test_a_reallocation_whose_saga_worker_is_killed_is_finished_by_maintain(
    cluster: Cluster,  # noqa: F811
    receive_ends: str,
) -> None:
    """The saga worker dies (SIGKILL, and its proxy backend with it, as in a crash of its
    machine) after the source sent the order and before the target received it, while other
    orders of both warehouses change status. The target's receive, orphaned, either completes
    (PostgreSQL notices the lost client only when it answers) or is terminated too (the order
    stays in flight): either way `orderdb maintain --dsn PROXY` finishes the move once it is
    older than its age; the order is then on the target only, its stock reserved once, the
    ledger exact on both shards; a second run does nothing."""
    source, target = (1401, 1402) if receive_ends == "committed" else (1403, 1404)
    pin(cluster, source, 0)
    pin(cluster, target, 1)
    target_dsn = cluster.shard_dsns[1]
    with proxy(cluster) as conn:
        for warehouse in (source, target):
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-SG', 10)", (warehouse,))
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-SG2', 50)", (warehouse,))

        def create(warehouse: int, items: str) -> int:
            row = conn.execute(
                "SELECT order_id FROM orderdb.create_order(24, %s, %s)", (warehouse, items)
            ).fetchone()
            assert row is not None
            return int(row[0])

        moving = create(
            source,
            '[{"sku": "SKU-SG", "quantity": 3, "unit_price": 1},'
            ' {"sku": "SKU-SG2", "quantity": 1, "unit_price": 1}]',
        )
        others = [
            create(w, '[{"sku": "SKU-SG2", "quantity": 2, "unit_price": 1}]')
            for w in (source, target)
            for _ in range(4)
        ]
    # what the target's receive needs first (its rows of orderdb.order_directory), held here
    holder = psycopg.connect(target_dsn)
    worker: subprocess.Popen[bytes] | None = None
    try:
        holder.execute("LOCK TABLE orderdb.order_directory IN SHARE MODE")
        worker = subprocess.Popen(
            [sys.executable, "-c", SAGA_WORKER, cluster.proxy_dsn, str(moving), str(target), "1"]
        )
        _wait_for(
            "the target's receive to wait for the lock",
            lambda: _backends(cluster, target_dsn, "%reallocation_receive%", waiting=True),
        )
        proxy_backends = _backends(cluster, cluster.proxy_dsn, "%reallocate_order%")
        assert len(proxy_backends) == 1, proxy_backends
        with proxy(cluster) as conn:
            # in flight: sent by the source, still routed there
            assert conn.execute("SELECT orderdb_cluster.order_shard(%s)", (moving,)).fetchone() == (
                0,
            )
            assert conn.execute(
                "SELECT to_shard FROM orderdb_cluster.reallocation_sent(0, %s)", (moving,)
            ).fetchone() == (1,)
        # concurrent transitions of the other orders of both warehouses, each on its own
        # connection through the proxy, while the saga is stuck
        outcomes: list[str] = []

        def transition(order_id: int, to_status: str) -> None:
            with proxy(cluster) as conn:
                row = conn.execute(
                    "SELECT status FROM orderdb.transition_order(%s, %s, 1)",
                    (order_id, to_status),
                ).fetchone()
            outcomes.append(str(row[0]) if row else "none")

        threads = [
            threading.Thread(target=transition, args=(o, "confirmed" if i % 2 else "cancelled"))
            for i, o in enumerate(others)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["cancelled"] * 4 + ["confirmed"] * 4
        # the crash: the worker, then its proxy backend (which would notice only later)
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
        with psycopg.connect(cluster.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (proxy_backends[0],))
        _wait_for(
            "the proxy backend to end",
            lambda: not _backends(cluster, cluster.proxy_dsn, "%reallocate_order%"),
        )
        if receive_ends == "terminated":
            with psycopg.connect(cluster.admin_dsn, autocommit=True) as admin:
                for pid in _backends(cluster, target_dsn, "%reallocation_receive%"):
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        holder.rollback()
        holder.close()
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
    # the target's receive, orphaned, ends one way or the other (committed or not)
    _wait_for(
        "the orphaned receive to end",
        lambda: not _backends(cluster, target_dsn, "%reallocation_receive%"),
    )
    with proxy(cluster) as conn:
        assert conn.execute("SELECT orderdb_cluster.order_shard(%s)", (moving,)).fetchone() == (
            0,
        )  # still routed to the source: the forward was never recorded
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        received = conn.execute(
            "SELECT count(*) FROM orderdb.orders WHERE order_id = %s", (moving,)
        ).fetchone()
    assert received == ((1,) if receive_ends == "committed" else (0,))
    # too recent for the default age: maintain leaves it
    recent = run("maintain", "--dsn", cluster.proxy_dsn, "--json")
    assert recent.exit_code == 0, recent.output
    assert [r for r in json.loads(recent.stdout) if r["order_id"] == moving] == []
    rows = operations.maintain(
        cluster.proxy_dsn, dry_run=False, reallocations_older_than=timedelta(0)
    )
    finished = [r for r in rows if r["action"] == "reallocation finished"]
    assert [(r["order_id"], r["shard"], r["to_shard"], r["warehouse_id"]) for r in finished] == [
        (moving, 0, 1, target)
    ]
    # on exactly one shard: the target
    placed = []
    for shard, dsn in enumerate(cluster.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for table in ("orders", "order_directory", "order_lines"):
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM orderdb.{} WHERE order_id = %s").format(
                        sql.Identifier(table)
                    ),
                    (moving,),
                ).fetchone()
                if row and row[0]:
                    placed.append((shard, table))
    assert placed == [(1, "orders"), (1, "order_directory"), (1, "order_lines")]
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        assert conn.execute(
            "SELECT warehouse_id, version FROM orderdb.orders WHERE order_id = %s", (moving,)
        ).fetchone() == (target, 2)
        held = conn.execute(
            "SELECT sku, qty_held FROM orderdb.order_lines WHERE order_id = %s ORDER BY sku",
            (moving,),
        ).fetchall()
        assert held == [("SKU-SG", 3), ("SKU-SG2", 1)]
        assert conn.execute(
            "SELECT count(*) FROM orderdb.order_status_history"
            " WHERE order_id = %s AND source = 'reallocation'",
            (moving,),
        ).fetchone() == (1,)
        assert conn.execute(
            "SELECT count(*) FROM orderdb.outbox"
            " WHERE order_id = %s AND event_type = 'order.reallocated'",
            (moving,),
        ).fetchone() == (1,)
    # the stock reserved once: SKU-SG (the moved order's only) held by the target only
    levels = {}
    for dsn in cluster.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            levels.update(
                conn.execute(
                    "SELECT warehouse_id, reserved FROM orderdb.inventory_levels"
                    " WHERE sku = 'SKU-SG' AND warehouse_id IN (%s, %s)",
                    (source, target),
                ).fetchall()
            )
    assert levels == {source: 0, target: 3}
    assert _drift(cluster) == []
    with proxy(cluster) as conn:
        assert conn.execute("SELECT orderdb_cluster.order_shard(%s)", (moving,)).fetchone() == (1,)
        assert conn.execute(
            "SELECT (o ->> 'warehouse_id')::integer, o ->> 'status', (o ->> 'version')::integer"
            " FROM orderdb.get_order(%s) o",
            (moving,),
        ).fetchone() == (target, "pending", 2)
        # a second run finds nothing to finish
        assert conn.execute(
            "SELECT count(*) FROM orderdb_cluster.finish_stopped_reallocations('0 seconds')"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT status FROM orderdb.transition_order(%s, 'confirmed', 2)", (moving,)
        ).fetchone() == ("confirmed",)
    again = operations.maintain(
        cluster.proxy_dsn, dry_run=False, reallocations_older_than=timedelta(0)
    )
    assert [r for r in again if r["action"] == "reallocation finished"] == []
