"""Prometheus metrics from the ``orderdb_ops`` views (``orderdb exporter``).

A custom collector reads one monitor snapshot per scrape (nothing is cached: a scrape is the
state of the database at that moment) and exposes it following the Prometheus conventions:
``orderdb_`` prefix, snake_case, base units (seconds, ratios 0..1), counters (``_total``) for what
only grows, read from the tables where that state lives (so they survive restarts of the
exporter and of the workers, and are exact), sums and counts instead of precomputed means,
labels for dimensions. Nothing that postgres_exporter already exports (table tuples and vacuum
times, connections, database size, transaction ages) is exported here. Every metric is listed in
docs/operations.md.

Against a cluster's proxy (docs/scaling.md "Tools against the proxy") the proxy's ``orderdb_ops``
views hold every shard's rows with a trailing ``shard`` column: the same series are exported per
shard, each with a ``shard`` label (the shard's number); ``orderdb_up`` and
``orderdb_exporter_view_errors`` stay unlabelled (a view of the proxy is read from every shard at
once, or fails). On one database nothing has a ``shard`` label.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, LiteralString

import psycopg
from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from orderdb.ops.monitor import QUERIES, SLA_RULES, snapshot

#: whether the connection's database is a cluster's proxy (its orderdb_ops views end with a
#: ``shard`` column) and how many shards its PL/Proxy cluster has (partition_<k> per shard);
#: catalogs only, readable by any role
_PROXY_PROBE = """
SELECT EXISTS (SELECT 1
                 FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'orderdb_ops' AND c.relname = 'order_funnel'
                  AND a.attname = 'shard' AND NOT a.attisdropped),
       (SELECT count(*)
          FROM pg_catalog.pg_foreign_server s, unnest(s.srvoptions) AS o(opt)
         WHERE s.srvname = 'orderdb_cluster' AND o.opt LIKE 'partition\\_%')
"""


def cluster_shards(conn: psycopg.Connection[Any]) -> int:
    """The number of shards when ``conn`` is a cluster's proxy, else 0 (one database, a shard)."""
    row = conn.execute(_PROXY_PROBE).fetchone()
    if row is None or not row[0]:
        return 0
    return int(row[1])


def proxy_queries(shards: int) -> dict[str, tuple[LiteralString, int]]:
    """:data:`orderdb.ops.monitor.QUERIES` for a proxy of ``shards`` shards: each also reads
    the row's ``shard``, and the row limit is one database's per shard."""
    return {
        key: (query.replace(" FROM orderdb_ops.", ", shard FROM orderdb_ops.", 1), limit * shards)
        for key, (query, limit) in QUERIES.items()
    }


LEVELS = {"ok": 0, "warning": 1, "critical": 2}

#: the default port of ``orderdb exporter``: outside the Prometheus exporters' range 9100-9999
#: (fully allocated; postgres_exporter has 9187), below the ephemeral ports (docs/operations.md)
DEFAULT_PORT = 8187

#: (activity_totals metric, Prometheus name without _total, help, label name or None)
COUNTERS: tuple[tuple[str, str, str, str | None], ...] = (
    (
        "events_acked",
        "orderdb_events_acked",
        "Outbox events a consumer has acknowledged (the relay: events relayed).",
        "consumer",
    ),
    (
        "webhook_attempts",
        "orderdb_webhook_attempts",
        "Webhook delivery attempts by result (success: a 2xx answer).",
        "result",
    ),
    (
        "webhooks_delivered",
        "orderdb_webhook_deliveries_delivered",
        "Webhook deliveries that reached a 2xx answer.",
        None,
    ),
    ("carrier_polls", "orderdb_carrier_polls", "Tracking polls made per carrier.", "carrier"),
    (
        "carrier_poll_errors",
        "orderdb_carrier_poll_errors",
        "Tracking polls that failed per carrier.",
        "carrier",
    ),
)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def metrics_from_snapshot(snap: dict[str, Any]) -> list[Metric]:
    """The metric families of one monitor snapshot.

    A family whose view could not be read is left out (absent, not 0: a health not measured is
    not exported); ``orderdb_exporter_view_errors`` names the view. A snapshot of a cluster's
    proxy (``snap["shards"]``: the shards' numbers; each row has its ``shard``) gives every
    family per shard, each sample with a ``shard`` label: the families of each shard's rows, as
    one database would give them."""
    shards = snap.get("shards")
    if shards is None:
        return _families(snap)
    merged: dict[str, Metric] = {}
    for shard in shards:
        part = {
            key: [r for r in rows if r.get("shard") == shard] if key in QUERIES else rows
            for key, rows in snap.items()
        }
        for family in _families(part, view_errors=False):
            into = merged.get(family.name)
            if into is None:
                into = Metric(family.name, family.documentation, family.type, family.unit)
                merged[family.name] = into
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, "shard": str(shard)}, sample.value)
    return [*merged.values(), _view_errors(snap)]


def _view_errors(snap: dict[str, Any]) -> Metric:
    errors = GaugeMetricFamily(
        "orderdb_exporter_view_errors",
        "1 when the view behind a part of this scrape failed (see the exporter's log).",
        labels=["view"],
    )
    for key in snap["errors"]:
        errors.add_metric([key], 1.0)
    return errors


