"""``orderdb bench``: the SQL API under pgbench, next to references measured in the same run.

One run prepares a server (a dedicated embedded PostgreSQL 18 with the settings below, or the
server of ``--dsn``), builds two databases on it — ``orderdb_bench`` (``orderdb migrate``, the
data of ``bench/load.sql``, prepared orders and parcels, the application-layer baseline's tables
``bench_app``) and ``pgbench_ref`` (``pgbench -i -s <clients>``) — and runs the pgbench scripts of
``bench/`` with the bundled pgbench, each beside the reference its goal compares it with:

* pgbench's builtin transactions (tpcb-like, simple-update, select-only);
* the application-layer baseline: the same work as ``create_order`` sent as 9 statements
  (``bench/app_create_order.sql``, ``bench/app_hot_sku.sql``);
* an emulated network: the scripts are rendered with ``\\sleep`` after every round trip
  (``--rtt-ms``, default 0 and 1 ms), directly and through a private PgBouncer in transaction
  mode (:mod:`orderdb.bench.pgbouncer`);
* every comparison with the server's ``synchronous_commit`` (on: durable commits) and with
  ``synchronous_commit=off`` set for the pgbench sessions through ``PGOPTIONS``.

Every run writes pgbench's per-transaction log (tps from pgbench, latency percentiles from the
log). While a run lasts a sampler reads ``pg_stat_activity`` every 100 ms (the wait events of the
run's sessions) and the CPU time of their server processes (``/proc/<pid>/stat``, when the server
runs on this machine); pg_stat_statements (preloaded on the embedded bench server) gives the top
statements. That is the evidence printed for a goal that is not met. The hot-SKU goal also runs a
sell-out (:func:`sellout`): many sessions buy a SKU until it is gone — exactly its stock is sold,
and no OD001 is answered while units were left.

Workloads whose SQL functions do not exist yet (``to_regprocedure``) are reported as
``not available``.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from orderdb.assets import asset_dir
from orderdb.bench import pgbouncer
from orderdb.server import embedded, migrate

__all__ = [
    "BENCH_SETTINGS",
    "COMPARISONS",
    "GOALS",
    "WORKLOADS",
    "BenchConfig",
    "BenchError",
    "BenchReport",
    "Goal",
    "RunResult",
    "RunSpec",
    "Workload",
    "bench_dir",
    "render_script",
    "run_benchmark",
    "sellout",
]

# The embedded bench server's settings; pgbench's reference transactions and orderdb run on the
# same server with the same settings. Durability is PostgreSQL's default (fsync on,
# synchronous_commit on: a commit returns once its WAL is on disk); the `off` column of the goals
# sets synchronous_commit=off for the benchmark's sessions only (PGOPTIONS), never for the server.
BENCH_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",
    "synchronous_commit": "on",
    "fsync": "on",
    "full_page_writes": "on",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "max_connections": "200",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
    "pg_stat_statements.max": "1000",
}

# settings reported with every run (whatever the server: embedded or --dsn)
REPORTED_SETTINGS = (
    "server_version",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_level",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
    "shared_preload_libraries",
    "work_mem",
    "effective_io_concurrency",
    "autovacuum",
    "commit_delay",
)

ORDERDB_DB = "orderdb_bench"
PGBENCH_DB = "pgbench_ref"
BASE_ORDERS = 10_000
TRACKING_ORDERS_PER_CLIENT = 20
TIMELINE_ORDERS = 500
TIMELINE_EVENTS = 5
BATCH_EVENTS = 100
SELLOUT_UNITS_PER_CLIENT = 50
GOAL_RTT_MS = 1.0
SYNC_MODES = ("on", "off")

TRACKING_FUNCTIONS = (
    "orderdb.record_tracking_event(text,text,timestamptz,text,text,text,text,jsonb)",
    "orderdb.wms_callback(text,bigint,text,jsonb,text)",
)
CREATE_ORDER = "orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)"


class BenchError(Exception):
    """The benchmark could not prepare its server or data, or pgbench failed."""


@dataclass(frozen=True)
class Workload:
    """A pgbench script: a builtin (a reference) or a script of bench/."""

    name: str
    title: str
    database: str  # "ref" (pgbench_ref) or "orderdb" (orderdb_bench)
    builtin: str | None = None
    script: str | None = None
    requires: tuple[str, ...] = ()  # regprocedure signatures that must exist
    units: int = 1  # units of work per transaction (events per batch)
    unit: str = "transaction"


WORKLOADS: tuple[Workload, ...] = (
    Workload("tpcb-like", "pgbench tpcb-like", "ref", builtin="tpcb-like"),
    Workload(
        "create_order",
        "create_order, 3 lines, random SKUs, idempotency key",
        "orderdb",
        script="create_order.sql",
        requires=(CREATE_ORDER,),
    ),
    Workload(
        "app_create_order",
        "the same order from an application: 9 round trips",
        "orderdb",
        script="app_create_order.sql",
    ),
    Workload("simple-update", "pgbench simple-update", "ref", builtin="simple-update"),
    Workload(
        "tracking_event",
        "record_tracking_event, one event per call",
        "orderdb",
        script="tracking_event.sql",
        requires=TRACKING_FUNCTIONS,
        unit="event",
    ),
    Workload(
        "tracking_events_batch",
        f"record_tracking_events, {BATCH_EVENTS} events per call",
        "orderdb",
        script="tracking_events_batch.sql",
        requires=(*TRACKING_FUNCTIONS, "orderdb.record_tracking_events(jsonb)"),
        units=BATCH_EVENTS,
        unit="event",
    ),
    Workload("select-only", "pgbench select-only", "ref", builtin="select-only"),
    Workload(
        "order_timeline",
        f"order_timeline, shipped order (6 status rows + {TIMELINE_EVENTS} carrier events)",
        "orderdb",
        script="order_timeline.sql",
        requires=("orderdb.order_timeline(bigint,bigint,text)", *TRACKING_FUNCTIONS),
    ),
    Workload(
        "single_line_random",
        "create_order, 1 line, random SKU",
        "orderdb",
        script="single_line_random.sql",
        requires=(CREATE_ORDER,),
    ),
    Workload(
        "hot_sku",
        "create_order, 1 line, one hot SKU, nothing configured",
        "orderdb",
        script="hot_sku.sql",
        requires=(CREATE_ORDER,),
    ),
    Workload(
        "app_hot_sku",
        "the same hot-SKU order from an application: 9 round trips",
        "orderdb",
        script="app_hot_sku.sql",
    ),
)
_WORKLOAD = {w.name: w for w in WORKLOADS}


@dataclass(frozen=True)
class Goal:
    """A ratio of a workload's throughput (tps, or events/s) to its reference's, in one run.

    ``minimum`` None: a comparison that is reported but is not a goal."""

    name: str
    title: str
    workload: str
    reference: str
    reference_title: str
    minimum: float | None
    rtt_ms: float = 0.0
    pooled: bool = False
    remedy: str = ""

    @property
    def per(self) -> str:
        return "events/s" if _WORKLOAD[self.workload].unit == "event" else "tps"


GOALS: tuple[Goal, ...] = (
    Goal(
        "create_order",
        "create_order, 3 lines",
        "create_order",
        "tpcb-like",
        "pgbench tpcb-like",
        1.0,
        remedy="an order inserts 6 rows (its directory row with the idempotency key, the "
        "order, 3 lines, the outbox event) with about ten B-tree index entries and updates 3 "
        "stock rows, against tpcb-like's 1 row without an index and 3 updates: more WAL and "
        "CPU per commit; fewer index entries or statements per order would narrow it",
    ),
    Goal(
        "tracking_event",
        "record_tracking_event",
        "tracking_event",
        "simple-update",
        "pgbench simple-update",
        0.8,
        remedy="an event inserts its row (3 unique keys), updates the shipment and writes "
        "an outbox event (2 index entries), against simple-update's 1 update and 1 insert "
        "without an index; fewer index entries or statements per event would close it",
    ),
    Goal(
        "tracking_batch",
        f"record_tracking_events, a batch of {BATCH_EVENTS}",
        "tracking_events_batch",
        "tracking_event",
        "the same events one call each",
        5.0,
        remedy="the batch stores its new events with one INSERT but applies each event to its "
        "shipment and order and writes its outbox row one by one; doing those set-based too "
        "(one statement per table per batch) would close it",
    ),
    Goal(
        "order_timeline",
        "order_timeline (shipped, ~10 events)",
        "order_timeline",
        "select-only",
        "pgbench select-only",
        0.6,
        remedy="select-only is one index probe returning an integer; a cached timeline reads "
        "the order's directory row, the cache row and (in transit) whether its carrier has a "
        "delivery to learn from, in PL/pgSQL, and returns a ~3 kB document (a miss builds it "
        "from the history, shipments and carrier events); a smaller document or a call without "
        "PL/pgSQL would close it (docs/benchmarks.md, The stored timeline document)",
    ),
    Goal(
        "hot_sku",
        "one hot SKU, no configuration",
        "hot_sku",
        "single_line_random",
        "the same orders on random SKUs",
        0.8,
        remedy="every order of the SKU queues on its one stock row, locked until the commit "
        "(with durable commits: through the WAL flush); spreading a contended SKU's stock over "
        "several rows without configuration would close it",
    ),
    Goal(
        "create_order_rtt",
        "create_order with 1 ms per round trip",
        "create_order",
        "app_create_order",
        "the same work by an application in 9 round trips",
        2.5,
        rtt_ms=GOAL_RTT_MS,
        remedy="with 1 ms per round trip the application's orders take >= 9 ms each; when the "
        "ratio stays below the goal, create_order is bound by what an order costs the server "
        "(CPU, WAL flushes: see the create_order goal)",
    ),
    Goal(
        "hot_sku_rtt",
        "one hot SKU with 1 ms per round trip",
        "hot_sku",
        "app_hot_sku",
        "the application doing it",
        10.0,
        rtt_ms=GOAL_RTT_MS,
        remedy="the application holds the SKU's row lock from its 4th round trip to the commit "
        "(~5 ms per order at 1 ms per round trip); "
        "create_order holds it for one call — when the ratio stays below the goal, "
        "create_order's own time on the hot SKU is the limit (see the hot-SKU goal)",
    ),
)


def _comparisons() -> tuple[Goal, ...]:
    """Reported beside the goals: the application baseline at every round-trip time, directly
    and through PgBouncer (``rtt_ms`` -1: every --rtt-ms value)."""
    return (
        Goal(
            "create_vs_app",
            "create_order vs the application (9 round trips)",
            "create_order",
            "app_create_order",
            "app_create_order",
            None,
            rtt_ms=-1,
        ),
        Goal(
            "hot_vs_app",
            "one hot SKU: create_order vs the application",
            "hot_sku",
            "app_hot_sku",
            "app_hot_sku",
            None,
            rtt_ms=-1,
        ),
        Goal(
            "create_vs_app_pgbouncer",
            "through PgBouncer: create_order vs the application",
            "create_order",
            "app_create_order",
            "app_create_order",
            None,
            rtt_ms=-1,
            pooled=True,
        ),
        Goal(
            "hot_vs_app_pgbouncer",
            "through PgBouncer: one hot SKU, create_order vs the application",
            "hot_sku",
            "app_hot_sku",
            "app_hot_sku",
            None,
            rtt_ms=-1,
            pooled=True,
        ),
    )


COMPARISONS: tuple[Goal, ...] = _comparisons()


@dataclass(frozen=True)
class RunSpec:
    """One measured configuration of a workload."""

    workload: str
    sync: str = "on"  # "on": the server's setting; "off": PGOPTIONS for the run's sessions
    rtt_ms: float = 0.0  # \sleep after every round trip
    pooled: bool = False  # through PgBouncer (transaction mode)

    @property
    def key(self) -> str:
        parts = [self.workload]
        if self.rtt_ms:
            parts.append(f"rtt={_ms(self.rtt_ms)}ms")
        if self.pooled:
            parts.append("pgbouncer")
        parts.append(f"sync={self.sync}")
        return " ".join(parts)


def _ms(value: float) -> str:
    return f"{value:g}"


@dataclass
class BenchConfig:
    """What to run. ``dsn`` None: a dedicated embedded server (see BENCH_SETTINGS)."""

    dsn: str | None = None
    clients: int = 16
    jobs: int | None = None  # pgbench threads; default min(clients, nproc)
    seconds: int = 15
    rounds: int = 1
    orders: int = BASE_ORDERS
    skus: int = 10_000
    only: tuple[str, ...] = ()  # workload names (and their references); empty: all
    keep: bool = False  # leave the databases (and the embedded server) for runs by hand
    data_root: Path | None = None  # embedded server's data root
    track_all: bool = False  # pg_stat_statements.track = all for orderdb runs (diagnosis)
    events: bool = True  # also run orderdb/bench/events.py (relay on/off) when it exists
    rtt_ms: tuple[float, ...] = (0.0, GOAL_RTT_MS)  # emulated round-trip times
    sync: tuple[str, ...] = SYNC_MODES  # synchronous_commit columns
    pgbouncer: bool = True  # the comparison through PgBouncer (skipped when not installed)
    pool_size: int | None = None  # PgBouncer's server connections; default 2 x nproc
    sellout_units: int | None = None  # stock of the sell-out; default 50 x clients


@dataclass
class RunResult:
    """One configuration's figures (medians over rounds; percentiles over every round's log)."""

    key: str
    workload: str
    title: str
    sync: str
    rtt_ms: float
    pooled: bool
    status: str  # "ok", "not available", "failed", "skipped"
    tps: float | None = None
    units_per_s: float | None = None  # tps x units (events/s for the tracking batch)
    unit: str = "transaction"
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    transactions: int = 0
    failed: int = 0
    rounds_tps: list[float] = field(default_factory=list)
    server_cpu_ms: float | None = None  # server CPU per unit (ms), all backends of the run
    client_cpu_ms: float | None = None  # pgbench's CPU per unit (ms)
    wal_bytes: float | None = None  # WAL written per unit (pg_stat_wal, the whole server)
    waits: dict[str, float] = field(default_factory=dict)
    top_statements: list[dict[str, Any]] = field(default_factory=list)
    command: str | None = None
    note: str | None = None


@dataclass
class BenchReport:
    """Everything one ``orderdb bench`` run measured."""

    started_at: str
    finished_at: str
    machine: dict[str, Any]
    server: dict[str, Any]
    config: dict[str, Any]
    pools: dict[str, Any]
    rows: list[RunResult]
    goals: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    sellout: dict[str, dict[str, Any]]
    pgbouncer: dict[str, Any]
    table_health: list[dict[str, Any]]
    scale: list[dict[str, Any]]
    events: dict[str, Any] | None
    commands: list[str]
    load_after: list[float]


Log = Callable[[str], None]
Tick = Callable[[str, float, float, float | None], None]  # label, elapsed, seconds, current tps


def _noop_log(_msg: str) -> None:
    return None


def _noop_tick(_label: str, _elapsed: float, _seconds: float, _tps: float | None) -> None:
    return None


# --------------------------------------------------------------------------- scripts

# a round trip ends with a SQL command: a line (not a comment, not a meta-command) that ends with
# ';' or with the \gset / \aset that replaces it
_ROUND_TRIP_END = re.compile(r"(;|\\gset|\\aset)\s*$")


def render_script(text: str, rtt_ms: float) -> str:
    """A pgbench script with ``\\sleep <rtt> us`` after every round trip (every SQL command),
    so that each statement costs the client one network round trip. Inside BEGIN .. COMMIT the
    sleeps hold the transaction's locks exactly as a slow network does. ``rtt_ms`` 0: the script
    unchanged."""
    if rtt_ms <= 0:
        return text
    pause = f"\\sleep {round(rtt_ms * 1000)} us"
    out: list[str] = []
    for line in text.splitlines():
        out.append(line)
        stripped = line.strip()
        if (
            stripped
            and not stripped.startswith("--")
            and not stripped.startswith("\\")
            and _ROUND_TRIP_END.search(stripped)
        ):
            out.append(pause)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- paths and servers


def bench_dir() -> Path:
    """The folder of the pgbench scripts (bench/ in a checkout, orderdb/_bench in the wheel)."""
    try:
        return asset_dir("bench")
    except FileNotFoundError as exc:
        raise BenchError(str(exc)) from exc


def default_bench_root() -> Path:
    """Data root of the dedicated embedded bench server ($ORDERDB_BENCH_HOME overrides)."""
    env = os.environ.get("ORDERDB_BENCH_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return embedded.default_data_root().parent / "bench"


def _dsn_for(dsn: str, dbname: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params["dbname"] = dbname
    return make_conninfo("", **params)


def _show(dsn: str, names: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            try:
                row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
            except psycopg.Error:
                continue
            if row is not None:
                out[name] = str(row[0])
    return out


def _settings_match(dsn: str) -> bool:
    """Whether a running embedded bench server has BENCH_SETTINGS (restart otherwise)."""
    wanted = {
        "shared_buffers": "256MB",
        "synchronous_commit": "on",
        "fsync": "on",
        "shared_preload_libraries": "pg_stat_statements",
    }
    have = _show(dsn, tuple(wanted))
    return all(have.get(k) == v for k, v in wanted.items())


@contextlib.contextmanager
def _server(cfg: BenchConfig, log: Log) -> Iterator[tuple[str, str]]:
    """(admin dsn, kind) of the server to benchmark on; the embedded one is started here."""
    if cfg.dsn:
        yield cfg.dsn, "dsn"
        return
    root = cfg.data_root or default_bench_root()
    log(f"starting the embedded bench server in {root}")
    server = embedded.ensure_started(root, extra_settings=dict(BENCH_SETTINGS))
    if not _settings_match(server.dsn):
        log("restarting the embedded bench server with the benchmark settings")
        embedded.stop(root)
        server = embedded.ensure_started(root, extra_settings=dict(BENCH_SETTINGS))
    try:
        yield server.dsn, "embedded"
    finally:
        if not cfg.keep:
            log("stopping the embedded bench server")
            embedded.stop(root)


# --------------------------------------------------------------------------- databases and data


def _recreate_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _run_file(conn: psycopg.Connection[Any], name: str, settings: dict[str, str]) -> None:
    """Run bench/<name> (several statements) with its bench.* settings in this session."""
    for key, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, false)", (f"bench.{key}", value))
    text = (bench_dir() / name).read_text(encoding="utf-8")
    conn.execute(text.encode())


def _exists(conn: psycopg.Connection[Any], signature: str) -> bool:
    row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (signature,)).fetchone()
    return bool(row and row[0])


def _seq_last(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT last_value FROM orderdb.order_id_seq").fetchone()
    return int(row[0]) if row else 0


def _bulk_orders(conn: psycopg.Connection[Any], skus: int, count: int, status: str) -> int:
    """Append ``count`` orders in ``status`` (bench/bulk_orders.sql); returns the first id."""
    _run_file(conn, "bulk_orders.sql", {"skus": str(skus), "count": str(count), "status": status})
    row = conn.execute("SELECT first FROM bench_range").fetchone()
    if row is None:
        raise BenchError("bulk_orders.sql did not record its range")
    return int(row[0])


def _shipped_pool(conn: psycopg.Connection[Any], skus: int, count: int, prefix: str) -> int:
    """``count`` shipped orders with carrier events (bench/shipped_pool.sql); the first id."""
    before = _seq_last(conn)
    _run_file(
        conn,
        "shipped_pool.sql",
        {"skus": str(skus), "count": str(count), "prefix": prefix, "events": str(TIMELINE_EVENTS)},
    )
    after = _seq_last(conn)
    if after - before != count:
        raise BenchError(
            f"shipped pool {prefix}: expected {count} new orders, got {after - before}"
        )
    return before + 1


def _prepare_orderdb(dsn: str, cfg: BenchConfig, log: Log) -> dict[str, Any]:
    """Migrate and load orderdb_bench; returns the pools (where the prepared data starts)."""
    log("orderdb migrate")
    migrate.migrate(dsn)
    pools: dict[str, Any] = {"skus": cfg.skus}
    with psycopg.connect(dsn, autocommit=True) as conn:
        log(f"loading stock: {cfg.skus} SKUs + the hot SKU HOT-PLAIN (receive_stock)")
        _run_file(conn, "load.sql", {"skus": str(cfg.skus)})
        _run_file(conn, "app_schema.sql", {"skus": str(cfg.skus)})
        base = min(cfg.orders, BASE_ORDERS)
        if base > 0:
            log(f"bulk-loading {base} historical orders")
            _bulk_orders(conn, cfg.skus, base, "cancelled")
        pools["historical_orders"] = base
        if all(_exists(conn, s) for s in TRACKING_FUNCTIONS):
            n = cfg.clients * TRACKING_ORDERS_PER_CLIENT
            log(f"shipping {n} orders through the API (tracking pool)")
            first = _shipped_pool(conn, cfg.skus, n, "BENCH-T-")
            pools["tracking"] = {
                "first": first,
                "m": TRACKING_ORDERS_PER_CLIENT,
                "nclients": cfg.clients,
            }
            conn.execute(
                "INSERT INTO bench_app.pools VALUES ('tracking', %s, %s, %s)",
                (first, n, f"m={TRACKING_ORDERS_PER_CLIENT} nclients={cfg.clients}"),
            )
            count = max(50, min(TIMELINE_ORDERS, 32 * cfg.clients))
            log(f"shipping {count} orders with {TIMELINE_EVENTS} carrier events each")
            first = _shipped_pool(conn, cfg.skus, count, "BENCH-L-")
            pools["timeline"] = {"first": first, "count": count}
            conn.execute(
                "INSERT INTO bench_app.pools VALUES ('timeline', %s, %s, %s)",
                (first, count, f"{TIMELINE_EVENTS} carrier events each"),
            )
            if _exists(conn, "orderdb.order_timeline(bigint,bigint,text)"):
                log(f"reading each of the {count} timelines once (the stored documents)")
                _warm_timelines(conn, first, count)
        drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        if drift and drift[0]:
            raise BenchError(f"the loaded data has inventory drift ({drift[0]} rows)")
        if _has_pgss(conn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _vacuum(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
    return pools


def _warm_timelines(conn: psycopg.Connection[Any], first: int, count: int) -> None:
    """Each order's tracking page read once, as its customer's first look does: the run then
    measures the steady state, the stored document (a read stores it only in a transaction of
    its own that has written nothing, so one autocommit statement per order; the session's
    TimeZone is the server's, as pgbench's)."""
    for order_id in range(first, first + count):
        conn.execute("SELECT FROM orderdb.order_timeline(%s)", (order_id,))


def _has_pgss(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    return bool(row and "pg_stat_statements" in str(row[0]))


def _vacuum(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def _prepare_pgbench(admin_dsn: str, name: str, scale: int, log: Log) -> None:
    """pgbench -i -s scale in database ``name``, unless it already holds that scale."""
    dsn = _dsn_for(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if found:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pgbench_branches").fetchone()
            if row and int(row[0]) == scale:
                log(f"reusing {name} (pgbench scale {scale})")
                return
        except psycopg.Error:
            pass
    _recreate_db(admin_dsn, name)
    log(f"pgbench -i -s {scale} in {name}")
    proc = subprocess.run(
        [str(embedded.bin_path("pgbench")), "-i", "-s", str(scale), "-I", "dtGvp", "-q", dsn],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise BenchError(f"pgbench -i failed:\n{proc.stderr[-2000:]}")


# --------------------------------------------------------------------------- the hot-SKU sell-out


def sellout(dsn: str, *, sku: str, units: int, clients: int, sync: str = "on") -> dict[str, Any]:
    """``clients`` sessions buy ``sku`` (1-line orders, quantity 1, no configuration) until it
    is sold out; each session stops at its first OD001. Correct means: exactly ``units`` sold
    (more is an oversell), the stock counters equal the ledger, and no OD001 was false — an
    OD001 is false when an order that started after it was answered still got a unit (the stock
    only falls here), or when units are left once every session has had its OD001."""
    options = "-c synchronous_commit=off" if sync == "off" else ""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(1, %s, %s, 'bench')", (sku, units))
    items = Jsonb([{"sku": sku, "quantity": 1, "unit_price": 9.9}])
    outcomes: list[tuple[float, float, str]] = []
    errors: list[str] = []
    guard = threading.Lock()
    start = threading.Barrier(clients)
    cap = time.monotonic() + 120 + units / 10

    def buyer(n: int) -> None:
        mine: list[tuple[float, float, str]] = []
        try:
            with psycopg.connect(dsn, autocommit=True, options=options) as conn:
                start.wait(timeout=60)
                while time.monotonic() < cap:
                    t0 = time.monotonic()
                    try:
                        conn.execute(
                            "SELECT order_id FROM orderdb.create_order(%s, 1, %s, NULL, %s)",
                            (1 + n, items, "bench-sellout"),
                        )
                        outcome = "ok"
                    except psycopg.Error as exc:
                        if exc.sqlstate != "OD001":
                            raise
                        outcome = "OD001"
                    mine.append((t0, time.monotonic(), outcome))
                    if outcome == "OD001":
                        break
        except Exception as exc:  # reported with the result: the check then fails
            with guard:
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        with guard:
            outcomes.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=buyer, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    sold = sum(1 for o in outcomes if o[2] == "ok")
    last_success_start = max((o[0] for o in outcomes if o[2] == "ok"), default=0.0)
    od001 = [o for o in outcomes if o[2] == "OD001"]
    false_od001 = sum(1 for o in od001 if o[1] < last_success_start)
    with psycopg.connect(dsn, autocommit=True) as conn:
        level = conn.execute(
            "SELECT on_hand, reserved, available FROM orderdb.inventory_levels"
            " WHERE warehouse_id = 1 AND sku = %s",
            (sku,),
        ).fetchone()
        held = conn.execute(
            "SELECT coalesce(sum(qty_held), 0) FROM orderdb.order_lines"
            " WHERE warehouse_id = 1 AND sku = %s",
            (sku,),
        ).fetchone()
    on_hand, reserved, available = (int(x) for x in level) if level else (0, 0, 0)
    ledger = int(held[0]) if held else 0
    if available > 0 and len(od001) == clients:
        false_od001 = max(false_od001, 1)
    result = {
        "sku": sku,
        "sync": sync,
        "units": units,
        "clients": clients,
        "sold": sold,
        "oversold": max(0, sold - units, reserved - on_hand),
        "od001": len(od001),
        "false_od001": false_od001,
        "left_available": available,
        "reserved": reserved,
        "ledger_held": ledger,
        "orders_per_s": round(sold / seconds, 1) if seconds > 0 else None,
        "errors": errors[:5],
    }
    result["ok"] = (
        not errors
        and sold == units
        and result["oversold"] == 0
        and false_od001 == 0
        and available == 0
        and ledger == reserved
    )
    return result


# --------------------------------------------------------------------------- pgbench runs


@dataclass
class _Raw:
    tps: float
    latencies_us: list[int]
    transactions: int
    failed: int
    waits: Counter[str]
    samples: int
    top: list[dict[str, Any]]
    command: str
    server_cpu_s: float | None
    client_cpu_s: float
    wal_bytes: int | None


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_PROGRESS = re.compile(r"progress: ([0-9.]+) s, ([0-9.]+) tps")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _uptime_ticks() -> int:
    with open("/proc/uptime") as fh:
        return int(float(fh.read().split()[0]) * _CLOCK_TICKS)


def _process_cpu(pid: int) -> tuple[int, int] | None:
    """(utime + stime, start time) in clock ticks of a local PostgreSQL process, else None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    if not name.startswith("postgres"):
        return None  # not a server process of this machine (a --dsn server elsewhere)
    fields = text[text.rindex(")") + 2 :].split()
    # fields from 3 (state): utime 14, stime 15, starttime 22 -> indexes 11, 12, 19
    return int(fields[11]) + int(fields[12]), int(fields[19])


