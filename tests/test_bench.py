"""Smoke test of `orderdb bench` (the benchmark itself measures speed; nothing here is timed).

Runs the whole benchmark in its quick mode (1 s per run, 2 clients) on the test server and checks
the structure of the JSON report: every planned run, a goals table with a ratio in both
synchronous_commit columns for every goal whose SQL functions exist, a met / not met verdict and
an explanation for every goal not met, the hot-SKU sell-out, the application-baseline comparisons
at 0 and 1 ms per round trip, directly and through PgBouncer when it is installed. And that the
emulated network puts one \\sleep after every round trip of a script.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg

from orderdb.bench import COMPARISONS, GOALS, WORKLOADS, bench_dir, render_script
from orderdb.bench.pgbouncer import find_binary


def _exists(dsn: str, signatures: tuple[str, ...]) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return all(
            conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (s,)).fetchone() == (True,)
            for s in signatures
        )


def test_render_script_sleeps_after_every_round_trip():
    text = (bench_dir() / "app_create_order.sql").read_text()
    assert render_script(text, 0) == text
    rendered = render_script(text, 1).splitlines()
    sql_ends = [
        i
        for i, line in enumerate(rendered)
        if line.strip()
        and not line.lstrip().startswith(("--", "\\"))
        and line.rstrip().endswith((";", "\\gset"))
    ]
    # 9 round trips on the path of a new order, 2 on a replayed key, 1 when the stock is short
    assert len(sql_ends) == 12
    for i in sql_ends:
        assert rendered[i + 1] == "\\sleep 1000 us", rendered[i - 1 : i + 2]
    assert sum(line.startswith("\\sleep") for line in rendered) == 12
    one_call = render_script((bench_dir() / "create_order.sql").read_text(), 2.5)
    assert one_call.count("\\sleep 2500 us") == 1


def test_bench_quick_json_has_the_goals_table(pg_server, db_dsn):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orderdb",
            "bench",
            "--json",
            "--quick",
            "--dsn",
            pg_server.admin_dsn,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["config"]["rtt_ms"] == [0.0, 1.0]
    assert report["config"]["sync"] == ["on", "off"]
    assert report["config"]["clients"] == 2 and report["config"]["seconds"] == 1
    rows = {r["key"]: r for r in report["rows"]}
    pooled = find_binary() is not None
    assert report["pgbouncer"]["status"] == ("ok" if pooled else "skipped"), report["pgbouncer"]
    available = {w.name: _exists(db_dsn, w.requires) for w in WORKLOADS}
    for sync in ("on", "off"):
        for w in WORKLOADS:
            key = f"{w.name} sync={sync}"
            assert key in rows, sorted(rows)
        for name in ("create_order", "app_create_order", "hot_sku", "app_hot_sku"):
            assert f"{name} rtt=1ms sync={sync}" in rows
    for name in ("create_order", "app_create_order", "hot_sku", "app_hot_sku"):
        for key in (f"{name} pgbouncer sync=on", f"{name} rtt=1ms pgbouncer sync=on"):
            if not available[name]:
                assert rows[key]["status"] == "not available"
            elif pooled:
                assert rows[key]["status"] == "ok", rows[key]
            else:
                assert rows[key]["status"] == "skipped" and "pgbouncer" in rows[key]["note"]
    for row in rows.values():
        if not available[row["workload"]]:
            assert row["status"] == "not available", row
            continue
        if row["status"] == "skipped":
            continue
        assert row["status"] == "ok", row
        assert row["tps"] > 0 and row["transactions"] > 0, row
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], row
        assert "pgbench -M " in row["command"], row
        if row["workload"] == "tracking_events_batch":
            assert abs(row["units_per_s"] - 100 * row["tps"]) <= 10, row

    # the goals table: every goal, a ratio in both columns, a verdict and, when not met, why
    goals = report["goals"]
    assert [g["goal"] for g in goals] == [g.name for g in GOALS]
    for goal, entry in zip(GOALS, goals, strict=True):
        assert entry["target"] == f">= {goal.minimum:g}"
        needed = available[goal.workload] and available[goal.reference]
        if not needed:
            assert entry["met"] is None, entry
            continue
        for sync in ("on", "off"):
            assert entry[f"ratio_{sync}"] is not None and entry[f"ratio_{sync}"] > 0, entry
            assert isinstance(entry[f"met_{sync}"], bool), entry
        assert entry["met"] is entry["met_on"]
        assert (entry["why"] is not None) == (entry["met"] is False), entry
        if entry["met"] is False:
            assert "to close:" in entry["why"], entry
    hot = next(g for g in goals if g["goal"] == "hot_sku")
    if available["hot_sku"]:
        for sync in ("on", "off"):
            sell = report["sellout"][sync]
            assert sell["units"] == 40 and sell["clients"] == 2
            assert set(sell) >= {"sold", "oversold", "od001", "false_od001", "left_available", "ok"}
            assert hot[f"sellout_{sync}"] == sell
    # the application baseline at every round-trip time, directly and through PgBouncer
    comparisons = report["comparisons"]
    assert len(comparisons) == 2 * len(COMPARISONS)
    for c in comparisons:
        assert c["met"] is None and c["target"] is None
        if available[c["workload"]] and (pooled or not c["pgbouncer"]):
            assert c["ratio_on"] is not None, c
    # the benchmark's databases are gone, and it left no inventory drift (checked inside)
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY (%s)",
            (report["config"]["databases"],),
        ).fetchall()
    assert left == []


def test_bench_prints_the_goals_table_last(pg_server, tmp_path):
    saved = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orderdb",
            "bench",
            "--quick",
            "--only",
            "create_order",
            "--sync",
            "on",
            "--rtt-ms",
            "0",
            "--no-pgbouncer",
            "--json-file",
            str(saved),
            "--dsn",
            pg_server.admin_dsn,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    goals_at = out.index("goals (ratio")
    for goal in GOALS:
        assert goal.title in out[goals_at:], goal.title
    # create_order against tpcb-like was measured: its row has a ratio and a verdict
    line = next(ln for ln in out[goals_at:].splitlines() if "create_order, 3 lines" in ln)
    assert " met " in line or "not met" in line, line
    assert "n/a" in next(ln for ln in out[goals_at:].splitlines() if "a batch of 100" in ln)
    # --json-file: the same report as --json, beside the printed tables
    report = json.loads(saved.read_text())
    assert [g["goal"] for g in report["goals"]] == [g.name for g in GOALS]
    assert report["pgbouncer"]["status"] == "not run"


def test_without_pgbouncer_the_pooled_runs_are_skipped_with_a_message(monkeypatch):
    from orderdb.bench import pgbouncer, runner

    monkeypatch.setattr(pgbouncer, "find_binary", lambda: None)
    said: list[str] = []
    cfg = runner.BenchConfig()
    with runner._maybe_pgbouncer(cfg, "host=/nowhere", True, said.append) as (bouncer, info):
        assert bouncer is None
        assert info["status"] == "skipped"
        assert "pgbouncer is not installed" in info["note"]
    assert said == [info["note"]]
    with runner._maybe_pgbouncer(cfg, "host=/nowhere", False, said.append) as (bouncer, info):
        assert bouncer is None and info["status"] == "not run"
    # the plan has no pooled runs when PgBouncer is not wanted, four per round-trip time else
    names = set(runner._WORKLOAD)
    assert not any(s.pooled for s in runner._plan(cfg, names, pooled=False))
    pooled = [s.key for s in runner._plan(cfg, names, pooled=True) if s.pooled]
    assert pooled == [
        f"{w}{rtt} pgbouncer sync=on"
        for rtt in ("", " rtt=1ms")
        for w in ("create_order", "app_create_order", "hot_sku", "app_hot_sku")
    ]
