"""``orderdb bench``: the SQL API under pgbench, next to pgbench's own reference transactions.

One run prepares a server (a dedicated embedded PostgreSQL 18 with the settings below, or the
server of ``--dsn``), builds two databases on it — ``orderdb_bench`` (``orderdb migrate``, the
data of ``bench/load.sql``, prepared orders, the application-layer baseline schema ``bench_app``)
and ``pgbench_ref`` (``pgbench -i -s <clients>``) — and then runs, alternating reference and
orderdb, the pgbench scripts of ``bench/`` with the bundled pgbench (client and server versions
match). Every run writes pgbench's per-transaction log; tps comes from pgbench, latency
percentiles from the log. While a run lasts, a sampler counts the wait events of the benchmark's
sessions, and pg_stat_statements (preloaded on the embedded bench server) gives its top
statements: the evidence behind a missed goal.

Workloads whose SQL functions do not exist yet (``to_regprocedure``) are reported as
``not available``.
"""

from __future__ import annotations

import contextlib
import os
import re
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

from orderdb.assets import asset_dir
from orderdb.server import embedded, migrate

__all__ = [
    "BENCH_SETTINGS",
    "GOALS",
    "WORKLOADS",
    "BenchConfig",
    "BenchError",
    "BenchReport",
    "Goal",
    "RunResult",
    "Workload",
    "bench_dir",
    "run_benchmark",
]

# The embedded bench server's settings; pgbench's reference transactions and orderdb run on the
# same server with the same settings. fsync stays on (the WAL reaches the disk), commits do not
# wait for their WAL flush (synchronous_commit = off: a crash may lose the last ~0.6 s of commits,
# never consistency) so that the figures measure SQL work rather than this machine's disk.
BENCH_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",
    "synchronous_commit": "off",
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
)

ORDERDB_DB = "orderdb_bench"
PGBENCH_DB = "pgbench_ref"
BASE_ORDERS = 10_000
TRANSITION_ORDERS_PER_CLIENT = 1_000
TRACKING_ORDERS_PER_CLIENT = 20
TIMELINE_ORDERS = 500
TIMELINE_EVENTS = 5
HOT_BUCKETS = 32

WMS_CALLBACK = "orderdb.wms_callback(bigint,text,jsonb)"


class BenchError(Exception):
    """The benchmark could not prepare its server or data, or pgbench failed."""


@dataclass(frozen=True)
class Workload:
    """One pgbench run: a builtin script (reference) or a script of bench/ (orderdb)."""

    name: str
    title: str
    database: str  # "ref" (pgbench_ref) or "orderdb" (orderdb_bench)
    builtin: str | None = None
    script: str | None = None
    reference: str | None = None  # the workload its tps is divided by
    requires: tuple[str, ...] = ()  # regprocedure signatures that must exist
    pgoptions: str | None = None  # session settings of the run's connections (PGOPTIONS)


