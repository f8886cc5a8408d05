"""Carrier plugins (entry points, the simulated carrier) and scheduled polling
(orderdb.claim_shipments_for_polling, orderdb/integrations/polling.py, `orderdb poll-carriers`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from orderdb.integrations import carriers
from orderdb.integrations.carriers import (
    Address,
    CarrierPlugin,
    CarrierRejected,
    CarrierUnavailable,
    TrackingEvent,
    WaybillRequest,
)
from orderdb.integrations.carriers.simulated import SimulatedCarrier
from orderdb.integrations.polling import Poller

WAREHOUSE = 3801
ADDRESS = Address(name="Li Lei", line1="1 Keyuan Rd", city="Shenzhen", postal_code="518000")


# -- plugins -----------------------------------------------------------------------------------


def test_builtin_simulated_carrier_is_an_entry_point() -> None:
    assert "SIM" in carriers.available()
    plugin = carriers.load("SIM", {"seed": 3})
    assert isinstance(plugin, CarrierPlugin)
    assert plugin.code == "SIM"
    with pytest.raises(LookupError, match="no carrier plugin 'NOPE'"):
        carriers.load("NOPE")


def test_a_carrier_is_a_package_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A separately installed distribution that declares an orderdb.carriers entry point is found
    and loaded (here: a dist-info directory and a module on sys.path, as pip would leave them)."""
    (tmp_path / "acme_carrier.py").write_text(
        "from orderdb.integrations.carriers import TrackingEvent, Waybill\n"
        "class Acme:\n"
        "    code = 'ACME'\n"
        "    def __init__(self, config): self.config = dict(config)\n"
        "    def create_waybill(self, request): return Waybill('ACME', 'ACME1')\n"
        "    def query_tracking(self, tracking_number): return []\n"
        "    def cancel(self, tracking_number): return True\n"
        "def factory(config): return Acme(config)\n"
        "def broken(config): return object()\n"
    )
    dist = tmp_path / "acme_carrier-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-carrier\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[orderdb.carriers]\nACME = acme_carrier:factory\nBROKEN = acme_carrier:broken\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"ACME", "BROKEN", "SIM"} <= set(carriers.available())
    acme = carriers.load("ACME", {"api_key": "k"})
    assert (
        acme.code == "ACME"
        and acme.create_waybill(
            WaybillRequest(order_id=1, warehouse_id=1, recipient=ADDRESS)
        ).tracking_number
        == "ACME1"
    )
    with pytest.raises(TypeError, match="lacks create_waybill"):
        carriers.load("BROKEN")
    loaded = carriers.load_all({"ACME": {"api_key": "k"}})
    assert set(loaded) >= {"ACME", "SIM"} and "BROKEN" not in loaded


def test_simulated_carrier_is_deterministic_from_its_seed() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    late = start + timedelta(days=30)
    a = SimulatedCarrier({"seed": 7, "clock": lambda: late})
    b = SimulatedCarrier({"seed": 7, "clock": lambda: late})
    c = SimulatedCarrier({"seed": 8, "clock": lambda: late})
    tn = f"SIM{int(start.timestamp()):010d}000001"
    assert a.query_tracking(tn) == b.query_tracking(tn)
    assert [e.event_time for e in a.story(tn)] != [e.event_time for e in c.story(tn)]
    story = a.story(tn)
    assert story[0].status == "ACCEPTED" and story[-1].status in ("DELIVERED", "RETURNED")
    assert story[0].event_time > start  # starts from the second encoded in the number
    assert len({e.event_id for e in story}) == len(story)
    assert [e.event_time for e in story] == sorted(e.event_time for e in story)


