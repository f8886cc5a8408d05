"""orderdb.record_tracking_events against the single call: random batches of carrier events
(repeats inside the batch and of stored events, event ids reused for another parcel or status,
late and out-of-order events, a delivered scan, unknown parcels) give, element by element, the
answer a sequence of orderdb.record_tracking_event calls in one transaction gives, and leave
the same events, order, shipments, history and outbox events behind; an element the single call
refuses makes the batch refuse with its ordinal, and nothing of the batch stays."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

WH = 84
STATUSES = ("in_transit", "out_for_delivery", "failed_attempt", "in_transit", "delivered", "x9")
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


@pytest.fixture(scope="module")
def conn(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT orderdb.receive_stock(%s, 'TBE-A', 100000)", (WH,))
        yield c


def _world(conn: psycopg.Connection[Any], tag: str) -> int:
    """An order shipped in two parcels, {tag}-0 and {tag}-1 ({tag}-2 is no parcel of it)."""
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(5, %s, %s)",
        (WH, Jsonb([{"sku": "TBE-A", "quantity": 2}])),
    ).fetchone()
    assert row is not None
    order_id = int(row[0])
    conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
    for parcel in range(2):
        conn.execute(
            "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (
                f"tbe-{tag}-{parcel}",
                order_id,
                Jsonb(
                    {
                        "carrier": "GENERIC",
                        "tracking_number": f"{tag}-{parcel}",
                        "lines": [{"sku": "TBE-A", "quantity": 1}],
                        "occurred_at": (BASE - timedelta(hours=1)).isoformat(),
                    }
                ),
            ),
        )
    return order_id


def _scenario(rnd: random.Random, size: int) -> list[dict[str, Any]]:
    """Events drawn from a small pool of carrier events, so that repeats happen: the same event
    again, the same event id at another time (a resend), the same scan under another or no
    event id, and now and then an event id reused for another status (OD006)."""
    pool = [
        {
            "parcel": rnd.choice((0, 0, 1, 2)),
            "status": rnd.choice(STATUSES),
            "minutes": rnd.choice((0, 30, 60, 90, 120)),
            "event_id": rnd.choice((None, f"e{n}", f"e{n}")),
            "location": rnd.choice((None, "Hub", "电话13812345678")),
        }
        for n in range(6)
    ]
    events = []
    for _ in range(size):
        event = dict(rnd.choice(pool))
        change = rnd.random()
        if change < 0.1:
            event["minutes"] += 15  # resent at another time
        elif change < 0.2:
            event["event_id"] = rnd.choice((None, "e9"))  # the same scan, another id
        elif change < 0.23:
            event["status"] = "returned_to_sender"  # an event id reused: OD006
        events.append(event)
    return events


def _element(tag: str, event: dict[str, Any]) -> dict[str, Any]:
    at = BASE + timedelta(minutes=event["minutes"])
    return {
        "carrier": "GENERIC",
        "tracking_number": f"{tag}-{event['parcel']}",
        "event_time": at.isoformat(),
        "carrier_status": event["status"],
        "location": event["location"],
        "description": None,
        "event_id": None if event["event_id"] is None else f"{tag}-{event['event_id']}",
        "payload": None,
    }


def _answers(rows: list[tuple[Any, ...]], order_id: int) -> list[tuple[Any, ...]]:
    """(duplicate, normalized status, order status, matched to the order, the first element
    with the same stored event) of each row."""
    first: dict[int, int] = {}
    out = []
    for k, (event_id, duplicate, norm, row_order, order_status) in enumerate(rows):
        ref = first.setdefault(int(event_id), k)
        out.append((duplicate, norm, order_status, row_order == order_id, ref))
    return out


def _state(conn: psycopg.Connection[Any], tag: str, order_id: int) -> dict[str, Any]:
    def strip(text: str) -> str:
        return text.replace(tag, "T")

    events = conn.execute(
        "SELECT tracking_number, event_time, carrier_status, normalized_status, event_id,"
        " order_id IS NOT NULL FROM orderdb.tracking_events WHERE tracking_number LIKE %s"
        " ORDER BY tracking_event_id",
        (f"{tag}-%",),
    ).fetchall()
    order = conn.execute(
        "SELECT status, version FROM orderdb.orders WHERE order_id = %s", (order_id,)
    ).fetchone()
    shipments = conn.execute(
        "SELECT tracking_number, status, last_event_time, delivered_at FROM orderdb.shipments"
        " WHERE order_id = %s ORDER BY tracking_number",
        (order_id,),
    ).fetchall()
    history = conn.execute(
        "SELECT version, from_status, to_status, source,"
        " CASE WHEN source = 'carrier' THEN occurred_at END, actor, reason"
        " FROM orderdb.order_status_history WHERE order_id = %s ORDER BY version",
        (order_id,),
    ).fetchall()
    outbox = conn.execute(
        "SELECT event_type, payload - 'tracking_event_id' FROM orderdb.outbox"
        " WHERE event_type IN ('tracking.recorded', 'order.status_changed')"
        " AND (order_id = %s OR payload ->> 'tracking_number' LIKE %s) ORDER BY event_id",
        (order_id, f"{tag}-%"),
    ).fetchall()
    return {
        "events": [tuple(strip(str(v)) for v in e) for e in events],
        "order": order,
        "shipments": [tuple(strip(str(v)) for v in s) for s in shipments],
        "history": history,
        "outbox": [(t, strip(json.dumps(p, sort_keys=True))) for t, p in outbox],
    }


def _single_calls(
    conn: psycopg.Connection[Any], elements: list[dict[str, Any]]
) -> tuple[list[tuple[Any, ...]], tuple[int, str, str] | None]:
    """The elements by record_tracking_event, one transaction; the first refusal rolls back."""
    rows = []
    conn.autocommit = False
    try:
        for k, e in enumerate(elements, start=1):
            try:
                row = conn.execute(
                    "SELECT tracking_event_id, duplicate, normalized_status, order_id,"
                    " order_status FROM orderdb.record_tracking_event(%s, %s, %s, %s, %s, %s,"
                    " %s, %s)",
                    (
                        e["carrier"],
                        e["tracking_number"],
                        datetime.fromisoformat(e["event_time"]),
                        e["carrier_status"],
                        e["location"],
                        e["description"],
                        e["event_id"],
                        None,
                    ),
                ).fetchone()
            except psycopg.Error as exc:
                conn.rollback()
                return [], (k, exc.sqlstate or "", exc.diag.message_primary or "")
            assert row is not None
            rows.append(tuple(row))
        conn.commit()
        return rows, None
    finally:
        conn.autocommit = True


def _batch(
    conn: psycopg.Connection[Any], elements: list[dict[str, Any]]
) -> tuple[list[tuple[Any, ...]], tuple[int, str, str] | None]:
    try:
        rows = conn.execute(
            "SELECT tracking_event_id, duplicate, normalized_status, order_id, order_status"
            " FROM orderdb.record_tracking_events(%s) ORDER BY ordinal",
            (Jsonb(elements),),
        ).fetchall()
    except psycopg.Error as exc:
        message = exc.diag.message_primary or ""
        prefix, _, rest = message.partition(": ")
        assert prefix.startswith("event "), message
        return [], (int(prefix.removeprefix("event ")), exc.sqlstate or "", rest)
    return [tuple(r) for r in rows], None


@pytest.mark.parametrize("seed", range(60))
def test_batch_answers_and_leaves_what_the_single_calls_do(
    conn: psycopg.Connection[Any], seed: int
) -> None:
    rnd = random.Random(seed)
    # stored before: some events recorded one by one (repeats and reused ids against them)
    before = _scenario(rnd, rnd.randint(0, 4))
    events = _scenario(rnd, rnd.randint(1, 14))
    single_tag, batch_tag = f"TBS{seed}", f"TBB{seed}"
    outcomes = {}
    for tag, record in ((single_tag, _single_calls), (batch_tag, _batch)):
        order_id = _world(conn, tag)
        _single_calls(conn, [_element(tag, e) for e in before])
        rows, refused = record(conn, [_element(tag, e) for e in events])
        if refused is not None:
            refused = (refused[0], refused[1], refused[2].replace(tag, "T"))
        outcomes[tag] = (_answers(rows, order_id), refused, _state(conn, tag, order_id))
    single, batch = outcomes[single_tag], outcomes[batch_tag]
    assert batch[1] == single[1], "the same refusal (ordinal, SQLSTATE, message)"
    assert batch[0] == single[0], "the same answer for every element"
    assert batch[2] == single[2], "the same events, order, shipments, history and outbox"


MESSY_STATUSES = (
    "in_transit",
    "in_transit",
    "out_for_delivery",
    "info_received",
    "exception",
    "available_for_pickup",
    "delivered",
    "delivered",
    "failed_attempt",
    "returned_to_sender",
    "x9",
)
# minutes after BASE (the parcels left an hour before it): before the shipment, around it, and
# clocks up to 18 hours ahead of the server's (BASE is two days ago)
MESSY_MINUTES = (-120, -30, 0, 30, 60, 60, 90, 120, 240, 2880, 3960)


def _messy_scenario(rnd: random.Random, size: int) -> list[dict[str, Any]]:
    """Events of two orders (parcels a0, a1, b0, b1) and of a parcel no shipment has (a2),
    drawn from a pool (small: repeats; large: mostly distinct keys) and then disturbed: the same
    event id with another location, description or time (a resend), with another status or
    parcel (OD006), the same scan under another or no event id, the time written with another
    offset (the same instant)."""
    pool = [
        {
            "parcel": rnd.choice(("a0", "a0", "a1", "a2", "b0", "b1")),
            "status": rnd.choice(MESSY_STATUSES),
            "minutes": rnd.choice(MESSY_MINUTES),
            "offset": 0,
            "event_id": rnd.choice((None, f"e{n}", f"e{n}")),
            "location": rnd.choice((None, "Hub", "电话13812345678")),
            "description": rnd.choice((None, "scan", "call 021-62345678")),
        }
        for n in range(rnd.choice((3, 8, 40)))
    ]
    events = []
    for _ in range(size):
        event = dict(rnd.choice(pool))
        change = rnd.random()
        if change < 0.08:
            event["minutes"] += 7  # the same event id resent at another time
        elif change < 0.16:
            event["location"] = "Hub 9"  # ... with another location
            event["description"] = None
        elif change < 0.24:
            event["event_id"] = rnd.choice((None, "e99"))  # the same scan, another id
        elif change < 0.32:
            event["offset"] = rnd.choice((8, -5))  # the same instant, another offset
        elif change < 0.34:
            event["status"] = "returned_to_sender"  # an event id reused: OD006
        elif change < 0.36:
            event["parcel"] = "b1" if event["parcel"] != "b1" else "a0"  # ... or OD006
        events.append(event)
    return events


def _messy_element(tag: str, event: dict[str, Any]) -> dict[str, Any]:
    world, index = event["parcel"][0], event["parcel"][1]
    offset = timezone(timedelta(hours=event["offset"]))
    at = (BASE + timedelta(minutes=event["minutes"])).astimezone(offset)
    return {
        "carrier": "GENERIC",
        "tracking_number": f"{tag}{world}-{index}",
        "event_time": at.isoformat(),
        "carrier_status": event["status"],
        "location": event["location"],
        "description": event["description"],
        "event_id": None if event["event_id"] is None else f"{tag}-{event['event_id']}",
        "payload": None,
    }


@pytest.mark.parametrize("seed", range(80))
def test_messy_batches_on_two_orders_leave_what_the_single_calls_do(
    conn: psycopg.Connection[Any], seed: int
) -> None:
    """Two orders in one batch, in the states earlier events left them (shipped, delivering,
    delivery_failed, returning, delivered), with late and out-of-order scans, delivered scans
    older than the newest, clocks ahead, unknown codes, an unknown parcel and duplicates of
    every kind: the batch answers and leaves what the single calls do."""
    rnd = random.Random(10_000 + seed)
    before = _messy_scenario(rnd, rnd.randint(0, 6))
    events = _messy_scenario(rnd, rnd.randint(1, 24))
    outcomes = {}
    for tag, record in ((f"TMS{seed}", _single_calls), (f"TMB{seed}", _batch)):
        orders = {"a": _world(conn, f"{tag}a"), "b": _world(conn, f"{tag}b")}
        _single_calls(conn, [_messy_element(tag, e) for e in before])
        rows, refused = record(conn, [_messy_element(tag, e) for e in events])
        if refused is not None:
            refused = (refused[0], refused[1], refused[2].replace(tag, "T"))
        labels = {order_id: world for world, order_id in orders.items()}
        first: dict[int, int] = {}
        answers = [
            (dup, norm, status, labels.get(row_order), first.setdefault(int(event_id), k))
            for k, (event_id, dup, norm, row_order, status) in enumerate(rows)
        ]
        state = repr(
            [_state(conn, f"{tag}{world}", order_id) for world, order_id in orders.items()]
        ).replace(tag, "T")
        outcomes[tag[2]] = (answers, refused, state)
    single, batch = outcomes["S"], outcomes["B"]
    assert batch[1] == single[1], "the same refusal (ordinal, SQLSTATE, message)"
    assert batch[0] == single[0], "the same answer for every element"
    assert batch[2] == single[2], "the same events, orders, shipments, history and outbox"
