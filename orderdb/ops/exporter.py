"""Prometheus metrics from the ``orderdb_ops`` views (``orderdb exporter``).

A custom collector reads one monitor snapshot per scrape (nothing is cached: a scrape is the
state of the database at that moment) and exposes it following the Prometheus naming
conventions: ``orderdb_`` prefix, base units (seconds, bytes, ratios 0..1), ``_total`` only on
counters, labels for dimensions. Every metric is listed in docs/operations.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orderdb.ops.monitor import QUERIES, SLA_RULES, snapshot

LEVELS = {"ok": 0, "warning": 1, "critical": 2}


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def metrics_from_snapshot(snap: dict[str, Any]) -> list[Metric]:
    """The metric families of one monitor snapshot.

    A family whose view could not be read is left out (absent, not 0: a health not measured is
    not exported); ``orderdb_exporter_view_errors`` names the view."""
    out: list[Metric] = []
    unread = set(snap["errors"])

    orders = GaugeMetricFamily(
        "orderdb_orders", "Orders per status (planner estimate on large tables).", labels=["status"]
    )
    for row in snap["funnel"]:
        orders.add_metric([row["status"]], _num(row["orders"]))
    if "funnel" not in unread:
        out.append(orders)

    breaches = GaugeMetricFamily(
        "orderdb_sla_breaches",
        "Orders breaching an SLA rule now, by rule and level.",
        labels=["rule", "level"],
    )
    oldest = GaugeMetricFamily(
        "orderdb_sla_breach_oldest_seconds",
        "Age of the oldest current breach of an SLA rule (0 without breaches).",
        labels=["rule"],
    )
    rules = list(SLA_RULES) + sorted({b["rule"] for b in snap["sla_breaches"]} - set(SLA_RULES))
    for rule in rules:
        rows = [b for b in snap["sla_breaches"] if b["rule"] == rule]
        for level in ("warning", "critical"):
            breaches.add_metric([rule, level], float(sum(1 for b in rows if b["level"] == level)))
        ages = [b["age_seconds"] for b in rows if b.get("age_seconds") is not None]
        oldest.add_metric([rule], max(ages) if ages else 0.0)
    if "sla_breaches" not in unread:
        out += [breaches, oldest]

    # one unit per metric name: ratios apart from the time (hours in the view, seconds here)
    kpi_ratio = GaugeMetricFamily(
        "orderdb_fulfillment_kpi_ratio",
        "Fulfilment KPI that is a share (0..1) over its window; NaN without sample.",
        labels=["metric"],
    )
    kpi_ratio_threshold = GaugeMetricFamily(
        "orderdb_fulfillment_kpi_ratio_threshold",
        "Target of a ratio fulfilment KPI.",
        labels=["metric"],
    )
    avg = GaugeMetricFamily(
        "orderdb_fulfillment_avg_seconds",
        "Mean time from creation to delivery of the window's delivered orders (NaN: none).",
    )
    avg_threshold = GaugeMetricFamily(
        "orderdb_fulfillment_avg_seconds_threshold", "Target of orderdb_fulfillment_avg_seconds."
    )
    kpi_level = GaugeMetricFamily(
        "orderdb_fulfillment_kpi_level",
        "Alert level of a fulfilment KPI: 0 ok, 1 warning, 2 critical.",
        labels=["metric"],
    )
    for row in snap["kpis"]:
        if row["unit"] == "hours":
            avg.add_metric([], _num(row["value"]) * 3600)
            avg_threshold.add_metric([], _num(row["threshold"]) * 3600)
        else:
            kpi_ratio.add_metric([row["metric"]], _num(row["value"]))
            kpi_ratio_threshold.add_metric([row["metric"]], _num(row["threshold"]))
        kpi_level.add_metric([row["metric"]], float(LEVELS.get(row["level"], 0)))
    if "kpis" not in unread:
        out += [kpi_ratio, kpi_ratio_threshold, avg, avg_threshold, kpi_level]

    low = GaugeMetricFamily(
        "orderdb_low_stock_skus",
        "SKUs below their low-stock threshold, by level.",
        labels=["level"],
    )
    for level in ("warning", "critical"):
        low.add_metric([level], float(sum(1 for r in snap["low_stock"] if r["level"] == level)))
    if "low_stock" not in unread:
        out.append(low)

    alerts = GaugeMetricFamily(
        "orderdb_alerts", "Open alerts by source and level.", labels=["source", "level"]
    )
    counts: dict[tuple[str, str], int] = {}
    for row in snap["alerts"]:
        alert_key = (row["source"], row["level"])
        counts[alert_key] = counts.get(alert_key, 0) + 1
    for (source, level), n in sorted(counts.items()):
        alerts.add_metric([source, level], float(n))
    if "alerts" not in unread:
        out.append(alerts)

    pending = GaugeMetricFamily(
        "orderdb_relay_pending_events",
        "Committed outbox events a consumer has not acknowledged.",
        labels=["consumer"],
    )
    lag = GaugeMetricFamily(
        "orderdb_relay_lag_seconds",
        "Age of the oldest event a consumer has not acknowledged (0 when none).",
        labels=["consumer"],
    )
    for row in snap["relay_lag"]:
        pending.add_metric([row["consumer"]], _num(row["pending_events"]))
        lag.add_metric([row["consumer"]], _num(row["oldest_pending_age"] or 0))
    if "relay_lag" not in unread:
        out += [pending, lag]

    live = GaugeMetricFamily("orderdb_table_live_tuples", "Live tuples.", labels=["table"])
    dead = GaugeMetricFamily("orderdb_table_dead_tuples", "Dead tuples.", labels=["table"])
    hot = GaugeMetricFamily(
        "orderdb_table_hot_update_ratio",
        "HOT share of a table's updates since the statistics reset (NaN before any update).",
        labels=["table"],
    )
    vacuum = GaugeMetricFamily(
        "orderdb_table_last_autovacuum_timestamp_seconds",
        "Unix time of a table's last autovacuum (0: never).",
        labels=["table"],
    )
    for row in snap["table_health"]:
        name = row["table_name"]
        live.add_metric([name], _num(row["live_tuples"]))
        dead.add_metric([name], _num(row["dead_tuples"]))
        hot.add_metric([name], _num(row["hot_update_ratio"]))
        vacuum.add_metric([name], _num(row.get("last_autovacuum_epoch") or 0))
    if "table_health" not in unread:
        out += [live, dead, hot, vacuum]

    waits = GaugeMetricFamily("orderdb_lock_waits", "Sessions waiting for a lock.")
    waits.add_metric([], float(len(snap["lock_waits"])))
    longest_wait = GaugeMetricFamily(
        "orderdb_lock_wait_max_seconds", "Longest current lock wait (0 when none)."
    )
    longest_wait.add_metric([], max([_num(r["wait_seconds"]) for r in snap["lock_waits"]] + [0.0]))
    long_tx = GaugeMetricFamily(
        "orderdb_long_transactions",
        "Transactions open too long or idle in transaction too long (see long_transactions).",
    )
    long_tx.add_metric([], float(len(snap["long_transactions"])))
    if "lock_waits" not in unread:
        out += [waits, longest_wait]
    if "long_transactions" not in unread:
        out.append(long_tx)

    server = {r["metric"]: r["value"] for r in snap["server"]}
    for key, name, doc in (
        (
            "notification_queue_usage",
            "orderdb_notification_queue_usage_ratio",
            "pg_notification_queue_usage(): share of the NOTIFY queue in use.",
        ),
        ("connections", "orderdb_connections", "Client connections to the server."),
        ("max_connections", "orderdb_max_connections", "The server's max_connections."),
        ("xid_age", "orderdb_database_xid_age", "Age of the database's oldest unfrozen xid."),
        ("database_bytes", "orderdb_database_size_bytes", "Size of the database."),
        (
            "oldest_transaction_seconds",
            "orderdb_oldest_transaction_seconds",
            "Age of the oldest open transaction of the server.",
        ),
    ):
        if key in server:
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], _num(server[key]))
            out.append(g)

    errors = GaugeMetricFamily(
        "orderdb_exporter_view_errors",
        "1 when the view behind a part of this scrape failed (see the exporter's log).",
        labels=["view"],
    )
    for key in snap["errors"]:
        errors.add_metric([key], 1.0)
    out.append(errors)
    return out


class OpsCollector(Collector):
    """Reads the ops views on every scrape over one connection (reopened after a failure)."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "orderdb_up",
            "1 when the last scrape could read the database (0: not connected, or no view read).",
        )
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                snap = snapshot(self._conn)
                enrich(snap)
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                up.add_metric([], 0.0)
                yield up
                return
        # connected but not one view read (e.g. orderdb not installed): nothing was measured
        up.add_metric([], 0.0 if len(snap["errors"]) >= len(QUERIES) else 1.0)
        yield up
        yield from metrics_from_snapshot(snap)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None


def enrich(snap: dict[str, Any]) -> None:
    """Derived figures the metrics need: breach ages and autovacuum times in epoch seconds."""
    from datetime import UTC, datetime

    taken = datetime.fromisoformat(snap["taken_at"])
    for b in snap["sla_breaches"]:
        since = datetime.fromisoformat(b["breached_since"]) if b["breached_since"] else None
        b["age_seconds"] = (taken - since).total_seconds() if since else None
    for t in snap["table_health"]:
        av = t.get("last_autovacuum")
        t["last_autovacuum_epoch"] = (
            datetime.fromisoformat(av).astimezone(UTC).timestamp() if av else None
        )


def make_registry(
    connect: Callable[[], psycopg.Connection[Any]],
) -> tuple[CollectorRegistry, OpsCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = OpsCollector(connect)
    registry.register(collector)
    return registry, collector


def serve(
    connect: Callable[[], psycopg.Connection[Any]], *, host: str = "127.0.0.1", port: int = 9187
) -> tuple[Any, threading.Thread, OpsCollector]:
    """Start the /metrics HTTP server in a daemon thread; returns (server, thread, collector)."""
    registry, collector = make_registry(connect)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread, collector
