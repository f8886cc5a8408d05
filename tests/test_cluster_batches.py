"""Batches of carrier events through the cluster proxy (docs/scaling.md "Carrier events"):
orderdb.record_tracking_events over parcels of three shards answers what one database answers
for the same batch, in array order; a bad element is refused with one database's 22023 naming
its ordinal before anything is recorded on any shard; a replayed batch answers duplicates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from orderdb.cli import main
from tests.cluster_fixtures import SHARDS, Cluster, cluster  # noqa: F401  (fixture)

ITEMS = '[{"sku": "SKU-BT", "quantity": 1, "unit_price": 3.00}]'
NOW = datetime.now(UTC).replace(microsecond=0)
#: the parcels of the batch: one per shard (warehouse 2300 + shard on that shard)
PARCELS = [f"BAT{shard:02d}000001" for shard in range(SHARDS)]
#: a parcel no shard has a shipment of (parked at its home through the proxy)
UNSHIPPED = "BATUNSHIPPED01"


def event(number: str, minutes_ago: int, status: str, event_id: str) -> dict[str, Any]:
    return {
        "carrier": "GENERIC",
        "tracking_number": number,
        "event_time": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "carrier_status": status,
        "location": "Shenzhen hub",
        "event_id": event_id,
    }


#: in array order: parcels of three shards interleaved, a repeat of an earlier element, an
#: event of a parcel without a shipment, the last scans
BATCH = [
    event(PARCELS[0], 50, "picked_up", "bt-1"),
    event(PARCELS[1], 49, "picked_up", "bt-2"),
    event(PARCELS[2], 48, "picked_up", "bt-3"),
    event(PARCELS[1], 40, "in_transit", "bt-4"),
    event(PARCELS[0], 50, "picked_up", "bt-1"),
    event(UNSHIPPED, 30, "in_transit", "bt-5"),
    event(PARCELS[2], 20, "delivered", "bt-6"),
    event(PARCELS[0], 10, "in_transit", "bt-7"),
]


def shipped_orders(conn: psycopg.Connection[Any]) -> list[int]:
    """One shipped order per parcel of PARCELS, in warehouse 2300 + i (through ``conn``)."""
    orders = []
    for i, number in enumerate(PARCELS):
        warehouse = 2300 + i
        conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-BT', 10)", (warehouse,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(%s, %s, %s)", (70 + i, warehouse, ITEMS)
        ).fetchone()
        assert row is not None
        conn.execute("SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (row[0],))
        conn.execute(
            "SELECT * FROM orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (f"bt-ship-{i}", row[0], json.dumps({"carrier": "GENERIC", "tracking_number": number})),
        )
        orders.append(int(row[0]))
    return orders


def record_batch(
    conn: psycopg.Connection[Any], batch: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT ordinal, tracking_event_id, duplicate, normalized_status, order_id,"
            " order_status FROM orderdb.record_tracking_events(%s)",
            (json.dumps(batch),),
        ).fetchall()
    ]


def comparable(rows: list[tuple[Any, ...]], orders: list[int]) -> list[tuple[Any, ...]]:
    """The rows without the ids a deployment chose: an event id as the ordinal that first
    answered it, an order id as its parcel's index."""
    first: dict[int, int] = {}
    out = []
    for ordinal, event_id, duplicate, normalized, order_id, order_status in rows:
        first.setdefault(event_id, ordinal)
        parcel = orders.index(order_id) if order_id is not None else None
        out.append((ordinal, first[event_id], duplicate, normalized, parcel, order_status))
    return out


