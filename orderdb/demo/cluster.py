"""``orderdb demo --shards N``: the simulated shop through a cluster proxy (docs/scaling.md).

Beside the DSN's database (``DB``) the demo creates the shard databases ``DB_shard0`` ..
``DB_shard<N-1>`` and the proxy database ``DB_proxy`` (those that do not exist yet), runs
``orderdb cluster init`` on them, pins the warehouses round-robin over the shards (``orderdb
cluster map-warehouse W W%N``) and runs the shop *through the proxy*: stock received, concurrent
customers placing orders (some for more than is in stock, some retried with the same idempotency
key, the idempotency keys' homes spread over the shards), payment and the hand-over to the
warehouse (a few cancelled), the warehouse's callbacks (PICKED, PACKED, SHIPPED with a tracking
number), the carrier's scans (each sent twice: the second is a duplicate), customers signing or
returning, an express order out for delivery with the city warehouse's own courier (its
location and courier set through the proxy: ``set_warehouse_location``, ``add_courier``, then
``plan_routes``), and the customer timelines. It ends with each shard's share and checks, read
on every shard: orders by status, the ledger check, the carrier scans stored once.

Played by the demo itself, and said in the output: the warehouses' callbacks (no WMS connector
is set; ``orderdb wms-dispatch --dsn PROXY`` dispatches every shard's commands when one is) and
the carrier's scans (sent through the proxy; ``orderdb poll-carriers --dsn PROXY`` polls every
shard's parcels of a polled carrier). The tracking page and the operations board are served
with the proxy's DSN.
PL/Proxy must be installed on the server (Debian ``postgresql-15-plproxy``): the embedded
PostgreSQL 18 does not have it.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

from orderdb.client import Client
from orderdb.demo import shop

#: what the demo plays itself instead of a connector or poller, printed at its start and end
PLAYED_BY_THE_DEMO = (
    "the warehouses' callbacks (no WMS connector set; orderdb wms-dispatch --dsn PROXY "
    "dispatches every shard's commands when one is)",
    "the carrier's scans, sent through the proxy (orderdb poll-carriers --dsn PROXY polls every "
    "shard's parcels of a polled carrier)",
)
#: the carrier's scans of a parcel (carrier GENERIC takes the normalised statuses)
SCANS = ("info_received", "in_transit", "out_for_delivery", "delivered")


class ClusterDemoError(Exception):
    """The cluster cannot be made on this server (no PL/Proxy)."""


@dataclass
class ClusterDemo:
    proxy_dsn: str
    shard_dsns: list[str]
    stats: shop.DemoStats = field(default_factory=shop.DemoStats)
    scans_sent: int = 0
    scans_duplicate: int = 0
    web_url: str = ""


def _dsn_of(dsn: str, dbname: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params["dbname"] = dbname
    return make_conninfo("", **params)


def create_databases(dsn: str, shards: int) -> tuple[str, list[str]]:
    """Creates ``DB_proxy`` and ``DB_shard<k>`` beside the DSN's database (those missing);
    returns their DSNs. Raises ClusterDemoError when the server has no PL/Proxy."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_database(),"
            " EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plproxy')"
        ).fetchone()
        assert row is not None
        base, plproxy = str(row[0]), bool(row[1])
        if not plproxy:
            raise ClusterDemoError(
                "--shards needs PL/Proxy on the server (Debian postgresql-15-plproxy), which "
                "this server does not have (the embedded PostgreSQL 18 has not): give --dsn of "
                "a PostgreSQL 15 server with it"
            )
        names = [f"{base}_proxy", *(f"{base}_shard{k}" for k in range(shards))]
        for name in names:
            exists = conn.execute(
                "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _dsn_of(dsn, names[0]), [_dsn_of(dsn, n) for n in names[1:]]


def run_cluster_demo(
    dsn: str, console: Console, *, shards: int, orders: int = 300, seed: int = 7
) -> ClusterDemo:
    from orderdb.cluster import setup

    started = time.monotonic()
    rng = random.Random(seed)
    console.print(f"[bold]orderdb demo[/bold]: a simulated shop on {shards} shard(s) and a proxy")
    proxy_dsn, shard_dsns = create_databases(dsn, shards)
    console.print("orderdb cluster init (migrating the shards, preparing the proxy) ...")
    setup.init(proxy_dsn, shard_dsns)
    demo = ClusterDemo(proxy_dsn, shard_dsns)
    warehouses = shop.WAREHOUSES
    for warehouse in (*warehouses, shop.COURIER_WAREHOUSE):
        setup.map_warehouse(proxy_dsn, warehouse, warehouse % shards)
    console.print(
        f"proxy: {_dbname(proxy_dsn)}; shards: "
        + ", ".join(f"{k} {_dbname(d)}" for k, d in enumerate(shard_dsns))
        + "; warehouses: "
        + ", ".join(f"{w} on shard {w % shards}" for w in (*warehouses, shop.COURIER_WAREHOUSE)),
        markup=False,
    )
    console.print("played by the demo itself (docs/scaling.md):", markup=False)
    for line in PLAYED_BY_THE_DEMO:
        console.print(f"  - {line}", markup=False)
    from orderdb.web import start_in_thread, tracking_url

    demo.web_url = start_in_thread(proxy_dsn, "127.0.0.1", 0)
    stats = demo.stats
    with Client.connect(proxy_dsn, max_size=4) as client, shop._progress(console) as progress:
        task = progress.add_task("receiving stock", total=len(warehouses) * len(shop.SKUS))
        for warehouse in warehouses:
            for sku in shop.SKUS:
                client.receive_stock(warehouse, sku, 60, actor="demo-supplier")
                progress.advance(task)
        task = progress.add_task("customers placing orders", total=orders)
        placed = shop._place_orders(client, orders, rng, stats, lambda: progress.advance(task))
        if placed:
            first = client.get_order(min(placed)[0])
            progress.console.print(
                "tracking page (through the proxy): "
                + tracking_url(demo.web_url, first.order_no, first.customer_id),
                markup=False,
            )
            progress.console.print(
                f"operations board (through the proxy): {demo.web_url}/ops", markup=False
            )
        task = progress.add_task("payment and warehouse", total=len(placed))
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [
                pool.submit(shop._office, client, oid, ver, random.Random(oid), stats)
                for oid, ver in placed
            ]
            for fut in as_completed(futures):
                fut.result()
                progress.advance(task)
        dispatched = sorted(stats.ready_to_ship)
        task = progress.add_task("warehouse callbacks", total=len(dispatched))
        with ThreadPoolExecutor(max_workers=4) as pool:
            for fut in as_completed([pool.submit(_warehouse, client, o) for o in dispatched]):
                fut.result()
                progress.advance(task)
        task = progress.add_task("carrier scans", total=len(dispatched))
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(_carrier, client, demo, o) for o in dispatched]
            for fut in as_completed(futures):
                fut.result()
                progress.advance(task)
        task = progress.add_task("customers sign or return", total=1)
        shop._customers_sign_and_return(client, stats, rng)
        progress.advance(task)
        task = progress.add_task("express order, own courier", total=1)
        courier_order = shop._courier_delivery(client, random.Random(seed * 31), stats)
        progress.advance(task)
        progress.console.print(
            f"city courier (through the proxy): order {courier_order} of warehouse "
            f"{shop.COURIER_WAREHOUSE} out for delivery with its own courier",
            markup=False,
        )
    with Client.connect(proxy_dsn, max_size=2) as client:
        shop._timelines(client, console, dispatched)
        shop._courier_timeline(client, console, stats)
    _summary(demo, console, time.monotonic() - started)
    return demo