def test_simulated_carrier_delays_failures_duplicates_and_cancel() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    sim = SimulatedCarrier(
        {"seed": 1, "clock": lambda: now[0], "time_scale": 0.01, "duplicate_rate": 1.0}
    )
    waybill = sim.create_waybill(WaybillRequest(order_id=5, warehouse_id=1, recipient=ADDRESS))
    assert waybill.carrier == "SIM" and waybill.tracking_number.startswith("SIM")
    tn = waybill.tracking_number
    assert sim.query_tracking(tn) == []  # nothing has happened yet
    story = sim.story(tn)
    now[0] = story[1].event_time
    seen = sim.query_tracking(tn)
    assert [e.status for e in seen] == ["ACCEPTED", "ACCEPTED", "PICKED_UP", "PICKED_UP"]
    assert sim.cancel(tn) is False  # picked up already
    other = sim.create_waybill(WaybillRequest(order_id=6, warehouse_id=1, recipient=ADDRESS))
    assert sim.cancel(other.tracking_number) is True

    flaky = SimulatedCarrier({"seed": 1, "failure_rate": 1.0})
    with pytest.raises(CarrierUnavailable):
        flaky.query_tracking(tn)
    half = SimulatedCarrier({"seed": 1, "failure_rate": 0.5})
    outcomes = []
    for _ in range(40):
        try:
            half.query_tracking(tn)
            outcomes.append(True)
        except CarrierUnavailable:
            outcomes.append(False)
    again = SimulatedCarrier({"seed": 1, "failure_rate": 0.5})
    replay = []
    for _ in range(40):
        try:
            again.query_tracking(tn)
            replay.append(True)
        except CarrierUnavailable:
            replay.append(False)
    assert outcomes == replay and 5 < outcomes.count(False) < 35
    with pytest.raises(ValueError, match="failure_rate"):
        SimulatedCarrier({"failure_rate": 2})


# -- polling -----------------------------------------------------------------------------------


def _ship_orders(dsn: str, count: int, carrier: str, numbers: Sequence[str]) -> list[int]:
    """Creates ``count`` orders and ships them with ``carrier`` under ``numbers``."""
    orders = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, 'PL-A', 100000)", (WAREHOUSE,))
        for i in range(count):
            row = conn.execute(
                "SELECT order_id FROM orderdb.create_order(2, %s, %s)",
                (WAREHOUSE, Jsonb([{"sku": "PL-A", "quantity": 1}])),
            ).fetchone()
            assert row is not None
            order_id = int(row[0])
            conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            conn.execute("SELECT orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
            conn.execute(
                "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
                (
                    f"pl-ship-{carrier}-{order_id}",
                    order_id,
                    Jsonb({"carrier": carrier, "tracking_number": numbers[i]}),
                ),
            )
            orders.append(order_id)
    return orders


def _sim_numbers(count: int, days_ago: float, seed: int) -> list[str]:
    """Tracking numbers of waybills the simulated carrier made ``days_ago`` (whole story over)."""
    then = datetime.now(UTC) - timedelta(days=days_ago)
    maker = SimulatedCarrier({"seed": seed, "clock": lambda: then})
    return [
        maker.create_waybill(
            WaybillRequest(order_id=i, warehouse_id=WAREHOUSE, recipient=ADDRESS)
        ).tracking_number
        for i in range(count)
    ]


def test_pollers_share_the_work_and_drive_orders_to_delivered(fresh_dsn: str) -> None:
    """Four pollers at once over 40 shipments: each shipment polled by exactly one of them, every
    event recorded once (duplicates in the carrier's answers are absorbed), orders delivered,
    finished shipments leave the polling."""
    numbers = _sim_numbers(40, days_ago=3, seed=11)
    orders = _ship_orders(fresh_dsn, 40, "SIM", numbers)
    config = {"seed": 11, "return_rate": 0.0, "duplicate_rate": 0.3}
    reports = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def run(k: int) -> None:
        with psycopg.connect(fresh_dsn, autocommit=True) as conn:
            poller = Poller(conn, {"SIM": SimulatedCarrier(config)}, worker=f"p{k}", limit=7)
            barrier.wait()
            while True:
                report = poller.poll_once()
                with lock:
                    reports.append(report)
                if report.claimed == 0:
                    return

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(r.claimed for r in reports) == 40
    assert sum(r.polled for r in reports) == 40
    assert sum(r.carrier_errors for r in reports) == 0
    assert sum(r.duplicates for r in reports) > 0
    story_events = sum(len(SimulatedCarrier(config).story(tn)) for tn in numbers)
    assert sum(r.events_recorded for r in reports) == story_events

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        polls = conn.execute(
            "SELECT polls, claimed_by FROM orderdb.shipment_polls WHERE carrier = 'SIM'"
        ).fetchall()
        assert len(polls) == 40 and all(p == (1, None) for p in polls)
        statuses = conn.execute(
            "SELECT status, count(*) FROM orderdb.orders WHERE order_id = ANY(%s) GROUP BY 1",
            (orders,),
        ).fetchall()
        assert statuses == [("delivered", 40)]
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM orderdb.tracking_events "
            "WHERE carrier = 'SIM' AND tracking_number = ANY(%s)",
            (numbers,),
        ).fetchone()
        assert stored == (story_events, story_events)
        # not due again for 30 minutes; once due, delivered shipments are retired unpolled
        assert (
            conn.execute(
                "SELECT * FROM orderdb.claim_shipments_for_polling(100, 'late')"
            ).fetchall()
            == []
        )
        conn.execute("UPDATE orderdb.shipment_polls SET next_poll_at = now() - interval '1 s'")
        assert (
            conn.execute(
                "SELECT * FROM orderdb.claim_shipments_for_polling(100, 'late')"
            ).fetchall()
            == []
        )
        done = conn.execute(
            "SELECT count(*) FILTER (WHERE done) FROM orderdb.shipment_polls WHERE carrier = 'SIM'"
        ).fetchone()
        assert done == (40,)