class _Sampler(threading.Thread):
    """While a run lasts: counts (wait_event_type:wait_event | CPU) of the active sessions of one
    database (and its sessions idle in a transaction), and follows the CPU time of their server
    processes."""

    def __init__(self, admin_dsn: str, dbname: str) -> None:
        super().__init__(daemon=True)
        self.admin_dsn = admin_dsn
        self.dbname = dbname
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self.started_ticks = _uptime_ticks()
        self.cpu_first: dict[int, int] = {}
        self.cpu_last: dict[int, int] = {}
        self.cpu_unknown = False
        self._halt = threading.Event()

    def _follow_cpu(self, pids: list[int]) -> None:
        for pid in pids:
            got = _process_cpu(pid)
            if got is None:
                self.cpu_unknown = True
                continue
            ticks, started = got
            if pid not in self.cpu_first:
                # a process started during the run (pgbench's connections) counts from zero
                self.cpu_first[pid] = 0 if started >= self.started_ticks else ticks
            self.cpu_last[pid] = ticks

    def run(self) -> None:
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                while not self._halt.wait(0.1):
                    rows = conn.execute(
                        "SELECT pid, state,"
                        "       coalesce(wait_event_type || ':' || wait_event, 'CPU')"
                        "  FROM pg_stat_activity"
                        " WHERE datname = %s AND backend_type = 'client backend'"
                        "   AND pid <> pg_backend_pid()",
                        (self.dbname,),
                    ).fetchall()
                    self.samples += 1
                    for _pid, state, name in rows:
                        if state == "active":
                            self.counts[str(name)] += 1
                        elif state == "idle in transaction":
                            # between two statements of an open transaction: locks held while
                            # the client (or the emulated network) answers
                            self.counts["Client:idle in transaction"] += 1
                    self._follow_cpu([int(r[0]) for r in rows])
        except psycopg.Error:
            return

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def server_cpu_s(self) -> float | None:
        if self.cpu_unknown or not self.cpu_last:
            return None
        ticks = sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last)
        return ticks / _CLOCK_TICKS