WORKLOADS: tuple[Workload, ...] = (
    Workload("tpcb-like", "pgbench tpcb-like (reference)", "ref", builtin="tpcb-like"),
    Workload(
        "create_order",
        "create_order, 3 lines, random SKUs",
        "orderdb",
        script="create_order.sql",
        reference="tpcb-like",
        requires=("orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",),
    ),
    Workload(
        "app_create_order",
        "app-layer baseline: same order as 8 statements",
        "orderdb",
        script="app_create_order.sql",
        reference="tpcb-like",
    ),
    Workload("simple-update", "pgbench simple-update (reference)", "ref", builtin="simple-update"),
    Workload(
        "transition",
        "transition_order (confirmed <-> on_hold)",
        "orderdb",
        script="transition.sql",
        reference="simple-update",
        requires=("orderdb.transition_order(bigint,text,integer,text,text,jsonb)",),
    ),
    Workload(
        "tracking_event",
        "record_tracking_event (in_transit)",
        "orderdb",
        script="tracking_event.sql",
        reference="simple-update",
        requires=(
            "orderdb.record_tracking_event(text,text,timestamptz,text,text,text,text,jsonb)",
            "orderdb.wms_callback(text,bigint,text,jsonb,text)",
        ),
    ),
    Workload("select-only", "pgbench select-only (reference)", "ref", builtin="select-only"),
    Workload(
        "order_timeline",
        "order_timeline (6 status rows + 5 carrier events)",
        "orderdb",
        script="order_timeline.sql",
        reference="select-only",
        requires=(
            "orderdb.order_timeline(bigint,bigint,text)",
            "orderdb.record_tracking_event(text,text,timestamptz,text,text,text,text,jsonb)",
            "orderdb.wms_callback(text,bigint,text,jsonb,text)",
        ),
    ),
    Workload(
        "single_line_random",
        "create_order, 1 line, random SKU",
        "orderdb",
        script="single_line_random.sql",
        reference="tpcb-like",
        requires=("orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",),
    ),
    Workload(
        "hot_sku",
        "create_order, 1 line, one hot SKU (plain row)",
        "orderdb",
        script="hot_sku.sql",
        reference="single_line_random",
        requires=("orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",),
    ),
    Workload(
        "hot_sku_bucketed",
        f"create_order, 1 line, one hot SKU ({HOT_BUCKETS} stock buckets)",
        "orderdb",
        script="hot_sku.sql",
        reference="single_line_random",
        requires=(
            "orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",
            "orderdb.set_stock_buckets(integer,text,integer,text)",
        ),
    ),
    # the flash sale with durable commits: a row lock is held until the commit's WAL flush
    Workload(
        "single_line_random_sync",
        "create_order, 1 line, random SKU, synchronous_commit=on",
        "orderdb",
        script="single_line_random.sql",
        reference="tpcb-like",
        requires=("orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",),
        pgoptions="-c synchronous_commit=on",
    ),
    Workload(
        "hot_sku_sync",
        "create_order, 1 line, one hot SKU (plain row), synchronous_commit=on",
        "orderdb",
        script="hot_sku.sql",
        reference="single_line_random_sync",
        requires=("orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",),
        pgoptions="-c synchronous_commit=on",
    ),
    Workload(
        "hot_sku_bucketed_sync",
        f"create_order, 1 line, one hot SKU ({HOT_BUCKETS} buckets), synchronous_commit=on",
        "orderdb",
        script="hot_sku.sql",
        reference="single_line_random_sync",
        requires=(
            "orderdb.create_order(bigint,integer,jsonb,text,text,jsonb)",
            "orderdb.set_stock_buckets(integer,text,integer,text)",
        ),
        pgoptions="-c synchronous_commit=on",
    ),
)


@dataclass(frozen=True)
class Goal:
    """A target from the performance issue: a ratio of two workloads, or a latency bound."""

    name: str
    workload: str
    versus: str | None  # None: a latency goal on workload
    minimum: float | None = None  # ratio >= minimum
    max_p99_ms: float | None = None


GOALS: tuple[Goal, ...] = (
    Goal("create_order >= 1.0 x tpcb-like", "create_order", "tpcb-like", minimum=1.0),
    Goal("transition >= 0.8 x simple-update", "transition", "simple-update", minimum=0.8),
    Goal("tracking event >= 0.8 x simple-update", "tracking_event", "simple-update", minimum=0.8),
    Goal("order_timeline >= 0.6 x select-only", "order_timeline", "select-only", minimum=0.6),
    Goal(
        "hot SKU (bucketed) >= 0.8 x single-line random",
        "hot_sku_bucketed",
        "single_line_random",
        minimum=0.8,
    ),
    Goal(
        "hot SKU (bucketed) >= 0.8 x single-line random, synchronous_commit=on",
        "hot_sku_bucketed_sync",
        "single_line_random_sync",
        minimum=0.8,
    ),
    Goal("create_order p99 <= 15 ms", "create_order", None, max_p99_ms=15.0),
    Goal(
        "create_order >= 2 x application-layer baseline",
        "create_order",
        "app_create_order",
        minimum=2.0,
    ),
)


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


@dataclass
class RunResult:
    """One workload's figures (medians over rounds; percentiles over every round's log)."""

    name: str
    title: str
    status: str  # "ok", "not available", "failed"
    reference: str | None = None
    tps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    transactions: int = 0
    failed: int = 0
    rounds_tps: list[float] = field(default_factory=list)
    rounds_ratio: list[float] = field(default_factory=list)
    waits: dict[str, float] = field(default_factory=dict)
    top_statements: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


