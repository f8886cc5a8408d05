"""SLA rules end to end on a crafted scenario: a parcel whose carrier went quiet, an unsigned
delivery (with a carrier exception since), both of them late (shipped 5 days ago), two late
shipments (one more than 24 h late), an unpaid order, a low sku. Each shows up in sla_breaches,
fulfillment_kpis, alerts and the Prometheus metrics, and sla_check escalates
each breach exactly once (run twice, and concurrently). Times are crafted through the API
(WMS occurred_at, carrier event times, promised dates in the order options)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from orderdb.cli import main
from orderdb.ops.exporter import enrich, metrics_from_snapshot
from orderdb.ops.monitor import snapshot

NOW = datetime.now(UTC)


def _iso(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


def _rows(conn: psycopg.Connection[Any], query: str, *args: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, args).fetchall()  # type: ignore[arg-type]


def _create(conn: psycopg.Connection[Any], options: dict[str, Any] | None = None) -> int:
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(7, 1, %s::jsonb, p_options => %s::jsonb)",
        ('[{"sku": "SKU-S", "quantity": 1}]', json.dumps(options or {})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _confirm(conn: psycopg.Connection[Any], order_id: int) -> None:
    conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))


def _created_ago(conn: psycopg.Connection[Any], order_id: int, ago: timedelta) -> None:
    """Moves an order's creation and its changes so far back by ``ago`` (a step is never
    measured before the one it follows: a parcel shipped 5 days ago needs an older order)."""
    conn.execute(
        "UPDATE orderdb.orders SET created_at = created_at - %s WHERE order_id = %s",
        (ago, order_id),
    )
    conn.execute(
        "UPDATE orderdb.order_status_history"
        " SET occurred_at = occurred_at - %s, effective_at = effective_at - %s"
        " WHERE order_id = %s",
        (ago, ago, order_id),
    )


def _ship(conn: psycopg.Connection[Any], order_id: int, tracking: str, at: timedelta) -> None:
    conn.execute(
        "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s::jsonb)",
        (
            f"wms-ship-{order_id}",
            order_id,
            json.dumps(
                {"carrier": "GENERIC", "tracking_number": tracking, "occurred_at": _iso(at)}
            ),
        ),
    )


def _track(conn: psycopg.Connection[Any], tracking: str, status: str, at: timedelta) -> None:
    conn.execute(
        "SELECT orderdb.record_tracking_event('GENERIC', %s, %s, %s)",
        (tracking, NOW + at, status),
    )


def build_scenario(conn: psycopg.Connection[Any]) -> dict[str, int]:
    conn.execute("SELECT orderdb.receive_stock(1, 'SKU-S', 100)")
    conn.execute("SELECT orderdb.receive_stock(1, 'SKU-SCARCE', 3)")  # the low sku

    # stale: shipped 5 days ago, last carrier event (in transit) 4 days ago
    stale = _create(conn)
    _confirm(conn, stale)
    _created_ago(conn, stale, timedelta(days=5, hours=12))
    _ship(conn, stale, "TN-STALE", -timedelta(days=5))
    _track(conn, "TN-STALE", "in_transit", -timedelta(days=4))

    # unsigned: out for delivery 4 days ago; a carrier note 2 hours ago keeps it from being stale
    unsigned = _create(conn)
    _confirm(conn, unsigned)
    _created_ago(conn, unsigned, timedelta(days=5, hours=12))
    _ship(conn, unsigned, "TN-UNSIGNED", -timedelta(days=5))
    _track(conn, "TN-UNSIGNED", "out_for_delivery", -timedelta(days=4))
    _track(conn, "TN-UNSIGNED", "exception", -timedelta(hours=2))

    # late by 30 hours (escalated: delay_compensation is for more than 24 h late) and by 2 hours
    very_late = _create(conn, {"promised_ship_at": _iso(-timedelta(hours=30))})
    _confirm(conn, very_late)
    late = _create(conn, {"promised_ship_at": _iso(-timedelta(hours=2))})
    _confirm(conn, late)

    # unpaid: still pending 10 minutes after its payment deadline
    unpaid = _create(conn, {"payment_due_by": _iso(-timedelta(minutes=10))})

    # healthy: delivered on time, and a fresh pending order
    fine = _create(conn)
    _confirm(conn, fine)
    _created_ago(conn, fine, timedelta(hours=6))
    _ship(conn, fine, "TN-FINE", -timedelta(hours=5))
    _track(conn, "TN-FINE", "delivered", -timedelta(hours=1))
    fresh = _create(conn)
    return {
        "stale": stale,
        "unsigned": unsigned,
        "very_late": very_late,
        "late": late,
        "unpaid": unpaid,
        "fine": fine,
        "fresh": fresh,
    }


@pytest.fixture(scope="module")
def scenario(db_dsn: str) -> Iterator[tuple[str, dict[str, int]]]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        ids = build_scenario(conn)
    yield db_dsn, ids


def test_breaches_per_rule(scenario: tuple[str, dict[str, int]]) -> None:
    dsn, ids = scenario
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = _rows(conn, "SELECT * FROM orderdb_ops.sla_breaches ORDER BY order_id, rule")
        status = {
            r["order_id"]: r["status"]
            for r in _rows(conn, "SELECT order_id, status FROM orderdb.orders")
        }
    got = {(r["order_id"], r["rule"]): r for r in rows}
    assert set(got) == {
        (ids["stale"], "no_tracking_update"),
        (ids["stale"], "late_delivery"),
        (ids["unsigned"], "unsigned"),
        (ids["unsigned"], "late_delivery"),
        (ids["very_late"], "late_shipment"),
        (ids["late"], "late_shipment"),
        (ids["unpaid"], "unpaid"),
    }
    assert status[ids["stale"]] == "delivering" and status[ids["fine"]] == "delivered"

    def since(key: str, rule: str) -> datetime:
        value = got[ids[key], rule]["breached_since"]
        assert isinstance(value, datetime)
        return value

    tol = timedelta(seconds=5)
    # measured from the newest event time (4 days ago), not from when it was received (now)
    assert abs(since("stale", "no_tracking_update") - (NOW - timedelta(days=2))) < tol
    assert abs(since("unsigned", "unsigned") - (NOW - timedelta(days=1))) < tol
    assert abs(since("very_late", "late_shipment") - (NOW - timedelta(hours=30))) < tol
    assert abs(since("unpaid", "unpaid") - (NOW - timedelta(minutes=10))) < tol
    # shipped 5 days ago, no promise: late 4 days after shipping
    assert abs(since("stale", "late_delivery") - (NOW - timedelta(days=1))) < tol
    assert abs(since("unsigned", "late_delivery") - (NOW - timedelta(days=1))) < tol
    levels = {k: v["level"] for k, v in got.items()}
    assert levels[ids["stale"], "no_tracking_update"] == "critical"  # 2 days > 24 h
    assert levels[ids["unsigned"], "unsigned"] == "warning"  # 1 day < 2 days
    assert levels[ids["very_late"], "late_shipment"] == "critical"
    assert levels[ids["late"], "late_shipment"] == "warning"
    assert levels[ids["stale"], "late_delivery"] == "warning"  # 1 day < 2 days
    assert got[ids["stale"], "late_delivery"]["action"] == "delay_compensation"
    assert got[ids["stale"], "no_tracking_update"]["action"] == "contact_carrier"
    detail = got[ids["stale"], "no_tracking_update"]["detail"]
    assert set(detail) == {"last_carrier_event_at", "last_wms_event_at", "last_status_change_at"}


def test_disabled_rule_and_threshold_are_data(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ids = build_scenario(conn)
        conn.execute("UPDATE orderdb.sla_rules SET enabled = false WHERE rule = 'unsigned'")
        conn.execute(
            "UPDATE orderdb.sla_rules SET threshold = interval '5 days'"
            " WHERE rule = 'no_tracking_update'"
        )
        rules = {r["rule"] for r in _rows(conn, "SELECT rule FROM orderdb_ops.sla_breaches")}
        assert rules == {"late_shipment", "unpaid", "late_delivery"}
        conn.execute(
            "UPDATE orderdb.sla_rules SET threshold = interval '47 hours'"
            " WHERE rule = 'no_tracking_update'"
        )
        rows = _rows(
            conn, "SELECT order_id FROM orderdb_ops.sla_breaches WHERE rule = 'no_tracking_update'"
        )
        # with 47 h both quiet parcels breach (the unsigned one's last event is 2 h old: no)
        assert [r["order_id"] for r in rows] == [ids["stale"]]


def test_kpis_and_alerts(scenario: tuple[str, dict[str, int]]) -> None:
    dsn, _ids = scenario
    with psycopg.connect(dsn, autocommit=True) as conn:
        kpis = {r["metric"]: r for r in _rows(conn, "SELECT * FROM orderdb_ops.fulfillment_kpis")}
        alerts = _rows(conn, "SELECT * FROM orderdb_ops.alerts ORDER BY source, subject")
    # due for shipping: 3 shipped on time + 2 unshipped past their promise -> 2/5 late
    assert kpis["delayed_shipment_rate"]["value"] == Decimal("0.4")
    assert kpis["delayed_shipment_rate"]["sample"] == 5
    assert kpis["delayed_shipment_rate"]["level"] == "critical"
    assert kpis["delivery_failure_rate"]["value"] == 0
    assert kpis["delivery_failure_rate"]["level"] == "ok"
    assert kpis["out_of_stock_rate"]["value"] == 0 and kpis["out_of_stock_rate"]["sample"] == 7
    # the one delivered order was on time; the two parcels shipped 5 days ago are past the
    # 3-day promise of orders created before that, undelivered: 1/3
    assert kpis["on_time_delivery_rate"]["value"] == Decimal("0.3333")
    assert kpis["on_time_delivery_rate"]["sample"] == 3
    assert kpis["avg_fulfillment_hours"]["sample"] == 1
    assert {k: float(r["threshold"]) for k, r in kpis.items()} == {
        "delayed_shipment_rate": 0.05,
        "out_of_stock_rate": 0.02,
        "delivery_failure_rate": 0.03,
        "avg_fulfillment_hours": 48,
        "on_time_delivery_rate": 0.95,
    }

    by_source: dict[str, list[tuple[str, str]]] = {}
    for a in alerts:
        by_source.setdefault(a["source"], []).append((a["subject"], a["level"]))
    assert by_source["sla"] == [
        ("late_delivery", "warning"),
        ("late_shipment", "critical"),
        ("no_tracking_update", "critical"),
        ("unpaid", "warning"),
        ("unsigned", "warning"),
    ]
    assert by_source["kpi"] == [
        ("delayed_shipment_rate", "critical"),
        ("on_time_delivery_rate", "critical"),
    ]
    assert by_source["stock"] == [("warehouse 1 / SKU-SCARCE", "warning")]
    sla_msg = next(a["message"] for a in alerts if a["subject"] == "late_shipment")
    assert sla_msg.startswith("2 order(s) breach late_shipment (1 critical)")
    # the unsigned parcel's newest carrier event is an exception: an alert for its order
    assert [a["level"] for a in alerts if a["source"] == "carrier"] == ["critical"]
    carrier_msg = next(a["message"] for a in alerts if a["source"] == "carrier")
    assert "TN-UNSIGNED" in carrier_msg


def test_metrics_of_the_scenario(scenario: tuple[str, dict[str, int]]) -> None:
    dsn, _ids = scenario
    with psycopg.connect(dsn, autocommit=True) as conn:
        snap = snapshot(conn)
    taken = datetime.now(UTC)
    enrich(snap)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics_from_snapshot(snap)
        for s in family.samples
    }
    assert samples["orderdb_sla_breaches", (("level", "critical"), ("rule", "late_shipment"))] == 1
    assert samples["orderdb_sla_breaches", (("level", "warning"), ("rule", "late_shipment"))] == 1
    assert (
        samples["orderdb_sla_breaches", (("level", "critical"), ("rule", "no_tracking_update"))]
        == 1
    )
    assert samples["orderdb_sla_breaches", (("level", "warning"), ("rule", "unsigned"))] == 1
    assert samples["orderdb_sla_breaches", (("level", "warning"), ("rule", "unpaid"))] == 1
    assert samples["orderdb_sla_breaches", (("level", "warning"), ("rule", "late_delivery"))] == 2
    assert samples["orderdb_alerts", (("level", "critical"), ("source", "carrier"))] == 1
    oldest = samples["orderdb_sla_breach_oldest_seconds", (("rule", "no_tracking_update"),)]
    # the breach began 2 days before NOW, which the module read when the suite was collected
    # (minutes before this test in a whole run): its age is measured from then
    expected = (taken - (NOW - timedelta(days=2))).total_seconds()
    assert expected - 60 < oldest < expected + 10
    assert samples["orderdb_fulfillment_kpi_ratio", (("metric", "delayed_shipment_rate"),)] == 0.4
    avg_hours = next(k["value"] for k in snap["kpis"] if k["metric"] == "avg_fulfillment_hours")
    # a sum and a count, not a mean: their ratio is the KPI (rounded to 4 decimals of an hour)
    delivered = samples["orderdb_fulfillment_window_delivered_orders", ()]
    assert delivered >= 1
    total = samples["orderdb_fulfillment_window_duration_seconds", ()]
    assert total / delivered == pytest.approx(avg_hours * 3600, abs=1)
    assert samples["orderdb_fulfillment_kpi_level", (("metric", "delayed_shipment_rate"),)] == 2
    assert samples["orderdb_orders", (("status", "delivering"),)] == 2
    assert samples["orderdb_low_stock_skus", (("level", "warning"),)] == 1
    lanes = {lane["rule"]: lane["level"] for lane in snap["sla_summary"]}
    assert lanes == {
        "no_tracking_update": "critical",
        "late_shipment": "critical",
        "unsigned": "warning",
        "unpaid": "warning",
        "late_delivery": "warning",
    }


def _escalations(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str]]:
    return [
        (r["order_id"], r["rule"], r["action"])
        for r in _rows(
            conn, "SELECT order_id, rule, action FROM orderdb.sla_escalations ORDER BY 1, 2"
        )
    ]


def _escalation_events(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str]]:
    return [
        (r["order_id"], r["payload"]["rule"], r["payload"]["action"])
        for r in _rows(
            conn,
            "SELECT order_id, payload FROM orderdb.outbox WHERE event_type = 'sla.escalated'"
            " ORDER BY order_id, payload ->> 'rule'",
        )
    ]


def test_sla_check_escalates_each_breach_once(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ids = build_scenario(conn)
        expected = sorted(
            [
                (ids["stale"], "no_tracking_update", "contact_carrier"),
                (ids["stale"], "late_delivery", "delay_compensation"),
                (ids["unsigned"], "unsigned", "satisfaction_survey"),
                (ids["unsigned"], "late_delivery", "delay_compensation"),
                (ids["very_late"], "late_shipment", "delay_compensation"),
                (ids["unpaid"], "unpaid", "payment_reminder"),
            ]
        )
        first = _rows(conn, "SELECT * FROM orderdb.sla_check()")
        assert sorted((r["order_id"], r["rule"], r["action"]) for r in first) == expected
        # the 2-hours-late order is a breach, but not yet 24 h late: no compensation yet
        assert ids["late"] not in {r["order_id"] for r in first}
        assert _rows(conn, "SELECT * FROM orderdb.sla_check()") == []
        assert _escalations(conn) == expected
        assert _escalation_events(conn) == expected
        event = _rows(
            conn,
            "SELECT payload, warehouse_id FROM orderdb.outbox WHERE event_type = 'sla.escalated'"
            " AND order_id = %s",
            ids["stale"],
        )[0]
        assert event["warehouse_id"] == 1
        assert event["payload"]["status"] == "delivering"
        assert event["payload"]["order_no"].startswith("ORD")

        # a day later the late order is 26 h late: escalated now, once; the others stay done
        conn.execute(
            "UPDATE orderdb.orders SET options = jsonb_build_object('promised_ship_at', %s::text)"
            " WHERE order_id = %s",
            (_iso(-timedelta(hours=26)), ids["late"]),
        )
        second = _rows(conn, "SELECT order_id, rule, action FROM orderdb.sla_check()")
        assert [(r["order_id"], r["rule"], r["action"]) for r in second] == [
            (ids["late"], "late_shipment", "delay_compensation")
        ]
        # a breach that clears and comes back is not escalated again
        _track(conn, "TN-STALE", "in_transit", -timedelta(minutes=1))
        quiet = "SELECT 1 FROM orderdb_ops.sla_breaches WHERE order_id = %s AND rule = %s"
        assert not _rows(conn, quiet, ids["stale"], "no_tracking_update")
        conn.execute(
            "UPDATE orderdb.sla_rules SET threshold = interval '1 second'"
            " WHERE rule = 'no_tracking_update'"
        )
        assert _rows(conn, quiet, ids["stale"], "no_tracking_update")
        third = _rows(conn, "SELECT order_id, rule FROM orderdb.sla_check()")
        # (with a 1-second threshold the unsigned parcel is now quiet too: that one is new)
        assert [(r["order_id"], r["rule"]) for r in third] == [
            (ids["unsigned"], "no_tracking_update")
        ]
        events = _escalation_events(conn)
        assert events.count((ids["stale"], "no_tracking_update", "contact_carrier")) == 1
        assert len(events) == 8


def test_sla_check_concurrent_runs_escalate_once(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        build_scenario(conn)
    barrier = threading.Barrier(6)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(fresh_dsn, autocommit=True) as c:
                barrier.wait(timeout=10)
                for _ in range(3):
                    results.append(len(c.execute("SELECT * FROM orderdb.sla_check()").fetchall()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sum(results) == 6 and len(results) == 18
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        assert len(_escalations(conn)) == 6
        assert len(_escalation_events(conn)) == 6


def test_sla_check_command(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ids = build_scenario(conn)
    runner = CliRunner()
    result = runner.invoke(main, ["--dsn", fresh_dsn, "sla-check", "--json"])
    assert result.exit_code == 0, result.output
    lines = json.loads(result.stdout)
    assert sorted((r["order_id"], r["action"]) for r in lines) == sorted(
        [
            (ids["stale"], "contact_carrier"),
            (ids["stale"], "delay_compensation"),
            (ids["unsigned"], "satisfaction_survey"),
            (ids["unsigned"], "delay_compensation"),
            (ids["very_late"], "delay_compensation"),
            (ids["unpaid"], "payment_reminder"),
        ]
    )
    again = runner.invoke(main, ["--dsn", fresh_dsn, "sla-check"])
    assert again.exit_code == 0, again.output
    assert "no new SLA breaches" in again.output