def _percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-pct * len(sorted_values) // 100)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def _read_logs(prefix: Path) -> list[int]:
    latencies: list[int] = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        with path.open() as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]))
    return latencies


def _top_statements(pgss_dsn: str | None, dbname: str) -> list[dict[str, Any]]:
    if pgss_dsn is None:
        return []
    try:
        with psycopg.connect(pgss_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160), s.calls,"
                "       round(s.mean_exec_time::numeric, 3), round(s.total_exec_time::numeric),"
                "       round((100 * s.total_exec_time"
                "              / nullif(sum(s.total_exec_time) OVER (), 0))::numeric, 1)"
                "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = %s AND s.calls > 0"
                " ORDER BY s.total_exec_time DESC LIMIT 5",
                (dbname,),
            ).fetchall()
    except psycopg.Error:
        return []
    return [
        {
            "query": r[0],
            "calls": int(r[1]),
            "mean_ms": float(r[2]),
            "total_ms": float(r[3]),
            "share_pct": float(r[4]) if r[4] is not None else None,
        }
        for r in rows
    ]


def _reset_statements(pgss_dsn: str | None) -> None:
    if pgss_dsn is None:
        return
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(pgss_dsn, autocommit=True) as conn,
    ):
        conn.execute("SELECT pg_stat_statements_reset()")