@dataclass
class BenchReport:
    """Everything one ``orderdb bench`` run measured."""

    started_at: str
    machine: dict[str, Any]
    server: dict[str, Any]
    config: dict[str, Any]
    pools: dict[str, Any]
    rows: list[RunResult]
    goals: list[dict[str, Any]]
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
        "synchronous_commit": "off",
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
    """Migrate and load orderdb_bench; returns the pools (and what is available)."""
    log("orderdb migrate")
    migrate.migrate(dsn)
    pools: dict[str, Any] = {"skus": cfg.skus}
    with psycopg.connect(dsn, autocommit=True) as conn:
        log(f"loading stock: {cfg.skus} SKUs + 2 hot SKUs (receive_stock)")
        _run_file(conn, "load.sql", {"skus": str(cfg.skus)})
        _run_file(conn, "app_schema.sql", {"skus": str(cfg.skus)})
        if _exists(conn, "orderdb.set_stock_buckets(integer,text,integer,text)"):
            conn.execute("SELECT orderdb.set_stock_buckets(1, 'HOT-BUCKETED', %s)", (HOT_BUCKETS,))
            pools["hot_buckets"] = HOT_BUCKETS
        base = min(cfg.orders, BASE_ORDERS)
        if base > 0:
            log(f"bulk-loading {base} historical orders")
            _bulk_orders(conn, cfg.skus, base, "cancelled")
        pools["historical_orders"] = base
        per_client = TRANSITION_ORDERS_PER_CLIENT
        pools["transition_queue"] = []
        for rnd in range(cfg.rounds if not cfg.only or "transition" in cfg.only else 0):
            log(f"bulk-loading {cfg.clients * per_client} confirmed orders (transition pool)")
            first = _bulk_orders(conn, cfg.skus, cfg.clients * per_client, "confirmed")
            pools["transition_queue"].append(
                {"base": first, "m": per_client, "nclients": cfg.clients}
            )
            conn.execute(
                "INSERT INTO bench_app.pools VALUES (%s, %s, %s, %s)",
                (
                    f"transition-r{rnd + 1}",
                    first,
                    cfg.clients * per_client,
                    f"m={per_client} nclients={cfg.clients}",
                ),
            )
        shipping = all(
            _exists(conn, s)
            for s in (
                "orderdb.wms_callback(text,bigint,text,jsonb,text)",
                "orderdb.record_tracking_event(text,text,timestamptz,text,text,text,text,jsonb)",
            )
        )
        if shipping:
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
        drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        if drift and drift[0]:
            raise BenchError(f"the loaded data has inventory drift ({drift[0]} rows)")
        if _has_pgss(conn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _vacuum(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
    return pools


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


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_PROGRESS = re.compile(r"progress: ([0-9.]+) s, ([0-9.]+) tps")


class _WaitSampler(threading.Thread):
    """Counts (wait_event_type:wait_event | CPU) of the active sessions of one database."""

    def __init__(self, admin_dsn: str, dbname: str) -> None:
        super().__init__(daemon=True)
        self.admin_dsn = admin_dsn
        self.dbname = dbname
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                while not self._halt.wait(0.1):
                    rows = conn.execute(
                        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*)"
                        "  FROM pg_stat_activity"
                        " WHERE datname = %s AND state = 'active'"
                        "   AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                        " GROUP BY 1",
                        (self.dbname,),
                    ).fetchall()
                    self.samples += 1
                    for name, count in rows:
                        self.counts[str(name)] += int(count)
        except psycopg.Error:
            return

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


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


def _top_statements(admin_dsn: str, pgss_dsn: str | None, dbname: str) -> list[dict[str, Any]]:
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


def _pgbench_run(
    *,
    admin_dsn: str,
    dbname: str,
    argv_tail: list[str],
    clients: int,
    jobs: int,
    seconds: int,
    workdir: Path,
    label: str,
    tick: Tick,
    pgss_dsn: str | None,
    env_options: str | None = None,
) -> _Raw:
    dsn = _dsn_for(admin_dsn, dbname)
    prefix = workdir / re.sub(r"[^A-Za-z0-9_]+", "_", label)
    for old in workdir.glob(prefix.name + ".*"):
        old.unlink()
    argv = [
        str(embedded.bin_path("pgbench")),
        "-M",
        "prepared",
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
    if env_options:
        env["PGOPTIONS"] = env_options
    _checkpoint(admin_dsn)
    _reset_statements(pgss_dsn)
    sampler = _WaitSampler(admin_dsn, dbname)
    sampler.start()
    started = time.monotonic()
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
    sampler.stop()
    tick(label, time.monotonic() - started, float(seconds), None)
    top = _top_statements(admin_dsn, pgss_dsn, dbname)
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
    )


def _defines(w: Workload, cfg: BenchConfig, pools: dict[str, Any], run_tag: str) -> list[str]:
    d: dict[str, Any] = {}
    if w.name in (
        "create_order",
        "app_create_order",
        "single_line_random",
        "single_line_random_sync",
    ):
        d["skus"] = cfg.skus
    elif w.name in ("hot_sku", "hot_sku_sync"):
        d["hot_sku"] = "HOT-PLAIN"
    elif w.name in ("hot_sku_bucketed", "hot_sku_bucketed_sync"):
        d["hot_sku"] = "HOT-BUCKETED"
    elif w.name == "transition":
        t = pools["transition"]
        d.update(k=0, base=t["base"], m=t["m"], nclients=t["nclients"])
    elif w.name == "tracking_event":
        t = pools["tracking"]
        d.update(k=0, m=t["m"], nclients=t["nclients"], run=run_tag)
    elif w.name == "order_timeline":
        t = pools["timeline"]
        d.update(first=t["first"], count=t["count"])
    out: list[str] = []
    for key, value in d.items():
        out += ["-D", f"{key}={value}"]
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
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def _selected(cfg: BenchConfig) -> list[Workload]:
    if not cfg.only:
        return list(WORKLOADS)
    names = set(cfg.only)
    unknown = names - {w.name for w in WORKLOADS}
    if unknown:
        raise BenchError(f"unknown workload(s): {', '.join(sorted(unknown))}")
    by_name = {w.name: w for w in WORKLOADS}
    for name in list(names):
        ref = by_name[name].reference
        while ref is not None:
            names.add(ref)
            ref = by_name[ref].reference
    return [w for w in WORKLOADS if w.name in names]


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


def _summarise(
    w: Workload, raws: list[_Raw], ratios: list[float], note: str | None = None
) -> RunResult:
    lat = sorted(x for r in raws for x in r.latencies_us)
    waits: Counter[str] = Counter()
    slots = 0
    for r in raws:
        waits.update(r.waits)
        slots += sum(r.waits.values())
    top_waits = {k: round(100.0 * v / slots, 1) for k, v in waits.most_common(4) if slots}
    return RunResult(
        name=w.name,
        title=w.title,
        status="ok",
        reference=w.reference or w.name,
        tps=round(statistics.median(r.tps for r in raws), 1),
        p50_ms=round(_percentile(lat, 50) / 1000, 2),
        p95_ms=round(_percentile(lat, 95) / 1000, 2),
        p99_ms=round(_percentile(lat, 99) / 1000, 2),
        ratio=round(statistics.median(ratios), 3) if ratios else 1.0,
        transactions=sum(r.transactions for r in raws),
        failed=sum(r.failed for r in raws),
        rounds_tps=[round(r.tps, 1) for r in raws],
        rounds_ratio=[round(x, 3) for x in ratios],
        waits=top_waits,
        top_statements=raws[-1].top if raws else [],
        note=note,
    )


def _goals(rows: dict[str, RunResult]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for g in GOALS:
        row = rows.get(g.workload)
        other = rows.get(g.versus) if g.versus else None
        measured: float | None = None
        target = ""
        if g.max_p99_ms is not None:
            target = f"<= {g.max_p99_ms} ms"
            if row is not None and row.status == "ok":
                measured = row.p99_ms
            met = measured is not None and measured <= g.max_p99_ms
        else:
            target = f">= {g.minimum}"
            if row is not None and other is not None and row.status == other.status == "ok":
                if g.versus == row.reference:
                    measured = row.ratio
                elif row.tps and other.tps:
                    per_round = [
                        a / b for a, b in zip(row.rounds_tps, other.rounds_tps, strict=False) if b
                    ]
                    measured = round(statistics.median(per_round), 3) if per_round else None
            met = measured is not None and g.minimum is not None and measured >= g.minimum
        out.append(
            {
                "goal": g.name,
                "target": target,
                "measured": measured,
                "met": met if measured is not None else None,
            }
        )
    return out


def _run_events_bench(dsn: str, cfg: BenchConfig, log: Log) -> dict[str, Any] | None:
    """Figures of orderdb/bench/events.py (the events engineer's benchmark) on orderdb_bench:
    commit -> ``events tail`` latency, and create_order with the relay running vs without."""
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


def _events_goal(events: dict[str, Any] | None) -> dict[str, Any]:
    measured: float | None = None
    if events is not None and events.get("status") == "ok":
        ratio = events["result"].get("throughput", {}).get("ratio")
        measured = float(ratio) if ratio is not None else None
    return {
        "goal": "create_order with the relay running >= 0.9 x without",
        "target": ">= 0.9",
        "measured": measured,
        "met": None if measured is None else measured >= 0.9,
    }


def _scale_steps(total: int) -> list[int]:
    steps = [BASE_ORDERS]
    n = BASE_ORDERS * 10
    while n < total:
        steps.append(n)
        n *= 10
    if total > BASE_ORDERS:
        steps.append(total)
    return steps


def run_benchmark(cfg: BenchConfig, log: Log = _noop_log, tick: Tick = _noop_tick) -> BenchReport:
    """Prepare, run every workload (alternating with its pgbench reference) and report."""
    if cfg.clients < 1 or cfg.seconds < 1 or cfg.rounds < 1:
        raise BenchError("clients, seconds and rounds must be positive")
    jobs = cfg.jobs or max(1, min(cfg.clients, os.cpu_count() or 1))
    workloads = _selected(cfg)
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
                if any(w.database == "ref" for w in workloads):
                    _prepare_pgbench(admin_dsn, pdb, cfg.clients, log)
                with psycopg.connect(odsn, autocommit=True) as conn:
                    available = {
                        w.name: all(_exists(conn, s) for s in w.requires) for w in workloads
                    }
                    pgss = _has_pgss(conn)
                pgss_dsn = odsn if pgss else None
                rows, goals = _run_suite(
                    cfg,
                    workloads,
                    available,
                    pools,
                    admin_dsn,
                    odb,
                    pdb,
                    jobs,
                    workdir,
                    pgss_dsn,
                    commands,
                    log,
                    tick,
                )
                table_health = _table_health(odsn)
                drift = _drift(odsn)
                if drift:
                    raise BenchError(f"inventory drift after the benchmark: {drift} rows")
                scale = _run_scale(
                    cfg,
                    rows,
                    pools,
                    admin_dsn,
                    odb,
                    jobs,
                    workdir,
                    pgss_dsn,
                    available,
                    log,
                    tick,
                )
                events = _run_events_bench(odsn, cfg, log) if cfg.events else None
                goals.append(_events_goal(events))
            finally:
                if not cfg.keep:
                    _drop_db(admin_dsn, odb)
                    if cfg.dsn is not None:
                        _drop_db(admin_dsn, pdb)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return BenchReport(
        started_at=started_at,
        machine=machine,
        server=server,
        config={
            "clients": cfg.clients,
            "jobs": jobs,
            "seconds": cfg.seconds,
            "rounds": cfg.rounds,
            "orders": cfg.orders,
            "skus": cfg.skus,
            "pgbench_scale": cfg.clients,
            "databases": [odb, pdb],
        },
        pools=pools,
        rows=rows,
        goals=goals,
        table_health=table_health,
        scale=scale,
        events=events,
        commands=commands,
        load_after=[round(x, 2) for x in os.getloadavg()],
    )


def _drift(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
    return int(row[0]) if row else 0


def _run_one(
    w: Workload,
    cfg: BenchConfig,
    pools: dict[str, Any],
    admin_dsn: str,
    odb: str,
    pdb: str,
    jobs: int,
    workdir: Path,
    pgss_dsn: str | None,
    label: str,
    tick: Tick,
    seconds: int,
) -> _Raw:
    if w.name == "transition":
        # a fresh pool for every run (loaded before the runs): each client starts at k = 0 on
        # orders at version 2
        queue = pools["transition_queue"]
        if not queue:
            raise BenchError("no transition pool left for this run")
        pools["transition"] = queue.pop(0)
    if w.builtin:
        tail = ["-b", w.builtin]
        dbname = pdb
    else:
        tail = ["-n", "-f", str(bench_dir() / str(w.script)), *_defines(w, cfg, pools, label)]
        dbname = odb
    raw = _pgbench_run(
        admin_dsn=admin_dsn,
        dbname=dbname,
        argv_tail=tail,
        clients=cfg.clients,
        jobs=jobs,
        seconds=seconds,
        workdir=workdir,
        label=label,
        tick=tick,
        pgss_dsn=pgss_dsn,
        env_options=" ".join(
            x
            for x in (
                w.pgoptions,
                "-c pg_stat_statements.track=all" if cfg.track_all and not w.builtin else None,
            )
            if x
        )
        or None,
    )
    return raw


def _run_suite(
    cfg: BenchConfig,
    workloads: list[Workload],
    available: dict[str, bool],
    pools: dict[str, Any],
    admin_dsn: str,
    odb: str,
    pdb: str,
    jobs: int,
    workdir: Path,
    pgss_dsn: str | None,
    commands: list[str],
    log: Log,
    tick: Tick,
) -> tuple[list[RunResult], list[dict[str, Any]]]:
    raws: dict[str, list[_Raw]] = {w.name: [] for w in workloads}
    ratios: dict[str, list[float]] = {w.name: [] for w in workloads}
    errors: dict[str, str] = {}
    runnable = [w for w in workloads if available[w.name]]
    for rnd in range(cfg.rounds):
        for w in runnable:
            if w.name in errors:
                continue
            label = f"{w.name}-r{rnd + 1}"
            log(f"round {rnd + 1}/{cfg.rounds}: {w.title}")
            try:
                raw = _run_one(
                    w,
                    cfg,
                    pools,
                    admin_dsn,
                    odb,
                    pdb,
                    jobs,
                    workdir,
                    pgss_dsn,
                    label,
                    tick,
                    cfg.seconds,
                )
            except BenchError as exc:
                errors[w.name] = str(exc)
                log(f"{w.name} failed: {str(exc).splitlines()[0]}")
                continue
            if rnd == 0:
                commands.append(raw.command)
            raws[w.name].append(raw)
            if w.reference and raws.get(w.reference):
                ratios[w.name].append(raw.tps / raws[w.reference][-1].tps)
    results: list[RunResult] = []
    for w in workloads:
        if not available[w.name]:
            results.append(
                RunResult(
                    w.name,
                    w.title,
                    "not available",
                    reference=w.reference or w.name,
                    note="needs " + ", ".join(w.requires),
                )
            )
        elif w.name in errors:
            results.append(
                RunResult(
                    w.name,
                    w.title,
                    "failed",
                    reference=w.reference or w.name,
                    note=errors[w.name][:2000],
                )
            )
        else:
            results.append(_summarise(w, raws[w.name], ratios[w.name]))
    by_name = {r.name: r for r in results}
    return results, _goals(by_name)


def _run_scale(
    cfg: BenchConfig,
    rows: list[RunResult],
    pools: dict[str, Any],
    admin_dsn: str,
    odb: str,
    jobs: int,
    workdir: Path,
    pgss_dsn: str | None,
    available: dict[str, bool],
    log: Log,
    tick: Tick,
) -> list[dict[str, Any]]:
    """create_order tps and order_timeline p99 as the order tables grow (--orders N > 10k)."""
    if cfg.orders <= BASE_ORDERS:
        return []
    by_name = {r.name: r for r in rows}
    odsn = _dsn_for(admin_dsn, odb)
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
            w = next(x for x in WORKLOADS if x.name == name)
            if not available.get(name, False):
                entry[name] = None
                continue
            if step == BASE_ORDERS and name in by_name and by_name[name].status == "ok":
                r = by_name[name]
                entry[name] = {"tps": r.tps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
                continue
            raw = _run_one(
                w,
                cfg,
                pools,
                admin_dsn,
                odb,
                PGBENCH_DB,
                jobs,
                workdir,
                pgss_dsn,
                f"{name}-{step}",
                tick,
                cfg.seconds,
            )
            lat = sorted(raw.latencies_us)
            entry[name] = {
                "tps": round(raw.tps, 1),
                "p50_ms": round(_percentile(lat, 50) / 1000, 2),
                "p99_ms": round(_percentile(lat, 99) / 1000, 2),
            }
        out.append(entry)
    return out
