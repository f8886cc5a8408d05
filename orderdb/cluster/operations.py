"""The operations tools against a cluster's proxy DSN (docs/scaling.md "Tools against the
proxy").

Through the proxy work as on one database: ``orderdb events tail`` and ``events work`` (the
proxy's read_events/ack_events and claim_events/ack_claimed span the shards), the web tracking
page (order_timeline_by_no is routed) and operations board (the proxy's
orderdb_ops.board_snapshot merges the shards' boards), ``orderdb maintain`` (:func:`maintain`:
the sweep of parked carrier events on the proxy, then each shard's partition maintenance),
``orderdb relay``, ``orderdb wms-dispatch`` and ``orderdb poll-carriers`` (one relay,
dispatcher or poller per shard in one process, on the DSNs the proxy records:
:mod:`orderdb.cluster.workers`) and ``orderdb sla-check`` (the proxy's ``orderdb.sla_check`` runs on
every shard). The tools that need a shard's own tables refuse a proxy DSN with a message saying
to run them per shard (:func:`per_shard_refusal`). ``orderdb monitor`` and ``orderdb exporter``
read the proxy's ``orderdb_ops`` views (every shard's rows; the exporter labels each series with
its shard).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

#: why each tool runs per shard (the refusal's reason)
PER_SHARD_REASONS: dict[str, str] = {
    "webhooks list": "webhook deliveries (pending, delivered, dead) are each shard's, made by "
    "its relay from its outbox",
    "webhooks retry": "a dead delivery is a row of the shard whose relay made it",
    "ingest serve": "its integrations (secrets, rate limits) and the status query are each "
    "shard's, not the proxy's yet; send carrier events through the proxy with "
    "orderdb ingest tracking --dsn PROXY or orderdb.record_tracking_event, which find their "
    "parcel's shard",
}

#: what each tool reads that a proxy would need to have for the tool to run there (None: it
#: runs per shard by design)
_NEEDS: dict[str, tuple[str, str] | None] = {
    "webhooks list": None,
    "webhooks retry": None,
    "ingest serve": None,
}

_PROBE = """
SELECT to_regclass('orderdb_cluster.shards') IS NOT NULL,
       CASE WHEN %(kind)s = 'relation' THEN to_regclass(%(name)s) IS NOT NULL
            ELSE to_regprocedure(%(name)s) IS NOT NULL END
"""


def per_shard_refusal(dsn: str, tool: str) -> str | None:
    """The message refusing ``orderdb <tool>`` on ``dsn`` when it is a cluster's proxy that lacks
    what the tool reads; None otherwise (one database, a shard, or a proxy that has it)."""
    kind, name = _NEEDS[tool] or ("relation", "orderdb_cluster.shards")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(_PROBE, {"kind": kind, "name": name}).fetchone()
    except psycopg.OperationalError:
        return None  # not reachable now: the tool's own connection handling says so (or waits)
    if row is None or not row[0] or (row[1] and _NEEDS[tool] is not None):
        return None
    return (
        f"orderdb {tool} does not run against a cluster proxy: {PER_SHARD_REASONS[tool]}. "
        "Run it against each shard's DSN (orderdb cluster status lists them; "
        "docs/scaling.md)."
    )


def is_proxy(dsn: str) -> bool:
    """Whether ``dsn`` is the proxy database of an orderdb cluster (False when it cannot be
    reached: the caller's own connection then reports that)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT to_regclass('orderdb_cluster.shards') IS NOT NULL"
            ).fetchone()
    except psycopg.OperationalError:
        return False
    return bool(row and row[0])


