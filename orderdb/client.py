"""A thin typed client over the SQL API: one method = one SQL function call = one round trip.

Every method takes an optional ``conn=`` so that several calls can share the caller's
transaction; otherwise it borrows a connection from a psycopg_pool pool. Errors with an orderdb
SQLSTATE are raised as the classes of :mod:`orderdb.errors`. No business rule lives here.
"""

from __future__ import annotations

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
class HistoryEntry:
    version: int
    from_status: str | None
    to_status: str
    actor: str | None
    reason: str | None
    context: dict[str, Any]
    changed_at: datetime


@dataclass(frozen=True)
class Transition:
    from_status: str
    to_status: str


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _jsonb(value: object) -> Jsonb:
    import json

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
            "SELECT * FROM orderdb.receive_stock(%s, %s, %s, %s)",
            (warehouse_id, sku, quantity, actor),
            conn,
        )
        return StockLevel(**row)

    def stock_level(self, warehouse_id: int, sku: str, *, conn: Conn | None = None) -> StockLevel:
        row = self._one("SELECT * FROM orderdb.stock_level(%s, %s)", (warehouse_id, sku), conn)
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
            "SELECT * FROM orderdb.create_order(%s, %s, %s, %s, %s, %s)",
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
            "SELECT * FROM orderdb.transition_order(%s, %s, %s, %s, %s, %s)",
            (order_id, to_status, expected_version, actor, reason, _jsonb(dict(context or {}))),
            conn,
        )
        return OrderState(**row)

    def get_order(self, order_id: int, *, conn: Conn | None = None) -> dict[str, Any]:
        row = self._one("SELECT orderdb.get_order(%s) AS o", (order_id,), conn)
        order: dict[str, Any] = row["o"]
        return order

    def order_history(self, order_id: int, *, conn: Conn | None = None) -> list[HistoryEntry]:
        rows = self._rows(
            "SELECT version, from_status, to_status, actor, reason, context, changed_at"
            " FROM orderdb.order_history(%s)",
            (order_id,),
            conn,
        )
        return [HistoryEntry(**r) for r in rows]

    def allowed_transitions(self, *, conn: Conn | None = None) -> list[Transition]:
        rows = self._rows(
            "SELECT from_status, to_status FROM orderdb.allowed_transitions()", (), conn
        )
        return [Transition(**r) for r in rows]
