"""The exporter and the operations board through the cluster proxy (docs/scaling.md
"Operations", "Tools against the proxy"): `orderdb exporter --dsn PROXY` exports every shard's
series with a ``shard`` label, each equal to what that shard's own exporter reports;
orderdb_ops.board_snapshot on the proxy is the shards' boards combined (lane counts summed, top
orders and breaches merged oldest first, then limited); `orderdb web --dsn PROXY` serves the
board."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from orderdb.cli import main
from orderdb.ops import exporter
from orderdb.web import WebServer
from tests.cluster_fixtures import SHARDS, Cluster, cluster  # noqa: F401  (fixture)

ITEMS = '[{"sku": "SKU-OPS", "quantity": 1, "unit_price": 3.00}]'

#: warehouse -> shard; shard 2 has no warehouse of this module (an empty shard's series are 0)
WAREHOUSES = {3101: 0, 3102: 1, 3103: 1}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

#: series that are ages measured at the scrape (compared within a minute, not exactly)
AGES = frozenset(
    {
        "orderdb_sla_breach_oldest_seconds",
        "orderdb_relay_lag_seconds",
        "orderdb_wms_oldest_pending_seconds",
        "orderdb_lock_wait_max_seconds",
    }
)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def proxy(cl: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cl.proxy_dsn, autocommit=True)


def create_order(conn: psycopg.Connection[Any], warehouse: int, customer: int) -> int:
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(%s, %s, %s)", (customer, warehouse, ITEMS)
    ).fetchone()
    assert row is not None
    return int(row[0])


def age_order(cl: Cluster, order_id: int, shard: int, interval: str) -> None:
    """Moves an order's creation back (on its shard): an unpaid breach after 30 minutes."""
    with psycopg.connect(cl.shard_dsns[shard], autocommit=True) as conn:
        done = conn.execute(
            "UPDATE orderdb.orders SET created_at = now() - %s::interval WHERE order_id = %s",
            (interval, order_id),
        )
        assert done.rowcount == 1


