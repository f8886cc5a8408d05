"""``orderdb bench --shards N``: what the cluster proxy costs per call (docs/scaling.md
"Benchmark").

Beside the DSN's database (``DB``) the benchmark makes ``DB_bench_proxy`` and
``DB_bench_shard0`` .. ``DB_bench_shard<N-1>`` afresh, runs ``orderdb cluster init`` on them
(:func:`orderdb.cluster.setup.init`, as ``orderdb demo --shards`` does), pins the benchmark's
warehouse to shard 0 and loads it (stock, confirmed orders with a few carrier events each,
shipped parcels whose tracking numbers are registered at their homes). Then each workload runs
for ``seconds`` on each side in the same run, with the same clients and the same data: directly
on shard 0 and through the proxy (which routes every call to shard 0), the sides alternating in
slices of SLICE_SECONDS (a change of the machine's load meets both alike). The difference of
the mean latencies is the proxy's overhead per call; the ratio of the tps says how much of a shard's
throughput a proxy keeps on this machine (the proxy's backends share its CPUs with the shard's).

The clients are Python threads with one autocommit connection each; their own cost is the same
on both sides. PL/Proxy must be installed on the server (Debian ``postgresql-15-plproxy``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: the workloads, in the order they run
WORKLOADS = ("create_order", "get_order", "record_tracking_event", "order_timeline", "stock_level")
#: the benchmark's warehouse (pinned to shard 0) and its SKUs
WAREHOUSE = 1
SKUS = tuple(f"BENCH-SKU-{i:03d}" for i in range(100))
#: confirmed orders read by get_order and order_timeline; shipped parcels for the carrier events
ORDERS = 200
PARCELS = 50
#: the sides of a workload alternate in slices of this many seconds
SLICE_SECONDS = 2.0
#: carrier events recorded for each of the ORDERS' shipments at load time (their timelines)
EVENTS_PER_ORDER = 3

Log = Callable[[str], None]


class ShardBenchError(Exception):
    """The benchmark cannot run on this server (no PL/Proxy, ...)."""


@dataclass
class Side:
    """One side of a workload: calls, errors, tps and latencies (ms)."""

    calls: int
    errors: int
    tps: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    first_error: str | None = None


@dataclass
class ShardRow:
    workload: str
    direct: Side
    proxy: Side
    #: mean latency through the proxy minus directly on the shard
    overhead_ms: float
    #: tps through the proxy / tps directly on the shard
    tps_ratio: float


@dataclass
class ShardBenchReport:
    shards: int
    clients: int
    seconds: float
    machine: dict[str, Any]
    server_version: str
    proxy_database: str
    shard_databases: list[str]
    started_at: str
    finished_at: str = ""
    load_after: list[float] = field(default_factory=list)
    rows: list[ShardRow] = field(default_factory=list)


def _dsn_of(dsn: str, dbname: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params["dbname"] = dbname
    return make_conninfo("", **params)


def machine() -> dict[str, Any]:
    """The machine the run is on: CPUs (cores as the OS counts them), memory, load average."""
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None
            )
    except OSError:
        pass
    memory_gb = None
    with contextlib.suppress(ValueError, OSError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": memory_gb,
        "kernel": platform.release(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def create_databases(dsn: str, shards: int, log: Log) -> tuple[str, list[str], str]:
    """(Re)creates ``DB_bench_proxy`` and ``DB_bench_shard<k>`` beside the DSN's database;
    returns their DSNs and the server's version. Raises ShardBenchError without PL/Proxy."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_database(), current_setting('server_version'),"
            " EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plproxy')"
        ).fetchone()
        assert row is not None
        base, version, plproxy = str(row[0]), str(row[1]), bool(row[2])
        if not plproxy:
            raise ShardBenchError(
                "--shards needs PL/Proxy on the server (Debian postgresql-15-plproxy), which "
                "this server does not have (the embedded PostgreSQL 18 has not): give --dsn of "
                "a PostgreSQL 15 server with it"
            )
        names = [f"{base}_bench_proxy", *(f"{base}_bench_shard{k}" for k in range(shards))]
        for name in names:
            log(f"creating database {name}")
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _dsn_of(dsn, names[0]), [_dsn_of(dsn, n) for n in names[1:]], version


