"""``orderdb bench --shards``: each workload directly on a shard and through a PL/Proxy proxy
over two shards made beside the DSN's database, in the same run (orderdb/bench/shards.py)."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from orderdb.bench.shards import WORKLOADS, ShardBenchReport, ShardRow, Side, render
from orderdb.cli import main
from tests.cluster_fixtures import PLPROXY_MISSING, plproxy_available
from tests.conftest import PgServer


def test_shards_without_a_dsn_exit_2_naming_pl_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERDB_DSN", raising=False)
    monkeypatch.delenv("ORDERDB_BENCH_DSN", raising=False)
    result = CliRunner().invoke(main, ["bench", "--shards", "2"])
    assert result.exit_code == 2, result.output
    assert "PL/Proxy" in result.output
    assert "postgresql-15-plproxy" in result.output


def test_shards_table_through_the_proxy_and_directly(pg_server: PgServer, fresh_dsn: str) -> None:
    if not plproxy_available(pg_server.admin_dsn):
        pytest.skip(PLPROXY_MISSING)
    base = psycopg.conninfo.conninfo_to_dict(fresh_dsn)["dbname"]
    args = ["bench", "--dsn", fresh_dsn, "--shards", "2", "--seconds", "1", "--clients", "2"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["shards"] == 2
    assert report["machine"]["nproc"] >= 1
    assert len(report["machine"]["load_before"]) == 3
    assert report["proxy_database"] == f"{base}_bench_proxy"
    assert report["shard_databases"] == [f"{base}_bench_shard0", f"{base}_bench_shard1"]
    assert [r["workload"] for r in report["rows"]] == list(WORKLOADS)
    for row in report["rows"]:
        for side in ("direct", "proxy"):
            assert row[side]["calls"] > 0, row
            assert row[side]["errors"] == 0, row
            assert row[side]["mean_ms"] > 0
        assert row["overhead_ms"] == pytest.approx(
            row["proxy"]["mean_ms"] - row["direct"]["mean_ms"], abs=0.002
        )
        assert row["tps_ratio"] == pytest.approx(
            row["proxy"]["tps"] / row["direct"]["tps"], rel=0.01
        )
    # the databases made for the run are dropped after it
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{base}_bench_%",)
        ).fetchone()
    assert left == (0,)
    # the table: the machine, then one line per workload with overhead and tps ratio
    rows = [
        ShardRow(
            r["workload"], Side(**r["direct"]), Side(**r["proxy"]), r["overhead_ms"], r["tps_ratio"]
        )
        for r in report.pop("rows")
    ]
    lines = render(ShardBenchReport(**report, rows=rows))
    assert lines[1].startswith("machine: ") and " CPUs " in lines[1]
    assert lines[2].split() == [
        "workload",
        "direct",
        "tps",
        "proxy",
        "tps",
        "tps",
        "ratio",
        "direct",
        "ms",
        "proxy",
        "ms",
        "overhead",
        "ms",
        "errors",
    ]
    assert [ln.split()[0] for ln in lines[3:]] == list(WORKLOADS)
    assert [float(ln.split()[3]) for ln in lines[3:]] == [
        pytest.approx(r.tps_ratio, abs=0.01) for r in rows
    ]
