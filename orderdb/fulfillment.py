"""Typed results of the fulfillment and tracking functions (WMS callbacks, carrier events, the
customer's timeline, returns, courier routes). The SQL functions own every rule; these are
plain values built from their rows (see :class:`orderdb.client.Client`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


def _ts(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class WmsResult:
    """``orderdb.wms_callback``: the order's status and version after the callback."""

    order_id: int
    status: str
    version: int
    duplicate: bool


@dataclass(frozen=True)
class TrackingResult:
    """``orderdb.record_tracking_event``: the stored event, whether it was a duplicate, its
    normalised status, and its order (None while unmatched) with that order's status."""

    tracking_event_id: int
    duplicate: bool
    normalized_status: str
    order_id: int | None
    order_status: str | None


@dataclass(frozen=True)
class LinesCancelled:
    """``orderdb.cancel_order_lines``: the order afterwards and the units released."""

    order_id: int
    status: str
    version: int
    released: int


@dataclass(frozen=True)
class ReturnRequested:
    """``orderdb.request_return``."""

    order_id: int
    status: str
    version: int
    return_id: int


@dataclass(frozen=True)
class ReturnReceived:
    """``orderdb.receive_return``: the order afterwards and the units restocked."""

    order_id: int
    status: str
    version: int
    restocked: int


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the customer's timeline: an order status change (kind 'order') or a carrier
    event (kind 'carrier', status = normalised carrier status). ``time`` is the effective time
    (never before the step before it); ``reported_time`` the time as reported, where it differs."""

    time: datetime
    status: str
    description: str | None
    location: str | None
    kind: str
    order_status: str | None = None
    reported_time: datetime | None = None


@dataclass(frozen=True)
class TimelineShipment:
    carrier: str
    tracking_number: str
    status: str
    shipped_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class TimelinePerson:
    """The recipient or the courier on a timeline: a name and a masked phone (``138****5678``;
    a customer-facing document never holds a full phone number); ``city`` for the recipient."""

    name: str | None
    phone: str | None
    city: str | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any] | None) -> TimelinePerson | None:
        if not doc:
            return None
        return cls(name=doc.get("name"), phone=doc.get("phone"), city=doc.get("city"))


@dataclass(frozen=True)
class Timeline:
    """``orderdb.order_timeline``: what the customer sees. ``document`` is the whole JSON.

    ``locale`` is the language of every text (``description``, ``status_text``, ``labels`` — the
    page's wording by code); ``time_zone`` the zone to show times in; ``recipient`` and, while
    the order is out for delivery with a known courier, ``courier``, each with a masked phone."""

    order_id: int
    order_no: str
    status: str
    current_location: str | None
    estimated_delivery: datetime | None
    shipments: tuple[TimelineShipment, ...]
    timeline: tuple[TimelineEntry, ...]
    document: dict[str, Any]
    locale: str = "en"
    time_zone: str = "UTC"
    status_text: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    recipient: TimelinePerson | None = None
    courier: TimelinePerson | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Timeline:
        return cls(
            order_id=int(doc["order_id"]),
            order_no=str(doc["order_no"]),
            status=str(doc["status"]),
            current_location=doc.get("current_location"),
            estimated_delivery=_ts(doc.get("estimated_delivery")),
            shipments=tuple(
                TimelineShipment(
                    carrier=s["carrier"],
                    tracking_number=s["tracking_number"],
                    status=s["status"],
                    shipped_at=_ts(s.get("shipped_at")),
                    delivered_at=_ts(s.get("delivered_at")),
                )
                for s in doc.get("shipments") or ()
            ),
            timeline=tuple(
                TimelineEntry(
                    time=_ts(e["time"]) or datetime.min,
                    status=e["status"],
                    description=e.get("description"),
                    location=e.get("location"),
                    kind=e.get("kind", "order"),
                    order_status=e.get("order_status"),
                    reported_time=_ts(e.get("reported_time")),
                )
                for e in doc.get("timeline") or ()
            ),
            document=doc,
            locale=str(doc.get("locale") or "en"),
            time_zone=str(doc.get("time_zone") or "UTC"),
            status_text=doc.get("status_text"),
            labels=dict(doc.get("labels") or {}),
            recipient=TimelinePerson.from_document(doc.get("recipient")),
            courier=TimelinePerson.from_document(doc.get("courier")),
        )


@dataclass(frozen=True)
class PlannedRoute:
    """``orderdb.plan_routes``: one courier's route, stops in visiting order."""

    route_id: int
    courier_id: int
    stop_count: int
    distance_km: Decimal
    est_minutes: int
    stops: tuple[dict[str, Any], ...]

    @property
    def order_ids(self) -> list[int]:
        return [int(s["order_id"]) for s in self.stops]
