"""``orderdb demo``: a simulated shop on the configured server (the embedded one by default).

Steps: migrate; receive stock in three warehouses; place orders from several concurrent
customers (some on purpose for more than is in stock, some retried with the same idempotency key),
each to a generated Chinese recipient and address (orderdb.demo.addresses: real provinces,
cities and districts, made-up names, numbers and flats); take payment and hand orders to the
warehouse (a few cancelled; an address without building and flat is held by the warehouse for
ADDRESS_INCOMPLETE, corrected with amend_order and resumed); the warehouse ships them through
WMS callbacks and carriers send their events (failed attempts with redelivery, refused parcels
coming back); one express order goes out with the warehouse's own courier (add_courier,
plan_routes) and is left out for delivery; customers sign, some ask for a return; then print
customer timelines (the courier's order in Chinese: recipient and courier, phones masked) and a
summary read back from the database: orders by status, stock, the ledger check, the amended
address, the courier and the events in the outbox. Each step shows its progress.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orderdb import errors, locales
from orderdb.client import Client
from orderdb.demo import addresses
from orderdb.demo.carrier import CarrierRun, ship_with_simulated_carrier
from orderdb.richtext import esc, plain
from orderdb.server import migrate

WAREHOUSES = (1, 2, 3)
SKUS = tuple(f"DEMO-{n:03d}" for n in range(1, 21))
# payment and the warehouse's first steps; the warehouse (WMS callbacks) and carriers do the rest
OFFICE_PATH = ("confirmed", "dispatched")


@dataclass
class DemoStats:
    created: int = 0
    replayed: int = 0
    refused_stock: int = 0
    transitions: int = 0
    wms_callbacks: int = 0
    carrier_events: int = 0
    returns: int = 0
    ready_to_ship: list[int] = field(default_factory=list)
    #: provinces the placed orders go to
    provinces: set[str] = field(default_factory=set)
    #: (order_no, address before, address after) of each address corrected with amend_order
    amended: list[tuple[str, str, str]] = field(default_factory=list)
    #: the order out for delivery with the warehouse's own courier (plan_routes)
    courier_order: int | None = None
    web_url: str = ""
    carrier: CarrierRun = field(default_factory=CarrierRun)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (called from several threads)."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


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
    """Concurrent customers place ``count`` orders, each to a generated Chinese address (about
    one in eight without building and flat: the warehouse will hold it); returns (order_id,
    version) of those placed."""

    def place(n: int) -> tuple[int, int] | None:
        local = random.Random(rng.random() + n)
        ship_to = addresses.ship_to(local, with_unit=local.random() >= 0.12)
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
                options={"ship_to": ship_to},
            )
            if n % 10 == 0:  # the network dropped the answer: the shop retries with the same key
                again = client.create_order(
                    customer_id=1000 + n % 50,
                    warehouse_id=warehouse,
                    items=items,
                    idempotency_key=key,
                    actor="demo-shop",
                    options={"ship_to": ship_to},
                )
                assert again.order_id == created.order_id and again.replayed
                stats.bump("replayed", 1)
            stats.bump("created", 1)
            with stats.lock:
                stats.provinces.add(ship_to["province"])
            return created.order_id, created.version
        except errors.InsufficientStock:
            stats.bump("refused_stock", 1)
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
    """The statuses one order goes through before the warehouse picks it, by its fate in [0, 1)."""
    if fate < 0.10:  # the customer cancels before the warehouse starts
        return [("confirmed", None), ("cancelled", "customer changed their mind")]
    return [(s, None) for s in OFFICE_PATH]


def _office(
    client: Client, order_id: int, version: int, rng: random.Random, stats: DemoStats
) -> None:
    """Payment and hand-over to the warehouse; a few are cancelled on the way, and an address
    without building and flat is held by the warehouse, corrected and resumed."""
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
        stats.bump("transitions")
    if to != "dispatched":
        return
    order = client.get_order(order_id)
    ship_to = dict(order.document.get("options", {}).get("ship_to") or {})
    if ship_to and not ship_to.get("line2"):
        _fix_address(client, order_id, ship_to, rng, stats)
    stats.ready_to_ship.append(order_id)


def _fix_address(
    client: Client, order_id: int, ship_to: dict[str, object], rng: random.Random, stats: DemoStats
) -> None:
    """The warehouse holds the order (WMS EXCEPTION ADDRESS_INCOMPLETE: no building or flat),
    customer service adds them with amend_order (the alerts say the order can resume), and the
    order goes back to the warehouse."""
    held = client.wms_callback(
        f"demo-{order_id}-EXCEPTION",
        order_id,
        "EXCEPTION",
        {"exception_type": "ADDRESS_INCOMPLETE", "note": "no building or flat number"},
    )
    stats.bump("wms_callbacks")
    fixed = {**ship_to, "line2": addresses.unit(rng)}
    amended = client.amend_order(
        order_id,
        {"ship_to": fixed},
        expected_version=held.version,
        actor="customer-service",
        reason="the customer added building and flat",
    )
    client.transition(
        order_id,
        "dispatched",
        expected_version=amended.version,
        actor="demo",
        reason="address fixed",
        context={"source": "demo"},
    )
    stats.bump("transitions")
    order_no = client.get_order(order_id).order_no
    with stats.lock:
        stats.amended.append((order_no, addresses.one_line(ship_to), addresses.one_line(fixed)))


def _courier_delivery(client: Client, rng: random.Random, stats: DemoStats) -> int:
    """An express order in Shenzhen goes out with warehouse 1's own courier: the warehouse's and
    the courier's positions (add_courier with a phone), the order packed with coordinates,
    plan_routes puts it on the courier's route, and the parcel is out for delivery (and stays
    so: its customer sees who is coming). Returns the order id."""
    warehouse, sku = WAREHOUSES[0], SKUS[0]
    client.set_warehouse_location(warehouse, 22.5431, 114.0579)  # Shenzhen, Futian
    client.add_courier(
        warehouse,
        addresses.name(rng),
        22.5431,
        114.0579,
        5,
        phone=addresses.mobile(rng),
    )
    client.receive_stock(warehouse, sku, 1, actor="demo-supplier")
    created = client.create_order(
        customer_id=1999,
        warehouse_id=warehouse,
        items=[{"sku": sku, "quantity": 1, "unit_price": "59.90"}],
        idempotency_key=f"demo-express-{time.time_ns()}",
        actor="demo-shop",
        options={
            "ship_to": addresses.ship_to(rng, city="深圳市", coordinates=True),
            "priority": "express",
            "shipping_fee": "12.00",
        },
    )
    version = created.version
    for to in OFFICE_PATH:
        version = client.transition(
            created.order_id, to, expected_version=version, actor="demo"
        ).version
        stats.bump("transitions")
    for stage in ("PICKED", "PACKED"):
        client.wms_callback(f"demo-{created.order_id}-{stage}", created.order_id, stage)
        stats.bump("wms_callbacks")
    client.plan_routes(warehouse)
    tracking_number = f"GENERIC{created.order_id:010d}"
    client.wms_callback(
        f"demo-{created.order_id}-SHIPPED",
        created.order_id,
        "SHIPPED",
        {"carrier": "GENERIC", "tracking_number": tracking_number},
    )
    stats.bump("wms_callbacks")
    client.record_tracking_event(
        "GENERIC", tracking_number, datetime.now(UTC), "out_for_delivery", location="深圳市福田区"
    )
    stats.bump("carrier_events")
    stats.courier_order = created.order_id
    return created.order_id


def _customers_sign_and_return(client: Client, stats: DemoStats, rng: random.Random) -> None:
    """Most delivered orders are closed (completed); a few customers send theirs back."""
    for order_id in list(stats.ready_to_ship):
        order = client.get_order(order_id)
        if order.status != "delivered":
            continue
        if rng.random() < 0.05:
            req = client.request_return(
                order_id,
                None,
                expected_version=order.version,
                actor="customer",
                reason="does not fit",
            )
            moving = client.transition(
                order_id,
                "returning",
                expected_version=req.version,
                actor="demo-carrier",
                reason="return parcel collected",
            )
            client.receive_return(order_id, expected_version=moving.version, actor="demo-dock")
            stats.bump("returns", 1)
            stats.bump("transitions", 3)
        elif rng.random() < 0.7:
            client.transition(
                order_id,
                "completed",
                expected_version=order.version,
                actor="demo",
                reason="customer signed",
            )
            stats.bump("transitions")


def _in_chunks(items: list[int], parts: int) -> list[list[int]]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def run_demo(dsn: str, console: Console, *, orders: int = 300, seed: int = 7) -> DemoStats:

    rng = random.Random(seed)
    stats = DemoStats()
    started = time.monotonic()
    console.print("[bold]orderdb demo[/bold]: a simulated shop")
    console.print("migrating ...")
    migrate.migrate(dsn)
    from orderdb.web import start_in_thread

    web_url = start_in_thread(dsn, "127.0.0.1", 0)
    console.print(f"operations board: [link={web_url}/ops]{web_url}/ops[/link]")
    with Client.connect(dsn, max_size=10) as client:
        shipping = _simulate(client, dsn, console, orders, rng, seed, stats, web_url)
        _timelines(client, console, shipping)
        _courier_timeline(client, console, stats)
        _summary(client, console, stats, time.monotonic() - started)
    stats.web_url = web_url
    return stats


def _simulate(
    client: Client,
    dsn: str,
    console: Console,
    orders: int,
    rng: random.Random,
    seed: int,
    stats: DemoStats,
    web_url: str,
) -> list[int]:
    """Every step of the simulation, each with its progress bar; returns the shipped orders."""
    with _progress(console) as progress:
        task = progress.add_task("receiving stock", total=len(WAREHOUSES) * len(SKUS))
        for warehouse in WAREHOUSES:
            for sku in SKUS:
                client.receive_stock(warehouse, sku, 60, actor="demo-supplier")
                progress.advance(task)

        task = progress.add_task("customers placing orders", total=orders)
        placed = _place_orders(client, orders, rng, stats, lambda: progress.advance(task))

        if placed:  # a page to watch while the warehouse and the carrier move the order
            from orderdb.web import tracking_url

            first = client.get_order(min(placed)[0])
            progress.console.print(
                "tracking page: " + tracking_url(web_url, first.order_no, first.customer_id),
                markup=False,
            )

        task = progress.add_task("payment and warehouse", total=len(placed))
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(_office, client, oid, ver, random.Random(oid), stats)
                for oid, ver in placed
            ]
            for fut in as_completed(futures):
                fut.result()
                progress.advance(task)

        # the warehouse ships (WMS callbacks) and carriers report, 8 integrations at once
        # every sixth parcel goes with the simulated pull carrier (polled), the rest with
        # carriers that push their events
        everyone = sorted(stats.ready_to_ship)
        polled = everyone[::6]
        shipping = [o for o in everyone if o not in set(polled)]
        task = progress.add_task("simulated carrier (polled)", total=len(polled))
        stats.carrier = ship_with_simulated_carrier(
            client, dsn, polled, seed, lambda n: progress.advance(task, n)
        )

        task = progress.add_task("shipping and carrier events", total=len(shipping))
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(
                    _ship_chunk, client, chunk, seed, stats, lambda n: progress.advance(task, n)
                )
                for chunk in _in_chunks(shipping, 8)
            ]
            for fut in as_completed(futures):
                fut.result()

        task = progress.add_task("express order, own courier", total=1)
        courier_order = _courier_delivery(client, random.Random(seed * 31), stats)
        progress.advance(task)
        from orderdb.web import tracking_url

        courier_no = client.get_order(courier_order).order_no
        progress.console.print(
            "tracking page (zh-CN, courier on the way): "
            + tracking_url(web_url, courier_no, 1999)
            + "&lang=zh-CN",
            markup=False,
        )

        task = progress.add_task("customers sign or return", total=1)
        _customers_sign_and_return(client, stats, rng)
        progress.advance(task)

    return shipping


def _ship_chunk(
    client: Client,
    order_ids: list[int],
    seed: int,
    stats: DemoStats,
    advance: Callable[[int], None],
) -> None:
    from orderdb.demo.tracking import simulate_fulfillment

    for order_id in order_ids:
        done = simulate_fulfillment(client, [order_id], random.Random(seed * 7919 + order_id))
        stats.bump("wms_callbacks", done.wms_callbacks)
        stats.bump("carrier_events", done.carrier_events)
        advance(1)


def _timelines(client: Client, console: Console, order_ids: list[int]) -> None:
    """Print what two customers see: one delivered after a failed attempt if there is one."""
    from rich.table import Table

    shown = 0
    for order_id in order_ids:
        timeline = client.order_timeline(order_id)
        statuses = [e.status for e in timeline.timeline]
        if shown == 0 and "failed_attempt" not in statuses:
            continue
        table = Table(
            title=plain(
                f"timeline of {timeline.order_no} ({timeline.status}); "
                f"now at {timeline.current_location or '-'}"
            )
        )
        for col in ("time (UTC)", "status", "description", "location"):
            table.add_column(col)
        for e in timeline.timeline:
            table.add_row(
                e.time.strftime("%H:%M:%S.%f")[:-3],
                plain(e.status),
                plain(e.description),
                plain(e.location),
            )
        console.print(table)
        shown += 1
        if shown == 2:
            return


def _courier_timeline(client: Client, console: Console, stats: DemoStats) -> None:
    """What the express order's customer sees, in Chinese: the recipient and the courier (phones
    masked by order_timeline), times in Beijing time."""
    from rich.table import Table

    if stats.courier_order is None:
        return
    t = client.order_timeline(stats.courier_order, locale="zh-CN")
    words = locales.texts(t.locale, t.document)
    table = Table(title=plain(f"timeline of {t.order_no} in zh-CN ({t.status_text})"))
    for col in (f"{words['col_time']} ({t.time_zone})", words["col_event"], words["col_location"]):
        table.add_column(plain(col))
    for e in t.timeline:
        table.add_row(
            plain(locales.fmt_local_time(e.time, t.time_zone, t.locale)),
            plain(e.description),
            plain(e.location),
        )
    console.print(table)
    for label, person in ((words["recipient"], t.recipient), (words["courier"], t.courier)):
        if person is not None:
            shown = " · ".join(str(v) for v in (person.name, person.phone, person.city) if v)
            console.print(f"  {label}: {shown}", markup=False, highlight=False)


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
        table.add_row(plain(status), str(count))
    console.print(table)
    console.print(
        f"this run: {stats.created} orders placed, {stats.replayed} retries answered from the "
        f"idempotency key, {stats.refused_stock} refused for lack of stock, "
        f"{stats.transitions} status changes by the shop, {stats.wms_callbacks} WMS callbacks, "
        f"{stats.carrier_events} carrier events, {stats.returns} customer returns"
    )
    sim = stats.carrier
    if sim.parcels:
        landed = (
            "[green]every scan landed exactly once[/green]"
            if sim.stored_scans == sim.expected_scans
            else f"[red]{sim.stored_scans} scans stored, {sim.expected_scans} expected[/red]"
        )
        console.print(
            f"simulated carrier SIM: {sim.parcels} parcels polled {sim.polls} times, first scans "
            f"also pushed; {sim.expected_scans} scans, {sim.duplicates} repeats ignored: {landed}"
        )
    console.print(
        f"addresses: every order to a generated Chinese recipient, in {len(stats.provinces)} "
        f"provinces; {len(stats.amended)} address(es) held for ADDRESS_INCOMPLETE, amended "
        "(amend_order) and resumed",
        markup=False,
    )
    for order_no, before, after in stats.amended[:1]:
        console.print(f"  address amended on {order_no}: {before} -> {after}", markup=False)
    if stats.courier_order is not None:
        seen = client.order_timeline(stats.courier_order, locale="zh-CN")
        if seen.courier is not None:
            console.print(
                f"courier: {seen.courier.name} ({seen.courier.phone}) is bringing "
                f"{seen.order_no} (route planned by plan_routes; the customer sees the courier "
                "on the tracking page and in `orderdb track --locale zh-CN`)",
                markup=False,
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
    with client.pool.connection() as conn:
        breaches = conn.execute(
            "SELECT rule, count(*) FROM orderdb_ops.sla_breaches GROUP BY 1 ORDER BY 1"
        ).fetchall()
        alerts = conn.execute(
            "SELECT level, subject, message FROM orderdb_ops.alerts"
            " ORDER BY level = 'critical' DESC LIMIT 5"
        ).fetchall()
    console.print(
        "open SLA breaches (orderdb_ops.sla_breaches): "
        + (", ".join(f"{rule} {n}" for rule, n in breaches) or "none"),
        markup=False,
    )
    console.print("alerts (orderdb_ops.alerts):" + ("" if alerts else " none"))
    for level, subject, message in alerts:
        colour = "red" if level == "critical" else "yellow"
        console.print(
            f"  [{colour}]{esc(level)}[/{colour}] {esc(subject)}: {esc(message)}", highlight=False
        )
    console.print("outbox events: " + ", ".join(f"{t} {c}" for t, c in events), markup=False)
    console.print(f"[bold]done[/bold] in {seconds:.1f} s")
