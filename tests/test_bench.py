"""Smoke test of `orderdb bench` (the benchmark itself measures speed; nothing here is timed).

Runs the whole benchmark for 1 s per workload with 2 clients on the test server and checks that
the JSON report has every workload, each with tps > 0 and a ratio to its reference, once the SQL
functions it drives exist in the migrated schema.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg

from orderdb.bench import GOALS, WORKLOADS


def _exists(dsn: str, signatures: tuple[str, ...]) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return all(
            conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (s,)).fetchone() == (True,)
            for s in signatures
        )


def test_bench_json_has_every_workload_with_tps_and_ratio(pg_server, db_dsn):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orderdb",
            "bench",
            "--json",
            "--dsn",
            pg_server.admin_dsn,
            "--seconds",
            "1",
            "--clients",
            "2",
            "--orders",
            "1000",
            "--skus",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == [w.name for w in WORKLOADS]
    for w in WORKLOADS:
        row = rows[w.name]
        if not _exists(db_dsn, w.requires):
            assert row["status"] == "not available", row
            continue
        assert row["status"] == "ok", row
        assert row["tps"] > 0, row
        assert row["ratio"] is not None and row["ratio"] > 0, row
        assert row["reference"] == (w.reference or w.name)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], row
        assert row["transactions"] > 0 and row["failed"] == 0, row
    assert [g["goal"] for g in report["goals"]][: len(GOALS)] == [g.name for g in GOALS]
    assert report["config"]["pgbench_scale"] == 2
    assert report["machine"]["nproc"] >= 1
    # the benchmark's databases are gone, and it left no inventory drift (checked inside)
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY (%s)",
            (report["config"]["databases"],),
        ).fetchall()
    assert left == []
