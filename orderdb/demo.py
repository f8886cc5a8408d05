"""``orderdb demo``: a simulated shop on the configured server (the embedded one by default).

Steps: migrate; receive stock in three warehouses; place orders from several concurrent
customers (some on purpose for more than is in stock, some retried with the same idempotency key);
walk every order through its life (payment, warehouse, carrier) with a few cancellations and
holds; then print a summary read back from the database: orders by status, stock, the ledger
check, and the events waiting in the outbox. Each step shows its progress.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orderdb import errors, migrate
from orderdb.client import Client

WAREHOUSES = (1, 2, 3)
SKUS = tuple(f"DEMO-{n:03d}" for n in range(1, 21))
HAPPY_PATH = (
    "confirmed",
    "dispatched",
    "picked",
    "packed",
    "shipped",
    "delivering",
    "delivered",
    "completed",
)


@dataclass
class DemoStats:
    created: int = 0
    replayed: int = 0
    refused_stock: int = 0
    transitions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _place_orders(
    client: Client, count: int, rng: random.Random, stats: DemoStats, advance: Callable[[], None]
) -> list[tuple[int, int]]:
    """Concurrent customers place ``count`` orders; returns (order_id, version) of those placed."""

    def place(n: int) -> tuple[int, int] | None:
        local = random.Random(rng.random() + n)
        warehouse = local.choice(WAREHOUSES)
        items = [
            {
                "sku": sku,
                "quantity": local.randint(1, 3),
                "unit_price": f"{local.randint(5, 99)}.90",
            }
            for sku in local.sample(SKUS, local.randint(1, 3))
        ]
        if n % 25 == 0:  # a greedy customer: more than any warehouse holds
            items[0]["quantity"] = 10_000
        key = f"demo-{time.time_ns()}-{n}"
        try:
            created = client.create_order(
                customer_id=1000 + n % 50,
                warehouse_id=warehouse,
                items=items,
                idempotency_key=key,
                actor="demo-shop",
            )
            if n % 10 == 0:  # the network dropped the answer: the shop retries with the same key
                again = client.create_order(
                    customer_id=1000 + n % 50,
                    warehouse_id=warehouse,
                    items=items,
                    idempotency_key=key,
                    actor="demo-shop",
                )
                assert again.order_id == created.order_id and again.replayed
                stats.replayed += 1
            stats.created += 1
            return created.order_id, created.version
        except errors.InsufficientStock:
            stats.refused_stock += 1
            return None
        finally:
            advance()

    placed: list[tuple[int, int]] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for fut in as_completed([pool.submit(place, n) for n in range(count)]):
            result = fut.result()
            if result is not None:
                placed.append(result)
    return placed


def _path_for(fate: float) -> list[tuple[str, str | None]]:
    """The statuses one order goes through (with a reason), chosen by its fate in [0, 1)."""
    if fate < 0.10:  # the customer cancels before the warehouse starts
        return [("confirmed", None), ("cancelled", "customer changed their mind")]
    path: list[tuple[str, str | None]] = [(s, None) for s in HAPPY_PATH]
    if fate < 0.18:  # the warehouse holds it for an incomplete address, then resumes
        at = path.index(("dispatched", None)) + 1
        path[at:at] = [("on_hold", "address incomplete"), ("dispatched", "address fixed")]
    return path


def _walk(
    client: Client, order_id: int, version: int, rng: random.Random, stats: DemoStats
) -> None:
    """Move one order through its life; some are cancelled or held on the way."""
    for to, reason in _path_for(rng.random()):
        state = client.transition(
            order_id,
            to,
            expected_version=version,
            actor="demo",
            reason=reason,
            context={"source": "demo"},
        )
        version = state.version
        stats.transitions += 1
    stats.outcomes[client.get_order(order_id)["status"]] += 1


def run_demo(dsn: str, console: Console, *, orders: int = 300, seed: int = 7) -> DemoStats:
    rng = random.Random(seed)
    stats = DemoStats()
    started = time.monotonic()
    console.print("[bold]orderdb demo[/bold]: a simulated shop")
    console.print("migrating ...")
    migrate.migrate(dsn)
    with Client.connect(dsn, max_size=10) as client, _progress(console) as progress:
        task = progress.add_task("receiving stock", total=len(WAREHOUSES) * len(SKUS))
        for warehouse in WAREHOUSES:
            for sku in SKUS:
                client.receive_stock(warehouse, sku, 60, actor="demo-supplier")
                progress.advance(task)

        task = progress.add_task("customers placing orders", total=orders)
        placed = _place_orders(client, orders, rng, stats, lambda: progress.advance(task))

        task = progress.add_task("fulfilling orders", total=len(placed))
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(_walk, client, oid, ver, random.Random(oid), stats)
                for oid, ver in placed
            ]
            for fut in as_completed(futures):
                fut.result()
                progress.advance(task)

        _summary(client, console, stats, time.monotonic() - started)
    return stats


def _summary(client: Client, console: Console, stats: DemoStats, seconds: float) -> None:
    from rich.table import Table

    with client.pool.connection() as conn:
        funnel = conn.execute(
            "SELECT status, count(*) FROM orderdb.orders GROUP BY status ORDER BY count(*) DESC"
        ).fetchall()
        drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        events = conn.execute(
            "SELECT event_type, count(*) FROM orderdb.outbox GROUP BY 1 ORDER BY 1"
        ).fetchall()
        stock = conn.execute(
            "SELECT sum(on_hand), sum(reserved) FROM orderdb.inventory WHERE sku LIKE 'DEMO-%'"
        ).fetchone()
    table = Table(title="orders in the database by status")
    table.add_column("status")
    table.add_column("orders", justify="right")
    for status, count in funnel:
        table.add_row(status, str(count))
    console.print(table)
    console.print(
        f"this run: {stats.created} orders placed, {stats.replayed} retries answered from the "
        f"idempotency key, {stats.refused_stock} refused for lack of stock, "
        f"{stats.transitions} status changes"
    )
    if stock:
        console.print(f"stock (demo SKUs): on hand {stock[0]}, reserved {stock[1]}")
    console.print(
        "ledger check (orderdb_ops.inventory_drift): "
        + (
            "[green]counters equal the ledger[/green]"
            if drift and drift[0] == 0
            else f"[red]{drift[0] if drift else '?'} drifting rows[/red]"
        )
    )
    console.print("outbox events: " + ", ".join(f"{t} {c}" for t, c in events))
    console.print(f"[bold]done[/bold] in {seconds:.1f} s")
