"""The simulated carrier in ``orderdb demo``: the simulated WMS ships every parcel with carrier
``SIM`` (the built-in plugin, orderdb/integrations/carriers/simulated.py), and the parcels are
followed the way a real pull carrier's are — the poller claims due shipments and feeds every scan
through ``record_tracking_event`` — while the carrier also pushes its first scan, as a webhook
would. Dedupe in SQL makes every scan land exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from orderdb.client import Client
from orderdb.integrations.carriers.simulated import SimulatedCarrier
from orderdb.integrations.polling import Poller

# a parcel's story (days in real life) passes in a few seconds
TIME_SCALE = 0.00002
# a few more failed delivery attempts than the plugin's default: the demo shows one's timeline
FAILED_ATTEMPT_RATE = 0.15
FINAL = ("delivered", "returning", "returned")


@dataclass
class CarrierRun:
    parcels: int = 0
    polls: int = 0
    pushed: int = 0
    recorded: int = 0
    duplicates: int = 0
    expected_scans: int = 0
    stored_scans: int = 0


def follow_simulated_parcels(
    client: Client,
    dsn: str,
    numbers: list[str],
    seed: int,
    advance: Callable[[int], None],
    *,
    timeout: float = 60.0,
) -> CarrierRun:
    """Follow the SIM parcels ``numbers`` (shipped by the simulated WMS): push each one's first
    scan, then poll until every parcel's story has ended; returns the counts, including the scans
    stored against those expected."""
    carrier = SimulatedCarrier(
        {
            "seed": seed,
            "time_scale": TIME_SCALE,
            "duplicate_rate": 0.2,
            "failed_attempt_rate": FAILED_ATTEMPT_RATE,
        }
    )
    run = CarrierRun()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.set_carrier_polling('SIM', interval '1 second')")
        for number in numbers:
            # the carrier pushes its first scan (a webhook); the poller will see it again
            first = carrier.story(number)[0]
            client.record_tracking_event(
                "SIM",
                number,
                first.event_time,
                first.status,
                location=first.location,
                description=first.description,
                event_id=first.event_id,
            )
            run.pushed += 1
        run.parcels = len(numbers)

        poller = Poller(conn, {"SIM": carrier}, worker="demo-poller", limit=1000)
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            report = poller.poll_once()
            run.polls += 1
            run.recorded += report.events_recorded
            run.duplicates += report.duplicates
            row = conn.execute(
                "SELECT count(*) FROM orderdb.shipments s JOIN orderdb.orders o"
                " ON o.warehouse_id = s.warehouse_id AND o.order_id = s.order_id"
                " WHERE s.carrier = 'SIM' AND s.tracking_number = ANY(%s) AND o.status = ANY(%s)",
                (numbers, list(FINAL)),
            ).fetchone()
            now_done = int(row[0]) if row else 0
            advance(now_done - done)
            done = now_done
            if done == len(numbers):
                break
            time.sleep(1.1)
        run.expected_scans = sum(len(carrier.story(n)) for n in numbers)
        stored = conn.execute(
            "SELECT count(*) FROM orderdb.tracking_events"
            " WHERE carrier = 'SIM' AND tracking_number = ANY(%s)",
            (numbers,),
        ).fetchone()
        run.stored_scans = int(stored[0]) if stored else 0
    return run
