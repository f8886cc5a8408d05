"""The event-path benchmark: ``orderdb events bench``; :func:`run` is reusable by ``orderdb bench``.

Two measurements in one run, on a migrated database:

1. **commit -> ``orderdb events tail`` latency** at a fixed rate: pgbench (16 clients) calls
   ``orderdb.create_order`` at ``rate`` transactions/s (``-R``, one ``order.created`` event each)
   while a real ``orderdb events tail`` process (its own consumer, positioned at the end of the
   outbox) prints the events; a reader thread stamps every line when it arrives and subtracts the
   event's ``created_at``. ``created_at`` is ``now()`` of the writing transaction, i.e. its
   *start*, so every figure includes the transaction's own execution time: an upper bound of
   commit -> output.
2. **create_order throughput with the relay running vs not**: pgbench at full speed with
   ``clients`` connections for ``seconds``, alternating relay off / relay on (``orderdb relay``
   as a separate process, positioned at the end of the outbox) for ``rounds`` pairs; reported as
   mean(on) / mean(off) and as the median of the per-pair ratios (robust to load from elsewhere).

Orders go to warehouse 990001 (SKUs EVB-0..EVB-199, stocked on first use). The bench's consumers
are dropped at the end.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from orderdb import events as ev

WAREHOUSE = 990001
SKUS = 200

# warehouse 990001 (WAREHOUSE), skus EVB-0..EVB-199 (SKUS)
PGBENCH_SCRIPT = """\\set sku random(0, 199)
\\set cust random(1, 1000000)
SELECT order_id FROM orderdb.create_order(:cust, 990001,
    jsonb_build_array(jsonb_build_object('sku', 'EVB-' || :sku, 'quantity', 1, 'unit_price', 1)));