class _Failing:
    code = "FLAKY"

    def __init__(self) -> None:
        self.calls = 0
        self.fail = True

    def create_waybill(self, request: WaybillRequest) -> Any:
        raise NotImplementedError

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        self.calls += 1
        if self.fail:
            raise CarrierUnavailable("503 from the carrier")
        return [
            TrackingEvent(
                tracking_number=tracking_number,
                event_time=datetime.now(UTC) - timedelta(minutes=5),
                status="in_transit",
                event_id=f"{tracking_number}-1",
            )
        ]

    def cancel(self, tracking_number: str) -> bool:
        return False


def test_carrier_errors_back_off_the_carrier(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status) "
            "SELECT 'FLAKY', carrier_status, normalized_status FROM orderdb.carrier_status_map "
            "WHERE carrier = 'GENERIC'"
        )
    _ship_orders(fresh_dsn, 5, "FLAKY", [f"FLK{i:06d}" for i in range(5)])
    flaky = _Failing()
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        poller = Poller(conn, {"FLAKY": flaky}, worker="solo")
        report = poller.poll_once()
        assert (report.claimed, report.carrier_errors, report.released) == (5, 1, 4)
        assert flaky.calls == 1  # the rest of the batch was given back, not hammered
        row = conn.execute(
            "SELECT consecutive_errors, backoff_until > now(), last_error "
            "FROM orderdb.carrier_polling WHERE carrier = 'FLAKY'"
        ).fetchone()
        assert row == (1, True, "CarrierUnavailable: 503 from the carrier")
        # backing off: nobody gets FLAKY shipments now
        assert poller.poll_once().claimed == 0
        # the back-off grows with consecutive errors: 30 s, 60 s, ...
        conn.execute("UPDATE orderdb.carrier_polling SET backoff_until = now() - interval '1 s'")
        assert poller.poll_once().carrier_errors == 1
        secs = conn.execute(
            "SELECT consecutive_errors, extract(epoch FROM backoff_until - now())::integer "
            "FROM orderdb.carrier_polling WHERE carrier = 'FLAKY'"
        ).fetchone()
        assert secs is not None and secs[0] == 2 and 55 <= secs[1] <= 60
        # the carrier recovers
        conn.execute("UPDATE orderdb.carrier_polling SET backoff_until = now() - interval '1 s'")
        flaky.fail = False
        recovered = poller.poll_once()
        # the two shipments that failed wait out their own back-off; the other three are polled
        assert recovered.polled == 3 and recovered.events_recorded == 3
        failed = conn.execute(
            "SELECT count(*) FROM orderdb.shipment_polls WHERE carrier = 'FLAKY' AND errors = 1 "
            "AND polls = 1 AND next_poll_at > now()"
        ).fetchone()
        assert failed == (2,)
        assert conn.execute(
            "SELECT consecutive_errors, backoff_until FROM orderdb.carrier_polling "
            "WHERE carrier = 'FLAKY'"
        ).fetchone() == (0, None)


class _RefusesOneParcel(_Failing):
    """A carrier that answers for every parcel but one, which it does not know."""

    def __init__(self, unknown: str) -> None:
        super().__init__()
        self.fail = False
        self.unknown = unknown

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        if tracking_number == self.unknown:
            self.calls += 1
            raise CarrierRejected(f"unknown tracking number {tracking_number}")
        return super().query_tracking(tracking_number)