def _dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("dbname"))


def _tracking_number(order_id: int) -> str:
    return f"DEMO{order_id:010d}"


def _warehouse(client: Client, order_id: int) -> None:
    """The warehouse's callbacks through the proxy, as its WMS would send them."""
    for event in ("PICKED", "PACKED"):
        client.wms_callback(f"demo-{event.lower()}-{order_id}", order_id, event)
    client.wms_callback(
        f"demo-shipped-{order_id}",
        order_id,
        "SHIPPED",
        {"carrier": "GENERIC", "tracking_number": _tracking_number(order_id)},
    )


def _carrier(client: Client, demo: ClusterDemo, order_id: int) -> None:
    """The carrier's scans of the parcel through the proxy, each sent twice (a carrier repeats
    itself): the second is answered as a duplicate."""
    at = datetime.now(UTC) - timedelta(hours=len(SCANS))
    for n, scan in enumerate(SCANS):
        for _ in range(2):
            recorded = client.record_tracking_event(
                "GENERIC",
                _tracking_number(order_id),
                at + timedelta(hours=n),
                scan,
                location="Shenzhen",
                event_id=f"demo-{order_id}-{n}",
            )
            with demo.stats.lock:
                demo.scans_sent += 1
                demo.scans_duplicate += int(recorded.duplicate)


