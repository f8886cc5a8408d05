"""Carrier events in batches from the clients: orderdb.integrations.tracking_batches (one call of
orderdb.record_tracking_events per batch, a refused event taken out and the others recorded),
the poller and `orderdb ingest tracking`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from orderdb.cli import main
from orderdb.integrations.carriers import CarrierPlugin, TrackingEvent, Waybill, WaybillRequest
from orderdb.integrations.polling import Poller
from orderdb.integrations.tracking_batches import (
    RecordedEvent,
    RefusedEvent,
    event_element,
    record_tracking_batch,
)

WH = 83


def _shipped(conn: psycopg.Connection[Any], carrier: str, tracking_number: str) -> int:
    conn.execute("SELECT orderdb.receive_stock(%s, 'TB-A', 1000)", (WH,))
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(3, %s, %s)",
        (WH, Jsonb([{"sku": "TB-A", "quantity": 1}])),
    ).fetchone()
    assert row is not None
    order_id = int(row[0])
    conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
    conn.execute(
        "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
        (
            f"tb-ship-{tracking_number}",
            order_id,
            Jsonb({"carrier": carrier, "tracking_number": tracking_number}),
        ),
    )
    return order_id


def _stored(conn: psycopg.Connection[Any], tracking_number: str) -> list[str]:
    rows = conn.execute(
        "SELECT coalesce(event_id, '-') FROM orderdb.tracking_events"
        " WHERE tracking_number = %s ORDER BY event_time, tracking_event_id",
        (tracking_number,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_batch_keeps_the_good_events_and_says_why_one_was_refused(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        order_id = _shipped(conn, "GENERIC", "TB-1")
        t0 = datetime.now(UTC) - timedelta(hours=5)
        elements = [
            event_element("GENERIC", "TB-1", t0, "in_transit", "Hub A", event_id="tb1-1"),
            # an hour in the future beyond the day the contract allows: 22023
            event_element("GENERIC", "TB-1", t0 + timedelta(days=3), "in_transit", event_id="x"),
            event_element(
                "GENERIC", "TB-1", t0 + timedelta(hours=1), "out_for_delivery", event_id="tb1-2"
            ),
            # the carrier's event id of element 1 reused for another status: OD006
            event_element(
                "GENERIC", "TB-1", t0 + timedelta(hours=2), "delivered", event_id="tb1-1"
            ),
            # element 1 again: a duplicate
            event_element("GENERIC", "TB-1", t0, "in_transit", "Hub A", event_id="tb1-1"),
            # no offset: refused (no session time zone decides)
            event_element("GENERIC", "TB-1", datetime(2026, 1, 1, 12), "in_transit"),
        ]
        outcomes = record_tracking_batch(conn, elements)
        assert [type(o).__name__ for o in outcomes] == [
            "RecordedEvent",
            "RefusedEvent",
            "RecordedEvent",
            "RefusedEvent",
            "RecordedEvent",
            "RefusedEvent",
        ]
        first, future, second, reused, again, naive = outcomes
        assert isinstance(first, RecordedEvent) and not first.duplicate
        assert first.order_id == order_id and first.normalized_status == "in_transit"
        assert isinstance(second, RecordedEvent) and second.order_status == "delivering"
        assert isinstance(again, RecordedEvent) and again.duplicate
        assert again.tracking_event_id == first.tracking_event_id
        assert isinstance(future, RefusedEvent) and future.sqlstate == "22023"
        assert "event_time" in future.message and not future.message.startswith("event ")
        assert isinstance(reused, RefusedEvent) and reused.sqlstate == "OD006"
        assert isinstance(naive, RefusedEvent) and naive.sqlstate == "22023"
        assert "offset" in naive.message
        assert _stored(conn, "TB-1") == ["tb1-1", "tb1-2"]


class _CountingConnection:
    """Passes calls on to a connection and counts them."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.autocommit = conn.autocommit
        self.statements: list[str] = []

    def execute(self, query: str, params: Any = None) -> psycopg.Cursor[Any]:
        self.statements.append(query)
        return self.conn.execute(query, params)


