"""Scheduled carrier polling (``orderdb poll-carriers``).

One round: claim due shipments (``orderdb.claim_shipments_for_polling``: several pollers share
the work through FOR UPDATE SKIP LOCKED), ask each shipment's carrier plugin for its events,
record a shipment's events with one call of ``orderdb.record_tracking_events`` (the database
dedupes repeats; a scan the contract refuses is skipped, the others recorded), and
record the outcome (``orderdb.finish_shipment_poll``). When a carrier fails, that shipment is
marked with the error (the carrier backs off for every poller) and the rest of the carrier's
batch is given back unpolled (``orderdb.release_shipment_polls``). No business rule lives here:
what a carrier event does to an order is decided by SQL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from orderdb.integrations.carriers import CarrierPlugin, CarrierRejected, TrackingEvent
from orderdb.integrations.tracking_batches import (
    RecordedEvent,
    RefusedEvent,
    event_element,
    record_tracking_batch,
)

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
DEFAULT_LEASE_SECONDS = 300


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PollReport:
    """What one round did."""

    claimed: int = 0
    polled: int = 0
    events_seen: int = 0
    events_recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    carrier_errors: int = 0
    #: parcels the carrier refused on their own (CarrierRejected): no back-off for the carrier
    refused_parcels: int = 0
    released: int = 0
    errors_by_carrier: Counter[str] = field(default_factory=Counter)
    #: why each failing carrier failed: the text of its last error
    last_error_by_carrier: dict[str, str] = field(default_factory=dict)

    def failed(self, carrier: str, error: str) -> None:
        """Counts one failure of ``carrier`` and keeps why."""
        self.carrier_errors += 1
        self.errors_by_carrier[carrier] += 1
        self.last_error_by_carrier[carrier] = error

    def add(self, other: PollReport) -> None:
        for name in (
            "claimed",
            "polled",
            "events_seen",
            "events_recorded",
            "duplicates",
            "rejected",
            "carrier_errors",
            "refused_parcels",
            "released",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors_by_carrier.update(other.errors_by_carrier)
        self.last_error_by_carrier.update(other.last_error_by_carrier)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "polled": self.polled,
            "events_seen": self.events_seen,
            "events_recorded": self.events_recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "carrier_errors": self.carrier_errors,
            "refused_parcels": self.refused_parcels,
            "released": self.released,
            "errors_by_carrier": dict(self.errors_by_carrier),
            "last_error_by_carrier": dict(self.last_error_by_carrier),
        }


class Poller:
    """Polls carriers for the shipments that are due, on one autocommit connection."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        plugins: Mapping[str, CarrierPlugin],
        *,
        worker: str | None = None,
        limit: int = DEFAULT_LIMIT,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if not conn.autocommit:
            raise ValueError("the poller needs an autocommit connection (one transaction per call)")
        self.conn = conn
        #: its logger (``orderdb poll-carriers --dsn PROXY``: one naming the shard)
        self.log = logger or log
        self.plugins = dict(plugins)
        self.worker = worker or default_worker_name()
        self.limit = limit
        self.lease_seconds = lease_seconds

    def claim(self) -> list[tuple[int, int, int, str, str]]:
        rows = self.conn.execute(
            "SELECT warehouse_id, shipment_id, order_id, carrier, tracking_number "
            "FROM orderdb.claim_shipments_for_polling(%s, %s, make_interval(secs => %s))",
            (self.limit, self.worker, self.lease_seconds),
        ).fetchall()
        return [(int(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows]

    def _finish(
        self,
        warehouse_id: int,
        shipment_id: int,
        error: str | None,
        *,
        carrier_failed: bool = True,
    ) -> None:
        self.conn.execute(
            "SELECT orderdb.finish_shipment_poll(%s, %s, %s, %s, %s)",
            (warehouse_id, shipment_id, self.worker, error, carrier_failed),
        )

    def _record(
        self, carrier: str, tracking_number: str, events: list[TrackingEvent]
    ) -> list[RecordedEvent | RefusedEvent]:
        """Records a shipment's events in one call of ``orderdb.record_tracking_events``
        (tracking_batches.record_tracking_batch: a scan the contract refuses is left out and
        the others recorded; 40001 / 40P01 retried twice); one outcome per event."""
        return record_tracking_batch(
            self.conn,
            [
                event_element(
                    carrier,
                    event.tracking_number or tracking_number,
                    event.event_time,
                    event.status,
                    event.location,
                    event.description,
                    event.event_id,
                    event.payload,
                )
                for event in events
            ],
        )

    def poll_once(self) -> PollReport:
        """One round: claim, poll, record. Returns what it did."""
        report = PollReport()
        claimed = self.claim()
        report.claimed = len(claimed)
        failed: set[str] = set()
        for warehouse_id, shipment_id, _order_id, carrier, tracking_number in claimed:
            if carrier in failed:
                continue  # given back below
            plugin = self.plugins.get(carrier)
            if plugin is None:
                error = f"no carrier plugin {carrier!r} is installed"
                self._finish(warehouse_id, shipment_id, error)
                report.failed(carrier, error)
                failed.add(carrier)
                continue
            try:
                events = list(plugin.query_tracking(tracking_number))
            except CarrierRejected as exc:  # this parcel only: the carrier keeps being polled
                self.log.warning("carrier %s refused %s: %s", carrier, tracking_number, exc)
                error = f"{type(exc).__name__}: {exc}"[:1000]
                self._finish(warehouse_id, shipment_id, error, carrier_failed=False)
                report.refused_parcels += 1
                report.last_error_by_carrier[carrier] = error
                continue
            except Exception as exc:  # any other plugin failure backs the carrier off
                self.log.warning("carrier %s failed for %s: %s", carrier, tracking_number, exc)
                error = f"{type(exc).__name__}: {exc}"[:1000]
                self._finish(warehouse_id, shipment_id, error)
                report.failed(carrier, error)
                failed.add(carrier)
                continue
            report.events_seen += len(events)
            outcomes = self._record(carrier, tracking_number, events) if events else []
            for outcome in outcomes:
                if isinstance(outcome, RefusedEvent):
                    # the carrier sent something the contract refuses (a malformed scan, an
                    # event id it used for another scan): that scan is skipped
                    self.log.warning(
                        "carrier %s sent a bad event: %s (%s)",
                        carrier,
                        outcome.message,
                        outcome.sqlstate,
                    )
                    report.rejected += 1
                elif outcome.duplicate:
                    report.duplicates += 1
                else:
                    report.events_recorded += 1
            self._finish(warehouse_id, shipment_id, None)
            report.polled += 1
        for carrier in sorted(failed):
            row = self.conn.execute(
                "SELECT orderdb.release_shipment_polls(%s, %s)", (self.worker, carrier)
            ).fetchone()
            report.released += int(row[0]) if row else 0
        return report

    def run(self, stop: threading.Event, *, idle_seconds: float = 5.0) -> PollReport:
        """Polls until ``stop`` is set; sleeps ``idle_seconds`` when nothing was due.
        Gives back its claims on the way out."""
        total = PollReport()
        try:
            while not stop.is_set():
                report = self.poll_once()
                total.add(report)
                if report.claimed < self.limit:
                    stop.wait(idle_seconds)
        finally:
            if not self.conn.closed:
                self.conn.execute("SELECT orderdb.release_shipment_polls(%s)", (self.worker,))
        return total


__all__ = ["DEFAULT_LIMIT", "PollReport", "Poller", "default_worker_name"]
