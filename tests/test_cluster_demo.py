"""`orderdb demo --shards 3` runs the simulated shop through a cluster proxy over three shard
databases it creates beside the DSN's database, and says what does not go through the proxy."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.cluster_fixtures import PLPROXY_MISSING, plproxy_available
from tests.conftest import PgServer


@pytest.fixture
def demo_dsn(pg_server: PgServer, fresh_dsn: str) -> Iterator[str]:
    """A fresh database; the demo's proxy and shard databases beside it are dropped after."""
    if not plproxy_available(pg_server.admin_dsn):
        pytest.skip(PLPROXY_MISSING)
    base = str(conninfo_to_dict(fresh_dsn)["dbname"])
    try:
        yield fresh_dsn
    finally:
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            for name in [f"{base}_proxy", *(f"{base}_shard{k}" for k in range(3))]:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def _demo(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdb", "demo", "--orders", "40", "--shards", "3", "--dsn", dsn],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_demo_runs_the_shop_through_a_proxy_over_three_shards(demo_dsn: str) -> None:
    result = _demo(demo_dsn)
    out = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stderr + result.stdout
    base = str(conninfo_to_dict(demo_dsn)["dbname"])
    assert f"proxy: {base}_proxy; shards: 0 {base}_shard0, 1 {base}_shard1, 2 {base}_shard2" in out
    assert "warehouses: 1 on shard 1, 2 on shard 2, 3 on shard 0, 4 on shard 1" in out
    # what the demo plays itself is said, at the start and in the summary
    assert out.count("played by the demo itself (docs/scaling.md):") == 2
    assert "orderdb wms-dispatch --dsn PROXY dispatches every shard's commands" in out
    assert "tracking page (through the proxy): http://127.0.0.1:" in out
    assert "operations board (through the proxy): http://127.0.0.1:" in out
    assert "every scan landed exactly once, matched on its order's shard" in out
    # the city warehouse's own courier, set up through the proxy (owner functions)
    courier = re.search(r"city courier \(through the proxy\): order (\d+) of warehouse 4", out)
    assert courier, out
    assert "add_courier" not in out
    assert "counters equal the ledger on every shard" in out
    assert "timeline of ORD" in out and "done in" in out
    placed = re.search(r"this run: (\d+) orders placed, (\d+) retries answered", out)
    assert placed, out

    # every shard holds orders of its warehouse, and only of its warehouse
    proxy_dsn = make_conninfo(demo_dsn, dbname=f"{base}_proxy")
    total = 0
    for k in range(3):
        shard_dsn = make_conninfo(demo_dsn, dbname=f"{base}_shard{k}")
        with psycopg.connect(shard_dsn) as conn:
            rows = conn.execute(
                "SELECT warehouse_id, count(*) FROM orderdb.orders GROUP BY 1"
            ).fetchall()
            drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        assert rows and all(w % 3 == k for w, _ in rows), (k, rows)
        assert drift == (0,)
        total += sum(n for _, n in rows)
    assert total == int(placed[1]) + 1  # the customers' orders and the courier's
    shard1 = make_conninfo(demo_dsn, dbname=f"{base}_shard1")
    with psycopg.connect(shard1) as conn:
        on_route = conn.execute(
            "SELECT o.warehouse_id,"
            " (SELECT count(*) FROM orderdb.couriers c WHERE c.warehouse_id = o.warehouse_id),"
            " (SELECT count(*) FROM orderdb.route_stops r WHERE r.order_id = o.order_id)"
            " FROM orderdb.orders o WHERE o.order_id = %s",
            (int(courier[1]),),
        ).fetchone()
    assert on_route == (4, 1, 1)  # on shard 1, with its courier, on a route
    with psycopg.connect(proxy_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orderdb_cluster.shards").fetchone() == (3,)

    # a second run on the same databases finds its cluster and adds to it
    again = _demo(demo_dsn)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "counters equal the ledger on every shard" in " ".join(again.stdout.split())


def test_demo_run_again_adds_to_the_cluster_and_checks_its_own_scans(demo_dsn: str) -> None:
    """Run again, the demo adds to the same cluster; its scan check counts this run's parcels
    (the first run's scans are stored too, and are not this run's)."""
    for _ in range(2):
        result = _demo(demo_dsn)
        out = " ".join(result.stdout.split())
        assert result.returncode == 0, result.stderr + result.stdout
        assert "every scan landed exactly once, matched on its order's shard" in out, out
        assert "counters equal the ledger on every shard" in out
