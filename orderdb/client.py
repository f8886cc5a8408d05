"""A thin typed client over the SQL API: one method = one SQL function call = one round trip.

Two clients with the same methods, arguments, results and errors: :class:`Client` (psycopg,
blocking) and :class:`AsyncClient` (psycopg's asyncio API). Each method's SQL and the mapping of
its rows live once, in :class:`_Calls`; the two classes only run them.

Every method takes an optional ``conn=`` so that several calls can share the caller's
transaction (:meth:`Client.transaction` gives one); otherwise it borrows a connection from a
psycopg_pool pool, which checks a connection before handing it out. Errors with an orderdb
SQLSTATE are raised as the classes of :mod:`orderdb.errors`; a serialization failure, a deadlock
or a lost connection as :class:`orderdb.errors.TransientError`. No business rule lives here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from orderdb.config import resolve_dsn
from orderdb.errors import (
    NotInstalledError,
    OrderDBError,
    SchemaOutdatedError,
    from_psycopg,
)
from orderdb.events import Event
from orderdb.fulfillment import (
    LinesCancelled,
    PlannedRoute,
    ReturnReceived,
    ReturnRequested,
    Timeline,
    TrackingResult,
    WmsResult,
)

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]
R = TypeVar("R")
Rows = list[dict[str, Any]]


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
class Totals:
    """An order's totals (``get_order``'s ``totals``): exact decimals in ``currency`` (ISO 4217);
    ``items`` = sum of quantity x unit_price, ``total`` = items + shipping."""

    currency: str
    items: Decimal
    shipping: Decimal
    total: Decimal

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Totals:
        return cls(
            currency=str(doc["currency"]),
            items=Decimal(str(doc["items"])),
            shipping=Decimal(str(doc["shipping"])),
            total=Decimal(str(doc["total"])),
        )


@dataclass(frozen=True)
class CustomerOrder:
    """One row of ``orderdb.customer_orders`` (newest first)."""

    order_id: int
    order_no: str
    status: str
    created_at: datetime
    total: Decimal
    currency: str


@dataclass(frozen=True)
class Order:
    """``orderdb.get_order`` as a typed value. ``document`` is the whole JSON document (with any
    keys added later); ``order["key"]`` reads it too. ``options`` holds the validated order data
    (``ship_to`` with the full phone: this is the operator's and the application's view)."""

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
    priority: str = "normal"
    totals: Totals | None = None
    #: the id the warehouse's WMS gave the order (None until the WMS accepted it, or when the
    #: warehouse has no connector)
    wms_order_id: str | None = None

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
            priority=str(doc.get("priority") or "normal"),
            totals=Totals.from_document(doc["totals"]) if doc.get("totals") else None,
            wms_order_id=doc.get("wms_order_id"),
        )


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _jsonb(value: object) -> Jsonb:
    return Jsonb(value, dumps=lambda v: json.dumps(v, default=_json_default))


# -- each method once: its SQL, its parameters, and how its rows become the result -----------


@dataclass(frozen=True)
class _Call(Generic[R]):
    """One SQL function call: the statement, its parameters, and the mapping of its rows."""

    query: str
    params: tuple[object, ...]
    result: Callable[[Rows], R]


def _single(rows: Rows) -> dict[str, Any]:
    if len(rows) != 1:
        raise RuntimeError(f"expected one row, got {len(rows)}")
    return rows[0]


def _nothing(rows: Rows) -> None:
    return None


def _lines(lines: Sequence[Mapping[str, Any]] | None) -> Jsonb | None:
    return None if lines is None else _jsonb(list(lines))


def _order(rows: Rows) -> Order:
    # read as text: decimals (unit_price) parse as Decimal, not float
    doc: dict[str, Any] = json.loads(_single(rows)["o"], parse_float=Decimal)
    return Order.from_document(doc)


def _routes(rows: Rows) -> list[PlannedRoute]:
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


# -- the schema revision check on connect ----------------------------------------------------

_REVISION_QUERY = b"SELECT orderdb.schema_revision()"
_RUN_MIGRATE = "run `orderdb migrate`"


def _needed_revision() -> str:
    from orderdb.server.migrate import required_revision

    return required_revision()


def _revision_error(found: object) -> OrderDBError | None:
    """None when the database's revision ``found`` is at least the one this package needs."""
    needed = _needed_revision()
    if found is None:
        return NotInstalledError(
            f"orderdb is not installed in this database (needs revision {needed}): {_RUN_MIGRATE}",
            needed=needed,
            found=None,
        )
    if str(found) < needed:
        return SchemaOutdatedError(
            f"the orderdb schema of this database is at revision {found}, this client needs "
            f"{needed}: {_RUN_MIGRATE}",
            needed=needed,
            found=str(found),
        )
    return None