def _families(snap: dict[str, Any], *, view_errors: bool = True) -> list[Metric]:
    """The metric families of one database's snapshot (or of one shard's rows)."""
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

    # one unit per metric name: the ratio KPIs here; the mean time as a sum and a count below
    kpi_ratio = GaugeMetricFamily(
        "orderdb_fulfillment_kpi_ratio",
        "Fulfillment KPI that is a share (0..1) over its window; NaN without sample.",
        labels=["metric"],
    )
    kpi_ratio_threshold = GaugeMetricFamily(
        "orderdb_fulfillment_kpi_ratio_threshold",
        "Target of a ratio fulfillment KPI.",
        labels=["metric"],
    )
    kpi_level = GaugeMetricFamily(
        "orderdb_fulfillment_kpi_level",
        "Alert level of a fulfillment KPI: 0 ok, 1 warning, 2 critical.",
        labels=["metric"],
    )
    time_threshold = GaugeMetricFamily(
        "orderdb_fulfillment_time_threshold_seconds",
        "Target of the mean creation-to-delivery time (the avg_fulfillment_hours KPI).",
    )
    for row in snap["kpis"]:
        if row["unit"] == "hours":
            time_threshold.add_metric([], _num(row["threshold"]) * 3600)
        else:
            kpi_ratio.add_metric([row["metric"]], _num(row["value"]))
            kpi_ratio_threshold.add_metric([row["metric"]], _num(row["threshold"]))
        kpi_level.add_metric([row["metric"]], float(LEVELS.get(row["level"], 0)))
    if "kpis" not in unread:
        out += [kpi_ratio, kpi_ratio_threshold, kpi_level, time_threshold]

    # the window's delivered orders and their summed times, not a mean: they add up across
    # databases, and sum / count is the mean (a gauge pair: the window slides, so no _sum/_count)
    window_orders = GaugeMetricFamily(
        "orderdb_fulfillment_window_delivered_orders",
        "Orders created in the fulfillment-time window and delivered.",
    )
    window_seconds = GaugeMetricFamily(
        "orderdb_fulfillment_window_duration_seconds",
        "Sum of the creation-to-delivery times of those orders.",
    )
    window_size = GaugeMetricFamily(
        "orderdb_fulfillment_window_seconds", "Length of the fulfillment-time window."
    )
    for row in snap["fulfillment_times"]:
        window_orders.add_metric([], _num(row["delivered_orders"]))
        window_seconds.add_metric([], _num(row["fulfillment_seconds"]))
        window_size.add_metric([], _num(row["window_size"]))
    if "fulfillment_times" not in unread:
        out += [window_orders, window_seconds, window_size]

    totals = snap["activity_totals"]
    for key, name, doc, label in COUNTERS:
        counter = CounterMetricFamily(name, doc, labels=[label] if label else [])
        for row in totals:
            if row["metric"] == key:
                counter.add_metric([row["label"]] if label else [], _num(row["value"]))
        if "activity_totals" not in unread:
            out.append(counter)

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

    wms_pending = GaugeMetricFamily(
        "orderdb_wms_commands_pending",
        "WMS commands of a warehouse not sent yet (pending or being sent).",
        labels=["warehouse"],
    )
    wms_dead = GaugeMetricFamily(
        "orderdb_wms_commands_dead",
        "Dead WMS commands of a warehouse (orderdb wms-dispatch retry ID sends one again).",
        labels=["warehouse"],
    )
    wms_oldest = GaugeMetricFamily(
        "orderdb_wms_oldest_pending_seconds",
        "Age of a warehouse's oldest WMS command not sent yet (0 when none).",
        labels=["warehouse"],
    )
    for row in snap.get("wms_backlog", []):
        warehouse = [str(row["warehouse_id"])]
        wms_pending.add_metric(warehouse, _num(row["pending"]))
        wms_dead.add_metric(warehouse, _num(row["dead"]))
        wms_oldest.add_metric(warehouse, _num(row["oldest_pending_age"] or 0))
    if "wms_backlog" not in unread:
        out += [wms_pending, wms_dead, wms_oldest]

    waits = GaugeMetricFamily("orderdb_lock_waits", "Sessions waiting for a lock.")
    waits.add_metric([], float(len(snap["lock_waits"])))
    longest_wait = GaugeMetricFamily(
        "orderdb_lock_wait_max_seconds", "Longest current lock wait (0 when none)."
    )
    longest_wait.add_metric([], max([_num(r["wait_seconds"]) for r in snap["lock_waits"]] + [0.0]))
    if "lock_waits" not in unread:
        out += [waits, longest_wait]

    server = {r["metric"]: r["value"] for r in snap["server"]}
    # connections, max_connections, database size and xid / transaction ages: postgres_exporter
    for key, name, doc in (
        (
            "notification_queue_usage",
            "orderdb_notification_queue_usage_ratio",
            "pg_notification_queue_usage(): share of the NOTIFY queue in use.",
        ),
    ):
        if key in server:
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], _num(server[key]))
            out.append(g)

    if view_errors:
        out.append(_view_errors(snap))
    return out


class OpsCollector(Collector):
    """Reads the ops views on every scrape over one connection (reopened after a failure).
    Whether the database is a cluster's proxy is looked up on each new connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._shards = 0
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
                    self._shards = cluster_shards(self._conn)
                if self._shards:
                    snap = snapshot(self._conn, queries=proxy_queries(self._shards))
                    snap["shards"] = list(range(self._shards))
                else:
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
    """Derived figures the metrics need: breach ages in seconds."""
    from datetime import datetime

    taken = datetime.fromisoformat(snap["taken_at"])
    for b in snap["sla_breaches"]:
        since = datetime.fromisoformat(b["breached_since"]) if b["breached_since"] else None
        b["age_seconds"] = (taken - since).total_seconds() if since else None


def make_registry(
    connect: Callable[[], psycopg.Connection[Any]],
) -> tuple[CollectorRegistry, OpsCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = OpsCollector(connect)
    registry.register(collector)
    return registry, collector


def serve(
    connect: Callable[[], psycopg.Connection[Any]],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
) -> tuple[Any, threading.Thread, OpsCollector]:
    """Start the /metrics HTTP server in a daemon thread; returns (server, thread, collector)."""
    registry, collector = make_registry(connect)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread, collector