def _checkpoint(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _wal_bytes(admin_dsn: str) -> int | None:
    """The server's WAL bytes so far (pg_stat_wal), None where it cannot be read."""
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            row = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pgbench_run(
    *,
    admin_dsn: str,
    dsn: str,
    dbname: str,
    argv_tail: list[str],
    clients: int,
    jobs: int,
    seconds: int,
    workdir: Path,
    label: str,
    tick: Tick,
    pgss_dsn: str | None,
    protocol: str = "prepared",
    env_options: str | None = None,
) -> _Raw:
    prefix = workdir / re.sub(r"[^A-Za-z0-9_]+", "_", label)
    for old in workdir.glob(prefix.name + ".*"):
        if old.suffix != ".sql":
            old.unlink()
    argv = [
        str(embedded.bin_path("pgbench")),
        "-M",
        protocol,
        "-c",
        str(clients),
        "-j",
        str(jobs),
        "-T",
        str(seconds),
        "-P",
        "1",
        "-l",
        f"--log-prefix={prefix}",
        *argv_tail,
        dsn,
    ]
    env = dict(os.environ)
    env.pop("PGOPTIONS", None)
    if env_options:
        env["PGOPTIONS"] = env_options
    _checkpoint(admin_dsn)
    _reset_statements(pgss_dsn)
    wal_before = _wal_bytes(admin_dsn)
    sampler = _Sampler(admin_dsn, dbname)
    sampler.start()
    started = time.monotonic()
    cpu_before = _children_cpu_s()
    tick(label, 0.0, float(seconds), None)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
        env=env,
    )
    err_lines: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        err_lines.append(line)
        found = _PROGRESS.search(line)
        if found:
            tick(label, float(found.group(1)), float(seconds), float(found.group(2)))
    out = proc.stdout.read()
    code = proc.wait()
    client_cpu = _children_cpu_s() - cpu_before
    sampler.stop()
    time.sleep(0.5)  # the exited sessions' statistics reach pg_stat_wal
    wal_after = _wal_bytes(admin_dsn)
    tick(label, time.monotonic() - started, float(seconds), None)
    top = _top_statements(pgss_dsn, dbname)
    stderr = "".join(err_lines)
    root = str(bench_dir().parent) + "/"
    printable = " ".join(
        f"<{dbname} dsn>" if a == dsn else a.replace(f"{workdir}/", "").replace(root, "")
        for a in argv[1:]
    )
    tps_match = _TPS.search(out)
    if code != 0 or tps_match is None or "Run was aborted" in out + stderr:
        errors = [ln for ln in err_lines if not ln.startswith("progress:")]
        raise BenchError(
            f"pgbench {label} failed (exit {code}):\n" + "".join(errors[-15:]) + out[-1500:]
        )
    processed = _PROCESSED.search(out)
    failed = _FAILED.search(out)
    return _Raw(
        tps=float(tps_match.group(1)),
        latencies_us=_read_logs(prefix),
        transactions=int(processed.group(1)) if processed else 0,
        failed=int(failed.group(1)) if failed else 0,
        waits=sampler.counts,
        samples=sampler.samples,
        top=top,
        command=(f"PGOPTIONS='{env_options}' " if env_options else "") + f"pgbench {printable}",
        server_cpu_s=sampler.server_cpu_s(),
        client_cpu_s=client_cpu,
        wal_bytes=(
            wal_after - wal_before if wal_before is not None and wal_after is not None else None
        ),
    )


