"""What the web pages read, and nothing else: one SQL call per panel, no rule computed here.

Two connection pools:

* ``track``: the customer tracking page. It calls ``orderdb.order_timeline_by_no`` only; when the
  role ``orderdb_app`` exists, may execute it and the login may become it, each connection runs
  ``SET ROLE orderdb_app``.
* ``ops``: the operations board. It reads the ``orderdb_ops`` views and the board functions of
  ``sql/70_web.sql``; its connections are read-only (``default_transaction_read_only``) and run as
  ``orderdb_ops`` when the login may become it (``--ops-dsn`` names a login of that group; with the
  main DSN an owner or superuser login steps down to ``orderdb_ops``).

Both have a statement timeout so a slow query cannot pile up requests. A request waits at most
``CONNECT_WAIT`` seconds for a connection unless every connection of its pool is busy (then up to
``BUSY_WAIT``): with the database down, pages and ``/healthz`` answer 503 within about a second
instead of waiting for the pool's default 30 s.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger("orderdb.web")

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

#: every answer of the timeline lookup that must look like "no such order" to a customer
NOT_FOUND_STATES = frozenset({"OD004", "OD005"})

TRACK_FUNCTION = "orderdb.order_timeline_by_no(text,bigint,text)"

#: seconds a request waits for a connection before concluding the database is away
CONNECT_WAIT = 1.0
#: seconds it waits when every connection of the pool is in use (the database is there, busy)
BUSY_WAIT = 10.0
#: libpq connect_timeout (seconds) of the pools' connections, unless the DSN sets one
CONNECT_TIMEOUT = 3

MIGRATE_HINT = "the database is not migrated: run `orderdb migrate`"


class TrackingNotFound(Exception):
    """The order number does not name an order of this customer (unknown, foreign or malformed)."""


def _pool_kwargs(dsn: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"autocommit": True}
    try:
        if conninfo_to_dict(dsn).get("connect_timeout") is None:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
    except psycopg.ProgrammingError:  # a DSN libpq cannot parse: the pool reports it
        pass
    return kwargs


class Gate:
    """Lends connections of one pool, waiting ``CONNECT_WAIT`` seconds for one; longer
    (``BUSY_WAIT``) only when all the pool's connections are lent out, i.e. the database answers
    and is busy. Otherwise the pool could not connect: PoolTimeout (a psycopg.OperationalError)
    at once, which the pages answer with 503."""

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self.pool = pool
        self.in_use = 0
        self._lock = threading.Lock()

    def getconn(self) -> Conn:
        try:
            conn = self.pool.getconn(timeout=CONNECT_WAIT)
        except PoolTimeout:
            with self._lock:
                busy = self.in_use >= self.pool.max_size
            if not busy:
                raise PoolTimeout(
                    f"database unavailable: no connection within {CONNECT_WAIT:g} s"
                ) from None
            conn = self.pool.getconn(timeout=BUSY_WAIT)
        with self._lock:
            self.in_use += 1
        return conn

    def putconn(self, conn: Conn) -> None:
        with self._lock:
            self.in_use -= 1
        self.pool.putconn(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        conn = self.getconn()
        try:
            yield conn
        finally:
            self.putconn(conn)


def _switch_role(conn: Conn, role: str, function: str | None = None) -> bool:
    """``SET ROLE role`` when the role exists, this login may become it and (if ``function`` is
    given) the role may execute that function. Returns whether it switched."""
    row = conn.execute(
        "SELECT pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')"
        "       AND (%(fn)s::text IS NULL"
        "            OR pg_catalog.to_regprocedure(%(fn)s::text) IS NOT NULL"
        "               AND pg_catalog.has_function_privilege("
        "                       r.oid, pg_catalog.to_regprocedure(%(fn)s::text), 'EXECUTE'))"
        "  FROM pg_catalog.pg_roles r WHERE r.rolname = %(role)s",
        {"role": role, "fn": function},
    ).fetchone()
    if row is None or not row[0]:
        return False
    conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
    return True


def _configure_track(conn: Conn) -> None:
    conn.execute("SET application_name = 'orderdb-web-track'")
    conn.execute("SET statement_timeout = '5s'")
    _switch_role(conn, "orderdb_app", TRACK_FUNCTION)


def _configure_ops(conn: Conn) -> None:
    conn.execute("SET application_name = 'orderdb-web-ops'")
    conn.execute("SET statement_timeout = '60s'")
    conn.execute("SET default_transaction_read_only = on")
    _switch_role(conn, "orderdb_ops")


@dataclass
class Panel:
    """One panel of the board: its rows, or why it could not be read."""

    rows: list[Row] = field(default_factory=list)
    error: str | None = None


@dataclass
class Board:
    """Everything the operations board shows, read in one pass."""

    warehouse_id: int | None
    carrier: str | None
    snapshot: dict[str, Any] | None
    snapshot_error: str | None
    kpis: Panel
    low_stock: Panel
    read_at: float
    elapsed_ms: float
    #: the WMS command queue per warehouse (orderdb_ops.wms_backlog)
    wms_backlog: Panel = field(default_factory=Panel)


class WebDB:
    """The pools and the queries of the web pages."""

    def __init__(
        self,
        dsn: str,
        ops_dsn: str | None = None,
        *,
        max_size: int = 8,
        board_ttl: float = 5.0,
        per_lane: int = 20,
        list_limit: int = 50,
    ) -> None:
        self.track_pool: ConnectionPool[Conn] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs=_pool_kwargs(dsn),
            configure=_configure_track,
            name="orderdb-web-track",
        )
        self.ops_pool: ConnectionPool[Conn] = ConnectionPool(
            ops_dsn or dsn,
            min_size=1,
            max_size=max(2, max_size // 2),
            open=False,
            kwargs=_pool_kwargs(ops_dsn or dsn),
            configure=_configure_ops,
            name="orderdb-web-ops",
        )
        self.track = Gate(self.track_pool)
        self.ops = Gate(self.ops_pool)
        self.board_ttl = board_ttl
        self.per_lane = per_lane
        self.list_limit = list_limit
        self._cache: dict[tuple[int | None, str | None], Board] = {}
        self._key_locks: dict[tuple[int | None, str | None], threading.Lock] = {}
        self._refreshing: set[tuple[int | None, str | None]] = set()
        self._cache_lock = threading.Lock()

    def open(self) -> None:
        self.track_pool.open(wait=False)
        self.ops_pool.open(wait=False)

    def close(self) -> None:
        self.track_pool.close()
        self.ops_pool.close()

    # -- tracking ------------------------------------------------------------------------------

    def timeline(self, order_no: str, customer_id: int, locale: str = "en") -> dict[str, Any]:
        """``orderdb.order_timeline_by_no`` in ``locale``; any "not this customer's order" is
        TrackingNotFound."""
        try:
            with self.track.connection() as conn:
                row = conn.execute(
                    "SELECT orderdb.order_timeline_by_no(%s, %s, %s)",
                    (order_no, customer_id, locale),
                ).fetchone()
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            if state in NOT_FOUND_STATES or state.startswith("22"):
                raise TrackingNotFound from None
            if not state and isinstance(exc, psycopg.DataError):  # e.g. NUL, refused by psycopg
                raise TrackingNotFound from None
            raise
        if row is None or row[0] is None:
            raise TrackingNotFound
        doc: dict[str, Any] = row[0]
        return doc

    def health(self) -> str | None:
        """None when the database answers and holds the schema the pages read, else what is
        wrong. Raises psycopg.OperationalError (PoolTimeout) when the database is away."""
        with self.track.connection() as conn:
            # the catalog, not to_regprocedure: the page roles may lack USAGE on one schema
            row = conn.execute(
                "SELECT count(DISTINCT n.nspname) = 2"
                "  FROM pg_catalog.pg_proc p"
                "  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
                " WHERE (n.nspname, p.proname) IN"
                "       (('orderdb', 'order_timeline_by_no'), ('orderdb_ops', 'board_snapshot'))"
            ).fetchone()
        return None if row is not None and row[0] else MIGRATE_HINT

    # -- operations board ----------------------------------------------------------------------

    def board(self, warehouse_id: int | None, carrier: str | None) -> Board:
        """The board for these filters, shared by every viewer.

        A board is reused for ``max(board_ttl, 5 x the time its read took)``, so a slow read
        (a large orders table) is repeated less often and the board costs the database at most
        a fifth of a connection's time per filter that someone is watching. An older board is
        still served at once while one background thread per filter reads the next one
        (stale-while-revalidate); only a filter nobody asked for yet waits for its first read.
        ``board_ttl <= 0`` reads on every request (tests).
        """
        if self.board_ttl <= 0:
            return self._read_board(warehouse_id, carrier)
        key = (warehouse_id, carrier)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                age = time.monotonic() - cached.read_at
                if age >= max(self.board_ttl, 5 * cached.elapsed_ms / 1000.0):
                    self._refresh_later(key)
                return cached
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one first read per filter, however many viewers arrive at once
            with self._cache_lock:
                cached = self._cache.get(key)
            if cached is not None:
                return cached
            board = self._read_board(warehouse_id, carrier)
            self._store(key, board)
            return board

    def _store(self, key: tuple[int | None, str | None], board: Board) -> None:
        with self._cache_lock:
            if key not in self._cache and len(self._cache) >= 64:
                self._cache.clear()
                self._key_locks = {k: v for k, v in self._key_locks.items() if k == key}
            self._cache[key] = board

    def _refresh_later(self, key: tuple[int | None, str | None]) -> None:
        """Start a background read of ``key`` unless one runs (caller holds _cache_lock)."""
        if key in self._refreshing:
            return
        self._refreshing.add(key)

        def refresh() -> None:
            try:
                self._store(key, self._read_board(*key))
            except Exception:  # keep serving the old board; the next request tries again
                log.exception("board refresh failed")
            finally:
                with self._cache_lock:
                    self._refreshing.discard(key)

        threading.Thread(target=refresh, name="orderdb-web-board", daemon=True).start()

    def _read_board(self, warehouse_id: int | None, carrier: str | None) -> Board:
        started = time.monotonic()
        params = {
            "wh": warehouse_id,
            "carrier": carrier,
            "per_lane": self.per_lane,
            "limit": self.list_limit,
        }
        try:
            conn = self.ops.getconn()
        except psycopg.Error as exc:  # no connection within the pool's timeout
            error = f"database unavailable: {str(exc).splitlines()[0] if str(exc) else exc}"
            return Board(
                warehouse_id, carrier, None, error, Panel(error=error), Panel(error=error),
                time.monotonic(), 0.0,
            )  # fmt: skip
        try:
            snap = _panel(
                conn,
                "SELECT orderdb_ops.board_snapshot(%(wh)s, %(carrier)s, %(per_lane)s, %(limit)s)"
                " AS snapshot",
                params,
            )
            # a cluster proxy's view has one row per KPI and shard (a trailing shard column): a
            # ratio of one shard does not add up with another's, so each is shown with its shard
            kpis = _panel(
                conn,
                "SELECT metric, value, threshold, level, unit,"
                " (pg_catalog.to_jsonb(k) ->> 'shard')::integer AS shard"
                " FROM orderdb_ops.fulfillment_kpis k",
                {},
            )
            for row in kpis.rows:
                if row["shard"] is None:  # one database: no shard
                    del row["shard"]
            low_stock = _panel(
                conn,
                "SELECT warehouse_id, sku, available, threshold, level FROM orderdb_ops.low_stock"
                " WHERE %(wh)s::integer IS NULL OR warehouse_id = %(wh)s::integer"
                " ORDER BY available, warehouse_id, sku LIMIT %(limit)s",
                params,
            )
            wms_backlog = _panel(
                conn,
                "SELECT warehouse_id, pending, dead,"
                " extract(epoch FROM oldest_pending_age)::bigint AS oldest_pending_seconds,"
                " CASE WHEN dead > 0 THEN 'critical'"
                " WHEN oldest_pending_age > interval '1 minute' THEN 'warning' ELSE 'ok' END"
                " AS level"
                " FROM orderdb_ops.wms_backlog"
                " WHERE %(wh)s::integer IS NULL OR warehouse_id = %(wh)s::integer"
                " ORDER BY dead DESC, pending DESC, warehouse_id LIMIT %(limit)s",
                params,
            )
        finally:
            self.ops.putconn(conn)
        snapshot = snap.rows[0]["snapshot"] if snap.rows else None
        return Board(
            warehouse_id=warehouse_id,
            carrier=carrier,
            snapshot=snapshot,
            snapshot_error=snap.error,
            kpis=kpis,
            low_stock=low_stock,
            wms_backlog=wms_backlog,
            read_at=time.monotonic(),
            elapsed_ms=(time.monotonic() - started) * 1000.0,
        )


def _panel(conn: Conn, query: str, params: dict[str, Any]) -> Panel:
    """Rows of one panel; a failing panel (missing view, no privilege, timeout) is shown as such
    and does not take the board down (autocommit: the next panel starts clean)."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return Panel(rows=list(cur.fetchall()))
    except psycopg.Error as exc:
        log.warning("board panel failed: %s", exc)
        return Panel(error=f"{exc.sqlstate or 'error'}: {str(exc).splitlines()[0]}")


__all__: Sequence[str] = ["Board", "Gate", "Panel", "TrackingNotFound", "WebDB"]