def drop_databases(dsn: str, dsns: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for d in dsns:
            name = str(conninfo_to_dict(d)["dbname"])
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class _Data:
    orders: list[int]
    parcels: list[str]


def _items(rng: random.Random) -> str:
    lines = [
        f'{{"sku": "{sku}", "quantity": 1, "unit_price": 9.90}}' for sku in rng.sample(SKUS, 2)
    ]
    return "[" + ", ".join(lines) + "]"


def load(proxy_dsn: str, log: Log) -> _Data:
    """Stock, confirmed orders with carrier events, shipped parcels: through the proxy."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    orders: list[int] = []
    parcels: list[str] = []
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        for sku in SKUS:
            conn.execute("SELECT FROM orderdb.receive_stock(%s, %s, 100000000)", (WAREHOUSE, sku))
        log(f"loading {ORDERS} orders with {EVENTS_PER_ORDER} carrier events each")
        for i in range(ORDERS + PARCELS):
            row = conn.execute(
                "SELECT order_id FROM orderdb.create_order(%s, %s, %s)",
                (1000 + i, WAREHOUSE, _items(rng)),
            ).fetchone()
            assert row is not None
            order_id = int(row[0])
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            number = f"BENCH{i:08d}"
            conn.execute(
                "SELECT FROM orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
                (
                    f"bench-ship-{i}",
                    order_id,
                    f'{{"carrier": "GENERIC", "tracking_number": "{number}"}}',
                ),
            )
            for k in range(EVENTS_PER_ORDER if i < ORDERS else 1):
                conn.execute(
                    "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, %s, 'in_transit',"
                    " 'Hub', NULL, %s)",
                    (number, now - timedelta(hours=10 - k), f"bench-load-{i}-{k}"),
                )
            if i < ORDERS:
                orders.append(order_id)
            else:
                parcels.append(number)
    return _Data(orders, parcels)


def _statement(
    workload: str, data: _Data
) -> Callable[[random.Random, str], tuple[str, tuple[Any, ...]]]:
    now = datetime.now(UTC)
    counter = iter(range(1 << 62))
    lock = threading.Lock()

    def next_id() -> int:
        with lock:
            return next(counter)

    if workload == "create_order":
        return lambda rng, side: (
            "SELECT order_id FROM orderdb.create_order(%s, %s, %s)",
            (rng.randrange(1, 100000), WAREHOUSE, _items(rng)),
        )
    if workload == "get_order":
        return lambda rng, side: ("SELECT orderdb.get_order(%s)", (rng.choice(data.orders),))
    if workload == "order_timeline":
        return lambda rng, side: ("SELECT orderdb.order_timeline(%s)", (rng.choice(data.orders),))
    if workload == "stock_level":
        return lambda rng, side: (
            "SELECT * FROM orderdb.stock_level(%s, %s)",
            (WAREHOUSE, rng.choice(SKUS)),
        )
    if workload == "record_tracking_event":
        return lambda rng, side: (
            "SELECT tracking_event_id FROM orderdb.record_tracking_event('GENERIC', %s, %s,"
            " 'in_transit', 'Hub', NULL, %s)",
            (
                rng.choice(data.parcels),
                now - timedelta(seconds=rng.randrange(1, 30000)),
                f"bench-{side}-{next_id()}",
            ),
        )
    raise ValueError(f"unknown workload {workload!r}")


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


@dataclass
class _Raw:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0


def run_slice(
    conns: list[psycopg.Connection[Any]],
    statement: Callable[[random.Random, str], tuple[str, tuple[Any, ...]]],
    side: str,
    seconds: float,
    raw: _Raw,
    seed: int,
) -> None:
    """One thread per connection calling ``statement`` for ``seconds``; adds to ``raw``."""
    latencies: list[list[float]] = [[] for _ in conns]
    errors = [0] * len(conns)
    first_error: list[str] = []
    start = threading.Barrier(len(conns) + 1)
    deadline = [0.0]

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = conns[n]
        mine = latencies[n]
        start.wait()
        while True:
            query, args = statement(rng, side)
            t0 = time.perf_counter()
            if t0 >= deadline[0]:
                return
            try:
                conn.execute(query, args).fetchall()
            except psycopg.Error as exc:
                errors[n] += 1
                if not first_error:
                    first_error.append(f"{exc.sqlstate}: {exc}")
                continue
            mine.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(len(conns))]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    raw.elapsed += time.perf_counter() - began
    for lat in latencies:
        raw.latencies += lat
    raw.errors += sum(errors)
    if first_error and raw.first_error is None:
        raw.first_error = first_error[0]


def _side(raw: _Raw) -> Side:
    every = sorted(raw.latencies)
    return Side(
        calls=len(every),
        errors=raw.errors,
        tps=round(len(every) / raw.elapsed, 1) if raw.elapsed > 0 else 0.0,
        mean_ms=round(sum(every) / len(every), 3) if every else 0.0,
        p50_ms=round(_percentile(every, 50), 3),
        p99_ms=round(_percentile(every, 99), 3),
        first_error=raw.first_error,
    )


def measure(
    direct_dsn: str,
    proxy_dsn: str,
    statement: Callable[[random.Random, str], tuple[str, tuple[Any, ...]]],
    clients: int,
    seconds: float,
) -> tuple[Side, Side]:
    """``seconds`` of each side, in alternating slices (SLICE_SECONDS each, direct first) on
    connections opened and used once before (a proxy backend connects to the shards on its
    first call), so that a change of the machine's load meets both sides alike."""
    slices = max(1, round(seconds / SLICE_SECONDS))
    sides = {"direct": direct_dsn, "proxy": proxy_dsn}
    conns = {
        k: [psycopg.connect(d, autocommit=True) for _ in range(clients)] for k, d in sides.items()
    }
    raws = {k: _Raw() for k in sides}
    try:
        for side, side_conns in conns.items():
            warm = random.Random(0)
            for conn in side_conns:
                query, args = statement(warm, side)
                conn.execute(query, args).fetchall()
        for i in range(slices):
            for side in sides:
                run_slice(conns[side], statement, side, seconds / slices, raws[side], i)
    finally:
        for side_conns in conns.values():
            for conn in side_conns:
                conn.close()
    return _side(raws["direct"]), _side(raws["proxy"])


def run_shard_benchmark(
    dsn: str,
    *,
    shards: int = 2,
    clients: int = 4,
    seconds: float = 10,
    workloads: tuple[str, ...] = WORKLOADS,
    keep: bool = False,
    log: Log = lambda _msg: None,
) -> ShardBenchReport:
    """Each workload directly on shard 0 and through the proxy, in this run (module doc)."""
    from orderdb.cluster import setup

    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ShardBenchError(f"unknown workload {unknown[0]!r}: one of {', '.join(WORKLOADS)}")
    report = ShardBenchReport(
        shards=shards,
        clients=clients,
        seconds=seconds,
        machine=machine(),
        server_version="",
        proxy_database="",
        shard_databases=[],
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    proxy_dsn, shard_dsns, report.server_version = create_databases(dsn, shards, log)
    report.proxy_database = str(conninfo_to_dict(proxy_dsn)["dbname"])
    report.shard_databases = [str(conninfo_to_dict(d)["dbname"]) for d in shard_dsns]
    try:
        log("orderdb cluster init (migrating the shards, preparing the proxy)")
        setup.init(proxy_dsn, shard_dsns)
        setup.map_warehouse(proxy_dsn, WAREHOUSE, 0)
        data = load(proxy_dsn, log)
        for workload in workloads:
            statement = _statement(workload, data)
            log(
                f"{workload}: {seconds:g} s directly on shard 0 and {seconds:g} s through the proxy"
            )
            direct, through = measure(shard_dsns[0], proxy_dsn, statement, clients, seconds)
            report.rows.append(
                ShardRow(
                    workload=workload,
                    direct=direct,
                    proxy=through,
                    overhead_ms=round(through.mean_ms - direct.mean_ms, 3),
                    tps_ratio=round(through.tps / direct.tps, 3) if direct.tps else 0.0,
                )
            )
    finally:
        if not keep:
            drop_databases(dsn, [proxy_dsn, *shard_dsns])
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    report.load_after = [round(x, 2) for x in os.getloadavg()]
    return report


def render(report: ShardBenchReport) -> list[str]:
    """The report as text lines (the machine first, then one line per workload)."""
    m = report.machine
    lines = [
        f"orderdb bench --shards {report.shards}: {report.clients} clients, "
        f"{report.seconds:g} s per side per workload, {report.started_at} .. "
        f"{report.finished_at}",
        f"machine: {m['nproc']} CPUs ({m.get('cpu') or '?'}), {m.get('memory_gb')} GB, Linux "
        f"{m.get('kernel')}; load average {m['load_before']} before, {report.load_after} after; "
        f"PostgreSQL {report.server_version}; proxy {report.proxy_database}, shards "
        f"{', '.join(report.shard_databases)} (every call on shard 0)",
        f"{'workload':<22} {'direct tps':>10} {'proxy tps':>10} {'tps ratio':>9} "
        f"{'direct ms':>9} {'proxy ms':>9} {'overhead ms':>11} {'errors':>7}",
    ]
    for r in report.rows:
        lines.append(
            f"{r.workload:<22} {r.direct.tps:>10,.1f} {r.proxy.tps:>10,.1f} {r.tps_ratio:>9.2f} "
            f"{r.direct.mean_ms:>9.3f} {r.proxy.mean_ms:>9.3f} {r.overhead_ms:>11.3f} "
            f"{r.direct.errors + r.proxy.errors:>7}"
        )
    for r in report.rows:
        for side in (r.direct, r.proxy):
            if side.first_error:
                lines.append(f"{r.workload}: first error: {side.first_error}")
    return lines