def _defines(w: Workload, cfg: BenchConfig, pools: dict[str, Any], tag: str) -> list[str]:
    d: dict[str, Any] = {}
    if w.name in ("create_order", "app_create_order", "single_line_random"):
        d.update(skus=cfg.skus, run=tag, k=0)
    elif w.name in ("hot_sku", "app_hot_sku"):
        d.update(hot_sku="HOT-PLAIN", run=tag, k=0)
    elif w.name in ("tracking_event", "tracking_events_batch"):
        t = pools["tracking"]
        d.update(k=0, m=t["m"], nclients=t["nclients"], run=tag)
    elif w.name == "order_timeline":
        t = pools["timeline"]
        d.update(first=t["first"], count=t["count"])
    out: list[str] = []
    for key, value in d.items():
        out += ["-D", f"{key}={value}"]
    return out


# --------------------------------------------------------------------------- the suite


@dataclass
class _Context:
    """What every run of one benchmark shares."""

    cfg: BenchConfig
    admin_dsn: str
    odb: str
    pdb: str
    jobs: int
    workdir: Path
    pgss_dsn: str | None
    pools: dict[str, Any]
    tick: Tick
    bouncer: pgbouncer.PgBouncer | None = None
    user: str = "postgres"


def _selected_workloads(cfg: BenchConfig) -> set[str]:
    """The workloads to run: all, or --only's and the references of their goals."""
    if not cfg.only:
        return set(_WORKLOAD)
    names = set(cfg.only)
    unknown = names - set(_WORKLOAD)
    if unknown:
        raise BenchError(f"unknown workload(s): {', '.join(sorted(unknown))}")
    for goal in (*GOALS, *COMPARISONS):
        if goal.workload in names:
            names.add(goal.reference)
    return names


def _plan(cfg: BenchConfig, selected: set[str], pooled: bool) -> list[RunSpec]:
    """One round's runs in order: each reference just before what it is compared with."""
    direct = [w.name for w in WORKLOADS if w.name in selected]
    rtt_pairs = [
        w for w in ("create_order", "app_create_order", "hot_sku", "app_hot_sku") if w in selected
    ]
    out: list[RunSpec] = []
    for sync in cfg.sync:
        out += [RunSpec(name, sync) for name in direct]
        for rtt in cfg.rtt_ms:
            if rtt > 0:
                out += [RunSpec(name, sync, rtt) for name in rtt_pairs]
    if pooled and "on" in cfg.sync:
        for rtt in cfg.rtt_ms:
            out += [RunSpec(name, "on", rtt, pooled=True) for name in rtt_pairs]
    return out


