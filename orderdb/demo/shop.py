"""``orderdb demo``: a simulated shop on the configured server (the embedded one by default).

Steps: migrate; receive stock in three warehouses and connect each to the simulated WMS
(``orderdb warehouses set-wms W sim``); start the WMS dispatcher (what ``orderdb wms-dispatch``
runs); place orders from several concurrent customers (some on purpose for more than is in stock,
some retried with the same idempotency key), each to a generated Chinese recipient and address
(orderdb.demo.addresses: real provinces, cities and districts, made-up names, numbers and flats);
take payment and hand orders to the warehouse (a few cancelled). From there nothing is made by
hand: each dispatched order queues a command, the dispatcher sends it to the simulated WMS (which
now and then is down: the command is retried), the WMS calls back PICKED, PACKED, SHIPPED with a
SIM tracking number — or, for an address without building and flat, EXCEPTION
ADDRESS_INCOMPLETE: customer service corrects it with amend_order, the WMS gets the update and
ships — and the simulated carrier SIM, polled, takes every parcel to its end (failed attempts
with redelivery, refused parcels coming back). One express order goes out from a fourth
warehouse, which has no WMS connector (the shop drives it itself), with the warehouse's own
courier (add_courier, plan_routes) and is left out for delivery; customers sign, some ask for a
return; then print customer timelines (the courier's order in Chinese: recipient and courier,
phones masked) and a summary read back from the database: orders by status, the WMS commands
sent, retried and dead-lettered, stock, the ledger check, the amended address, the courier and
the events in the outbox. Each step shows its progress.
"""

from __future__ import annotations

import itertools
import logging
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
from orderdb.demo.carrier import CarrierRun, follow_simulated_parcels
from orderdb.richtext import esc, plain
from orderdb.server import migrate

WAREHOUSES = (1, 2, 3)
#: the city warehouse with its own couriers: no WMS connector (the shop drives it itself)
COURIER_WAREHOUSE = 4
SKUS = tuple(f"DEMO-{n:03d}" for n in range(1, 21))
# payment and the hand-over to the warehouse; the WMS and the carrier do the rest
OFFICE_PATH = ("confirmed", "dispatched")
#: the simulated WMS of the demo's warehouses (``orderdb warehouses set-wms W sim --setting ...``):
#: quick callbacks, addresses without building and flat held, one send in twenty failing
SIM_WMS_SETTINGS: dict[str, object] = {
    "delay_seconds": 0.05,
    "hold_incomplete_addresses": True,
    "unavailable_rate": 0.05,
}
#: the demo's dispatcher retries within a second (``orderdb wms-dispatch --backoff 0.2
#: --backoff-max 1 --max-attempts 5``), two dispatcher threads
DISPATCH_BACKOFF = (0.2, 1.0, 5)
DISPATCH_WORKERS = 2
#: the WMS statuses an order waits in for its warehouse
AT_THE_WAREHOUSE = ("dispatched", "picked", "packed")


@dataclass
class DemoStats:
    created: int = 0
    replayed: int = 0
    refused_stock: int = 0
    transitions: int = 0
    wms_callbacks: int = 0  # read back from orderdb.wms_events for the summary
    carrier_events: int = 0
    #: WMS commands (orderdb.wms_commands of the demo's warehouses): by kind sent, retried, dead
    wms_commands: dict[str, int] = field(default_factory=dict)
    wms_retried: int = 0
    wms_dead: int = 0
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
    """Payment and hand-over to the warehouse (a few are cancelled on the way); the dispatched
    order's create command is queued in the same transaction."""
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
    if to == "dispatched":
        with stats.lock:
            stats.ready_to_ship.append(order_id)


