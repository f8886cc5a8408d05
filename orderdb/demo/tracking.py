"""Fulfillment by hand: ship orders through WMS callbacks and stream carrier events, including a
failed attempt with redelivery and a refused parcel that goes back to the warehouse, as a shop
whose warehouse has no WMS connector does (tests/test_tracking_flow.py). ``orderdb demo`` ships
through the simulated WMS and carrier instead (:mod:`orderdb.demo.shop`).

Only the public API is used (wms_callback, record_tracking_event, receive_return).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orderdb.client import Client

CARRIERS = ("GENERIC", "SF", "KUAIDI100")

# per carrier: the codes of in_transit, out_for_delivery, failed_attempt, delivered,
# returned_to_sender (see orderdb.carrier_status_map)
CODES = {
    "GENERIC": (
        "in_transit",
        "out_for_delivery",
        "failed_attempt",
        "delivered",
        "returned_to_sender",
    ),
    "SF": ("31", "44", "70", "80", "631"),
    "KUAIDI100": ("0", "5", "14", "3", "6"),
}

CITIES = ("Shenzhen", "Guangzhou", "Dongguan", "Shanghai", "Hangzhou")


@dataclass
class FulfillmentStats:
    """What :func:`simulate_fulfillment` did: final order statuses and event counts."""

    statuses: Counter[str] = field(default_factory=Counter)
    wms_callbacks: int = 0
    carrier_events: int = 0


def simulate_fulfillment(
    client: Client,
    order_ids: list[int],
    rng: random.Random,
    *,
    failed_attempt_rate: float = 0.15,
    refused_rate: float = 0.05,
) -> FulfillmentStats:
    """Ship every given order (they must be confirmed or later in the warehouse flow) and drive
    its parcel through the carrier to delivered, with some failed attempts (then redelivered) and
    some refused parcels (returned_to_sender -> returning -> receive_return -> returned).
    Events are stamped in real time, so timelines read in the order things happened."""
    stats = FulfillmentStats()
    for order_id in order_ids:
        status = _fulfil_one(client, order_id, rng, stats, failed_attempt_rate, refused_rate)
        stats.statuses[status or "unknown"] += 1
    return stats


def _fulfil_one(
    client: Client,
    order_id: int,
    rng: random.Random,
    stats: FulfillmentStats,
    failed_attempt_rate: float,
    refused_rate: float,
) -> str | None:
    carrier = rng.choice(CARRIERS)
    transit, ofd, failed, delivered, returned = CODES[carrier]
    tn = f"{carrier}{order_id:010d}"
    # the simulation runs in real time (every event is stamped when it is sent), so a timeline
    # reads in the order things happened, the customer's own steps included
    t = datetime.now(UTC)
    origin, hub, destination = rng.sample(CITIES, 3)

    def at(_minutes: int) -> datetime:
        """When the next event happens: now (``_minutes`` is the delay a real parcel would see)."""
        nonlocal t
        t = max(datetime.now(UTC), t + timedelta(milliseconds=1))
        return t

    for stage in ("PICKED", "PACKED"):
        client.wms_callback(
            f"demo-{order_id}-{stage}", order_id, stage, {"occurred_at": at(20).isoformat()}
        )
        stats.wms_callbacks += 1
    client.wms_callback(
        f"demo-{order_id}-SHIPPED",
        order_id,
        "SHIPPED",
        {"carrier": carrier, "tracking_number": tn, "occurred_at": at(30).isoformat()},
    )
    stats.wms_callbacks += 1

    def event(code: str, minutes: int, location: str) -> str | None:
        stats.carrier_events += 1
        r = client.record_tracking_event(carrier, tn, at(minutes), code, location=location)
        return r.order_status

    event(transit, rng.randint(60, 240), f"{origin} sorting centre")
    event(transit, rng.randint(60, 480), f"{hub} hub")
    status = event(ofd, rng.randint(60, 240), destination)
    roll = rng.random()
    if roll < refused_rate:
        event(failed, rng.randint(20, 90), destination)
        event(returned, rng.randint(60, 240), f"{hub} hub")
        status = client.receive_return(order_id, actor="demo-dock").status
    else:
        if roll < refused_rate + failed_attempt_rate:
            event(failed, rng.randint(20, 90), destination)
            event(ofd, rng.randint(600, 900), destination)  # redelivery the next day
        status = event(delivered, rng.randint(20, 120), destination)
    return status