def _run_spec(ctx: _Context, spec: RunSpec, label: str, seconds: int) -> _Raw:
    w = _WORKLOAD[spec.workload]
    cfg = ctx.cfg
    tag = re.sub(r"[^A-Za-z0-9]+", "_", label)
    if w.builtin:
        tail = ["-b", w.builtin]
        dbname = ctx.pdb
    else:
        script = bench_dir() / str(w.script)
        if spec.rtt_ms > 0:
            rendered = ctx.workdir / f"{Path(str(w.script)).stem}.rtt{_ms(spec.rtt_ms)}ms.sql"
            rendered.write_text(render_script(script.read_text(encoding="utf-8"), spec.rtt_ms))
            script = rendered
        tail = ["-n", "-f", str(script), *_defines(w, cfg, ctx.pools, tag)]
        dbname = ctx.odb
    if spec.pooled:
        if ctx.bouncer is None:
            raise BenchError("PgBouncer is not running")
        dsn = ctx.bouncer.dsn(dbname, ctx.user)
        protocol = "extended"  # PgBouncer 1.18 keeps no prepared statements in transaction mode
    else:
        dsn = _dsn_for(ctx.admin_dsn, dbname)
        protocol = "prepared"
    options = [
        "-c synchronous_commit=off" if spec.sync == "off" else None,
        "-c pg_stat_statements.track=all" if cfg.track_all and not w.builtin else None,
    ]
    return _pgbench_run(
        admin_dsn=ctx.admin_dsn,
        dsn=dsn,
        dbname=dbname,
        argv_tail=tail,
        clients=cfg.clients,
        jobs=ctx.jobs,
        seconds=seconds,
        workdir=ctx.workdir,
        label=label,
        tick=ctx.tick,
        pgss_dsn=ctx.pgss_dsn,
        protocol=protocol,
        env_options=" ".join(x for x in options if x) or None,
    )


def _summarise(spec: RunSpec, raws: list[_Raw]) -> RunResult:
    w = _WORKLOAD[spec.workload]
    lat = sorted(x for r in raws for x in r.latencies_us)
    waits: Counter[str] = Counter()
    for r in raws:
        waits.update(r.waits)
    slots = sum(waits.values())
    top_waits = {k: round(100.0 * v / slots, 1) for k, v in waits.most_common(4) if slots}
    tps = statistics.median(r.tps for r in raws)
    done = sum(r.transactions for r in raws) * w.units
    server = [r.server_cpu_s for r in raws]
    server_cpu = (
        round(1000 * sum(s for s in server if s is not None) / done, 3)
        if done and all(s is not None for s in server)
        else None
    )
    return RunResult(
        key=spec.key,
        workload=spec.workload,
        title=w.title,
        sync=spec.sync,
        rtt_ms=spec.rtt_ms,
        pooled=spec.pooled,
        status="ok",
        tps=round(tps, 1),
        units_per_s=round(tps * w.units, 1),
        unit=w.unit,
        p50_ms=round(_percentile(lat, 50) / 1000, 2),
        p95_ms=round(_percentile(lat, 95) / 1000, 2),
        p99_ms=round(_percentile(lat, 99) / 1000, 2),
        transactions=sum(r.transactions for r in raws),
        failed=sum(r.failed for r in raws),
        rounds_tps=[round(r.tps, 1) for r in raws],
        server_cpu_ms=server_cpu,
        client_cpu_ms=round(1000 * sum(r.client_cpu_s for r in raws) / done, 3) if done else None,
        wal_bytes=(
            round(sum(r.wal_bytes for r in raws if r.wal_bytes is not None) / done)
            if done and all(r.wal_bytes is not None for r in raws)
            else None
        ),
        waits=top_waits,
        top_statements=raws[-1].top if raws else [],
        command=raws[0].command if raws else None,
    )


def _run_suite(
    ctx: _Context,
    specs: list[RunSpec],
    available: dict[str, bool],
    skipped: dict[str, str],
    commands: list[str],
    log: Log,
) -> tuple[list[RunResult], dict[tuple[str, int], _Raw]]:
    cfg = ctx.cfg
    per_round: dict[tuple[str, int], _Raw] = {}
    errors: dict[str, str] = {}
    for rnd in range(cfg.rounds):
        for spec in specs:
            if not available[spec.workload] or spec.key in errors or spec.key in skipped:
                continue
            label = f"{spec.key} r{rnd + 1}"
            log(f"round {rnd + 1}/{cfg.rounds}: {spec.key}")
            try:
                raw = _run_spec(ctx, spec, label, cfg.seconds)
            except BenchError as exc:
                errors[spec.key] = str(exc)
                log(f"{spec.key} failed: {str(exc).splitlines()[0]}")
                continue
            if rnd == 0:
                commands.append(raw.command)
            per_round[(spec.key, rnd)] = raw
    results: list[RunResult] = []
    for spec in specs:
        w = _WORKLOAD[spec.workload]
        note: str | None = None
        if not available[spec.workload]:
            status, note = "not available", "needs " + ", ".join(w.requires)
        elif spec.key in skipped:
            status, note = "skipped", skipped[spec.key]
        elif spec.key in errors:
            status, note = "failed", errors[spec.key][:2000]
        if note is not None:
            results.append(
                RunResult(
                    key=spec.key,
                    workload=spec.workload,
                    title=w.title,
                    sync=spec.sync,
                    rtt_ms=spec.rtt_ms,
                    pooled=spec.pooled,
                    status=status,
                    unit=w.unit,
                    note=note,
                )
            )
        else:
            raws = [
                per_round[(spec.key, r)] for r in range(cfg.rounds) if (spec.key, r) in per_round
            ]
            results.append(_summarise(spec, raws))
    return results, per_round


def _ratio(
    goal: Goal,
    sync: str,
    rtt: float,
    per_round: dict[tuple[str, int], _Raw],
    rounds: int,
) -> tuple[float | None, list[float]]:
    """Median over rounds of workload units/s over reference units/s (same round, same mode)."""
    w, r = _WORKLOAD[goal.workload], _WORKLOAD[goal.reference]
    ref_rtt = rtt if r.name in ("app_create_order", "app_hot_sku") else 0.0
    wkey = RunSpec(w.name, sync, rtt, goal.pooled).key
    rkey = RunSpec(r.name, sync, ref_rtt, goal.pooled).key
    ratios = []
    for rnd in range(rounds):
        a, b = per_round.get((wkey, rnd)), per_round.get((rkey, rnd))
        if a is not None and b is not None and b.tps > 0:
            ratios.append((a.tps * w.units) / (b.tps * r.units))
    if not ratios:
        return None, []
    return round(statistics.median(ratios), 3), [round(x, 3) for x in ratios]


def _row(rows: dict[str, RunResult], workload: str, sync: str, rtt: float, pooled: bool) -> Any:
    return rows.get(RunSpec(workload, sync, rtt, pooled).key)


_WAL_WAITS = ("LWLock:WALWrite", "IO:WalSync", "IO:WALSync", "IO:WalWrite", "LWLock:WALInsert")


def _diagnosis(row: RunResult) -> str:
    """What the sampled sessions of a run mostly did: WAL flushes, row locks, waiting between
    the statements of an open transaction, or running (CPU and buffer locks)."""
    waits = row.waits
    wal = sum(v for k, v in waits.items() if k in _WAL_WAITS)
    locks = sum(v for k, v in waits.items() if k.startswith("Lock:"))
    idle = waits.get("Client:idle in transaction", 0.0)
    used = ""
    if row.server_cpu_ms is not None and row.units_per_s is not None:
        cores = row.server_cpu_ms * row.units_per_s / 1000
        used = f" (its server processes used {cores:.2f} of {os.cpu_count()} CPUs)"
    if wal >= 40:
        what = f"mostly waited for commits' WAL flushes ({wal:.0f}%)"
    elif locks >= 30:
        what = f"mostly queued on row locks ({locks:.0f}%)"
    elif idle >= 30:
        what = f"mostly waited between the statements of open transactions ({idle:.0f}%)"
    else:
        what = "mostly ran on the CPU"
    return f"{row.workload}'s sampled sessions {what}{used}"