def _fix_addresses(client: Client, rng: random.Random, stats: DemoStats) -> int:
    """The WMS held orders for ADDRESS_INCOMPLETE (no building or flat): customer service adds
    them with amend_order and resumes each order in one transaction (the alerts say it can
    resume); the amendment queues an update for the WMS, which then picks the order. Returns how
    many were fixed."""
    with client.pool.connection() as conn:
        held = conn.execute(
            "SELECT o.order_id FROM orderdb.orders o"
            " WHERE o.status = 'on_hold' AND o.warehouse_id = ANY(%s) AND EXISTS ("
            "   SELECT 1 FROM orderdb.order_hold_reasons r"
            "    WHERE r.warehouse_id = o.warehouse_id AND r.order_id = o.order_id"
            "      AND r.reason = 'ADDRESS_INCOMPLETE')"
            " ORDER BY o.order_id",
            (list(WAREHOUSES),),
        ).fetchall()
    for (order_id,) in held:
        order = client.get_order(order_id)
        ship_to = dict(order.document.get("options", {}).get("ship_to") or {})
        fixed = {**ship_to, "line2": addresses.unit(rng)}
        with client.transaction() as tx:
            amended = client.amend_order(
                order_id,
                {"ship_to": fixed},
                expected_version=order.version,
                actor="customer-service",
                reason="the customer added building and flat",
                conn=tx,
            )
            client.transition(
                order_id,
                "dispatched",
                expected_version=amended.version,
                actor="demo",
                reason="address fixed",
                context={"source": "demo"},
                conn=tx,
            )
        stats.bump("transitions")
        with stats.lock:
            stats.amended.append(
                (order.order_no, addresses.one_line(ship_to), addresses.one_line(fixed))
            )
    return len(held)


def _at_the_warehouse(client: Client, order_ids: list[int]) -> tuple[int, int]:
    """(orders still waiting for their warehouse, WMS commands not sent yet) among ``order_ids``."""
    with client.pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM orderdb.orders"
            "         WHERE order_id = ANY(%s) AND status = ANY(%s)),"
            "       (SELECT count(*) FROM orderdb.wms_commands"
            "         WHERE order_id = ANY(%s) AND status IN ('pending', 'sending'))",
            (order_ids, list(AT_THE_WAREHOUSE), order_ids),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _wait_for_the_warehouse(
    client: Client,
    order_ids: list[int],
    expected: int,
    advance: Callable[[int], None],
    dispatcher: _DispatcherThread,
    *,
    timeout: float = 120.0,
) -> None:
    """Waits until the WMS has shipped (or held) every order of ``order_ids`` and every command
    for them is sent, advancing the progress by the orders that left the warehouse (``expected``
    of them are there when it starts)."""
    deadline = time.monotonic() + timeout
    left_before = expected
    while True:
        waiting, unsent = _at_the_warehouse(client, order_ids)
        advance(left_before - waiting)
        left_before = waiting
        if waiting == 0 and unsent == 0:
            return
        dispatcher.check()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the simulated WMS did not finish within {timeout:g} s: {waiting} order(s) "
                f"still at the warehouse, {unsent} command(s) not sent"
            )
        time.sleep(0.1)