def _revision_failure(exc: psycopg.Error) -> OrderDBError | None:
    """The error for a failed revision query; None when the check cannot be made (a role without
    EXECUTE on orderdb.schema_revision(): the calls themselves will tell)."""
    needed = _needed_revision()
    if exc.sqlstate == "3F000":  # schema orderdb does not exist
        return NotInstalledError(
            f"orderdb is not installed in this database (needs revision {needed}): {_RUN_MIGRATE}",
            needed=needed,
            found=None,
            sqlstate=exc.sqlstate,
        )
    if exc.sqlstate == "42883":  # migrated by an orderdb older than schema_revision()
        return SchemaOutdatedError(
            f"the orderdb schema of this database is older than revision {needed}, which this "
            f"client needs: {_RUN_MIGRATE}",
            needed=needed,
            found=None,
            sqlstate=exc.sqlstate,
        )
    if exc.sqlstate == "42501":
        return None
    return from_psycopg(exc) or OrderDBError(str(exc), sqlstate=exc.sqlstate)


def _check_revision(pool: ConnectionPool[Conn]) -> None:
    try:
        with pool.connection() as conn:
            try:
                row = conn.execute(_REVISION_QUERY).fetchone()
            except psycopg.Error as exc:
                failure = _revision_failure(exc)
                if failure is not None:
                    raise failure from exc
                return
    except psycopg.Error as exc:  # no connection
        mapped = from_psycopg(exc)
        if mapped is None:
            raise
        raise mapped from exc
    error = _revision_error(row[0] if row else None)
    if error is not None:
        raise error


async def _acheck_revision(pool: AsyncConnectionPool[AsyncConn]) -> None:
    try:
        async with pool.connection() as conn:
            try:
                cur = await conn.execute(_REVISION_QUERY)
                row = await cur.fetchone()
            except psycopg.Error as exc:
                failure = _revision_failure(exc)
                if failure is not None:
                    raise failure from exc
                return
    except psycopg.Error as exc:  # no connection
        mapped = from_psycopg(exc)
        if mapped is None:
            raise
        raise mapped from exc
    error = _revision_error(row[0] if row else None)
    if error is not None:
        raise error