def test_batch_of_good_events_is_one_call(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        _shipped(conn, "GENERIC", "TB-2")
        t0 = datetime.now(UTC) - timedelta(hours=5)
        elements = [
            event_element(
                "GENERIC",
                "TB-2",
                t0 + timedelta(minutes=k),
                "in_transit",
                f"Hub {k}",
                event_id=f"tb2-{k}",
            )
            for k in range(30)
        ]
        counting = _CountingConnection(conn)
        outcomes = record_tracking_batch(cast(psycopg.Connection[Any], counting), elements)
        assert len(counting.statements) == 1
        assert "record_tracking_events" in counting.statements[0]
        assert all(isinstance(o, RecordedEvent) and not o.duplicate for o in outcomes)
        assert [o.tracking_event_id for o in outcomes if isinstance(o, RecordedEvent)] == sorted(
            o.tracking_event_id for o in outcomes if isinstance(o, RecordedEvent)
        )
        assert len(_stored(conn, "TB-2")) == 30


class _Carrier:
    """A carrier plugin that reports fixed scans (one of them malformed)."""

    code = "TBC"

    def __init__(self, events: Sequence[TrackingEvent]) -> None:
        self.events = list(events)

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        raise NotImplementedError

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        return self.events


def test_poller_records_a_shipments_scans_and_skips_the_refused_one(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status)"
            " VALUES ('TBC', 'T', 'in_transit'), ('TBC', 'D', 'delivered')"
            " ON CONFLICT DO NOTHING"
        )
        order_id = _shipped(conn, "TBC", "TB-3")
        t0 = datetime.now(UTC) - timedelta(hours=6)
        carrier = _Carrier(
            [
                TrackingEvent("TB-3", t0, "T", "Hub 1", event_id="tb3-1"),
                TrackingEvent("TB-3", t0 + timedelta(days=5), "T", event_id="tb3-future"),
                TrackingEvent("TB-3", t0 + timedelta(hours=2), "D", "Door", event_id="tb3-2"),
            ]
        )
        poller = Poller(conn, {"TBC": cast(CarrierPlugin, carrier)}, worker="tb")
        conn.execute(
            "UPDATE orderdb.shipment_polls SET next_poll_at = now() - interval '1 s'"
            " WHERE carrier = 'TBC'"
        )
        report = poller.poll_once()
        assert (report.polled, report.events_seen) == (1, 3)
        assert (report.events_recorded, report.rejected, report.duplicates) == (2, 1, 0)
        assert _stored(conn, "TB-3") == ["tb3-1", "tb3-2"]
        row = conn.execute(
            "SELECT status FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ).fetchone()
        assert row is not None and row[0] == "delivered"


def test_ingest_tracking_reports_the_refused_lines_and_records_the_rest(
    db_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        _shipped(conn, "GENERIC", "TB-4")
    t0 = datetime.now(UTC) - timedelta(hours=4)

    def line(minutes: int, status: str, event_id: str, days: int = 0) -> str:
        at = t0 + timedelta(minutes=minutes, days=days)
        return json.dumps(
            {
                "carrier": "GENERIC",
                "tracking_number": "TB-4",
                "event_time": at.isoformat(),
                "carrier_status": status,
                "event_id": event_id,
            }
        )

    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                line(0, "in_transit", "tb4-1"),
                line(1, "in_transit", "tb4-x", days=3),  # too far ahead: 22023
                '{"carrier": "GENERIC"}',  # tracking_number missing (checked before the database)
                line(2, "delivered", "tb4-1"),  # event id reused for another status: OD006
                line(3, "out_for_delivery", "tb4-2"),
                line(0, "in_transit", "tb4-1"),  # line 1 again
            ]
        )
        + "\n"
    )
    out = CliRunner().invoke(
        main, ["--dsn", db_dsn, "ingest", "tracking", str(path), "--json"], catch_exceptions=False
    )
    assert out.exit_code == 1, out.output
    summary = json.loads(out.stdout)
    assert {k: summary[k] for k in ("new", "duplicate", "unmatched", "invalid")} == {
        "new": 2,
        "duplicate": 1,
        "unmatched": 0,
        "invalid": 3,
    }
    problems = summary["problems"]
    assert [p.split(":", 1)[0] for p in problems] == ["line 2", "line 3", "line 4"]
    assert problems[0].endswith("(22023)") and "event_time" in problems[0]
    assert problems[1] == "line 3: tracking_number: missing"
    assert problems[2].endswith("(OD006)")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert _stored(conn, "TB-4") == ["tb4-1", "tb4-2"]
