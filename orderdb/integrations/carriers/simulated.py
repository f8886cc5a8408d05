"""The built-in simulated carrier (code ``SIM``): deterministic from a seed, with configurable
delays, outages and duplicate scans. Tests and ``orderdb demo`` use it; it needs no network.

Every tracking number has a fixed story drawn from ``Random(f"{seed}:{tracking_number}")``::

    ACCEPTED -> PICKED_UP -> HUB_SCAN x1..3 -> OUT_FOR_DELIVERY
             -> [DELIVERY_FAILED -> OUT_FOR_DELIVERY] -> DELIVERED      (or RETURNED)

Each step happens a configurable delay after the previous one (times ``0.5 .. 1.5`` jitter, times
``time_scale``); ``query_tracking`` returns the steps whose time has come by the plugin's clock.
The story starts when the waybill was created: tracking numbers made by ``create_waybill``
carry their creation second (``SIM`` + 10-digit epoch + 6 digits), so every poller process tells
the same story; for other numbers the story starts when this instance first sees the number.

Configuration (all optional; the ``SIM`` section of the carriers config file)::

    seed                     42
    time_scale               1.0      multiplies every delay (0.001: a day passes in ~90 s)
    delays                   {"accepted": 60, "pickup": 1800, "hub": 14400,
                              "out_for_delivery": 28800, "deliver": 7200}   seconds
    failure_rate             0.0      share of query_tracking calls that raise CarrierUnavailable
    duplicate_rate           0.0      share of scans reported twice in one answer
    failed_attempt_rate      0.1      share of parcels with one failed delivery attempt
    return_rate              0.02     share of parcels returned to the sender
    clock                    callable returning an aware datetime (tests; not from a file)
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from orderdb.integrations.carriers import CarrierUnavailable, TrackingEvent, Waybill, WaybillRequest

CODE = "SIM"
DEFAULT_DELAYS: dict[str, float] = {
    "accepted": 60.0,
    "pickup": 1800.0,
    "hub": 14400.0,
    "out_for_delivery": 28800.0,
    "deliver": 7200.0,
}
CITIES = (
    "Shenzhen",
    "Guangzhou",
    "Dongguan",
    "Changsha",
    "Wuhan",
    "Shanghai",
    "Hangzhou",
    "Beijing",
)
_OWN_NUMBER = re.compile(r"^SIM(\d{10})\d{6}$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SimulatedCarrier:
    """A carrier that exists only in memory (see the module docstring)."""

    code = CODE

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        cfg = dict(config or {})
        self.seed = int(cfg.get("seed", 42))
        self.time_scale = float(cfg.get("time_scale", 1.0))
        self.delays = {**DEFAULT_DELAYS, **{k: float(v) for k, v in cfg.get("delays", {}).items()}}
        self.failure_rate = float(cfg.get("failure_rate", 0.0))
        self.duplicate_rate = float(cfg.get("duplicate_rate", 0.0))
        self.failed_attempt_rate = float(cfg.get("failed_attempt_rate", 0.1))
        self.return_rate = float(cfg.get("return_rate", 0.02))
        clock = cfg.get("clock")
        self.clock: Callable[[], datetime] = clock if callable(clock) else _utcnow
        for name in ("failure_rate", "duplicate_rate", "failed_attempt_rate", "return_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._lock = threading.Lock()
        self._calls = itertools.count()
        self._waybills = itertools.count(1)
        self._first_seen: dict[str, datetime] = {}
        self._cancelled: set[str] = set()
        self.calls = 0  # query_tracking calls so far (tests and the demo show it)

    # -- the plugin interface ----------------------------------------------------------------

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        now = self.clock()
        with self._lock:
            n = next(self._waybills)
        rng = random.Random(f"{self.seed}:waybill:{request.order_id}:{n}")
        number = f"SIM{int(now.timestamp()):010d}{rng.randrange(10**6):06d}"
        return Waybill(
            carrier=CODE,
            tracking_number=number,
            label_url=None,
            raw={"reference": request.reference or str(request.order_id), "simulated": True},
        )

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        with self._lock:
            call = next(self._calls)
            self.calls += 1
        outage = random.Random(f"{self.seed}:call:{call}").random()
        if self.failure_rate and outage < self.failure_rate:
            raise CarrierUnavailable(f"simulated outage (call {call})")
        now = self.clock()
        events = [e for e in self.story(tracking_number) if e.event_time <= now]
        if tracking_number in self._cancelled:
            events = [e for e in events if e.status == "ACCEPTED"]
        answer: list[TrackingEvent] = []
        for i, event in enumerate(events):
            answer.append(event)
            dup = random.Random(f"{self.seed}:{tracking_number}:{i}:dup").random()
            if self.duplicate_rate and dup < self.duplicate_rate:
                answer.append(event)
        return answer

    def cancel(self, tracking_number: str) -> bool:
        now = self.clock()
        picked = any(
            e.status != "ACCEPTED" and e.event_time <= now for e in self.story(tracking_number)
        )
        if picked:
            return False
        with self._lock:
            self._cancelled.add(tracking_number)
        return True

    # -- the story ---------------------------------------------------------------------------

    def start_of(self, tracking_number: str) -> datetime:
        """When the story of a tracking number starts (see the module docstring)."""
        own = _OWN_NUMBER.match(tracking_number)
        if own:
            return datetime.fromtimestamp(int(own.group(1)), UTC)
        with self._lock:
            return self._first_seen.setdefault(tracking_number, self.clock())

    def story(self, tracking_number: str) -> list[TrackingEvent]:
        """Every scan this tracking number will ever get, oldest first."""
        rng = random.Random(f"{self.seed}:{tracking_number}")
        at = self.start_of(tracking_number)
        steps: list[tuple[str, str, str]] = []  # (delay key, status, description)
        steps.append(("accepted", "ACCEPTED", "Shipment information received"))
        steps.append(("pickup", "PICKED_UP", "Picked up at the warehouse"))
        for _ in range(rng.randint(1, 3)):
            steps.append(("hub", "HUB_SCAN", "Arrived at the sorting hub"))
        steps.append(("out_for_delivery", "OUT_FOR_DELIVERY", "Out for delivery"))
        returned = rng.random() < self.return_rate
        if returned:
            steps.append(("deliver", "DELIVERY_FAILED", "Recipient refused the parcel"))
            steps.append(("hub", "RETURNED", "Returned to the sender"))
        else:
            if rng.random() < self.failed_attempt_rate:
                steps.append(("deliver", "DELIVERY_FAILED", "Recipient not at home"))
                steps.append(("out_for_delivery", "OUT_FOR_DELIVERY", "Second delivery attempt"))
            steps.append(("deliver", "DELIVERED", "Signed for by the recipient"))
        events: list[TrackingEvent] = []
        for i, (delay_key, status, description) in enumerate(steps):
            delay = self.delays[delay_key] * rng.uniform(0.5, 1.5) * self.time_scale
            at = at + timedelta(seconds=delay)
            events.append(
                TrackingEvent(
                    tracking_number=tracking_number,
                    event_time=at,
                    status=status,
                    location=rng.choice(CITIES),
                    description=description,
                    event_id=f"{tracking_number}-{i + 1}",
                    payload={"simulated": True, "step": i + 1},
                )
            )
        return events


def factory(config: Mapping[str, Any]) -> SimulatedCarrier:
    """The entry point (``SIM = "orderdb.integrations.carriers.simulated:factory"``)."""
    return SimulatedCarrier(config)


__all__ = ["CODE", "DEFAULT_DELAYS", "SimulatedCarrier", "factory"]