def test_a_parcel_the_carrier_refuses_does_not_back_the_carrier_off(fresh_dsn: str) -> None:
    """CarrierRejected concerns one parcel: its shipment keeps the error and waits the carrier's
    interval; the carrier's other parcels are polled in the same round, and it does not back off."""
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status) "
            "SELECT 'FLAKY', carrier_status, normalized_status FROM orderdb.carrier_status_map "
            "WHERE carrier = 'GENERIC'"
        )
    _ship_orders(fresh_dsn, 4, "FLAKY", [f"FLR{i:06d}" for i in range(4)])
    plugin = _RefusesOneParcel("FLR000001")
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        report = Poller(conn, {"FLAKY": plugin}, worker="solo").poll_once()
        assert (report.claimed, report.polled, report.refused_parcels) == (4, 3, 1)
        assert (report.carrier_errors, report.released, report.events_recorded) == (0, 0, 3)
        assert conn.execute(
            "SELECT count(*) FROM orderdb.carrier_polling "
            "WHERE carrier = 'FLAKY' AND (consecutive_errors > 0 OR backoff_until IS NOT NULL)"
        ).fetchone() == (0,)
        refused = conn.execute(
            "SELECT errors, last_error, next_poll_at - now() > interval '29 minutes' "
            "FROM orderdb.shipment_polls WHERE tracking_number = 'FLR000001'"
        ).fetchone()
        assert refused == (1, "CarrierRejected: unknown tracking number FLR000001", True)


def test_recently_updated_shipments_are_not_polled(fresh_dsn: str) -> None:
    """A shipment whose carrier pushed an event within the interval is rescheduled, not polled."""
    _ship_orders(fresh_dsn, 2, "GENERIC", ["GEN000001", "GEN000002"])
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT * FROM orderdb.set_carrier_polling('GENERIC', '1 hour')")
        claimed = conn.execute(
            "SELECT tracking_number FROM orderdb.claim_shipments_for_polling(10, 'a')"
        ).fetchall()
        assert sorted(claimed) == [("GEN000001",), ("GEN000002",)]  # never polled: due
        for (tn,) in claimed:
            conn.execute(
                "SELECT orderdb.finish_shipment_poll(warehouse_id, shipment_id, 'a') "
                "FROM orderdb.shipment_polls WHERE tracking_number = %s",
                (tn,),
            )
        # an hour later (simulated): GEN000001 got a pushed event 10 minutes ago
        conn.execute(
            "UPDATE orderdb.shipment_polls SET last_polled_at = now() - interval '61 min', "
            "next_poll_at = now() - interval '1 min'"
        )
        conn.execute(
            "UPDATE orderdb.shipments SET updated_at = CASE tracking_number "
            "WHEN 'GEN000001' THEN now() - interval '10 min' ELSE now() - interval '2 hours' END"
        )
        claimed = conn.execute(
            "SELECT tracking_number FROM orderdb.claim_shipments_for_polling(10, 'b')"
        ).fetchall()
        assert claimed == [("GEN000002",)]
        later = conn.execute(
            "SELECT next_poll_at - now() FROM orderdb.shipment_polls "
            "WHERE tracking_number = 'GEN000001'"
        ).fetchone()
        assert later is not None and timedelta(minutes=49) < later[0] <= timedelta(minutes=50)
        # a claim held by b is not handed to c; b's finish only counts while b holds it
        assert (
            conn.execute("SELECT * FROM orderdb.claim_shipments_for_polling(10, 'c')").fetchall()
            == []
        )
        assert conn.execute(
            "SELECT orderdb.finish_shipment_poll(warehouse_id, shipment_id, 'c') "
            "FROM orderdb.shipment_polls WHERE tracking_number = 'GEN000002'"
        ).fetchone() == (False,)
        with pytest.raises(psycopg.Error) as bad:
            conn.execute("SELECT * FROM orderdb.claim_shipments_for_polling(0, 'c')")
        assert bad.value.sqlstate == "22023"


def test_poll_carriers_cli_once(fresh_dsn: str, tmp_path: Path) -> None:
    from orderdb.cli import main

    numbers = _sim_numbers(3, days_ago=3, seed=5)
    _ship_orders(fresh_dsn, 3, "SIM", numbers)
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"SIM": {"seed": 5, "return_rate": 0}}))
    result = CliRunner().invoke(
        main,
        ["poll-carriers", "--once", "--json", "--config", str(config), "--dsn", fresh_dsn],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["claimed"] == 3 and summary["polled"] == 3
    assert summary["events_recorded"] > 3