class _Calls:
    """The statement and row mapping of every client method, shared by Client and AsyncClient.
    Arguments are positional, in the order of the SQL function's parameters."""

    # -- inventory

    @staticmethod
    def receive_stock(
        warehouse_id: int, sku: str, quantity: int, actor: str | None
    ) -> _Call[StockLevel]:
        return _Call(
            "SELECT * FROM orderdb.receive_stock(%s::integer, %s, %s::integer, %s)",
            (warehouse_id, sku, quantity, actor),
            lambda rows: StockLevel(**_single(rows)),
        )

    @staticmethod
    def stock_level(warehouse_id: int, sku: str) -> _Call[StockLevel]:
        return _Call(
            "SELECT * FROM orderdb.stock_level(%s::integer, %s)",
            (warehouse_id, sku),
            lambda rows: StockLevel(warehouse_id=warehouse_id, sku=sku, **_single(rows)),
        )

    # -- orders

    @staticmethod
    def create_order(
        customer_id: int,
        warehouse_id: int | None,
        items: Sequence[Mapping[str, Any]],
        idempotency_key: str | None,
        actor: str | None,
        options: Mapping[str, Any] | None,
    ) -> _Call[CreatedOrder]:
        return _Call(
            "SELECT * FROM orderdb.create_order(%s::bigint, %s::integer, %s, %s, %s, %s)",
            (
                customer_id,
                warehouse_id,
                _jsonb(list(items)),
                idempotency_key,
                actor,
                _jsonb(dict(options or {})),
            ),
            lambda rows: CreatedOrder(**_single(rows)),
        )

    @staticmethod
    def transition(
        order_id: int,
        to_status: str,
        expected_version: int,
        actor: str | None,
        reason: str | None,
        context: Mapping[str, Any] | None,
    ) -> _Call[OrderState]:
        return _Call(
            "SELECT * FROM orderdb.transition_order(%s::bigint, %s, %s::integer, %s, %s, %s)",
            (order_id, to_status, expected_version, actor, reason, _jsonb(dict(context or {}))),
            lambda rows: OrderState(**_single(rows)),
        )

    @staticmethod
    def reallocate(
        order_id: int,
        to_warehouse_id: int,
        expected_version: int,
        actor: str | None,
        reason: str | None,
    ) -> _Call[ReallocatedOrder]:
        return _Call(
            "SELECT * FROM orderdb.reallocate_order(%s::bigint, %s::integer, %s::integer, %s, %s)",
            (order_id, to_warehouse_id, expected_version, actor, reason),
            lambda rows: ReallocatedOrder(**_single(rows)),
        )

    @staticmethod
    def amend_order(
        order_id: int,
        expected_version: int,
        changes: Mapping[str, Any],
        actor: str | None,
        reason: str | None,
    ) -> _Call[OrderState]:
        return _Call(
            "SELECT * FROM orderdb.amend_order(%s::bigint, %s::integer, %s, %s, %s)",
            (order_id, expected_version, _jsonb(dict(changes)), actor, reason),
            lambda rows: OrderState(**_single(rows)),
        )

    @staticmethod
    def customer_orders(
        customer_id: int, limit: int, before_order_id: int | None
    ) -> _Call[list[CustomerOrder]]:
        return _Call(
            "SELECT order_id, order_no, status, created_at, total, currency"
            " FROM orderdb.customer_orders(%s::bigint, %s::integer, %s::bigint)",
            (customer_id, limit, before_order_id),
            lambda rows: [CustomerOrder(**r) for r in rows],
        )

    @staticmethod
    def get_order(order_id: int) -> _Call[Order]:
        return _Call("SELECT orderdb.get_order(%s::bigint)::text AS o", (order_id,), _order)

    @staticmethod
    def order_history(order_id: int) -> _Call[list[HistoryEntry]]:
        return _Call(
            "SELECT version, from_status, to_status, actor, reason, context, changed_at,"
            " source, occurred_at FROM orderdb.order_history(%s::bigint)",
            (order_id,),
            lambda rows: [HistoryEntry(**r) for r in rows],
        )

    @staticmethod
    def allowed_transitions() -> _Call[list[Transition]]:
        return _Call(
            "SELECT from_status, to_status FROM orderdb.allowed_transitions()",
            (),
            lambda rows: [Transition(**r) for r in rows],
        )

    # -- events

    @staticmethod
    def read_events(consumer: str, limit: int) -> _Call[list[Event]]:
        return _Call(
            "SELECT event_id, event_type, order_id, payload::text AS payload_text, created_at"
            " FROM orderdb.read_events(%s, %s)",
            (consumer, limit),
            lambda rows: [Event.from_row(r) for r in rows],
        )

    @staticmethod
    def ack_events(consumer: str, event_id: int) -> _Call[None]:
        return _Call("SELECT orderdb.ack_events(%s, %s)", (consumer, event_id), _nothing)

    # -- fulfillment and tracking (sql/40_fulfillment.sql, sql/45_tracking.sql, sql/40_routes.sql)

    @staticmethod
    def wms_callback(
        event_id: str,
        order_id: int,
        event_type: str,
        payload: Mapping[str, Any] | None,
        source: str,
    ) -> _Call[WmsResult]:
        return _Call(
            "SELECT * FROM orderdb.wms_callback(%s, %s, %s, %s, %s)",
            (event_id, order_id, event_type, _jsonb(dict(payload or {})), source),
            lambda rows: WmsResult(**_single(rows)),
        )

    @staticmethod
    def record_tracking_event(
        carrier: str,
        tracking_number: str,
        event_time: datetime,
        carrier_status: str,
        location: str | None,
        description: str | None,
        event_id: str | None,
        payload: Mapping[str, Any] | None,
    ) -> _Call[TrackingResult]:
        return _Call(
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
            lambda rows: TrackingResult(**_single(rows)),
        )

    @staticmethod
    def order_timeline(order_id: int, customer_id: int | None, locale: str) -> _Call[Timeline]:
        return _Call(
            "SELECT orderdb.order_timeline(%s::bigint, %s::bigint, %s) AS t",
            (order_id, customer_id, locale),
            lambda rows: Timeline.from_document(_single(rows)["t"]),
        )

    @staticmethod
    def cancel_order_lines(
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        expected_version: int,
        actor: str | None,
        reason: str | None,
    ) -> _Call[LinesCancelled]:
        return _Call(
            "SELECT * FROM orderdb.cancel_order_lines(%s, %s, %s, %s, %s)",
            (order_id, _lines(lines), expected_version, actor, reason),
            lambda rows: LinesCancelled(**_single(rows)),
        )

    @staticmethod
    def request_return(
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        expected_version: int,
        actor: str | None,
        reason: str | None,
    ) -> _Call[ReturnRequested]:
        return _Call(
            "SELECT * FROM orderdb.request_return(%s, %s, %s, %s, %s)",
            (order_id, _lines(lines), expected_version, actor, reason),
            lambda rows: ReturnRequested(**_single(rows)),
        )

    @staticmethod
    def receive_return(
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        expected_version: int | None,
        actor: str | None,
        reason: str | None,
    ) -> _Call[ReturnReceived]:
        return _Call(
            "SELECT * FROM orderdb.receive_return(%s, %s, %s, %s, %s)",
            (order_id, _lines(lines), expected_version, actor, reason),
            lambda rows: ReturnReceived(**_single(rows)),
        )

    @staticmethod
    def set_warehouse_location(warehouse_id: int, lat: float, lon: float) -> _Call[None]:
        return _Call(
            "SELECT orderdb.set_warehouse_location(%s, %s, %s)", (warehouse_id, lat, lon), _nothing
        )

    @staticmethod
    def add_courier(
        warehouse_id: int,
        name: str,
        lat: float,
        lon: float,
        capacity: int,
        available: bool,
        phone: str | None,
    ) -> _Call[int]:
        return _Call(
            "SELECT orderdb.add_courier(%s, %s, %s, %s, %s, %s, %s) AS id",
            (warehouse_id, name, lat, lon, capacity, available, phone),
            lambda rows: int(_single(rows)["id"]),
        )

    @staticmethod
    def plan_routes(warehouse_id: int) -> _Call[list[PlannedRoute]]:
        return _Call(
            "SELECT route_id, courier_id, stop_count, distance_km, est_minutes, stops"
            " FROM orderdb.plan_routes(%s)",
            (warehouse_id,),
            _routes,
        )