@pytest.fixture(scope="module")
def shop(cluster: Cluster) -> dict[str, Any]:  # noqa: F811
    """Orders on shards 0 and 1 (none on shard 2): pending ones, two of them breaching unpaid
    (one per shard), confirmed ones, a shipped one with a carrier, a low stock."""
    for warehouse, shard in WAREHOUSES.items():
        pinned = run(
            "cluster", "map-warehouse", "--dsn", cluster.proxy_dsn, str(warehouse), str(shard)
        )
        assert pinned.exit_code == 0, pinned.output
    orders: dict[str, list[int]] = {"pending": [], "confirmed": [], "shipped": []}
    with proxy(cluster) as conn:
        for warehouse in WAREHOUSES:
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-OPS', 100)", (warehouse,))
        conn.execute("SELECT * FROM orderdb.receive_stock(3103, 'SKU-OPS-LOW', 3)")
        for warehouse, count in ((3101, 3), (3102, 2), (3103, 1)):
            orders["pending"] += [create_order(conn, warehouse, 40 + i) for i in range(count)]
        for warehouse in (3101, 3102):
            order_id = create_order(conn, warehouse, 50)
            conn.execute("SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            orders["confirmed"].append(order_id)
        shipped = create_order(conn, 3102, 51)
        conn.execute("SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (shipped,))
        conn.execute(
            "SELECT status FROM orderdb.wms_callback('ops-ship-1', %s, 'SHIPPED', %s)",
            (shipped, json.dumps({"carrier": "SF", "tracking_number": "SFOPS0001"})),
        )
        orders["shipped"].append(shipped)
    # the oldest pending order of each warehouse 3101 (shard 0) and 3102 (shard 1) breaches
    age_order(cluster, orders["pending"][0], 0, "2 hours")
    age_order(cluster, orders["pending"][3], 1, "1 hour")
    return orders


# -- exporter ---------------------------------------------------------------------------------


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


@pytest.fixture
def scrape_of() -> Iterator[Any]:
    """scrape_of(dsn): the samples of one scrape of an exporter on ``dsn``."""
    running: list[tuple[Any, Any, Any]] = []

    def scrape_dsn(dsn: str) -> Samples:
        connect = functools.partial(psycopg.connect, dsn, autocommit=True)
        server, thread, collector = exporter.serve(connect, host="127.0.0.1", port=0)
        running.append((server, thread, collector))
        return samples(scrape(server.server_address[1]))

    yield scrape_dsn
    for server, thread, collector in running:
        server.shutdown()
        thread.join(timeout=5)
        collector.close()


def without_shard(labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in labels if k != "shard")


def test_exporter_through_the_proxy_gives_each_shards_series(
    cluster: Cluster,  # noqa: F811
    shop: dict[str, Any],
    scrape_of: Any,
) -> None:
    on_proxy = scrape_of(cluster.proxy_dsn)
    on_shards = [scrape_of(dsn) for dsn in cluster.shard_dsns]
    assert on_proxy["orderdb_up", ()] == 1
    assert all(s["orderdb_up", ()] == 1 for s in on_shards)
    assert not any(name == "orderdb_exporter_view_errors" for name, _ in on_proxy)
    # every series of the proxy but orderdb_up has a shard label; no shard's own series has one
    for (name, labels), _ in on_proxy.items():
        shard_labels = [v for k, v in labels if k == "shard"]
        assert shard_labels == ([] if name == "orderdb_up" else [shard_labels[0]]), name
    for scraped in on_shards:
        assert not any("shard" in dict(labels) for _, labels in scraped)
    # the proxy's series of shard k are exactly shard k's exporter's series, with equal values
    for shard, scraped in enumerate(on_shards):
        mine = {
            (name, without_shard(labels)): value
            for (name, labels), value in on_proxy.items()
            if ("shard", str(shard)) in labels
        }
        theirs = {key: value for key, value in scraped.items() if key[0] != "orderdb_up"}
        assert mine.keys() == theirs.keys(), f"shard {shard}"
        for key, value in theirs.items():
            if key[0] in AGES:
                assert abs(mine[key] - value) < 60, (shard, key)
            elif value == value:  # NaN (a KPI without sample) equals nothing
                assert mine[key] == value, (shard, key)
            else:
                assert mine[key] != mine[key], (shard, key)
    # what the shop put on the shards, per shard and summed
    pending = [
        on_proxy["orderdb_orders", (("shard", str(k)), ("status", "pending"))]
        for k in range(SHARDS)
    ]
    assert pending == [3, 3, 0]
    assert sum(pending) == len(shop["pending"])
    confirmed = sum(
        on_proxy["orderdb_orders", (("shard", str(k)), ("status", "confirmed"))]
        for k in range(SHARDS)
    )
    assert confirmed == len(shop["confirmed"])
    unpaid = [
        on_proxy[
            "orderdb_sla_breaches", (("level", "warning"), ("rule", "unpaid"), ("shard", str(k)))
        ]
        for k in range(SHARDS)
    ]
    assert unpaid == [1, 1, 0]
    oldest = [
        on_proxy["orderdb_sla_breach_oldest_seconds", (("rule", "unpaid"), ("shard", str(k)))]
        for k in range(SHARDS)
    ]
    assert 2 * 3600 - 1800 < oldest[0] < 2 * 3600 + 60  # unpaid breaches 30 minutes in
    assert 3600 - 1800 < oldest[1] < 3600 + 60
    assert oldest[2] == 0
    low = [
        on_proxy["orderdb_low_stock_skus", (("level", "warning"), ("shard", str(k)))]
        + on_proxy["orderdb_low_stock_skus", (("level", "critical"), ("shard", str(k)))]
        for k in range(SHARDS)
    ]
    assert low[1] >= 1 and low[0] == low[2] == 0
    # the per-database gauges come from each shard's database
    for k in range(SHARDS):
        assert ("orderdb_notification_queue_usage_ratio", (("shard", str(k)),)) in on_proxy


def test_the_exporter_command_runs_against_the_proxy(
    cluster: Cluster,  # noqa: F811
    shop: dict[str, Any],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderdb",
            "--dsn",
            cluster.proxy_dsn,
            "exporter",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                text = scrape(port)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        got = samples(text)
        assert got["orderdb_up", ()] == 1
        assert got["orderdb_orders", (("shard", "0"), ("status", "pending"))] == 3
        assert got["orderdb_orders", (("shard", "2"), ("status", "pending"))] == 0
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"does not run against a cluster proxy" not in out


# -- the operations board ---------------------------------------------------------------------


def board(dsn: str, *args: Any) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE orderdb_ops")
        placeholders = ", ".join(["%s"] * len(args))
        row = conn.execute(f"SELECT orderdb_ops.board_snapshot({placeholders})", args).fetchone()
    assert row is not None
    return dict(row[0])


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def without_age(order: dict[str, Any]) -> dict[str, Any]:
    """A top order without its age (the shards' and the proxy's reads are moments apart) and with
    its times as instants (the proxy's session may print another time zone)."""
    return {
        k: (moment(v) if k in ("created_at", "stage_since") else v)
        for k, v in order.items()
        if k not in ("age_seconds", "stages")
    }


def combined(parts: list[dict[str, Any]], per_lane: int, limit: int) -> dict[str, Any]:
    """What one database would show of the shards' orders, from the shards' own boards."""
    lanes: dict[str, dict[str, Any]] = {}
    for part in parts:
        for lane in part["lanes"]:
            into = lanes.setdefault(
                lane["status"],
                {"status": lane["status"], "position": lane["position"], "orders": 0,
                 "critical": 0, "warning": 0, "top": []},
            )  # fmt: skip
            for key in ("orders", "critical", "warning"):
                into[key] += lane[key]
            into["top"] += lane["top"]
    for lane in lanes.values():
        lane["top"] = [
            without_age(o)
            for o in sorted(lane["top"], key=lambda o: (moment(o["created_at"]), o["order_id"]))
        ][:per_lane]
    breaches = sorted(
        (b for part in parts for b in part["breaches"]),
        key=lambda b: (moment(b["breached_since"]), b["order_id"], b["rule"]),
    )[:limit]
    return {
        "lanes": sorted(lanes.values(), key=lambda lane: lane["position"]),
        "breaches": [(b["order_id"], b["rule"], b["level"]) for b in breaches],
        "warehouses": sorted({w for part in parts for w in part["warehouses"]}),
        "carriers": sorted({c for part in parts for c in part["carriers"]}),
    }


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "lanes": [
            {**{k: v for k, v in lane.items()}, "top": [without_age(o) for o in lane["top"]]}
            for lane in doc["lanes"]
        ],
        "breaches": [(b["order_id"], b["rule"], b["level"]) for b in doc["breaches"]],
        "warehouses": doc["warehouses"],
        "carriers": doc["carriers"],
    }


@pytest.mark.parametrize(
    ("args", "per_lane", "limit"),
    [
        ((), 20, 50),
        ((None, None, 1, 1), 1, 1),  # the limits apply to the merged lists
        ((3102, None, 20, 50), 20, 50),
        ((None, "SF", 20, 50), 20, 50),
    ],
)
def test_the_board_through_the_proxy_is_the_shards_boards_combined(
    cluster: Cluster,  # noqa: F811
    shop: dict[str, Any],
    args: tuple[Any, ...],
    per_lane: int,
    limit: int,
) -> None:
    parts = [board(dsn, *args) for dsn in cluster.shard_dsns]
    whole = board(cluster.proxy_dsn, *args)
    assert set(whole) == set(parts[0])  # the document of one database
    assert comparable(whole) == combined(parts, per_lane, limit)
    assert (whole["warehouse_id"], whole["carrier"], whole["per_lane"]) == (
        (args or (None, None, 20))[:3]
    )
    # the latest of the shards' reads (made after the shards' own boards here)
    assert moment(whole["read_at"]) >= max(moment(p["read_at"]) for p in parts)
    lanes = {lane["status"]: lane for lane in whole["lanes"]}
    if not args:
        assert lanes["pending"]["orders"] == len(shop["pending"])
        assert lanes["pending"]["warning"] == 2
        assert lanes["confirmed"]["orders"] == len(shop["confirmed"])
        assert [o["order_id"] for o in lanes["pending"]["top"]][:2] == [
            shop["pending"][0],
            shop["pending"][3],
        ]  # the oldest first, across shards
        assert {3101, 3102, 3103} <= set(whole["warehouses"])
    elif args[0] == 3102:
        assert lanes["pending"]["orders"] == 2
        assert {o["warehouse_id"] for o in lanes["pending"]["top"]} == {3102}
    elif args[1] == "SF":
        assert [lane["status"] for lane in whole["lanes"]] == ["shipped"]
        assert [o["order_id"] for o in lanes["shipped"]["top"]] == shop["shipped"]
    else:
        assert all(len(lane["top"]) <= 1 for lane in whole["lanes"])
        assert len(whole["breaches"]) == 1
        assert lanes["pending"]["orders"] == len(shop["pending"])


@pytest.mark.parametrize(
    ("args", "field"),
    [((0,), "warehouse_id"), ((None, None, 0), "per_lane"), ((None, None, 20, 501), "limit")],
)
def test_the_board_through_the_proxy_refuses_what_one_database_refuses(
    cluster: Cluster,  # noqa: F811
    args: tuple[Any, ...],
    field: str,
) -> None:
    errors = []
    for dsn in (cluster.shard_dsns[0], cluster.proxy_dsn):
        with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
            board(dsn, *args)
        errors.append((caught.value.diag.message_primary, caught.value.diag.message_detail))
    assert errors[0] == errors[1]
    assert field in str(errors[1][0])


def test_only_the_proxys_role_may_read_a_shards_board(cluster: Cluster) -> None:  # noqa: F811
    """The shard side of the board runs with its owner's rights: the proxy's role alone may call
    it (an application's role may not read the operations board through it)."""
    fn = "orderdb_shard.ops_board_snapshot(integer, text, integer, integer)"
    with psycopg.connect(cluster.shard_dsns[1], autocommit=True) as conn:
        allowed = {
            role: conn.execute(
                "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, fn)
            ).fetchone()
            for role in ("orderdb_proxy", "orderdb_app", "orderdb_ingest", "orderdb_ops")
        }
        assert {role: row[0] for role, row in allowed.items() if row is not None} == {
            "orderdb_proxy": True,
            "orderdb_app": False,
            "orderdb_ingest": False,
            "orderdb_ops": False,
        }
        conn.execute("SET ROLE orderdb_proxy")
        row = conn.execute(
            "SELECT shard, err_sqlstate FROM orderdb_shard.ops_board_snapshot(NULL, NULL, 20, 50)"
        ).fetchone()
        assert row == (1, None)
        row = conn.execute(
            "SELECT err_sqlstate FROM orderdb_shard.ops_board_snapshot(0, NULL, 20, 50)"
        ).fetchone()
        assert row == ("22023",)  # an error as data


def test_the_web_board_through_the_proxy(cluster: Cluster, shop: dict[str, Any]) -> None:  # noqa: F811
    with (
        WebServer(cluster.proxy_dsn, port=0, poll_interval=0.2, board_ttl=0.0) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        assert http.get("/healthz").status_code == 200
        doc = http.get("/api/ops")
        assert doc.status_code == 200, doc.text
        body = doc.json()
        assert body["snapshot_error"] is None
        lanes = {lane["status"]: lane for lane in body["snapshot"]["lanes"]}
        assert lanes["pending"]["orders"] == len(shop["pending"])
        assert lanes["confirmed"]["orders"] == len(shop["confirmed"])
        assert body["kpis"]["error"] is None
        # one KPI row per metric and shard, each naming its shard
        assert {r["shard"] for r in body["kpis"]["rows"]} == set(range(SHARDS))
        assert body["low_stock"]["error"] is None
        assert any(r["sku"] == "SKU-OPS-LOW" for r in body["low_stock"]["rows"])
        page = http.get("/ops")
        assert page.status_code == 200
        for order_id in shop["pending"][:2]:
            order = next(o for o in lanes["pending"]["top"] if o["order_id"] == order_id)
            assert order["order_no"] in page.text
        assert f'title="orders in this stage">{len(shop["pending"])}<' in page.text
        assert "shard 2" in page.text
        wh = http.get("/api/ops", params={"warehouse": 3101}).json()["snapshot"]
        assert {lane["status"]: lane["orders"] for lane in wh["lanes"]} == {
            "pending": 3,
            "confirmed": 1,
        }
