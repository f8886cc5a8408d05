"""The simulated carrier in ``orderdb demo``: parcels shipped with carrier ``SIM`` (the built-in
plugin, orderdb/integrations/carriers/simulated.py) are followed the way a real pull carrier is —
the poller claims due shipments and feeds every scan through ``record_tracking_event`` — while the
carrier also pushes its first scan, as a webhook would. Dedupe in SQL makes every scan land
exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from orderdb.client import Client
from orderdb.integrations.carriers import Address, WaybillRequest
from orderdb.integrations.carriers.simulated import SimulatedCarrier
from orderdb.integrations.polling import Poller

# a parcel's story (days in real life) passes in a few seconds
TIME_SCALE = 0.00002
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


def ship_with_simulated_carrier(
    client: Client,
    dsn: str,
    order_ids: list[int],
    seed: int,
    advance: Callable[[int], None],
    *,
    timeout: float = 60.0,
) -> CarrierRun:
    """Ship ``order_ids`` (dispatched orders) with carrier SIM, then poll until every parcel's
    story has ended; returns the counts, including the scans stored against those expected."""
    carrier = SimulatedCarrier({"seed": seed, "time_scale": TIME_SCALE, "duplicate_rate": 0.2})
    run = CarrierRun()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.set_carrier_polling('SIM', interval '1 second')")
        numbers: list[str] = []
        for order_id in order_ids:
            order = client.get_order(order_id)
            for stage in ("PICKED", "PACKED"):
                client.wms_callback(f"demo-sim-{order_id}-{stage}", order_id, stage)
            waybill = carrier.create_waybill(
                WaybillRequest(
                    order_id=order_id,
                    warehouse_id=order.warehouse_id,
                    recipient=Address(
                        f"customer {order.customer_id}", "1 Demo Road", "Wuhan", "430000"
                    ),
                    reference=order.order_no,
                )
            )
            client.wms_callback(
                f"demo-sim-{order_id}-SHIPPED",
                order_id,
                "SHIPPED",
                {"carrier": "SIM", "tracking_number": waybill.tracking_number},
            )
            # the carrier pushes its first scan (a webhook); the poller will see it again
            first = carrier.story(waybill.tracking_number)[0]
            client.record_tracking_event(
                "SIM",
                waybill.tracking_number,
                first.event_time,
                first.status,
                location=first.location,
                description=first.description,
                event_id=first.event_id,
            )
            run.pushed += 1
            numbers.append(waybill.tracking_number)
        run.parcels = len(numbers)

        poller = Poller(conn, {"SIM": carrier}, worker="demo-poller")
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
