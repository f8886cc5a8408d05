"""`orderdb wms-dispatch` and `orderdb poll-carriers` with a cluster proxy's DSN
(docs/scaling.md "Tools against the proxy"): one dispatcher / poller per shard in one process,
on the shard DSNs the proxy records; `wms-dispatch retry` finds the command's shard and
`wms-dispatch dead` lists every shard's dead commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from orderdb.integrations.carriers import Address, WaybillRequest
from orderdb.integrations.carriers.simulated import SimulatedCarrier
from tests.cluster_fixtures import Cluster, cluster  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
SKU = "SKU-WK"
ITEMS = Jsonb([{"sku": SKU, "quantity": 1, "unit_price": 1.0}])
SHIP_TO = {"name": "Li Lei", "line1": "1 Keyuan Rd", "city": "Shenzhen", "postcode": "518000"}


def orderdb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdb", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def shard_of(order_id: int) -> int:
    return (order_id - 1) % 64


def on_shard(cl: Cluster, shard: int, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(cl.shard_dsns[shard], autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def warehouse_on(cl: Cluster, warehouse: int, shard: int) -> None:
    done = orderdb("cluster", "map-warehouse", "--dsn", cl.proxy_dsn, str(warehouse), str(shard))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(cl.proxy_dsn, autocommit=True) as conn:
        conn.execute("SELECT FROM orderdb.receive_stock(%s, %s, 1000)", (warehouse, SKU))


def dispatched_orders(cl: Cluster, warehouse: int, count: int) -> list[int]:
    """``count`` orders of ``warehouse``, created and dispatched through the proxy."""
    ids = []
    with psycopg.connect(cl.proxy_dsn, autocommit=True) as conn:
        for _ in range(count):
            row = conn.execute(
                "SELECT order_id FROM orderdb.create_order(7, %s, %s, NULL, 'shop', %s)",
                (warehouse, ITEMS, Jsonb({"ship_to": SHIP_TO})),
            ).fetchone()
            assert row is not None
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (row[0],))
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (row[0],))
            ids.append(int(row[0]))
    return ids


def commands(cl: Cluster, shard: int, order_ids: list[int]) -> list[tuple[Any, ...]]:
    return on_shard(
        cl,
        shard,
        "SELECT command_id, kind, status, attempts FROM orderdb.wms_commands"
        " WHERE order_id = ANY(%s) ORDER BY command_id",
        (order_ids,),
    )


def test_wms_dispatch_once_through_the_proxy_sends_every_shards_commands_once(
    cluster: Cluster,  # noqa: F811
) -> None:
    """Orders on two shards whose warehouses use the sim WMS: one `orderdb wms-dispatch --dsn
    PROXY --once` process sends each shard's commands once; the sim's callbacks ship them."""
    by_shard = {0: 5100, 1: 5101}
    orders: dict[int, list[int]] = {}
    for shard, warehouse in by_shard.items():
        warehouse_on(cluster, warehouse, shard)
        set_wms = orderdb(
            "warehouses", "set-wms", str(warehouse), "sim", "--setting", "delay_seconds=0.02",
            "--dsn", cluster.proxy_dsn,
        )  # fmt: skip
        assert set_wms.returncode == 0, set_wms.stderr
        orders[shard] = dispatched_orders(cluster, warehouse, 3)
        assert {shard_of(o) for o in orders[shard]} == {shard}
        assert [c[2] for c in commands(cluster, shard, orders[shard])] == ["pending"] * 3
    done = orderdb("wms-dispatch", "--once", "--json", "--dsn", cluster.proxy_dsn)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["claimed"] == 6 and summary["done"] == 6 and summary["dead"] == 0
    for shard in by_shard:
        sent = commands(cluster, shard, orders[shard])
        assert [(kind, status, attempts) for _, kind, status, attempts in sent] == [
            ("create", "done", 1)
        ] * 3
        states = on_shard(
            cluster,
            shard,
            "SELECT status, orderdb.get_order(order_id) ->> 'wms_order_id'"
            " FROM orderdb.orders WHERE order_id = ANY(%s)",
            (orders[shard],),
        )
        assert all(status == "shipped" and wms.startswith("SIM-") for status, wms in states)
    # nothing left: a second run sends nothing
    again = orderdb("wms-dispatch", "--once", "--json", "--dsn", cluster.proxy_dsn)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["claimed"] == 0


def test_wms_dispatch_through_the_proxy_runs_until_sigterm(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Without --once: each shard's dispatcher sends the commands queued while it runs, log
    lines name the shard, SIGTERM stops every shard's dispatcher (exit 0)."""
    by_shard = {1: 5111, 2: 5112}
    for shard, warehouse in by_shard.items():
        warehouse_on(cluster, warehouse, shard)
        with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT FROM orderdb.set_warehouse_wms(%s, 'sim', NULL, NULL, NULL, %s)",
                (warehouse, Jsonb({"delay_seconds": 0.02})),
            )
    log = tmp_path / "dispatch.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orderdb", "wms-dispatch", "--idle", "0.05",
             "--dsn", cluster.proxy_dsn],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        orders = {shard: dispatched_orders(cluster, w, 2) for shard, w in by_shard.items()}
        deadline = time.monotonic() + 60
        while not all(
            {c[2] for c in commands(cluster, shard, ids)} == {"done"}
            for shard, ids in orders.items()
        ):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "on each of the 3 shards of the cluster" in text
    for shard in range(3):
        assert f"shard {shard}: dispatcher of shard {shard} stopped" in text
    for shard, ids in orders.items():
        assert [c[2:] for c in commands(cluster, shard, ids)] == [("done", 1)] * 2