def _summary(demo: ClusterDemo, console: Console, seconds: float) -> None:
    from rich.table import Table

    stats = demo.stats
    shards = range(len(demo.shard_dsns))
    table = Table(title="orders by status and shard (read on every shard)")
    table.add_column("status")
    for k in shards:
        table.add_column(f"shard {k}", justify="right")
    by_status: dict[str, list[int]] = {}
    drift: list[int] = []
    stored_scans = 0
    for k, dsn in enumerate(demo.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for status, count in conn.execute(
                "SELECT status, count(*) FROM orderdb.orders GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall():
                by_status.setdefault(str(status), [0] * len(demo.shard_dsns))[k] = int(count)
            row = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
            drift.append(int(row[0]) if row else -1)
            # this run's parcels only: a run again adds to the same cluster
            row = conn.execute(
                "SELECT count(*) FROM orderdb.tracking_events"
                " WHERE carrier = 'GENERIC' AND tracking_number LIKE 'DEMO%%'"
                " AND order_id = ANY(%s)",
                (list(stats.ready_to_ship),),
            ).fetchone()
            stored_scans += int(row[0]) if row else 0
    for status, counts in by_status.items():
        table.add_row(status, *(str(c) for c in counts))
    console.print(table)
    console.print(
        f"this run: {stats.created} orders placed, {stats.replayed} retries answered from the "
        f"idempotency key, {stats.refused_stock} refused for lack of stock, "
        f"{stats.transitions} status changes by the shop, {stats.returns} customer returns",
        markup=False,
    )
    expected = len(SCANS) * len(stats.ready_to_ship)
    landed = (
        "[green]every scan landed exactly once, matched on its order's shard[/green]"
        if stored_scans == expected
        else f"[red]{stored_scans} scans stored, {expected} expected[/red]"
    )
    console.print(
        f"carrier scans through the proxy: {demo.scans_sent} sent, {demo.scans_duplicate} "
        f"answered as duplicates: {landed}"
    )
    console.print(
        "ledger check on every shard (orderdb_ops.inventory_drift): "
        + (
            "[green]counters equal the ledger on every shard[/green]"
            if all(d == 0 for d in drift)
            else "[red]drifting rows: "
            + ", ".join(f"shard {k} {d}" for k, d in enumerate(drift))
            + "[/red]"
        )
    )
    console.print("played by the demo itself (docs/scaling.md):", markup=False)
    for line in PLAYED_BY_THE_DEMO:
        console.print(f"  - {line}", markup=False)
    console.print(f"[bold]done[/bold] in {seconds:.1f} s")


__all__ = ["ClusterDemo", "ClusterDemoError", "create_databases", "run_cluster_demo"]