def sweep_parked_tracking_events(proxy_dsn: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Moves carrier events parked at their tracking number's home to the shard that has their
    shipment now (``orderdb_cluster.sweep_parked_tracking_events``); one row per tracking
    number moved: home, carrier, tracking_number, shard, moved."""
    with (
        psycopg.connect(proxy_dsn, autocommit=True) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        return cur.execute(
            "SELECT home, carrier, tracking_number, shard, moved"
            " FROM orderdb_cluster.sweep_parked_tracking_events(%s)",
            (limit,),
        ).fetchall()


def shard_dsns(proxy_dsn: str) -> list[str]:
    """The shards' DSNs as the proxy records them (no user or password: libpq's environment or
    password file supplies them, as for ``orderdb migrate --dsn PROXY``)."""
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT dsn FROM orderdb_cluster.shards ORDER BY shard").fetchall()
    return [str(r[0]) for r in rows]


#: the columns of one action of ``orderdb maintain`` against a proxy
MAINTAIN_COLUMNS = (
    "shard",
    "parent_table",
    "action",
    "partition_name",
    "range_from",
    "range_to",
    "rows_moved",
    "exported_to",
    "carrier",
    "tracking_number",
    "to_shard",
    "order_id",
    "warehouse_id",
)

#: how long an order must have been in flight before ``orderdb maintain`` finishes its move
STOPPED_REALLOCATION_AGE = timedelta(seconds=30)


def finish_stopped_reallocations(
    proxy_dsn: str, older_than: timedelta = STOPPED_REALLOCATION_AGE
) -> list[dict[str, Any]]:
    """Finishes the reallocations that stopped in flight more than ``older_than`` ago
    (``orderdb_cluster.finish_stopped_reallocations``); one row per order: order_id, from_shard,
    to_shard, warehouse_id, status, version."""
    with (
        psycopg.connect(proxy_dsn, autocommit=True) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        return cur.execute(
            "SELECT order_id, from_shard, to_shard, warehouse_id, status, version"
            " FROM orderdb_cluster.finish_stopped_reallocations(%s)",
            (older_than,),
        ).fetchall()


def maintain(
    proxy_dsn: str,
    *,
    dry_run: bool,
    report: Callable[[str], None] | None = None,
    reallocations_older_than: timedelta = STOPPED_REALLOCATION_AGE,
) -> list[dict[str, Any]]:
    """``orderdb maintain --dsn PROXY``: the recovery of reallocations stopped in flight for
    longer than ``reallocations_older_than`` and the sweep of parked carrier events (not in a
    dry run), then ``orderdb.maintain_partitions`` on every shard (with its DSN). Returns every
    action as a row of :data:`MAINTAIN_COLUMNS` (recovery rows: action ``reallocation
    finished``, shard the source, to_shard, order_id and warehouse_id the target's; sweep rows:
    action ``moved``, the events moved in rows_moved; partition rows: as on one database, with
    their shard)."""
    rows: list[dict[str, Any]] = []
    if not dry_run:
        for finished in finish_stopped_reallocations(proxy_dsn, reallocations_older_than):
            row = dict.fromkeys(MAINTAIN_COLUMNS)
            row.update(
                shard=finished["from_shard"],
                action="reallocation finished",
                to_shard=finished["to_shard"],
                order_id=finished["order_id"],
                warehouse_id=finished["warehouse_id"],
            )
            rows.append(row)
            if report is not None:
                report(
                    f"shard {finished['from_shard']}: reallocation of order "
                    f"{finished['order_id']} finished on shard {finished['to_shard']} "
                    f"(warehouse {finished['warehouse_id']})"
                )
        for moved in sweep_parked_tracking_events(proxy_dsn):
            row = dict.fromkeys(MAINTAIN_COLUMNS)
            row.update(
                shard=moved["home"],
                parent_table="orderdb.tracking_events",
                action="moved",
                rows_moved=moved["moved"],
                carrier=moved["carrier"],
                tracking_number=moved["tracking_number"],
                to_shard=moved["shard"],
            )
            rows.append(row)
            if report is not None:
                report(
                    f"shard {moved['home']}: {moved['moved']} parked carrier event(s) of "
                    f"{moved['carrier']} {moved['tracking_number']} moved to shard {moved['shard']}"
                )
    for shard, dsn in enumerate(shard_dsns(proxy_dsn)):
        with (
            psycopg.connect(dsn, autocommit=True, application_name="orderdb-ops") as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute("SET lock_timeout = '5s'")
            found = cur.execute(
                "SELECT parent_table, action, partition_name, range_from, range_to, rows_moved"
                " FROM orderdb.maintain_partitions(p_dry_run => %s)",
                (dry_run,),
            ).fetchall()
        for action in found:
            row = dict.fromkeys(MAINTAIN_COLUMNS)
            row.update(action, shard=shard)
            rows.append(row)
        if report is not None:
            report(f"shard {shard}: {len(found)} partition action(s)")
    return rows
