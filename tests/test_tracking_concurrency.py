"""Concurrency of the integration entry points: the same carrier event or WMS callback sent by
several connections at once is applied exactly once; a carrier event racing the SHIPPED callback
that creates its shipment is matched either way.

Each test runs on one database and through a proxy over three shards (tests/deployments.py):
the calls go to ``db_dsn`` (the database or the proxy), the tables are read on every shard."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from orderdb.client import Client
from tests.deployments import Deployment

N = 8


def _race(dsn: str, n: int, work: Callable[[psycopg.Connection[Any], int], Any]) -> list[Any]:
    """Run work(conn, i) on n connections released by one barrier; return results/exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            barrier.wait(timeout=10)
            try:
                results[i] = work(conn, i)
            except Exception as exc:  # collected and asserted by the caller
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.fixture(scope="module")
def db_dsn(module_deployment: Deployment) -> str:
    """Where the calls go: the module's database, or the proxy of its cluster."""
    return module_deployment.dsn


def _warehouse_admin(deployment: Deployment, warehouse_id: int) -> Client:
    """A client for a warehouse's configuration (set_warehouse_location, add_courier: owner
    functions that live where the warehouse is, its shard in the cluster; not on the proxy)."""
    return Client.connect(deployment.data_dsn_of(warehouse_id), max_size=1)


@pytest.fixture(scope="module")
def db(db_dsn: str) -> Client:
    client = Client.connect(db_dsn, max_size=4)
    for sku in ("CC-A", "CC-B"):
        client.receive_stock(61, sku, 1000)
    return client


def _confirmed(db: Client, items: list[dict[str, Any]] | None = None) -> int:
    order = db.create_order(5, 61, items or [{"sku": "CC-A", "quantity": 1}])
    db.transition(order.order_id, "confirmed", expected_version=order.version)
    return order.order_id


def test_same_carrier_event_from_8_connections_is_stored_once(
    db: Client, db_dsn: str, module_deployment: Deployment
) -> None:
    order_id = _confirmed(db)
    db.wms_callback("cc-ship-1", order_id, "SHIPPED", {"carrier": "SF", "tracking_number": "CC1"})
    at = datetime.now(UTC) - timedelta(minutes=5)

    def work(conn: psycopg.Connection[Any], i: int) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT tracking_event_id, duplicate, order_status FROM"
            " orderdb.record_tracking_event('SF', 'CC1', %s, '44', 'Futian', 'out for delivery',"
            " 'sf-evt-1')",
            (at,),
        ).fetchone()
        assert row is not None
        return tuple(row)

    results = _race(db_dsn, N, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r[0] for r in results}) == 1, "every caller sees the same stored event"
    assert sorted(r[1] for r in results) == [False] + [True] * (N - 1)
    assert {r[2] for r in results} == {"delivering"}
    total = module_deployment.total
    stored = total("SELECT count(*) FROM orderdb.tracking_events WHERE tracking_number = 'CC1'")
    changes = total(
        "SELECT count(*) FROM orderdb.order_status_history"
        " WHERE order_id = %s AND to_status = 'delivering'",
        (order_id,),
    )
    outbox = total(
        "SELECT count(*) FROM orderdb.outbox WHERE event_type = 'tracking.recorded'"
        " AND payload ->> 'tracking_number' = 'CC1'"
    )
    assert stored == 1
    assert changes == 1
    assert outbox == 1


def test_wms_replays_from_8_connections_apply_once(
    db: Client, db_dsn: str, module_deployment: Deployment
) -> None:
    order_id = _confirmed(db, [{"sku": "CC-A", "quantity": 2}, {"sku": "CC-B", "quantity": 1}])
    before = db.stock_level(61, "CC-A")

    def work(conn: psycopg.Connection[Any], i: int) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT status, version, duplicate FROM orderdb.wms_callback('cc-replay', %s,"
            ' \'SHIPPED\', \'{"carrier": "ZTO", "tracking_number": "ZCC1"}\')',
            (order_id,),
        ).fetchone()
        assert row is not None
        return tuple(row)

    results = _race(db_dsn, N, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r[2] for r in results) == [False] + [True] * (N - 1)
    assert {(r[0], r[1]) for r in results} == {("shipped", 6)}
    after = db.stock_level(61, "CC-A")
    assert before.on_hand - after.on_hand == 2, "consumed exactly once"
    order = db.get_order(order_id)
    assert len(order.shipments) == 1
    drift = module_deployment.total("SELECT count(*) FROM orderdb_ops.inventory_drift")
    assert drift == 0


