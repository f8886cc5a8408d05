"""A thin typed client over the SQL API: one method = one SQL function call = one round trip.

Every method takes an optional ``conn=`` so that several calls can share the caller's
transaction; otherwise it borrows a connection from a psycopg_pool pool. Errors with an orderdb
SQLSTATE are raised as the classes of :mod:`orderdb.errors`. No business rule lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from orderdb.config import resolve_dsn
from orderdb.errors import from_psycopg
from orderdb.events import Event
from orderdb.fulfilment import (
    LinesCancelled,
    PlannedRoute,
    ReturnReceived,
    ReturnRequested,
    Timeline,
    TrackingResult,
    WmsResult,
)

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class StockLevel:
    warehouse_id: int
    sku: str
    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True)
class CreatedOrder:
    order_id: int
    order_no: str
    status: str
    version: int
    replayed: bool


@dataclass(frozen=True)
class OrderState:
    order_id: int
    status: str
    version: int


@dataclass(frozen=True)
class ReallocatedOrder:
    """The result of ``orderdb.reallocate_order``: the order in its new warehouse."""

    order_id: int
    warehouse_id: int
    status: str
    version: int


@dataclass(frozen=True)
class HistoryEntry:
    """One status change (``orderdb.order_history``); version 1 is the creation."""

    version: int
    from_status: str | None
    to_status: str
    actor: str | None
    reason: str | None
    context: dict[str, Any]
    changed_at: datetime
    source: str = "api"
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Transition:
    from_status: str
    to_status: str


@dataclass(frozen=True)
class OrderItem:
    """One order line and its reservation ledger state (units held/consumed/released/returned)."""

    sku: str
    quantity: int
    unit_price: Decimal | None
    held: int
    consumed: int
    released: int
    returned: int


@dataclass(frozen=True)
class Order:
    """``orderdb.get_order`` as a typed value. ``document`` is the whole JSON document (with any
    keys added later); ``order["key"]`` reads it too."""

    order_id: int
    order_no: str
    customer_id: int
    warehouse_id: int
    status: str
    version: int
    previous_status: str | None
    options: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    items: tuple[OrderItem, ...]
    shipments: tuple[dict[str, Any], ...]
    document: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.document[key]

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Order:
        items = tuple(
            OrderItem(
                sku=i["sku"],
                quantity=int(i["quantity"]),
                unit_price=None if i.get("unit_price") is None else Decimal(str(i["unit_price"])),
                held=int(i.get("reservation", {}).get("held", 0)),
                consumed=int(i.get("reservation", {}).get("consumed", 0)),
                released=int(i.get("reservation", {}).get("released", 0)),
                returned=int(i.get("reservation", {}).get("returned", 0)),
            )
            for i in doc.get("items", [])
        )
        return cls(
            order_id=int(doc["order_id"]),
            order_no=doc["order_no"],
            customer_id=int(doc["customer_id"]),
            warehouse_id=int(doc["warehouse_id"]),
            status=doc["status"],
            version=int(doc["version"]),
            previous_status=doc.get("previous_status"),
            options=dict(doc.get("options") or {}),
            created_by=doc.get("created_by"),
            created_at=datetime.fromisoformat(doc["created_at"]),
            updated_at=datetime.fromisoformat(doc["updated_at"]),
            items=items,
            shipments=tuple(doc.get("shipments") or ()),
            document=doc,
        )


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _jsonb(value: object) -> Jsonb:
    return Jsonb(value, dumps=lambda v: json.dumps(v, default=_json_default))


class Client:
    """orderdb's Python client. Use :meth:`connect` (same DSN rules as the CLI)."""

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self.pool = pool

    @classmethod
    def connect(cls, dsn: str | None = None, *, min_size: int = 1, max_size: int = 10) -> Client:
        """A client on ``dsn``, else $ORDERDB_DSN, else the embedded server."""
        pool: ConnectionPool[Conn] = ConnectionPool(
            resolve_dsn(dsn),
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=True,
        )
        return cls(pool)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _conn(self, conn: Conn | None) -> Iterator[Conn]:
        try:
            if conn is not None:
                yield conn
            else:
                with self.pool.connection() as pooled:
                    yield pooled
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _rows(
        self, query: str, params: Sequence[object], conn: Conn | None
    ) -> list[dict[str, Any]]:
        with self._conn(conn) as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(query.encode(), params)
            return cur.fetchall()

    def _one(self, query: str, params: Sequence[object], conn: Conn | None) -> dict[str, Any]:
        rows = self._rows(query, params, conn)
        if len(rows) != 1:
            raise RuntimeError(f"expected one row, got {len(rows)}")
        return rows[0]

    # -- inventory ------------------------------------------------------------------------------

    def receive_stock(
        self,
        warehouse_id: int,
        sku: str,
        quantity: int,
        *,
        actor: str | None = None,
        conn: Conn | None = None,
    ) -> StockLevel:
        row = self._one(
            "SELECT * FROM orderdb.receive_stock(%s::integer, %s, %s::integer, %s)",
            (warehouse_id, sku, quantity, actor),
            conn,
        )
        return StockLevel(**row)

    def stock_level(self, warehouse_id: int, sku: str, *, conn: Conn | None = None) -> StockLevel:
        row = self._one(
            "SELECT * FROM orderdb.stock_level(%s::integer, %s)", (warehouse_id, sku), conn
        )
        return StockLevel(warehouse_id=warehouse_id, sku=sku, **row)

    # -- orders ---------------------------------------------------------------------------------

    def create_order(
        self,
        customer_id: int,
        warehouse_id: int | None,
        items: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        actor: str | None = None,
        options: Mapping[str, Any] | None = None,
        conn: Conn | None = None,
    ) -> CreatedOrder:
        row = self._one(
            "SELECT * FROM orderdb.create_order(%s::bigint, %s::integer, %s, %s, %s, %s)",
            (
                customer_id,
                warehouse_id,
                _jsonb(list(items)),
                idempotency_key,
                actor,
                _jsonb(dict(options or {})),
            ),
            conn,
        )
        return CreatedOrder(**row)

    def transition(
        self,
        order_id: int,
        to_status: str,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        context: Mapping[str, Any] | None = None,
        conn: Conn | None = None,
    ) -> OrderState:
        row = self._one(
            "SELECT * FROM orderdb.transition_order(%s::bigint, %s, %s::integer, %s, %s, %s)",
            (order_id, to_status, expected_version, actor, reason, _jsonb(dict(context or {}))),
            conn,
        )
        return OrderState(**row)

    def reallocate(
        self,
        order_id: int,
        to_warehouse_id: int,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: Conn | None = None,
    ) -> ReallocatedOrder:
        """Moves a not-yet-shipped order and its reservations to another warehouse
        (``orderdb.reallocate_order``; OD001, OD002, OD003, 22023 as documented)."""
        row = self._one(
            "SELECT * FROM orderdb.reallocate_order(%s::bigint, %s::integer, %s::integer, %s, %s)",
            (order_id, to_warehouse_id, expected_version, actor, reason),
            conn,
        )
        return ReallocatedOrder(**row)

    def get_order(self, order_id: int, *, conn: Conn | None = None) -> Order:
        # as text: decimals (unit_price) parse as Decimal, not float
        row = self._one("SELECT orderdb.get_order(%s::bigint)::text AS o", (order_id,), conn)
        doc: dict[str, Any] = json.loads(row["o"], parse_float=Decimal)
        return Order.from_document(doc)

    def order_history(self, order_id: int, *, conn: Conn | None = None) -> list[HistoryEntry]:
        rows = self._rows(
            "SELECT version, from_status, to_status, actor, reason, context, changed_at,"
            " source, occurred_at FROM orderdb.order_history(%s::bigint)",
            (order_id,),
            conn,
        )
        return [HistoryEntry(**r) for r in rows]

    def allowed_transitions(self, *, conn: Conn | None = None) -> list[Transition]:
        rows = self._rows(
            "SELECT from_status, to_status FROM orderdb.allowed_transitions()", (), conn
        )
        return [Transition(**r) for r in rows]

    # -- events ---------------------------------------------------------------------------------

    def read_events(
        self, consumer: str, limit: int = 100, *, conn: Conn | None = None
    ) -> list[Event]:
        """``orderdb.read_events``: the consumer's next committed events, in commit-safe order;
        the same events again until :meth:`ack_events` (at-least-once: dedupe on event_id)."""
        rows = self._rows(
            "SELECT event_id, event_type, order_id, payload::text AS payload_text, created_at"
            " FROM orderdb.read_events(%s, %s)",
            (consumer, limit),
            conn,
        )
        return [Event.from_row(r) for r in rows]

    def ack_events(self, consumer: str, event_id: int, *, conn: Conn | None = None) -> None:
        """``orderdb.ack_events``: acknowledge ``event_id`` and every event read before it.
        Raises InvalidInput (22023) for an event never returned to this consumer, NotFound
        (OD004) for a consumer that never read."""
        self._rows("SELECT orderdb.ack_events(%s, %s)", (consumer, event_id), conn)

    # -- fulfilment and tracking (sql/40_fulfilment.sql, sql/45_tracking.sql, sql/40_routes.sql) --

    def wms_callback(
        self,
        event_id: str,
        order_id: int,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        source: str = "wms",
        conn: Conn | None = None,
    ) -> WmsResult:
        """``orderdb.wms_callback``: PICKED | PACKED | SHIPPED | EXCEPTION, idempotent on
        ``(source, event_id)`` (a replay returns ``duplicate=True`` and changes nothing; the same
        id with another order or event type raises IdempotencyConflict). ``source`` names the
        sender (event ids are unique per source)."""
        row = self._one(
            "SELECT * FROM orderdb.wms_callback(%s, %s, %s, %s, %s)",
            (event_id, order_id, event_type, _jsonb(dict(payload or {})), source),
            conn,
        )
        return WmsResult(**row)

    def record_tracking_event(
        self,
        carrier: str,
        tracking_number: str,
        event_time: datetime,
        carrier_status: str,
        *,
        location: str | None = None,
        description: str | None = None,
        event_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        conn: Conn | None = None,
    ) -> TrackingResult:
        """``orderdb.record_tracking_event``: stores a carrier event once and moves the order
        forward (never backwards); unmatched events wait for their shipment."""
        row = self._one(
            "SELECT * FROM orderdb.record_tracking_event(%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                carrier,
                tracking_number,
                event_time,
                carrier_status,
                location,
                description,
                event_id,
                None if payload is None else _jsonb(dict(payload)),
            ),
            conn,
        )
        return TrackingResult(**row)

    def order_timeline(
        self, order_id: int, *, customer_id: int | None = None, conn: Conn | None = None
    ) -> Timeline:
        """``orderdb.order_timeline``: the customer's view (Forbidden when ``customer_id`` is
        given and does not own the order)."""
        query = "SELECT orderdb.order_timeline(%s, %s) AS t"
        row = self._one(query, (order_id, customer_id), conn)
        return Timeline.from_document(row["t"])

    def cancel_order_lines(
        self,
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: Conn | None = None,
    ) -> LinesCancelled:
        """``orderdb.cancel_order_lines``: release (part of) what an order still holds;
        ``lines=None`` cancels the remainder (the order then ships or is cancelled)."""
        row = self._one(
            "SELECT * FROM orderdb.cancel_order_lines(%s, %s, %s, %s, %s)",
            (
                order_id,
                None if lines is None else _jsonb(list(lines)),
                expected_version,
                actor,
                reason,
            ),
            conn,
        )
        return LinesCancelled(**row)

    def request_return(
        self,
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: Conn | None = None,
    ) -> ReturnRequested:
        """``orderdb.request_return``: delivered -> return_requested for ``lines`` (None: all)."""
        row = self._one(
            "SELECT * FROM orderdb.request_return(%s, %s, %s, %s, %s)",
            (
                order_id,
                None if lines is None else _jsonb(list(lines)),
                expected_version,
                actor,
                reason,
            ),
            conn,
        )
        return ReturnRequested(**row)

    def receive_return(
        self,
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None = None,
        *,
        expected_version: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
        conn: Conn | None = None,
    ) -> ReturnReceived:
        """``orderdb.receive_return``: the goods are back; restocks ``lines`` (None: the open
        return request, or everything shipped) and the order becomes returned."""
        row = self._one(
            "SELECT * FROM orderdb.receive_return(%s, %s, %s, %s, %s)",
            (
                order_id,
                None if lines is None else _jsonb(list(lines)),
                expected_version,
                actor,
                reason,
            ),
            conn,
        )
        return ReturnReceived(**row)

    def set_warehouse_location(
        self, warehouse_id: int, lat: float, lon: float, *, conn: Conn | None = None
    ) -> None:
        """``orderdb.set_warehouse_location``: where the warehouse's routes start."""
        self._rows(
            "SELECT orderdb.set_warehouse_location(%s, %s, %s)", (warehouse_id, lat, lon), conn
        )

    def add_courier(
        self,
        warehouse_id: int,
        name: str,
        lat: float,
        lon: float,
        capacity: int,
        *,
        available: bool = True,
        conn: Conn | None = None,
    ) -> int:
        """``orderdb.add_courier``: returns the new courier's id."""
        row = self._one(
            "SELECT orderdb.add_courier(%s, %s, %s, %s, %s, %s) AS id",
            (warehouse_id, name, lat, lon, capacity, available),
            conn,
        )
        return int(row["id"])

    def plan_routes(self, warehouse_id: int, *, conn: Conn | None = None) -> list[PlannedRoute]:
        """``orderdb.plan_routes``: nearest-neighbour routes for packed, unrouted orders."""
        rows = self._rows(
            "SELECT route_id, courier_id, stop_count, distance_km, est_minutes, stops"
            " FROM orderdb.plan_routes(%s)",
            (warehouse_id,),
            conn,
        )
        return [
            PlannedRoute(
                route_id=r["route_id"],
                courier_id=r["courier_id"],
                stop_count=r["stop_count"],
                distance_km=r["distance_km"],
                est_minutes=r["est_minutes"],
                stops=tuple(r["stops"]),
            )
            for r in rows
        ]
