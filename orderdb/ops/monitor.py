"""The operator's dashboard: one snapshot of the ``orderdb_ops`` views, rendered with rich.

``snapshot(conn)`` reads every view once (each query bounded by a statement timeout and a row
limit) and returns plain JSON-able data; ``render(snap)`` turns it into a rich renderable;
``run_live`` refreshes it in a ``rich.live.Live`` until interrupted. ``orderdb monitor`` is the
command line around them (``--once --json`` prints one snapshot for scripts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row
from rich.console import Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orderdb.richtext import plain

#: the views read per snapshot: key -> (query, row limit); each must stay cheap (docs/operations.md)
QUERIES: dict[str, tuple[LiteralString, int]] = {
    "funnel": ("SELECT status, orders, estimated FROM orderdb_ops.order_funnel", 100),
    "sla_breaches": (
        "SELECT order_id, rule, breached_since, warehouse_id, order_no, status, level, action"
        " FROM orderdb_ops.sla_breaches ORDER BY rule, breached_since, order_id",
        2000,
    ),
    "kpis": (
        "SELECT metric, value, threshold, level, critical, direction, unit, sample"
        " FROM orderdb_ops.fulfillment_kpis",
        100,
    ),
    "low_stock": (
        "SELECT warehouse_id, sku, available, threshold, level FROM orderdb_ops.low_stock"
        " ORDER BY available, warehouse_id, sku",
        200,
    ),
    "alerts": (
        "SELECT source, subject, level, message, since FROM orderdb_ops.alerts"
        " ORDER BY level = 'critical' DESC, source, subject",
        200,
    ),
    "relay_lag": (
        "SELECT consumer, pending_events, oldest_pending_age FROM orderdb_ops.relay_lag"
        " ORDER BY consumer",
        100,
    ),
    "table_health": (
        "SELECT table_name, live_tuples, dead_tuples, hot_update_ratio, last_autovacuum,"
        " dead_tuple_ratio FROM orderdb_ops.table_health ORDER BY dead_tuples DESC, table_name",
        100,
    ),
    "lock_waits": (
        "SELECT pid, blocked_by, wait_seconds, query FROM orderdb_ops.lock_waits"
        " ORDER BY wait_seconds DESC NULLS LAST",
        50,
    ),
    "long_transactions": (
        "SELECT pid, state, xact_age, query FROM orderdb_ops.long_transactions"
        " ORDER BY xact_age DESC",
        50,
    ),
    "server": ("SELECT metric, value FROM orderdb_ops.server_health", 50),
    "activity_totals": (
        "SELECT metric, label, value FROM orderdb_ops.activity_totals ORDER BY metric, label",
        1000,
    ),
    "fulfillment_times": (
        "SELECT window_size, delivered_orders, fulfillment_seconds"
        " FROM orderdb_ops.fulfillment_times",
        1,
    ),
    "wms_backlog": (
        "SELECT warehouse_id, pending, dead, oldest_pending_age FROM orderdb_ops.wms_backlog"
        " ORDER BY warehouse_id",
        200,
    ),
}

SLA_RULES = ("no_tracking_update", "late_shipment", "unsigned", "unpaid", "late_delivery")
LEVEL_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "magenta"}


def _plain(value: Any) -> Any:
    """A JSON-able form of a database value (intervals as seconds, numerics as floats)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def snapshot(
    conn: psycopg.Connection[Any],
    *,
    statement_timeout_ms: int = 5000,
    queries: dict[str, tuple[LiteralString, int]] | None = None,
) -> dict[str, Any]:
    """Every ops view once, as JSON-able data: {"taken_at", "<key>": [row dicts], "errors"}.

    A view that fails (timeout, missing privilege, schema not installed) does not fail the
    snapshot: its error is in ``errors`` and its rows are empty; nothing derived from it claims
    health (the SLA lanes of an unread ``sla_breaches`` are ``unknown``). Runs in one read-only
    transaction (one consistent view). ``queries`` replaces :data:`QUERIES` (same keys): the
    exporter's queries on a cluster proxy also read each row's shard.
    """
    snap: dict[str, Any] = {"taken_at": datetime.now(UTC).isoformat(), "errors": {}}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(
            "SELECT set_config('statement_timeout', %s, true)", (str(statement_timeout_ms),)
        )
        for key, (query, limit) in (queries or QUERIES).items():
            try:
                with conn.transaction():  # a savepoint: one failing view spoils nothing else
                    cur.execute(query + " LIMIT %s", (limit,))
                    rows = cur.fetchall()
                snap[key] = [{k: _plain(v) for k, v in row.items()} for row in rows]
            except psycopg.Error as exc:
                snap[key] = []
                snap["errors"][key] = f"{exc.sqlstate}: {str(exc).strip().splitlines()[0]}"
    snap["sla_summary"] = sla_summary(
        snap["sla_breaches"], measured="sla_breaches" not in snap["errors"]
    )
    return snap