class Client:
    """orderdb's Python client. Use :meth:`connect` (same DSN rules as the CLI)."""

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        if not isinstance(pool, ConnectionPool):
            raise TypeError(
                f"Client() takes a psycopg_pool.ConnectionPool, not {type(pool).__name__}; "
                "for a DSN use Client.connect(dsn)"
            )
        self.pool = pool

    @classmethod
    def connect(cls, dsn: str | None = None, *, min_size: int = 1, max_size: int = 10) -> Client:
        """A client on ``dsn``, else $ORDERDB_DSN, else libpq's environment (PGHOST, PGSERVICE,
        PGDATABASE), else the embedded server. The pool checks each connection before handing
        it out (a connection the server closed meanwhile is replaced, not returned).

        Once, on connect, the client reads the database's schema revision
        (``orderdb.schema_revision()``): a database without orderdb raises
        :class:`~orderdb.errors.NotInstalledError`, one migrated by an older orderdb
        :class:`~orderdb.errors.SchemaOutdatedError` (both say "run `orderdb migrate`")."""
        pool: ConnectionPool[Conn] = ConnectionPool(
            resolve_dsn(dsn),
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,
            open=True,
        )
        try:
            _check_revision(pool)
        except BaseException:
            pool.close()
            raise
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

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A pooled connection inside a transaction, to pass as ``conn=``: committed when the
        block ends, rolled back when it raises. Errors, the COMMIT's included, are raised as
        orderdb's classes (a serialization failure at COMMIT is a TransientError)::

            with db.transaction() as tx:
                db.receive_stock(1, "SKU-9", 10, conn=tx)
                db.create_order(7, 1, [{"sku": "SKU-9", "quantity": 2}], conn=tx)
        """
        with self._conn(None) as conn, conn.transaction():
            yield conn

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

    def _run(self, call: _Call[R], conn: Conn | None) -> R:
        with self._conn(conn) as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(call.query.encode(), call.params)
            rows = cur.fetchall()
        return call.result(rows)

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
        """``orderdb.receive_stock``: adds ``quantity`` units; the stock row afterwards."""
        return self._run(_Calls.receive_stock(warehouse_id, sku, quantity, actor), conn)

    def stock_level(self, warehouse_id: int, sku: str, *, conn: Conn | None = None) -> StockLevel:
        """``orderdb.stock_level`` (NotFound for a warehouse and sku never received)."""
        return self._run(_Calls.stock_level(warehouse_id, sku), conn)

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
        """``orderdb.create_order``: reserves the items (InsufficientStock otherwise); the same
        ``idempotency_key`` and request again returns the first order (``replayed=True``)."""
        call = _Calls.create_order(
            customer_id, warehouse_id, items, idempotency_key, actor, options
        )
        return self._run(call, conn)

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
        """``orderdb.transition_order`` (VersionConflict, InvalidTransition as documented)."""
        call = _Calls.transition(order_id, to_status, expected_version, actor, reason, context)
        return self._run(call, conn)

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
        call = _Calls.reallocate(order_id, to_warehouse_id, expected_version, actor, reason)
        return self._run(call, conn)

    def get_order(self, order_id: int, *, conn: Conn | None = None) -> Order:
        """``orderdb.get_order`` as a typed :class:`Order` (NotFound when it does not exist)."""
        return self._run(_Calls.get_order(order_id), conn)

    def amend_order(
        self,
        order_id: int,
        changes: Mapping[str, Any],
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: Conn | None = None,
    ) -> OrderState:
        """``orderdb.amend_order``: changes ``ship_to`` (whole), ``priority``, promised times or
        ``attributes`` (merged; None removes one). InvalidInput for bad data, VersionConflict,
        InvalidTransition when a key may no longer change (ship_to once shipped, ...)."""
        call = _Calls.amend_order(order_id, expected_version, changes, actor, reason)
        return self._run(call, conn)

    def customer_orders(
        self,
        customer_id: int,
        *,
        limit: int = 20,
        before_order_id: int | None = None,
        conn: Conn | None = None,
    ) -> list[CustomerOrder]:
        """``orderdb.customer_orders``: newest first; the next page with ``before_order_id`` =
        the last ``order_id`` of this one (``limit`` 1..100)."""
        return self._run(_Calls.customer_orders(customer_id, limit, before_order_id), conn)

    def order_history(self, order_id: int, *, conn: Conn | None = None) -> list[HistoryEntry]:
        """``orderdb.order_history``: every status change, oldest first."""
        return self._run(_Calls.order_history(order_id), conn)

    def allowed_transitions(self, *, conn: Conn | None = None) -> list[Transition]:
        """``orderdb.allowed_transitions``: the state machine's edges."""
        return self._run(_Calls.allowed_transitions(), conn)

    # -- events ---------------------------------------------------------------------------------

    def read_events(
        self, consumer: str, limit: int = 100, *, conn: Conn | None = None
    ) -> list[Event]:
        """``orderdb.read_events``: the consumer's next committed events, in commit-safe order;
        the same events again until :meth:`ack_events` (at-least-once: dedupe on event_id)."""
        return self._run(_Calls.read_events(consumer, limit), conn)

    def ack_events(self, consumer: str, event_id: int, *, conn: Conn | None = None) -> None:
        """``orderdb.ack_events``: acknowledge ``event_id`` and every event read before it.
        Raises InvalidInput (22023) for an event never returned to this consumer, NotFound
        (OD004) for a consumer that never read."""
        return self._run(_Calls.ack_events(consumer, event_id), conn)

    # -- fulfillment and tracking ----------------------------------------------------------------

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
        call = _Calls.wms_callback(event_id, order_id, event_type, payload, source)
        return self._run(call, conn)

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
        call = _Calls.record_tracking_event(
            carrier,
            tracking_number,
            event_time,
            carrier_status,
            location,
            description,
            event_id,
            payload,
        )
        return self._run(call, conn)

    def order_timeline(
        self,
        order_id: int,
        *,
        customer_id: int | None = None,
        locale: str = "en",
        conn: Conn | None = None,
    ) -> Timeline:
        """``orderdb.order_timeline``: the customer's view in ``locale`` ('en', 'zh-CN';
        InvalidInput for another), with the recipient and courier (masked phones). Forbidden
        when ``customer_id`` is given and does not own the order."""
        return self._run(_Calls.order_timeline(order_id, customer_id, locale), conn)

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
        call = _Calls.cancel_order_lines(order_id, lines, expected_version, actor, reason)
        return self._run(call, conn)

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
        call = _Calls.request_return(order_id, lines, expected_version, actor, reason)
        return self._run(call, conn)

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
        call = _Calls.receive_return(order_id, lines, expected_version, actor, reason)
        return self._run(call, conn)

    def set_warehouse_location(
        self, warehouse_id: int, lat: float, lon: float, *, conn: Conn | None = None
    ) -> None:
        """``orderdb.set_warehouse_location``: where the warehouse's routes start."""
        return self._run(_Calls.set_warehouse_location(warehouse_id, lat, lon), conn)

    def add_courier(
        self,
        warehouse_id: int,
        name: str,
        lat: float,
        lon: float,
        capacity: int,
        *,
        available: bool = True,
        phone: str | None = None,
        conn: Conn | None = None,
    ) -> int:
        """``orderdb.add_courier``: returns the new courier's id (``phone``: customers see it
        masked while the courier delivers their order)."""
        call = _Calls.add_courier(warehouse_id, name, lat, lon, capacity, available, phone)
        return self._run(call, conn)

    def plan_routes(self, warehouse_id: int, *, conn: Conn | None = None) -> list[PlannedRoute]:
        """``orderdb.plan_routes``: nearest-neighbour routes for packed, unrouted orders."""
        return self._run(_Calls.plan_routes(warehouse_id), conn)