def test_retry_and_dead_through_the_proxy_find_the_commands_shard(
    cluster: Cluster,  # noqa: F811
) -> None:
    warehouse = 5121
    warehouse_on(cluster, warehouse, 1)
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        conn.execute("SELECT FROM orderdb.set_warehouse_wms(%s, 'http')", (warehouse,))
    (order_id,) = dispatched_orders(cluster, warehouse, 1)
    ((command_id, _, _, _),) = commands(cluster, 1, [order_id])
    on_shard(cluster, 1, "SELECT FROM orderdb.claim_wms_commands('t', 1000, 60)")
    assert on_shard(
        cluster, 1, "SELECT orderdb.fail_wms_command(%s, 't', 1, 'HTTP 422', true)", (command_id,)
    ) == [("dead",)]
    dead = orderdb("wms-dispatch", "dead", "--json", "--dsn", cluster.proxy_dsn)
    assert dead.returncode == 0, dead.stderr
    rows = [r for r in json.loads(dead.stdout) if r["order_id"] == order_id]
    assert [(r["shard"], r["command_id"], r["last_error"]) for r in rows] == [
        (1, command_id, "HTTP 422")
    ]
    shown = orderdb("wms-dispatch", "dead", "--dsn", cluster.proxy_dsn)
    assert shown.returncode == 0 and "shard" in shown.stdout
    retried = orderdb(
        "wms-dispatch", "retry", str(command_id), "--json", "--dsn", cluster.proxy_dsn
    )
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {
        "shard": 1,
        "command_id": command_id,
        "kind": "create",
        "order_id": order_id,
        "warehouse_id": warehouse,
        "status": "pending",
    }
    assert [c[2] for c in commands(cluster, 1, [order_id])] == ["pending"]
    # not dead any more (exit 4, as on one database); unknown on every shard: exit 3
    again = orderdb("wms-dispatch", "retry", str(command_id), "--dsn", cluster.proxy_dsn)
    assert again.returncode == 4 and "only a dead command" in again.stderr
    unknown = orderdb("wms-dispatch", "retry", "987654321", "--dsn", cluster.proxy_dsn)
    assert unknown.returncode == 3 and "987654321 not found" in unknown.stderr


def sim_numbers(count: int, seed: int) -> list[str]:
    """Tracking numbers of waybills the simulated carrier made three days ago."""
    then = datetime.now(UTC) - timedelta(days=3)
    maker = SimulatedCarrier({"seed": seed, "clock": lambda: then})
    address = Address(name="Li Lei", line1="1 Keyuan Rd", city="Shenzhen", postal_code="518000")
    return [
        maker.create_waybill(
            WaybillRequest(order_id=i, warehouse_id=1, recipient=address)
        ).tracking_number
        for i in range(count)
    ]