class _DispatcherThread:
    """The WMS dispatcher of the demo: what ``orderdb wms-dispatch --workers 2`` runs
    (:func:`orderdb.integrations.wms.dispatch.run_workers`), in a thread until :meth:`stop`."""

    def __init__(self, dsn: str) -> None:
        from orderdb.integrations.wms.dispatch import Dispatcher, RetryPolicy, run_workers

        # the retries after the simulated outages are counted in the summary, not logged (a
        # dead letter still is)
        self._log = logging.getLogger("orderdb.integrations.wms.dispatch")
        self._log_level = self._log.level
        self._log.setLevel(logging.ERROR)

        backoff, backoff_max, max_attempts = DISPATCH_BACKOFF
        policy = RetryPolicy(backoff, backoff_max, max_attempts)
        self._stop = threading.Event()
        self._error: BaseException | None = None

        def make(i: int) -> Dispatcher:
            return Dispatcher(
                dsn, worker=f"demo-dispatch/{i}", limit=50, lease_seconds=60, policy=policy
            )

        def work() -> None:
            try:
                run_workers(make, DISPATCH_WORKERS, once=False, stop=self._stop, idle_seconds=0.1)
            except BaseException as exc:
                self._error = exc

        self._thread = threading.Thread(target=work, name="demo-wms-dispatch", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raises what stopped the dispatcher, if it stopped."""
        if self._error is not None:
            raise RuntimeError(f"the WMS dispatcher stopped: {self._error}") from self._error

    def stop(self) -> None:
        """Stops the dispatchers (their simulated WMS finishes its callbacks first)."""
        self._stop.set()
        self._thread.join(timeout=60)
        self._log.setLevel(self._log_level)
        self.check()


def _connect_warehouses(dsn: str, seed: int) -> None:
    """``orderdb warehouses set-wms W sim --setting ...`` for each warehouse of the demo."""
    import json

    from orderdb.cli import main as cli

    settings = {**SIM_WMS_SETTINGS, "seed": seed}
    for warehouse in WAREHOUSES:
        args = ["warehouses", "set-wms", str(warehouse), "sim", "--dsn", dsn]
        for key, value in settings.items():
            args += ["--setting", f"{key}={json.dumps(value)}"]
        cli.main(args, prog_name="orderdb", standalone_mode=False)


def _courier_delivery(client: Client, rng: random.Random, stats: DemoStats) -> int:
    """An express order in Shenzhen goes out with the city warehouse's own courier: the
    warehouse's and the courier's positions (add_courier with a phone), the order packed with
    coordinates, plan_routes puts it on the courier's route, and the parcel is out for delivery
    (and stays so: its customer sees who is coming). The city warehouse has no WMS connector:
    the shop reports its steps itself (wms_callback), as before connectors existed. Returns the
    order id."""
    warehouse, sku = COURIER_WAREHOUSE, SKUS[0]
    client.receive_stock(warehouse, sku, 30, actor="demo-supplier")
    client.set_warehouse_location(warehouse, 22.5431, 114.0579)  # Shenzhen, Futian
    client.add_courier(
        warehouse,
        addresses.name(rng),
        22.5431,
        114.0579,
        5,
        phone=addresses.mobile(rng),
    )
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
    client.plan_routes(warehouse)
    tracking_number = f"GENERIC{created.order_id:010d}"
    client.wms_callback(
        f"demo-{created.order_id}-SHIPPED",
        created.order_id,
        "SHIPPED",
        {"carrier": "GENERIC", "tracking_number": tracking_number},
    )
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
        dispatcher = _DispatcherThread(dsn)
        try:
            shipping = _simulate(
                client, dsn, console, orders, rng, seed, stats, web_url, dispatcher
            )
        finally:
            dispatcher.stop()
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
    dispatcher: _DispatcherThread,
) -> list[int]:
    """Every step of the simulation, each with its progress bar; returns the shipped orders."""
    with _progress(console) as progress:
        task = progress.add_task("receiving stock", total=len(WAREHOUSES) * len(SKUS))
        for warehouse in WAREHOUSES:
            for sku in SKUS:
                client.receive_stock(warehouse, sku, 60, actor="demo-supplier")
                progress.advance(task)
        _connect_warehouses(dsn, seed)

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

        # the dispatcher sends each dispatched order to its warehouse's simulated WMS, which
        # calls back PICKED, PACKED, SHIPPED (or holds an incomplete address)
        dispatched = sorted(stats.ready_to_ship)
        task = progress.add_task("simulated WMS", total=len(dispatched))
        _wait_for_the_warehouse(
            client, dispatched, len(dispatched), lambda n: progress.advance(task, n), dispatcher
        )
        fixed = _fix_addresses(client, rng, stats)
        if fixed:
            task = progress.add_task("addresses fixed, WMS updated", total=fixed)
            _wait_for_the_warehouse(
                client, dispatched, fixed, lambda n: progress.advance(task, n), dispatcher
            )

        # the simulated carrier (polled) takes every parcel the WMS shipped to its end
        with client.pool.connection() as conn:
            rows = conn.execute(
                "SELECT s.order_id, s.tracking_number FROM orderdb.shipments s"
                " WHERE s.order_id = ANY(%s) AND s.carrier = 'SIM' ORDER BY s.order_id",
                (dispatched,),
            ).fetchall()
        shipping = [int(order_id) for order_id, _ in rows]
        task = progress.add_task("simulated carrier (polled)", total=len(rows))
        stats.carrier = follow_simulated_parcels(
            client, dsn, [str(n) for _, n in rows], seed, lambda n: progress.advance(task, n)
        )

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


def _timelines(client: Client, console: Console, order_ids: list[int]) -> None:
    """Print what two customers see: first one delivered after a failed attempt if there is
    one, then the next order."""
    from rich.table import Table

    timelines = (client.order_timeline(order_id) for order_id in order_ids)
    failed = next(
        (t for t in timelines if any(e.status == "failed_attempt" for e in t.timeline)), None
    )
    others = (
        client.order_timeline(order_id)
        for order_id in order_ids
        if failed is None or order_id != failed.order_id
    )
    first = [failed] if failed is not None else []
    for timeline in itertools.islice(itertools.chain(first, others), 2):
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
        this_run = [*stats.ready_to_ship, *([stats.courier_order] if stats.courier_order else [])]
        callbacks = conn.execute(
            "SELECT count(*) FROM orderdb.wms_events WHERE order_id = ANY(%s)", (this_run,)
        ).fetchone()
        commands = conn.execute(
            "SELECT kind, count(*) FILTER (WHERE status = 'done'),"
            "       count(*) FILTER (WHERE attempts > 1), count(*) FILTER (WHERE status = 'dead')"
            "  FROM orderdb.wms_commands WHERE order_id = ANY(%s)"
            " GROUP BY kind ORDER BY min(command_id)",
            (this_run,),
        ).fetchall()
        drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        events = conn.execute(
            "SELECT event_type, count(*) FROM orderdb.outbox GROUP BY 1 ORDER BY 1"
        ).fetchall()
        stock = conn.execute(
            "SELECT sum(on_hand), sum(reserved) FROM orderdb.inventory WHERE sku LIKE 'DEMO-%'"
        ).fetchone()
    stats.wms_callbacks = int(callbacks[0]) if callbacks else 0
    stats.carrier_events += stats.carrier.pushed + stats.carrier.recorded
    stats.wms_commands = {str(kind): int(done) for kind, done, _, _ in commands}
    stats.wms_retried = sum(int(retried) for _, _, retried, _ in commands)
    stats.wms_dead = sum(int(dead) for _, _, _, dead in commands)
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
    sent = sum(stats.wms_commands.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in stats.wms_commands.items())
    console.print(
        f"WMS commands (orderdb wms-dispatch, simulated WMS): {sent} sent"
        + (f" ({kinds})" if kinds else "")
        + f", {stats.wms_retried} retried after an outage, {stats.wms_dead} dead-lettered",
        markup=False,
    )
    sim = stats.carrier
    if sim.parcels:
        landed = (
            "[green]every scan landed exactly once[/green]"
            if sim.stored_scans == sim.expected_scans
            else f"[red]{sim.stored_scans} scans stored, {sim.expected_scans} expected[/red]"
        )
        console.print(
            f"simulated carrier SIM: {sim.parcels} parcels shipped by the WMS, polled in "
            f"{sim.polls} round(s), first scans also pushed; {sim.expected_scans} scans, "
            f"{sim.duplicates} repeats ignored: {landed}"
        )
    console.print(
        f"addresses: every order to a generated Chinese recipient, in {len(stats.provinces)} "
        f"provinces; {len(stats.amended)} address(es) held by the WMS for ADDRESS_INCOMPLETE, "
        "amended (amend_order: an update for the WMS) and resumed",
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