def stored(cl: Cluster) -> list[tuple[int, str, str]]:
    """(shard, tracking number, event id) of every stored carrier event of the batches."""
    found: list[tuple[int, str, str]] = []
    for shard, dsn in enumerate(cl.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            found += [
                (shard, str(r[0]), str(r[1]))
                for r in conn.execute(
                    "SELECT tracking_number, event_id FROM orderdb.tracking_events"
                    " WHERE carrier = 'GENERIC' AND tracking_number LIKE 'BAT%'"
                    " ORDER BY tracking_number, event_id"
                ).fetchall()
            ]
    return sorted(found)


@pytest.fixture(scope="module")
def cluster_orders(cluster: Cluster) -> list[int]:  # noqa: F811
    for shard in range(SHARDS):
        pinned = CliRunner().invoke(
            main,
            ["cluster", "map-warehouse", "--dsn", cluster.proxy_dsn, str(2300 + shard), str(shard)],
        )
        assert pinned.exit_code == 0, pinned.output
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        return shipped_orders(conn)


def test_batch_over_three_shards_answers_as_one_database(
    cluster: Cluster,  # noqa: F811
    cluster_orders: list[int],
    db_dsn: str,
) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        single_orders = shipped_orders(conn)
        single = record_batch(conn, BATCH)
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        through_proxy = record_batch(conn, BATCH)
    assert [r[0] for r in through_proxy] == list(range(1, len(BATCH) + 1))
    assert comparable(through_proxy, cluster_orders) == comparable(single, single_orders)
    assert through_proxy[4][1:3] == (through_proxy[0][1], True)
    # each parcel's events on its order's shard; the unshipped parcel's parked at its home
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT orderdb_cluster.tracking_home('GENERIC', %s)", (UNSHIPPED,)
        ).fetchone()
        assert row is not None
        home = int(row[0])
        timelines = [
            conn.execute("SELECT orderdb.order_timeline(%s)", (o,)).fetchone()
            for o in cluster_orders
        ]
    expected = sorted(
        {
            (PARCELS.index(e["tracking_number"]), e["tracking_number"], e["event_id"])
            for e in BATCH
            if e["tracking_number"] in PARCELS
        }
        | {(home, UNSHIPPED, "bt-5")}
    )
    assert stored(cluster) == expected
    carrier_scans = [
        sorted(e["status"] for e in t[0]["timeline"] if e.get("location") == "Shenzhen hub")
        for t in timelines
        if t is not None
    ]
    assert [len(s) for s in carrier_scans] == [2, 2, 2]

    # replayed: every element a duplicate of what the first call stored, nothing new stored
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        again = record_batch(conn, BATCH)
    assert [r[2] for r in again] == [True] * len(BATCH)
    assert [r[1] for r in again] == [r[1] for r in through_proxy]
    assert stored(cluster) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"event_time": "2030-01-31 18:00"}, "event 3: event_time must be an ISO 8601 time"),
        ({"carrier_status": 7}, "event 3: carrier_status must be a string"),
        ({"colour": "red"}, 'event 3: unknown key "colour"'),
    ],
)
def test_bad_element_is_refused_before_anything_is_recorded(
    cluster: Cluster,  # noqa: F811
    cluster_orders: list[int],
    db_dsn: str,
    bad: dict[str, Any],
    message: str,
) -> None:
    batch = [
        event(PARCELS[1], 5, "in_transit", "bt-bad-1"),
        event(PARCELS[2], 4, "in_transit", "bt-bad-2"),
        {**event(PARCELS[0], 3, "in_transit", "bt-bad-3"), **bad},
        event(UNSHIPPED, 2, "in_transit", "bt-bad-4"),
    ]
    before = stored(cluster)
    errors = []
    for dsn in (db_dsn, cluster.proxy_dsn):
        with (
            psycopg.connect(dsn, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InvalidParameterValue) as exc,
        ):
            record_batch(conn, batch)
        errors.append((exc.value.diag.message_primary, exc.value.diag.message_detail))
    assert errors[0] == errors[1]
    assert (errors[1][0] or "").startswith(message)
    assert stored(cluster) == before
    with (
        psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn,
        pytest.raises(
            psycopg.errors.InvalidParameterValue, match="events must hold 1 to 1000 events"
        ),
    ):
        record_batch(conn, [])


def test_event_id_of_another_parcel_on_another_shard_is_od006_before_anything_is_recorded(
    cluster: Cluster,  # noqa: F811
    cluster_orders: list[int],
    db_dsn: str,
) -> None:
    first = [event(PARCELS[0], 70, "picked_up", "bt-od-0")]
    # element 3 reuses the event id that parcel 0 (shard 0) has, for parcel 1 (shard 1)
    batch = [
        event(PARCELS[1], 9, "in_transit", "bt-od-1"),
        event(PARCELS[2], 8, "in_transit", "bt-od-2"),
        event(PARCELS[1], 7, "in_transit", "bt-od-0"),
    ]
    errors = []
    for dsn in (db_dsn, cluster.proxy_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            record_batch(conn, first)
            with pytest.raises(psycopg.Error) as exc:
                record_batch(conn, batch)
        assert exc.value.sqlstate == "OD006"
        errors.append((exc.value.diag.message_primary, exc.value.diag.message_detail))
    assert errors[0] == errors[1]
    assert (errors[1][0] or "").startswith("event 3: ")
    assert not [e for e in stored(cluster) if e[2] in ("bt-od-1", "bt-od-2")]