C = TypeVar("C", bound=type)


def _documented_by(model: type) -> Callable[[C], C]:
    """Gives each method of the decorated class that has no docstring the docstring of the
    method of the same name of ``model`` (AsyncClient's methods are Client's)."""

    def decorate(cls: C) -> C:
        for name, member in vars(cls).items():
            original = getattr(model, name, None)
            if callable(member) and member.__doc__ is None and original is not None:
                member.__doc__ = original.__doc__
        return cls

    return decorate


@_documented_by(Client)
class AsyncClient:
    """orderdb's asyncio client: :class:`Client`'s methods, arguments, results and errors, as
    coroutines; ``conn=`` takes a ``psycopg.AsyncConnection``. Use :meth:`connect`::

        async with await AsyncClient.connect() as db:
            o = await db.create_order(7, 1, [{"sku": "SKU-1", "quantity": 2}])
    """

    def __init__(self, pool: AsyncConnectionPool[AsyncConn]) -> None:
        if not isinstance(pool, AsyncConnectionPool):
            raise TypeError(
                f"AsyncClient() takes a psycopg_pool.AsyncConnectionPool, not "
                f"{type(pool).__name__}; for a DSN use await AsyncClient.connect(dsn)"
            )
        self.pool = pool

    @classmethod
    async def connect(
        cls, dsn: str | None = None, *, min_size: int = 1, max_size: int = 10
    ) -> AsyncClient:
        """An open client; the DSN, the pool and the schema revision check as in
        :meth:`Client.connect`. Finding the DSN may start the embedded server: that runs in a
        thread."""
        resolved = await asyncio.to_thread(resolve_dsn, dsn)
        pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
            resolved,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
            open=False,
        )
        await pool.open()
        try:
            await _acheck_revision(pool)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConn]:
        """As :meth:`Client.transaction`, for ``async with``::

        async with db.transaction() as tx:
            await db.receive_stock(1, "SKU-9", 10, conn=tx)
            await db.create_order(7, 1, [{"sku": "SKU-9", "quantity": 2}], conn=tx)
        """
        async with self._conn(None) as conn, conn.transaction():
            yield conn

    # -- plumbing -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _conn(self, conn: AsyncConn | None) -> AsyncIterator[AsyncConn]:
        try:
            if conn is not None:
                yield conn
            else:
                async with self.pool.connection() as pooled:
                    yield pooled
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _run(self, call: _Call[R], conn: AsyncConn | None) -> R:
        async with self._conn(conn) as c, c.cursor(row_factory=dict_row) as cur:
            await cur.execute(call.query.encode(), call.params)
            rows = await cur.fetchall()
        return call.result(rows)

    # -- inventory ------------------------------------------------------------------------------

    async def receive_stock(
        self,
        warehouse_id: int,
        sku: str,
        quantity: int,
        *,
        actor: str | None = None,
        conn: AsyncConn | None = None,
    ) -> StockLevel:
        return await self._run(_Calls.receive_stock(warehouse_id, sku, quantity, actor), conn)

    async def stock_level(
        self, warehouse_id: int, sku: str, *, conn: AsyncConn | None = None
    ) -> StockLevel:
        return await self._run(_Calls.stock_level(warehouse_id, sku), conn)

    # -- orders ---------------------------------------------------------------------------------

    async def create_order(
        self,
        customer_id: int,
        warehouse_id: int | None,
        items: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        actor: str | None = None,
        options: Mapping[str, Any] | None = None,
        conn: AsyncConn | None = None,
    ) -> CreatedOrder:
        call = _Calls.create_order(
            customer_id, warehouse_id, items, idempotency_key, actor, options
        )
        return await self._run(call, conn)

    async def transition(
        self,
        order_id: int,
        to_status: str,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        context: Mapping[str, Any] | None = None,
        conn: AsyncConn | None = None,
    ) -> OrderState:
        call = _Calls.transition(order_id, to_status, expected_version, actor, reason, context)
        return await self._run(call, conn)

    async def reallocate(
        self,
        order_id: int,
        to_warehouse_id: int,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: AsyncConn | None = None,
    ) -> ReallocatedOrder:
        call = _Calls.reallocate(order_id, to_warehouse_id, expected_version, actor, reason)
        return await self._run(call, conn)

    async def get_order(self, order_id: int, *, conn: AsyncConn | None = None) -> Order:
        return await self._run(_Calls.get_order(order_id), conn)

    async def amend_order(
        self,
        order_id: int,
        changes: Mapping[str, Any],
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: AsyncConn | None = None,
    ) -> OrderState:
        call = _Calls.amend_order(order_id, expected_version, changes, actor, reason)
        return await self._run(call, conn)

    async def customer_orders(
        self,
        customer_id: int,
        *,
        limit: int = 20,
        before_order_id: int | None = None,
        conn: AsyncConn | None = None,
    ) -> list[CustomerOrder]:
        call = _Calls.customer_orders(customer_id, limit, before_order_id)
        return await self._run(call, conn)

    async def order_history(
        self, order_id: int, *, conn: AsyncConn | None = None
    ) -> list[HistoryEntry]:
        return await self._run(_Calls.order_history(order_id), conn)

    async def allowed_transitions(self, *, conn: AsyncConn | None = None) -> list[Transition]:
        return await self._run(_Calls.allowed_transitions(), conn)

    # -- events ---------------------------------------------------------------------------------

    async def read_events(
        self, consumer: str, limit: int = 100, *, conn: AsyncConn | None = None
    ) -> list[Event]:
        return await self._run(_Calls.read_events(consumer, limit), conn)

    async def ack_events(
        self, consumer: str, event_id: int, *, conn: AsyncConn | None = None
    ) -> None:
        return await self._run(_Calls.ack_events(consumer, event_id), conn)

    # -- fulfillment and tracking ----------------------------------------------------------------

    async def wms_callback(
        self,
        event_id: str,
        order_id: int,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        source: str = "wms",
        conn: AsyncConn | None = None,
    ) -> WmsResult:
        call = _Calls.wms_callback(event_id, order_id, event_type, payload, source)
        return await self._run(call, conn)

    async def record_tracking_event(
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
        conn: AsyncConn | None = None,
    ) -> TrackingResult:
        call = _Calls.record_tracking_event(
            carrier,
            tracking_number,
            event_time,
            carrier_status,
            location,
            description,
            event_id,
            payload,
        )
        return await self._run(call, conn)

    async def order_timeline(
        self,
        order_id: int,
        *,
        customer_id: int | None = None,
        locale: str = "en",
        conn: AsyncConn | None = None,
    ) -> Timeline:
        return await self._run(_Calls.order_timeline(order_id, customer_id, locale), conn)

    async def cancel_order_lines(
        self,
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: AsyncConn | None = None,
    ) -> LinesCancelled:
        call = _Calls.cancel_order_lines(order_id, lines, expected_version, actor, reason)
        return await self._run(call, conn)

    async def request_return(
        self,
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None,
        *,
        expected_version: int,
        actor: str | None = None,
        reason: str | None = None,
        conn: AsyncConn | None = None,
    ) -> ReturnRequested:
        call = _Calls.request_return(order_id, lines, expected_version, actor, reason)
        return await self._run(call, conn)

    async def receive_return(
        self,
        order_id: int,
        lines: Sequence[Mapping[str, Any]] | None = None,
        *,
        expected_version: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
        conn: AsyncConn | None = None,
    ) -> ReturnReceived:
        call = _Calls.receive_return(order_id, lines, expected_version, actor, reason)
        return await self._run(call, conn)

    async def set_warehouse_location(
        self, warehouse_id: int, lat: float, lon: float, *, conn: AsyncConn | None = None
    ) -> None:
        return await self._run(_Calls.set_warehouse_location(warehouse_id, lat, lon), conn)

    async def add_courier(
        self,
        warehouse_id: int,
        name: str,
        lat: float,
        lon: float,
        capacity: int,
        *,
        available: bool = True,
        phone: str | None = None,
        conn: AsyncConn | None = None,
    ) -> int:
        call = _Calls.add_courier(warehouse_id, name, lat, lon, capacity, available, phone)
        return await self._run(call, conn)

    async def plan_routes(
        self, warehouse_id: int, *, conn: AsyncConn | None = None
    ) -> list[PlannedRoute]:
        return await self._run(_Calls.plan_routes(warehouse_id), conn)
