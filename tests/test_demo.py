"""`orderdb demo` runs the whole simulated shop on a real server and ends with its summary."""

from __future__ import annotations

import subprocess
import sys

import psycopg


def test_demo_runs_the_shop_and_prints_a_summary(fresh_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orderdb", "demo", "--orders", "40", "--dsn", fresh_dsn],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "operations board: http://127.0.0.1:" in out
    assert "tracking page: http://127.0.0.1:" in out and "/track/ORD" in out
    assert "counters equal the ledger" in out
    assert "timeline of ORD" in out
    assert "simulated carrier SIM:" in out and "every scan landed exactly once" in out
    assert "done in" in out
    with psycopg.connect(fresh_dsn) as conn:
        statuses = dict(
            conn.execute("SELECT status, count(*) FROM orderdb.orders GROUP BY 1").fetchall()
        )
        drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        tracked = conn.execute("SELECT count(*) FROM orderdb.tracking_events").fetchone()
    assert sum(statuses.values()) >= 30  # a few greedy orders are refused for lack of stock
    assert statuses.get("completed", 0) + statuses.get("delivered", 0) > 0
    assert drift == (0,)
    assert tracked is not None and tracked[0] > 0
