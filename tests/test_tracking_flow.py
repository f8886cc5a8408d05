"""End-to-end fulfillment and tracking through the public API only: the acceptance flow and its
customer timeline, customer scoping (OD005), out-of-order and unmatched carrier events, partial
shipments and partial returns with counters == ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from orderdb.client import Client
from orderdb.errors import Forbidden, InvalidInput, InvalidTransition, NotFound

WH = 71


@pytest.fixture(scope="module")
def db(db_dsn: str) -> Client:
    client = Client.connect(db_dsn, max_size=2)
    for sku in ("FL-A", "FL-B", "FL-C"):
        client.receive_stock(WH, sku, 100)
    return client


def _drift(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM orderdb_ops.inventory_drift").fetchall()


def _now() -> datetime:
    return datetime.now(UTC)


def test_acceptance_flow_and_customer_timeline(db: Client) -> None:
    o = db.create_order(
        42, WH, [{"sku": "FL-A", "quantity": 1, "unit_price": "9.90"}], idempotency_key="acc-1"
    )
    s = db.transition(o.order_id, "confirmed", expected_version=o.version, actor="payment-svc")
    s = db.transition(o.order_id, "dispatched", expected_version=s.version, actor="allocator")
    r = db.wms_callback("acc-picked", o.order_id, "PICKED")
    assert (r.status, r.duplicate) == ("picked", False)
    r = db.wms_callback("acc-packed", o.order_id, "PACKED")
    assert r.status == "packed"
    r = db.wms_callback(
        "acc-shipped", o.order_id, "SHIPPED", {"carrier": "SF", "tracking_number": "SFACC1"}
    )
    assert r.status == "shipped"
    for code, where, text in [
        ("54", "Shenzhen Nanshan", "Parcel picked up"),
        ("31", "Guangzhou hub", "Arrived at the hub"),
        ("44", "Guangzhou Tianhe", "Out for delivery"),
        ("80", "Guangzhou Tianhe", "Signed for by the recipient"),
    ]:
        t = db.record_tracking_event("SF", "SFACC1", _now(), code, location=where, description=text)
        assert not t.duplicate and t.order_id == o.order_id
    assert t.order_status == "delivered"

    tl = db.order_timeline(o.order_id, customer_id=42)
    assert tl.status == "delivered"
    assert tl.order_no == o.order_no
    assert tl.current_location == "Guangzhou Tianhe"
    assert [(x.carrier, x.tracking_number, x.status) for x in tl.shipments] == [
        ("SF", "SFACC1", "delivered")
    ]
    assert [(e.kind, e.status) for e in tl.timeline] == [
        ("order", "pending"),
        ("order", "confirmed"),
        ("order", "dispatched"),
        ("order", "picked"),
        ("order", "packed"),
        ("order", "shipped"),
        ("carrier", "in_transit"),
        ("carrier", "in_transit"),
        ("carrier", "out_for_delivery"),
        ("carrier", "delivered"),
    ]
    times = [e.time for e in tl.timeline]
    assert times == sorted(times)
    assert tl.timeline[0].description == "Order placed"
    assert tl.timeline[-1].description == "Signed for by the recipient"
    assert tl.timeline[-1].order_status == "delivered"
    assert tl.estimated_delivery is None, "no estimate once delivered"
    # the carrier's delivered event is shown once, not also as a status change
    assert sum(1 for e in tl.timeline if e.status == "delivered") == 1


def test_timeline_is_customer_scoped(db: Client) -> None:
    o = db.create_order(43, WH, [{"sku": "FL-A", "quantity": 1}])
    with pytest.raises(Forbidden) as exc:
        db.order_timeline(o.order_id, customer_id=44)
    assert exc.value.sqlstate == "OD005"
    with pytest.raises(NotFound):
        db.order_timeline(10**12, customer_id=43)
    assert db.order_timeline(o.order_id, customer_id=43).status == "pending"


def test_out_of_order_and_unmatched_events(db: Client) -> None:
    o = db.create_order(45, WH, [{"sku": "FL-B", "quantity": 1}])
    db.transition(o.order_id, "confirmed", expected_version=o.version)
    base = _now() - timedelta(hours=6)
    # the carrier reports before the warehouse, and out of order
    r1 = db.record_tracking_event("GENERIC", "OOO1", base + timedelta(hours=3), "out_for_delivery")
    r2 = db.record_tracking_event(
        "GENERIC", "OOO1", base + timedelta(hours=1), "in_transit", location="Hub A"
    )
    assert (r1.order_id, r2.order_id) == (None, None)
    assert r2.normalized_status == "in_transit"
    r = db.wms_callback(
        "ooo-ship",
        o.order_id,
        "SHIPPED",
        {"carrier": "GENERIC", "tracking_number": "OOO1", "occurred_at": base.isoformat()},
    )
    assert r.status == "delivering", "matched when SHIPPED arrives; the newest event applies"
    # a late failed attempt (older than the newest event) changes nothing
    late = db.record_tracking_event("GENERIC", "OOO1", base + timedelta(hours=2), "failed_attempt")
    assert late.order_status == "delivering"
    dup = db.record_tracking_event("GENERIC", "OOO1", base + timedelta(hours=3), "out_for_delivery")
    assert dup.duplicate and dup.tracking_event_id == r1.tracking_event_id
    tl = db.order_timeline(o.order_id)
    carrier = [e for e in tl.timeline if e.kind == "carrier"]
    assert [e.status for e in carrier] == ["in_transit", "failed_attempt", "out_for_delivery"]
    assert tl.current_location == "Hub A"
    assert tl.estimated_delivery is None or tl.estimated_delivery > base


def test_partial_shipment_and_partial_return_ledgers(db: Client, db_dsn: str) -> None:
    start = {sku: db.stock_level(WH, sku) for sku in ("FL-A", "FL-B", "FL-C")}
    o = db.create_order(
        46,
        WH,
        [
            {"sku": "FL-A", "quantity": 3},
            {"sku": "FL-B", "quantity": 2},
            {"sku": "FL-C", "quantity": 4},
        ],
    )
    db.transition(o.order_id, "confirmed", expected_version=o.version)
    r = db.wms_callback(
        "pp-1",
        o.order_id,
        "SHIPPED",
        {
            "carrier": "ZTO",
            "tracking_number": "ZPP1",
            "lines": [{"sku": "FL-A", "quantity": 2}, {"sku": "FL-B"}],
        },
    )
    assert r.status == "packed"
    assert _drift(db_dsn) == []
    r = db.wms_callback(
        "pp-2",
        o.order_id,
        "SHIPPED",
        {"carrier": "ZTO", "tracking_number": "ZPP2", "lines": [{"sku": "FL-C", "quantity": 1}]},
    )
    assert r.status == "packed"
    # FL-A x1 and FL-C x3 are missing: ship what is there, cancel the rest
    c = db.cancel_order_lines(o.order_id, None, expected_version=r.version, reason="short pick")
    assert (c.status, c.released) == ("shipped", 4)
    assert _drift(db_dsn) == []
    for tn in ("ZPP1", "ZPP2"):
        db.record_tracking_event("ZTO", tn, _now(), "签收")
    assert db.get_order(o.order_id).status == "delivered"

    d = db.get_order(o.order_id)
    ret = db.request_return(
        o.order_id, [{"sku": "FL-A", "quantity": 1}], expected_version=d.version, actor="cust"
    )
    assert ret.status == "return_requested"
    back = db.receive_return(o.order_id)
    assert (back.status, back.restocked) == ("returned", 1)
    assert _drift(db_dsn) == []

    items = {i.sku: i for i in db.get_order(o.order_id).items}
    assert (items["FL-A"].consumed, items["FL-A"].returned, items["FL-A"].released) == (1, 1, 1)
    assert (items["FL-B"].consumed, items["FL-B"].returned) == (2, 0)
    assert (items["FL-C"].consumed, items["FL-C"].released) == (1, 3)
    end = {sku: db.stock_level(WH, sku) for sku in ("FL-A", "FL-B", "FL-C")}
    assert start["FL-A"].on_hand - end["FL-A"].on_hand == 1  # 2 shipped, 1 back
    assert start["FL-B"].on_hand - end["FL-B"].on_hand == 2
    assert start["FL-C"].on_hand - end["FL-C"].on_hand == 1
    assert all(end[s].reserved == start[s].reserved for s in end)
    shipments = db.get_order(o.order_id).shipments
    assert [s["tracking_number"] for s in shipments] == ["ZPP1", "ZPP2"]


def test_errors_are_typed(db: Client) -> None:
    o = db.create_order(47, WH, [{"sku": "FL-A", "quantity": 1}])
    with pytest.raises(InvalidTransition):
        db.wms_callback("err-1", o.order_id, "PICKED")  # pending: not released
    db.transition(o.order_id, "confirmed", expected_version=1)
    with pytest.raises(InvalidInput) as exc:
        db.wms_callback("err-2", o.order_id, "LOADED")
    assert "event_type" in str(exc.value)
    with pytest.raises(InvalidInput):
        db.record_tracking_event("SF", "X", _now() + timedelta(days=2), "80")
    with pytest.raises(NotFound):
        db.wms_callback("err-3", 10**12, "PICKED")


def test_demo_simulation_ships_and_streams(db: Client, db_dsn: str) -> None:
    import random

    from orderdb.demo.tracking import simulate_fulfillment

    ids = []
    for i in range(30):
        o = db.create_order(100 + i, WH, [{"sku": "FL-C", "quantity": 1}])
        db.transition(o.order_id, "confirmed", expected_version=o.version)
        ids.append(o.order_id)
    stats = simulate_fulfillment(
        db, ids, random.Random(7), failed_attempt_rate=0.3, refused_rate=0.2
    )
    assert sum(stats.statuses.values()) == 30
    assert set(stats.statuses) <= {"delivered", "returned"}
    assert stats.statuses["returned"] > 0
    assert stats.wms_callbacks == 90
    assert _drift(db_dsn) == []
    for order_id in ids:
        tl = db.order_timeline(order_id)
        times = [e.time for e in tl.timeline]
        assert times == sorted(times)