def test_concurrent_stages_of_one_order_end_consistent(db: Client, db_dsn: str) -> None:
    order_id = _confirmed(db)
    calls = [
        ("st-picked", "PICKED", {}),
        ("st-packed", "PACKED", {}),
        ("st-shipped", "SHIPPED", {"carrier": "SF", "tracking_number": "CCST"}),
        ("st-picked", "PICKED", {}),
    ]

    def work(conn: psycopg.Connection[Any], i: int) -> tuple[Any, ...]:
        event_id, event_type, payload = calls[i]
        row = conn.execute(
            "SELECT status, version, duplicate FROM orderdb.wms_callback(%s, %s, %s, %s::jsonb)",
            (event_id, order_id, event_type, psycopg.types.json.Jsonb(payload)),
        ).fetchone()
        assert row is not None
        return tuple(row)

    results = _race(db_dsn, len(calls), work)
    assert not [r for r in results if isinstance(r, Exception)], results
    order = db.get_order(order_id)
    assert order.status == "shipped"
    history = db.order_history(order_id)
    assert [h.version for h in history] == list(range(1, len(history) + 1))
    assert [h.to_status for h in history] == [
        "pending",
        "confirmed",
        "dispatched",
        "picked",
        "packed",
        "shipped",
    ]


def test_carrier_event_racing_shipped_is_matched(
    db: Client, db_dsn: str, module_deployment: Deployment
) -> None:
    orders = [_confirmed(db) for _ in range(N // 2)]
    at = datetime.now(UTC) - timedelta(minutes=1)

    def work(conn: psycopg.Connection[Any], i: int) -> Any:
        order_id = orders[i // 2]
        tn = f"RACE{order_id}"
        if i % 2 == 0:
            return conn.execute(
                "SELECT status FROM orderdb.wms_callback(%s, %s, 'SHIPPED', %s::jsonb)",
                (
                    f"race-{order_id}",
                    order_id,
                    psycopg.types.json.Jsonb({"carrier": "GENERIC", "tracking_number": tn}),
                ),
            ).fetchone()
        return conn.execute(
            "SELECT order_id FROM orderdb.record_tracking_event('GENERIC', %s, %s, 'in_transit')",
            (tn, at),
        ).fetchone()

    results = _race(db_dsn, N, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    unmatched = module_deployment.total(
        "SELECT count(*) FROM orderdb.tracking_events"
        " WHERE tracking_number LIKE 'RACE%' AND order_id IS NULL"
    )
    statuses = set(
        module_deployment.rows(
            "SELECT DISTINCT status FROM orderdb.orders WHERE order_id = ANY(%s)", (orders,)
        )
    )
    assert unmatched == 0
    assert statuses == {("delivering",)}


def _packed_with_coordinates(db: Client, warehouse_id: int, lon: float) -> int:
    o = db.create_order(
        6,
        warehouse_id,
        [{"sku": "CC-R", "quantity": 1}],
        options={"ship_to": {"line1": "Dock 1", "lat": 0.0, "lon": lon}},
    )
    db.transition(o.order_id, "confirmed", expected_version=o.version)
    db.wms_callback(f"pk-{o.order_id}", o.order_id, "PACKED")
    return o.order_id


# One database only, for a contract reason: it holds a planner's transaction open after
# plan_routes, and a `conn=` transaction does not span the proxy's calls (docs/scaling.md, What
# differs 1): through the proxy plan_routes has committed on its shard when it returns, so there
# is no open planner transaction to not wait for.
@pytest.mark.parametrize("module_deployment", ["single"], indirect=True)
def test_plan_routes_never_blocks_order_updates(
    db: Client, db_dsn: str, module_deployment: Deployment
) -> None:
    db.receive_stock(62, "CC-R", 100)
    with _warehouse_admin(module_deployment, 62) as admin:
        admin.set_warehouse_location(62, 0.0, 0.0)
        admin.add_courier(62, "R1", 0.0, 0.0, 10)
    orders = [_packed_with_coordinates(db, 62, 0.01 * (i + 1)) for i in range(4)]
    with psycopg.connect(db_dsn) as planner:  # a transaction left open after planning
        planned = planner.execute("SELECT count(*) FROM orderdb.plan_routes(62)").fetchone()
        assert planned == (1,)
        locks = planner.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.pid = pg_backend_pid() AND c.relname = 'orders'"
            " AND l.mode NOT IN ('AccessShareLock')"
        ).fetchone()
        assert locks == (0,), "the planner holds no write lock on orders"
        with psycopg.connect(db_dsn, autocommit=True) as other:
            other.execute("SET lock_timeout = '1s'")
            row = other.execute(
                "SELECT status FROM orderdb.wms_callback('rt-ship', %s, 'SHIPPED',"
                ' \'{"carrier": "SF", "tracking_number": "RTS1"}\')',
                (orders[0],),
            ).fetchone()
            assert row == ("shipped",), "an order update does not wait for the planner"
        planner.rollback()


def test_concurrent_planners_route_each_order_once(
    db: Client, db_dsn: str, module_deployment: Deployment
) -> None:
    db.receive_stock(63, "CC-R", 100)
    with _warehouse_admin(module_deployment, 63) as admin:
        admin.set_warehouse_location(63, 0.0, 0.0)
        for i in range(N):
            admin.add_courier(63, f"C{i}", 0.0, 0.001 * i, 2)
    orders = [_packed_with_coordinates(db, 63, 0.01 * (i + 1)) for i in range(10)]

    def work(conn: psycopg.Connection[Any], i: int) -> list[tuple[Any, ...]]:
        return conn.execute("SELECT route_id, stop_count FROM orderdb.plan_routes(63)").fetchall()

    results = _race(db_dsn, 4, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(sc for r in results for _, sc in r) == len(orders)
    routed = module_deployment.rows(
        "SELECT count(*), count(DISTINCT order_id) FROM orderdb.route_stops WHERE warehouse_id = 63"
    )
    assert (len(orders), len(orders)) in routed, routed


def test_two_parcels_delivered_at_once_deliver_the_order_once(
    db: Client, db_dsn: str, module_deployment: Deployment
) -> None:
    """Orders shipped in two parcels; both parcels' 'delivered' events arrive at the same moment
    on two connections. The order must end delivered (neither event may conclude "the other
    parcel is still out" from a snapshot taken before the other committed), with exactly one
    delivered row in its history and nothing else changed twice."""
    orders = []
    for _ in range(N):
        order_id = _confirmed(db, [{"sku": "CC-A", "quantity": 1}, {"sku": "CC-B", "quantity": 1}])
        db.wms_callback(
            f"two-a-{order_id}",
            order_id,
            "SHIPPED",
            {
                "carrier": "GENERIC",
                "tracking_number": f"TWO-A-{order_id}",
                "lines": [{"sku": "CC-A", "quantity": 1}],
            },
        )
        db.wms_callback(
            f"two-b-{order_id}",
            order_id,
            "SHIPPED",
            {"carrier": "GENERIC", "tracking_number": f"TWO-B-{order_id}"},
        )
        orders.append(order_id)
    at = datetime.now(UTC) - timedelta(minutes=1)

    for order_id in orders:

        def work(conn: psycopg.Connection[Any], i: int, order_id: int = order_id) -> Any:
            parcel = "A" if i == 0 else "B"
            return conn.execute(
                "SELECT order_status FROM orderdb.record_tracking_event("
                "'GENERIC', %s, %s, 'delivered')",
                (f"TWO-{parcel}-{order_id}", at),
            ).fetchone()

        results = _race(db_dsn, 2, work)
        assert not [r for r in results if isinstance(r, Exception)], results
        # one of them saw the other parcel still out, the other delivered the order
        assert sorted(r[0] for r in results) == ["delivered", "delivering"], results

    statuses = set(
        module_deployment.rows(
            "SELECT DISTINCT status FROM orderdb.orders WHERE order_id = ANY(%s)", (orders,)
        )
    )
    delivered_rows = module_deployment.rows(
        "SELECT order_id, count(*) FROM orderdb.order_status_history"
        " WHERE order_id = ANY(%s) AND to_status = 'delivered' GROUP BY order_id",
        (orders,),
    )
    assert statuses == {("delivered",)}
    assert sorted(delivered_rows) == sorted((o, 1) for o in orders)