def _why(goal: Goal, sync: str, rows: dict[str, RunResult], sell: dict[str, Any] | None) -> str:
    """One line of evidence for a goal that is not met, and what would close it."""
    rtt = goal.rtt_ms
    ref_rtt = rtt if goal.reference in ("app_create_order", "app_hot_sku") else 0.0
    w = _row(rows, goal.workload, sync, rtt, goal.pooled)
    r = _row(rows, goal.reference, sync, ref_rtt, goal.pooled)
    parts: list[str] = []
    for row in (w, r):
        if row is not None and row.status != "ok":
            first = (row.note or "").strip().splitlines()
            parts.append(
                f"{row.key}: {row.status}" + (f" ({' '.join(first[:3])[:300]})" if first else "")
            )
    if w is not None and r is not None and w.status == r.status == "ok":
        unit = _WORKLOAD[goal.workload].unit
        parts.append(_diagnosis(w))
        if w.server_cpu_ms is not None and r.server_cpu_ms is not None:
            parts.append(
                f"server CPU {w.server_cpu_ms:.3f} ms per {unit} vs {r.server_cpu_ms:.3f} "
                f"for {goal.reference}"
            )
        if w.wal_bytes is not None and r.wal_bytes is not None:
            parts.append(f"WAL {w.wal_bytes:,.0f} B per {unit} vs {r.wal_bytes:,.0f}")
        if w.client_cpu_ms is not None and r.client_cpu_ms is not None:
            parts.append(f"pgbench CPU {w.client_cpu_ms:.3f} vs {r.client_cpu_ms:.3f} ms")
        if w.waits:
            parts.append(
                f"{goal.workload} waits "
                + ", ".join(f"{k} {v:.0f}%" for k, v in list(w.waits.items())[:3])
            )
        if r.waits:
            parts.append(
                f"{goal.reference} waits "
                + ", ".join(f"{k} {v:.0f}%" for k, v in list(r.waits.items())[:2])
            )
        if w.top_statements:
            s = w.top_statements[0]
            parts.append(f"top statement {s['mean_ms']} ms/call: {s['query'][:70]}")
        if w.failed:
            parts.append(f"{w.failed} failed transactions")
    if sell is not None and not sell.get("ok"):
        parts.append(
            f"sell-out: {sell['sold']} of {sell['units']} sold, oversold {sell['oversold']}, "
            f"false OD001 {sell['false_od001']}, left {sell['left_available']}"
            + (f", errors {sell['errors'][:1]}" if sell.get("errors") else "")
        )
    if goal.remedy:
        parts.append("to close: " + goal.remedy)
    return "; ".join(parts)


