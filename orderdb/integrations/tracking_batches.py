"""Carrier events in batches: ``orderdb.record_tracking_events`` with per-event outcomes.

The SQL function records a JSON array of events in one call, all or nothing: a refused element
(22023, or OD006 for a carrier event id reused for another parcel or status) fails the whole
call with a message starting ``event <ordinal>: ``. The poller, ``orderdb ingest tracking`` and
the HTTP hook for carriers that push arrays must not lose the good events of a batch because of
one bad scan, so :func:`record_tracking_batch` takes the refused element out, keeps its error as
that element's outcome, and sends the rest again (nothing of the refused call was recorded).
Each call is one transaction on an autocommit connection. A serialization failure or deadlock
(40001 / 40P01: a concurrent writer of the same order) is retried twice; any other error
(connection lost, ...) is raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

#: the most events one call of orderdb.record_tracking_events takes
MAX_BATCH = 1000

_ORDINAL = re.compile(r"^event (\d+): ")
_RETRYABLE = ("40001", "40P01")


@dataclass(frozen=True)
class RecordedEvent:
    """One row of ``orderdb.record_tracking_events``."""

    tracking_event_id: int
    duplicate: bool
    normalized_status: str
    order_id: int | None
    order_status: str | None


@dataclass(frozen=True)
class RefusedEvent:
    """An element the database refused: its SQLSTATE and message (without the ordinal)."""

    sqlstate: str
    message: str
    detail: str | None = None


def event_element(
    carrier: str,
    tracking_number: str,
    event_time: datetime,
    carrier_status: str,
    location: str | None = None,
    description: str | None = None,
    event_id: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One element of the batch: record_tracking_event's arguments under their names without
    ``p_``. ``event_time`` should be timezone-aware: a naive one is sent without an offset, and
    the database refuses that element (22023; no session time zone decides)."""
    return {
        "carrier": carrier,
        "tracking_number": tracking_number,
        "event_time": event_time.isoformat(),
        "carrier_status": carrier_status,
        "location": location,
        "description": description,
        "event_id": event_id,
        "payload": dict(payload) if payload is not None else None,
    }


def _refused_ordinal(exc: psycopg.Error) -> int | None:
    """The 1-based ordinal of the element a refused batch names (22xxx or OD006), else None."""
    state = exc.sqlstate or ""
    if not (state.startswith("22") or state == "OD006"):
        return None
    match = _ORDINAL.match(exc.diag.message_primary or "")
    return int(match.group(1)) if match else None


def _without_ordinal(exc: psycopg.Error) -> RefusedEvent:
    message = _ORDINAL.sub("", exc.diag.message_primary or str(exc)).strip()
    detail = exc.diag.message_detail
    if detail is not None:
        detail = re.sub(r"^ordinal=\d+(; )?", "", detail) or None
    return RefusedEvent(exc.sqlstate or "", message, detail)


def record_tracking_batch(
    conn: psycopg.Connection[Any], elements: Sequence[Mapping[str, Any]]
) -> list[RecordedEvent | RefusedEvent]:
    """Records ``elements`` (:func:`event_element` dicts, any number; sent in calls of at most
    :data:`MAX_BATCH`) and returns one outcome per element, in order. A refused element is
    taken out and the rest of its call is sent again. ``conn`` must be in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("record_tracking_batch needs an autocommit connection")
    outcomes: list[RecordedEvent | RefusedEvent | None] = [None] * len(elements)
    for start in range(0, len(elements), MAX_BATCH):
        pending = list(range(start, min(start + MAX_BATCH, len(elements))))
        retries = 0
        while pending:
            try:
                rows = conn.execute(
                    "SELECT ordinal, tracking_event_id, duplicate, normalized_status, order_id,"
                    " order_status FROM orderdb.record_tracking_events(%s)",
                    (Jsonb([elements[i] for i in pending]),),
                ).fetchall()
            except psycopg.Error as exc:
                ordinal = _refused_ordinal(exc)
                if ordinal is not None and 1 <= ordinal <= len(pending):
                    outcomes[pending.pop(ordinal - 1)] = _without_ordinal(exc)
                    continue
                if exc.sqlstate in _RETRYABLE and retries < 2:
                    retries += 1
                    continue
                raise
            for row in rows:
                outcomes[pending[int(row[0]) - 1]] = RecordedEvent(
                    tracking_event_id=int(row[1]),
                    duplicate=bool(row[2]),
                    normalized_status=str(row[3]),
                    order_id=int(row[4]) if row[4] is not None else None,
                    order_status=str(row[5]) if row[5] is not None else None,
                )
            pending = []
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


__all__ = [
    "MAX_BATCH",
    "RecordedEvent",
    "RefusedEvent",
    "event_element",
    "record_tracking_batch",
]