def test_poll_carriers_through_the_proxy_polls_every_shards_parcels(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A SIM parcel shipped on each of two shards: one `orderdb poll-carriers --dsn PROXY
    --once` records their scans on their shards, the orders move on from shipped."""
    by_shard = {0: 5130, 2: 5132}
    numbers = iter(sim_numbers(len(by_shard), seed=11))
    orders = {}
    for shard, warehouse in by_shard.items():
        warehouse_on(cluster, warehouse, shard)
        (order_id,) = dispatched_orders(cluster, warehouse, 1)
        with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
                (
                    f"wk-ship-{order_id}",
                    order_id,
                    Jsonb({"carrier": "SIM", "tracking_number": next(numbers)}),
                ),
            )
        orders[shard] = order_id
        assert on_shard(
            cluster, shard, "SELECT status FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ) == [("shipped",)]
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"SIM": {"seed": 11, "return_rate": 0}}))
    done = orderdb(
        "poll-carriers", "--once", "--json", "--carrier", "SIM", "--config", str(config),
        "--dsn", cluster.proxy_dsn,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # every due parcel of the cluster (also those the sim WMS shipped above), each once
    assert summary["claimed"] == summary["polled"] >= 2
    assert summary["events_recorded"] > 2 and summary["carrier_errors"] == 0
    for shard, order_id in orders.items():
        ((status,),) = on_shard(
            cluster, shard, "SELECT status FROM orderdb.orders WHERE order_id = %s", (order_id,)
        )
        assert status != "shipped"
        ((scans,),) = on_shard(
            cluster,
            shard,
            "SELECT count(*) FROM orderdb.tracking_events WHERE order_id = %s",
            (order_id,),
        )
        assert scans > 0
        assert on_shard(
            cluster,
            shard,
            "SELECT p.polls, p.last_error FROM orderdb.shipment_polls p"
            " JOIN orderdb.shipments s USING (warehouse_id, shipment_id)"
            " WHERE s.order_id = %s",
            (order_id,),
        ) == [(1, None)]


def test_a_shard_that_is_down_does_not_stop_the_others(cluster: Cluster) -> None:  # noqa: F811
    """Shard 2 refuses connections: `wms-dispatch --once --dsn PROXY` sends shard 0's commands,
    then exits with the status a dispatcher on the down shard's own DSN has, its log line
    naming it; `wms-dispatch dead` lists the others' and exits with that status too."""
    warehouse = 5140
    warehouse_on(cluster, warehouse, 0)
    with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT FROM orderdb.set_warehouse_wms(%s, 'sim', NULL, NULL, NULL, %s)",
            (warehouse, Jsonb({"delay_seconds": 0.02})),
        )
    order_ids = dispatched_orders(cluster, warehouse, 2)
    down = conninfo_to_dict(cluster.shard_dsns[2])["dbname"]
    with psycopg.connect(cluster.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(down))
        )
        try:
            done = orderdb(
                "wms-dispatch", "--once", "--json", "--log-format", "json",
                "--dsn", cluster.proxy_dsn,
            )  # fmt: skip
            dead = orderdb("wms-dispatch", "dead", "--json", "--dsn", cluster.proxy_dsn)
            alone = orderdb("wms-dispatch", "--once", "--dsn", cluster.shard_dsns[2])
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(down))
            )
    assert alone.returncode == 1  # a FATAL refusal: an error, not "try again" (75)
    assert done.returncode == alone.returncode, done.stderr
    assert "is not currently accepting connections" in done.stderr
    assert [c[2:] for c in commands(cluster, 0, order_ids)] == [("done", 1)] * 2
    failed = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [r["shard"] for r in failed if r["level"] == "error"] == [2], done.stderr
    assert dead.returncode == alone.returncode, dead.stderr
    assert {r["shard"] for r in json.loads(dead.stdout)} <= {0, 1}


def test_poll_carriers_through_the_proxy_runs_until_sigterm(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Without --once: a parcel shipped on shard 1 while it runs is polled by shard 1's poller;
    SIGTERM stops every shard's poller (exit 0), each saying so in a line naming its shard."""
    warehouse = 5151
    warehouse_on(cluster, warehouse, 1)
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"SIM": {"seed": 13, "return_rate": 0}}))
    log = tmp_path / "poll.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orderdb", "poll-carriers", "--idle", "0.2", "--carrier",
             "SIM", "--config", str(config), "--worker", "wk", "--dsn", cluster.proxy_dsn],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        (order_id,) = dispatched_orders(cluster, warehouse, 1)
        with psycopg.connect(cluster.proxy_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
                (
                    f"wk-ship-{order_id}",
                    order_id,
                    Jsonb({"carrier": "SIM", "tracking_number": sim_numbers(1, seed=13)[0]}),
                ),
            )
        deadline = time.monotonic() + 60
        while on_shard(
            cluster, 1, "SELECT status FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ) == [("shipped",)]:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "polling the 3 shards of the cluster as wk/shard<N>" in text
    for shard in range(3):
        assert f"shard {shard}: poller of shard {shard} stopped" in text
    assert on_shard(
        cluster,
        1,
        "SELECT p.polls >= 1, p.claimed_by FROM orderdb.shipment_polls p"
        " JOIN orderdb.shipments s USING (warehouse_id, shipment_id) WHERE s.order_id = %s",
        (order_id,),
    ) == [(True, None)]