def _evaluate(
    goals: tuple[Goal, ...],
    cfg: BenchConfig,
    rows: list[RunResult],
    per_round: dict[tuple[str, int], _Raw],
    sellouts: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    by_key = {r.key: r for r in rows}
    out: list[dict[str, Any]] = []
    for goal in goals:
        rtts = list(cfg.rtt_ms) if goal.rtt_ms < 0 else [goal.rtt_ms]
        for rtt in rtts:
            ref_rtt = rtt if goal.reference in ("app_create_order", "app_hot_sku") else 0.0
            entry: dict[str, Any] = {
                "goal": goal.name,
                "title": goal.title
                + (f", {_ms(rtt)} ms per round trip" if goal.rtt_ms < 0 else ""),
                "workload": goal.workload,
                "reference": goal.reference_title,
                "reference_workload": goal.reference,
                "per": goal.per,
                "rtt_ms": rtt,
                "pgbouncer": goal.pooled,
                "target": f">= {goal.minimum:g}" if goal.minimum is not None else None,
                "minimum": goal.minimum,
            }
            for sync in SYNC_MODES:
                ratio, rounds = _ratio(goal, sync, rtt, per_round, cfg.rounds)
                entry[f"ratio_{sync}"] = ratio
                entry[f"rounds_{sync}"] = rounds
                met: bool | None = None
                if goal.minimum is not None and ratio is not None:
                    met = ratio >= goal.minimum
                    if goal.name == "hot_sku":
                        sell = sellouts.get(sync)
                        w = _row(by_key, goal.workload, sync, rtt, goal.pooled)
                        entry[f"sellout_{sync}"] = sell
                        met = met and sell is not None and bool(sell.get("ok"))
                        met = met and w is not None and w.failed == 0
                if goal.minimum is not None and ratio is None:
                    # a run that failed is a goal not met; a run that could not run is unknown
                    statuses = {
                        getattr(_row(by_key, name, sync, x, goal.pooled), "status", None)
                        for name, x in ((goal.workload, rtt), (goal.reference, ref_rtt))
                    }
                    met = False if "failed" in statuses else None
                entry[f"met_{sync}"] = met
            # the goals are stated for the server's default settings: the `on` column decides
            entry["met"] = entry["met_on"]
            entry["why"] = None
            if entry["met"] is False:
                entry["why"] = _why(
                    goal, "on", by_key, sellouts.get("on") if goal.name == "hot_sku" else None
                )
            out.append(entry)
    return out


# --------------------------------------------------------------------------- the benchmark


def _machine() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": os.uname().release,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def _revision() -> str | None:
    """The git commit of the checkout the scripts come from (None for a wheel)."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=bench_dir().parent,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError, BenchError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _table_health(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd,"
            "       round(100.0 * n_tup_hot_upd / nullif(n_tup_upd, 0), 1)"
            "  FROM pg_stat_user_tables"
            " WHERE schemaname = 'orderdb'"
            "   AND relname IN ('orders', 'inventory', 'order_lines', 'stock_buckets',"
            "                   'shipments', 'order_directory')"
            " ORDER BY relname"
        ).fetchall()
    return [
        {
            "table": r[0],
            "live_tuples": int(r[1]),
            "dead_tuples": int(r[2]),
            "updates": int(r[3]),
            "hot_updates": int(r[4]),
            "hot_pct": float(r[5]) if r[5] is not None else None,
        }
        for r in rows
    ]


def _drift(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
    return int(row[0]) if row else 0


def _run_events_bench(dsn: str, cfg: BenchConfig, log: Log) -> dict[str, Any] | None:
    """Figures of orderdb/bench/events.py on orderdb_bench: commit -> ``events tail`` latency,
    and create_order with the relay running vs without."""
    try:
        from orderdb.bench import events as bench_events
    except ImportError:
        return None
    log("relay benchmark (orderdb.bench.events: events tail latency, create with relay on/off)")
    try:
        result = bench_events.run(
            dsn, seconds=cfg.seconds, clients=cfg.clients, rounds=max(1, cfg.rounds)
        )
    except Exception as exc:  # another module's failure must not lose this run's figures
        return {"status": "failed", "note": f"{type(exc).__name__}: {exc}"[:2000]}
    return {"status": "ok", "result": result}


def _scale_steps(total: int) -> list[int]:
    steps = [BASE_ORDERS]
    n = BASE_ORDERS * 10
    while n < total:
        steps.append(n)
        n *= 10
    if total > BASE_ORDERS:
        steps.append(total)
    return steps


@contextlib.contextmanager
def _maybe_pgbouncer(
    cfg: BenchConfig, admin_dsn: str, wanted: bool, log: Log
) -> Iterator[tuple[pgbouncer.PgBouncer | None, dict[str, Any]]]:
    if not wanted:
        yield None, {"status": "not run", "note": "--no-pgbouncer, or no run needs it"}
        return
    if pgbouncer.find_binary() is None:
        note = (
            f"skipped: pgbouncer is not installed ({pgbouncer.DEBIAN_BINARY} not found; "
            "apt-get install pgbouncer)"
        )
        log(note)
        yield None, {"status": "skipped", "note": note}
        return
    size = cfg.pool_size or max(2, 2 * (os.cpu_count() or 1))
    try:
        with pgbouncer.running(admin_dsn, pool_size=size, max_clients=cfg.clients + 50) as pgb:
            log(f"{pgb.version} on 127.0.0.1:{pgb.port}, transaction mode, pool size {size}")
            yield (
                pgb,
                {
                    "status": "ok",
                    "version": pgb.version,
                    "binary": pgb.binary,
                    "pool_mode": "transaction",
                    "pool_size": size,
                    "protocol": "extended",
                },
            )
    except pgbouncer.PgBouncerError as exc:
        log(f"PgBouncer failed to start: {exc}")
        yield None, {"status": "skipped", "note": f"PgBouncer failed to start: {exc}"[:1000]}


def run_benchmark(cfg: BenchConfig, log: Log = _noop_log, tick: Tick = _noop_tick) -> BenchReport:
    """Prepare, run every workload beside its reference, check the hot-SKU sell-out, report."""
    if cfg.clients < 1 or cfg.seconds < 1 or cfg.rounds < 1:
        raise BenchError("clients, seconds and rounds must be positive")
    if not cfg.sync or any(s not in SYNC_MODES for s in cfg.sync):
        raise BenchError("sync must list on and/or off")
    if not cfg.rtt_ms or any(x < 0 or x > 1000 for x in cfg.rtt_ms):
        raise BenchError("rtt-ms must list values between 0 and 1000")
    jobs = cfg.jobs or max(1, min(cfg.clients, os.cpu_count() or 1))
    selected = _selected_workloads(cfg)
    machine = _machine()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    suffix = "" if cfg.dsn is None else "_" + secrets.token_hex(4)
    odb, pdb = ORDERDB_DB + suffix, PGBENCH_DB + suffix
    commands: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="orderdb-bench-"))
    try:
        with _server(cfg, log) as (admin_dsn, kind):
            odsn = _dsn_for(admin_dsn, odb)
            server: dict[str, Any] = {"kind": kind, "settings": _show(admin_dsn, REPORTED_SETTINGS)}
            if kind == "embedded":
                server["data_root"] = str(cfg.data_root or default_bench_root())
                server["port"] = conninfo_to_dict(admin_dsn).get("port")
            try:
                log(f"creating {odb}")
                _recreate_db(admin_dsn, odb)
                pools = _prepare_orderdb(odsn, cfg, log)
                if any(_WORKLOAD[n].database == "ref" for n in selected):
                    _prepare_pgbench(admin_dsn, pdb, cfg.clients, log)
                with psycopg.connect(odsn, autocommit=True) as conn:
                    available = {
                        w.name: all(_exists(conn, s) for s in w.requires) for w in WORKLOADS
                    }
                    pgss = _has_pgss(conn)
                    user_row = conn.execute("SELECT current_user").fetchone()
                pooled_wanted = (
                    cfg.pgbouncer
                    and "on" in cfg.sync
                    and any(n in selected for n in ("create_order", "hot_sku"))
                )
                with _maybe_pgbouncer(cfg, admin_dsn, pooled_wanted, log) as (bouncer, pgb_info):
                    ctx = _Context(
                        cfg=cfg,
                        admin_dsn=admin_dsn,
                        odb=odb,
                        pdb=pdb,
                        jobs=jobs,
                        workdir=workdir,
                        pgss_dsn=odsn if pgss else None,
                        pools=pools,
                        tick=tick,
                        bouncer=bouncer,
                        user=str(user_row[0]) if user_row else "postgres",
                    )
                    specs = _plan(cfg, selected, pooled=pooled_wanted)
                    skipped = {
                        s.key: str(pgb_info.get("note"))
                        for s in specs
                        if s.pooled and bouncer is None
                    }
                    rows, per_round = _run_suite(ctx, specs, available, skipped, commands, log)
                sellouts: dict[str, dict[str, Any]] = {}
                if "hot_sku" in selected and available["hot_sku"]:
                    units = cfg.sellout_units or SELLOUT_UNITS_PER_CLIENT * cfg.clients
                    for sync in cfg.sync:
                        log(
                            f"sell-out (synchronous_commit={sync}): {cfg.clients} sessions buy "
                            f"{units} units of HOT-SELLOUT-{sync.upper()}"
                        )
                        sellouts[sync] = sellout(
                            odsn,
                            sku=f"HOT-SELLOUT-{sync.upper()}",
                            units=units,
                            clients=cfg.clients,
                            sync=sync,
                        )
                goals = _evaluate(GOALS, cfg, rows, per_round, sellouts)
                comparisons = _evaluate(COMPARISONS, cfg, rows, per_round, sellouts)
                table_health = _table_health(odsn)
                drift = _drift(odsn)
                if drift:
                    raise BenchError(f"inventory drift after the benchmark: {drift} rows")
                scale = _run_scale(ctx, rows, available, log)
                events = _run_events_bench(odsn, cfg, log) if cfg.events else None
            finally:
                if not cfg.keep:
                    _drop_db(admin_dsn, odb)
                    if cfg.dsn is not None:
                        _drop_db(admin_dsn, pdb)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return BenchReport(
        started_at=started_at,
        finished_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        machine=machine,
        server=server,
        config={
            "clients": cfg.clients,
            "jobs": jobs,
            "seconds": cfg.seconds,
            "rounds": cfg.rounds,
            "orders": cfg.orders,
            "skus": cfg.skus,
            "rtt_ms": list(cfg.rtt_ms),
            "sync": list(cfg.sync),
            "pgbench_scale": cfg.clients,
            "databases": [odb, pdb],
            "revision": _revision(),
        },
        pools=pools,
        rows=rows,
        goals=goals,
        comparisons=comparisons,
        sellout=sellouts,
        pgbouncer=pgb_info,
        table_health=table_health,
        scale=scale,
        events=events,
        commands=commands,
        load_after=[round(x, 2) for x in os.getloadavg()],
    )


def _run_scale(
    ctx: _Context, rows: list[RunResult], available: dict[str, bool], log: Log
) -> list[dict[str, Any]]:
    """create_order tps and order_timeline p99 as the order tables grow (--orders N > 10k)."""
    cfg = ctx.cfg
    if cfg.orders <= BASE_ORDERS:
        return []
    by_key = {r.key: r for r in rows}
    odsn = _dsn_for(ctx.admin_dsn, ctx.odb)
    out: list[dict[str, Any]] = []
    loaded = min(cfg.orders, BASE_ORDERS)
    for step in _scale_steps(cfg.orders):
        if step > loaded:
            log(f"scale: bulk-loading orders up to {step:,}")
            t0 = time.monotonic()
            with psycopg.connect(odsn, autocommit=True) as conn:
                _bulk_orders(conn, cfg.skus, step - loaded, "cancelled")
            _vacuum(odsn)
            log(f"scale: loaded {step - loaded:,} orders in {time.monotonic() - t0:.0f} s")
            loaded = step
        entry: dict[str, Any] = {"orders": step}
        with psycopg.connect(odsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('orderdb.orders')"
                " + pg_total_relation_size('orderdb.order_lines')"
                " + pg_total_relation_size('orderdb.order_status_history')"
                " + pg_total_relation_size('orderdb.order_directory')"
            ).fetchone()
            entry["order_tables_mb"] = round(int(row[0]) / 1048576) if row else None
        for name in ("create_order", "order_timeline"):
            spec = RunSpec(name, "on")
            if not available.get(name, False):
                entry[name] = None
                continue
            done = by_key.get(spec.key)
            if step == BASE_ORDERS and done is not None and done.status == "ok":
                entry[name] = {"tps": done.tps, "p50_ms": done.p50_ms, "p99_ms": done.p99_ms}
                continue
            raw = _run_spec(ctx, spec, f"{name} scale {step}", cfg.seconds)
            lat = sorted(raw.latencies_us)
            entry[name] = {
                "tps": round(raw.tps, 1),
                "p50_ms": round(_percentile(lat, 50) / 1000, 2),
                "p99_ms": round(_percentile(lat, 99) / 1000, 2),
            }
        out.append(entry)
    return out