def sla_summary(breaches: list[dict[str, Any]], *, measured: bool = True) -> list[dict[str, Any]]:
    """Per SLA rule (every known rule, breached or not): count, critical count, lane level.

    When the breaches could not be read (``measured`` false) every lane is ``unknown`` with
    null counts: a lane is ``ok`` only when the view was read and had no breach of it."""
    out: list[dict[str, Any]] = []
    rules = list(SLA_RULES) + sorted({b["rule"] for b in breaches} - set(SLA_RULES))
    if not measured:
        return [{"rule": r, "breaches": None, "critical": None, "level": "unknown"} for r in rules]
    for rule in rules:
        rows = [b for b in breaches if b["rule"] == rule]
        critical = sum(1 for b in rows if b["level"] == "critical")
        level = "critical" if critical else ("warning" if rows else "ok")
        out.append({"rule": rule, "breaches": len(rows), "critical": critical, "level": level})
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(
    title: str,
    columns: list[str],
    rows: list[dict[str, Any]],
    limit: int = 10,
    *,
    error: str | None = None,
) -> Table:
    table = Table(title=title, title_justify="left", expand=True, show_edge=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows[:limit]:
        style = LEVEL_STYLE.get(str(row.get("level", "")))
        table.add_row(*[plain(_fmt(row.get(c))) for c in columns], style=style)
    if error is not None:
        table.caption = plain(f"not read: {error}", style="magenta")
    elif len(rows) > limit:
        table.caption = f"{len(rows) - limit} more"
    return table


def _funnel(snap: dict[str, Any]) -> Table:
    rows = snap["funnel"]
    top = max([int(r["orders"]) for r in rows] + [1])
    estimated = any(r.get("estimated") for r in rows)
    table = Table(
        title="order funnel" + (" (estimated)" if estimated else ""),
        title_justify="left",
        expand=True,
        show_edge=False,
    )
    if "funnel" in snap["errors"]:
        table.caption = plain(f"not read: {snap['errors']['funnel']}", style="magenta")
    table.add_column("status")
    table.add_column("orders", justify="right")
    table.add_column("", ratio=1)
    for r in rows:
        n = int(r["orders"])
        table.add_row(
            plain(r["status"]), str(n), Text("█" * max(0, round(30 * n / top)), style="cyan")
        )
    return table


def _swimlanes(snap: dict[str, Any]) -> Table:
    """One lane per SLA rule: green when empty, yellow with warnings, red with a critical breach;
    each breaching order is a block coloured by its own level."""
    table = Table(title="SLA breaches", title_justify="left", expand=True, show_edge=False)
    table.add_column("rule")
    table.add_column("breaches", justify="right")
    table.add_column("orders (oldest first)", ratio=1, overflow="fold")
    for lane in snap["sla_summary"]:
        style = LEVEL_STYLE[lane["level"]]
        blocks = Text()
        for b in [b for b in snap["sla_breaches"] if b["rule"] == lane["rule"]][:24]:
            blocks.append(f" {b['order_id']} ", style=f"black on {LEVEL_STYLE[b['level']]}")
            blocks.append(" ")
        if lane["level"] == "unknown":
            blocks.append(f"not read: {snap['errors'].get('sla_breaches', '')}", style=style)
            counts = Text("unknown", style=style)
        else:
            counts = Text(f"{lane['breaches']} ({lane['critical']} critical)", style=style)
        if lane["breaches"] == 0:
            blocks.append("none", style="green")
        table.add_row(Text(lane["rule"], style=f"bold {style}"), counts, blocks)
    return table


def _wms_lane(snap: dict[str, Any]) -> Table:
    """The WMS command queue, one row per connected warehouse: red with dead commands (they
    hold their orders' later commands: orderdb wms-dispatch retry ID), yellow while commands wait
    longer than a minute, green when the queue keeps up."""
    rows = [
        {
            **r,
            "level": "critical"
            if r["dead"]
            else ("warning" if (r["oldest_pending_age"] or 0) > 60 else "ok"),
        }
        for r in snap.get("wms_backlog", [])
    ]
    return _table(
        "WMS queue",
        ["warehouse_id", "pending", "dead", "oldest_pending_age"],
        rows,
        error=snap["errors"].get("wms_backlog"),
    )


def render(snap: dict[str, Any]) -> RenderableType:
    """The dashboard for one snapshot."""
    errors = snap["errors"]
    header = Text(f"orderdb monitor  {snap['taken_at']}", style="bold")
    critical = sum(1 for a in snap["alerts"] if a["level"] == "critical")
    if "alerts" in errors:
        header.append("   alerts: unknown (not read)", style=LEVEL_STYLE["unknown"])
    else:
        header.append(
            f"   alerts: {len(snap['alerts'])} ({critical} critical)",
            style="red" if critical else ("yellow" if snap["alerts"] else "green"),
        )
    left = Group(
        Panel(_funnel(snap)),
        Panel(
            _table(
                "fulfillment KPIs",
                ["metric", "value", "threshold", "level", "sample"],
                snap["kpis"],
                error=errors.get("kpis"),
            )
        ),
        Panel(
            _table(
                "low stock",
                ["warehouse_id", "sku", "available", "threshold", "level"],
                snap["low_stock"],
                error=errors.get("low_stock"),
            )
        ),
    )
    right = Group(
        Panel(_swimlanes(snap)),
        Panel(_wms_lane(snap)),
        Panel(
            _table(
                "alerts",
                ["source", "subject", "level", "message"],
                snap["alerts"],
                12,
                error=errors.get("alerts"),
            )
        ),
        Panel(
            Group(
                _table(
                    "tables",
                    ["table_name", "live_tuples", "dead_tuples", "hot_update_ratio"],
                    snap["table_health"],
                    limit=6,
                    error=errors.get("table_health"),
                ),
                _table(
                    "relay",
                    ["consumer", "pending_events", "oldest_pending_age"],
                    snap["relay_lag"],
                    error=errors.get("relay_lag"),
                ),
                _table(
                    "lock waits",
                    ["pid", "blocked_by", "wait_seconds", "query"],
                    snap["lock_waits"],
                    error=errors.get("lock_waits"),
                ),
                _table(
                    "long transactions",
                    ["pid", "state", "xact_age", "query"],
                    snap["long_transactions"],
                    error=errors.get("long_transactions"),
                ),
                _table("server", ["metric", "value"], snap["server"], error=errors.get("server")),
            ),
            title="health",
        ),
    )
    grid = Table.grid(expand=True)
    grid.add_column(ratio=2)
    grid.add_column(ratio=3)
    grid.add_row(left, right)
    parts: list[RenderableType] = [header, grid]
    if snap["errors"]:
        parts.append(
            Text(
                "errors: " + "; ".join(f"{k}: {v}" for k, v in snap["errors"].items()), style="red"
            )
        )
    return Group(*parts)


def run_live(
    connect: Callable[[], psycopg.Connection[Any]],
    *,
    interval: float = 2.0,
    iterations: int | None = None,
) -> None:
    """Refresh the dashboard every ``interval`` seconds (until Ctrl-C, or ``iterations`` times).

    Reconnects when the connection drops; the last good snapshot stays on screen meanwhile.
    """
    conn: psycopg.Connection[Any] | None = None
    done = 0
    with Live(Text("connecting..."), refresh_per_second=4, screen=False) as live:
        try:
            while iterations is None or done < iterations:
                try:
                    if conn is None or conn.closed:
                        conn = connect()
                    live.update(render(snapshot(conn)))
                except psycopg.OperationalError as exc:
                    live.update(Text(f"connection lost, retrying: {exc}", style="red"))
                    if conn is not None:
                        conn.close()
                    conn = None
                done += 1
                if iterations is None or done < iterations:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
        finally:
            if conn is not None:
                conn.close()
