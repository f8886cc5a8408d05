"""The outbox as a stream: :class:`Event`, :func:`read_events` / :func:`ack_events` (thin
wrappers of the SQL functions: commit-safe order, durable named positions, at-least-once),
the NOTIFY payloads the relay sends and the JSON lines ``orderdb events tail`` prints."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

if TYPE_CHECKING:
    pass


log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]

#: channel the relay NOTIFYs after acknowledging a batch (payload: see :func:`notify_payloads`)
CHANNEL = "orderdb_events"
#: channel the relay LISTENs on to wake up early (``NOTIFY orderdb_relay`` after a manual retry)
WAKEUP_CHANNEL = "orderdb_relay"
#: payloads are cut well below PostgreSQL's 8000-byte limit
MAX_NOTIFY_BYTES = 4000

#: the select list that :meth:`Event.from_row` expects (payload as text: numbers stay exact)
EVENT_COLUMNS = "event_id, event_type, order_id, payload::text AS payload_text, created_at"


@dataclass(frozen=True)
class Event:
    """One outbox event as ``orderdb.read_events`` returns it.

    ``payload`` is parsed with decimal numbers (``unit_price`` 19.90 stays ``Decimal("19.90")``);
    ``payload_text`` is the payload's JSON text as stored.
    """

    event_id: int
    event_type: str
    order_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    payload_text: str = field(default="{}", repr=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        """An Event from a row selected with :data:`EVENT_COLUMNS`."""
        text: str = row["payload_text"]
        return cls(
            event_id=row["event_id"],
            event_type=row["event_type"],
            order_id=row["order_id"],
            payload=json.loads(text, parse_float=Decimal),
            created_at=row["created_at"],
            payload_text=text,
        )

    def to_json(self) -> str:
        """One compact JSON object (``events tail`` prints one per line): event_id, event_type,
        order_id, payload (its stored JSON text, numbers exact), created_at (ISO 8601)."""
        return (
            f'{{"event_id":{self.event_id},"event_type":{json.dumps(self.event_type)},'
            f'"order_id":{json.dumps(self.order_id)},"payload":{self.payload_text},'
            f'"created_at":{json.dumps(self.created_at.isoformat())}}}'
        )


def read_events(conn: Conn, consumer: str, limit: int = 100) -> list[Event]:
    """``orderdb.read_events``: the consumer's next committed events in commit-safe order."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {EVENT_COLUMNS} FROM orderdb.read_events(%s, %s)",  # noqa: S608 - constant
            (consumer, limit),
        )
        return [Event.from_row(row) for row in cur.fetchall()]


def ack_events(conn: Conn, consumer: str, event_id: int) -> None:
    """``orderdb.ack_events``: acknowledge ``event_id`` and everything read before it."""
    conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, event_id))


def notify_payloads(events: Sequence[Event], max_bytes: int = MAX_NOTIFY_BYTES) -> list[str]:
    """The ``NOTIFY orderdb_events`` payloads of a batch: JSON arrays of
    ``{"event_id", "event_type", "order_id"}``, each at most ``max_bytes`` bytes."""
    payloads: list[str] = []
    current: list[str] = []
    size = 2
    for event in events:
        item = json.dumps(
            {
                "event_id": event.event_id,
                "event_type": event.event_type,
                "order_id": event.order_id,
            },
            separators=(",", ":"),
        )
        item_size = len(item.encode()) + 1
        if current and size + item_size > max_bytes:
            payloads.append("[" + ",".join(current) + "]")
            current, size = [], 2
        current.append(item)
        size += item_size
    if current:
        payloads.append("[" + ",".join(current) + "]")
    return payloads


def iter_lines(events: Sequence[Event]) -> Iterator[str]:
    """One compact JSON line per event (what ``orderdb events tail`` prints)."""
    for event in events:
        yield event.to_json()