"""


def _pgbench() -> str:
    from orderdb.server import embedded

    return str(embedded.bin_path("pgbench"))


def _prepare(conn: psycopg.Connection[Any]) -> None:
    for i in range(SKUS):
        try:
            row = conn.execute(
                "SELECT available FROM orderdb.stock_level(%s, %s)", (WAREHOUSE, f"EVB-{i}")
            ).fetchone()
        except psycopg.Error:
            row = None  # never stocked (OD004)
        if row is None or row[0] < 10_000_000:
            conn.execute("SELECT orderdb.receive_stock(%s, %s, 100000000)", (WAREHOUSE, f"EVB-{i}"))


def _position_at_end(conn: psycopg.Connection[Any], consumer: str) -> None:
    while batch := ev.read_events(conn, consumer, 10000):
        ev.ack_events(conn, consumer, batch[-1].event_id)


def _run_pgbench(dsn: str, script: Path, args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [_pgbench(), "-n", "-f", str(script), *args, dsn],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed ({out.returncode}):\n{out.stderr}\n{out.stdout}")
    tps = re.search(r"tps = ([\d.]+)", out.stdout)
    done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    lag = re.search(r"schedule lag: avg ([\d.]+)", out.stdout)
    return {
        # with -R pgbench's latency counts from the scheduled start: subtract the schedule lag
        "latency_ms": (float(latency.group(1)) if latency else 0.0)
        - (float(lag.group(1)) if lag else 0.0),
        "tps": float(tps.group(1)) if tps else 0.0,
        "transactions": float(done.group(1)) if done else 0.0,
        "failed": float(failed.group(1)) if failed else 0.0,
    }


def _cli(dsn: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orderdb", "--dsn", dsn, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def _latency(dsn: str, script: Path, rate: int, seconds: int) -> dict[str, Any]:
    consumer = f"bench-tail-{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        _position_at_end(conn, consumer)
    tail = _cli(dsn, "events", "tail", "--consumer", consumer)
    latencies: list[float] = []
    seen = threading.Event()

    def reader() -> None:
        assert tail.stdout is not None
        for line in tail.stdout:
            arrived = time.time()
            event = json.loads(line)
            if event["payload"].get("warehouse_id") != WAREHOUSE:
                continue
            created = datetime.fromisoformat(event["created_at"]).timestamp()
            latencies.append((arrived - created) * 1000)
            seen.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        # warm-up: tail is up once it prints an order of ours
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while not seen.is_set():
                conn.execute(
                    "SELECT orderdb.create_order(1, %s, %s::jsonb)",
                    (WAREHOUSE, '[{"sku": "EVB-0", "quantity": 1, "unit_price": 1}]'),
                )
                if seen.wait(0.5) or time.monotonic() > deadline:
                    break
        latencies.clear()
        result = _run_pgbench(
            dsn, script, ["-R", str(rate), "-T", str(seconds), "-c", "16", "-j", "2"]
        )
        expected = int(result["transactions"])
        deadline = time.monotonic() + 30
        while len(latencies) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tail.send_signal(signal.SIGTERM)
        tail.wait(30)
        thread.join(5)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT orderdb.drop_consumer(%s)", (consumer,))
    values = latencies[:expected] if expected else latencies
    return {
        "target_rate": rate,
        "seconds": seconds,
        "achieved_rate": round(result["tps"], 1),
        # pgbench's mean transaction time (start -> commit seen by the client): included in the
        # figures below, which start at created_at (the transaction's start)
        "create_order_mean_ms": round(result["latency_ms"], 1),
        "events": len(values),
        "committed": expected,
        "p50_ms": round(_percentile(values, 50), 1) if values else None,
        "p95_ms": round(_percentile(values, 95), 1) if values else None,
        "p99_ms": round(_percentile(values, 99), 1) if values else None,
        "max_ms": round(max(values), 1) if values else None,
        "mean_ms": round(statistics.fmean(values), 1) if values else None,
    }


def _throughput(dsn: str, script: Path, clients: int, seconds: int, rounds: int) -> dict[str, Any]:
    off: list[float] = []
    on: list[float] = []
    catch_up: list[float] = []
    consumer = f"bench-relay-{secrets.token_hex(4)}"
    args = ["-T", str(seconds), "-c", str(clients), "-j", str(min(clients, 2))]
    try:
        for _ in range(rounds):
            off.append(_run_pgbench(dsn, script, args)["tps"])
            with psycopg.connect(dsn, autocommit=True) as conn:
                _position_at_end(conn, consumer)
            relay = _cli(dsn, "relay", "--consumer", consumer, "--no-purge")
            try:
                time.sleep(1.5)  # the relay is up and idle
                on.append(_run_pgbench(dsn, script, args)["tps"])
                started = time.monotonic()
                with psycopg.connect(dsn, autocommit=True) as conn:
                    while True:
                        row = conn.execute(
                            "SELECT pending_events FROM orderdb_ops.relay_lag WHERE consumer = %s",
                            (consumer,),
                        ).fetchone()
                        if row is None or row[0] == 0 or time.monotonic() - started > 60:
                            break
                        time.sleep(0.05)
                catch_up.append(round(time.monotonic() - started, 2))
            finally:
                relay.send_signal(signal.SIGTERM)
                relay.wait(30)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT orderdb.drop_consumer(%s)", (consumer,))
    ratio = statistics.fmean(on) / statistics.fmean(off) if off and on else None
    pairs = [b / a for a, b in zip(off, on, strict=False) if a > 0]
    return {
        "clients": clients,
        "seconds": seconds,
        "tps_without_relay": [round(x, 1) for x in off],
        "tps_with_relay": [round(x, 1) for x in on],
        "ratio": round(ratio, 3) if ratio is not None else None,
        "pair_ratios": [round(x, 3) for x in pairs],
        "median_pair_ratio": round(statistics.median(pairs), 3) if pairs else None,
        "relay_drain_after_load_s": catch_up,
    }


def _machine(dsn: str) -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    with psycopg.connect(dsn, autocommit=True) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers")
        }
    return {
        "nproc": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 1) for x in os.getloadavg()],
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **settings,
    }


def run(
    dsn: str, *, rate: int = 1000, seconds: int = 10, clients: int = 8, rounds: int = 4
) -> dict[str, Any]:
    """Run both measurements; returns a JSON-ready dict (see the module docstring)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _prepare(conn)
    load_before = [round(x, 1) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="orderdb-bench-events-") as tmp:
        script = Path(tmp) / "create_order.sql"
        script.write_text(PGBENCH_SCRIPT)
        latency = _latency(dsn, script, rate, seconds)
        throughput = _throughput(dsn, script, clients, seconds, rounds)
    return {
        "latency": latency,
        "throughput": throughput,
        "goals": {
            "p99_ms_max": 100,
            "ratio_min": 0.9,
            "p99_met": latency["p99_ms"] is not None and latency["p99_ms"] <= 100,
            "ratio_met": throughput["ratio"] is not None and throughput["ratio"] >= 0.9,
        },
        "machine": {**_machine(dsn), "loadavg_before": load_before},
    }


def print_result(result: dict[str, Any]) -> None:
    lat, thr, m = result["latency"], result["throughput"], result["machine"]
    print(
        f"commit -> events tail latency at {lat['achieved_rate']} events/s "
        f"({lat['events']} events): p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, "
        f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms"
    )
    print(
        f"create_order throughput ({thr['clients']} clients): without relay "
        f"{thr['tps_without_relay']} tps, with relay {thr['tps_with_relay']} tps, "
        f"ratio of means {thr['ratio']}, median of pair ratios {thr['median_pair_ratio']}"
    )
    print(
        f"machine: {m['nproc']} cores, {m['memory_gb']} GB; PostgreSQL {m['server_version']} "
        f"(synchronous_commit={m['synchronous_commit']}, fsync={m['fsync']}); load average "
        f"before {m['loadavg_before']}, after {m['loadavg_1_5_15']}"
    )
