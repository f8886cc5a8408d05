"""Concurrency suites for the core engine: many clients at once (>= 16 connections), then the
invariants. Each suite runs on its own fresh database.

Invariants checked after every suite (check_invariants):
  * no oversell: on_hand >= 0, reserved >= 0, reserved <= on_hand, and per (warehouse, sku) the
    units held or consumed by orders never exceed the units received;
  * counters equal the ledger: orderdb_ops.inventory_drift is empty;
  * every order's ledger matches its status (held while open, consumed once shipped, released when
    cancelled before shipping, returned when returned);
  * every order's version equals 1 + its history rows, and its status is the last history row's;
  * no deadlock (SQLSTATE 40P01) and no SQLSTATE outside the contract was seen by any client.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.deployments import Deployment

CLIENTS = 20  # connections at once (>= 16)
#: through the proxy each client also holds a connection to every shard it reaches: 16 clients
#: (the suite's minimum) keep a three-shard cluster on one test server within max_connections
CLUSTER_CLIENTS = 16

OPEN = ("pending", "confirmed", "dispatched", "picked", "packed", "on_hold")
GONE = ("shipped", "delivering", "delivered", "completed", "delivery_failed",
        "return_requested", "returning")  # fmt: skip


@dataclass
class Outcomes:
    """What the clients saw: successes per kind and SQLSTATEs of failures (thread-safe)."""

    allowed: frozenset[str]
    ok: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self, kind: str) -> None:
        with self.lock:
            self.ok[kind] += 1

    def failure(self, exc: psycopg.Error) -> None:
        with self.lock:
            state = exc.sqlstate or "?"
            self.states[state] += 1
            if state not in self.allowed:
                self.unexpected.append(f"{state}: {exc}")

    def assert_clean(self) -> None:
        assert self.states["40P01"] == 0, "deadlock detected"
        assert not self.unexpected, self.unexpected[:5]


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def run_clients(dsn: str, n: int, work: Callable[[int, psycopg.Connection[Any]], None]) -> None:
    """Run ``work(i, conn)`` in n threads, each with its own connection, started together."""
    conns = [connect(dsn) for _ in range(n)]
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i, conns[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a client hung"
    finally:
        for c in conns:
            c.close()
    if errors:
        raise errors[0]


def create(
    conn: psycopg.Connection[Any],
    customer: int,
    warehouse: int,
    items: list[dict[str, Any]],
    key: str | None = None,
) -> tuple[int, int, bool]:
    row = conn.execute(
        "SELECT order_id, version, replayed FROM orderdb.create_order(%s, %s, %s, %s)",
        (customer, warehouse, Jsonb(items), key),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), bool(row[2])


def transition(conn: psycopg.Connection[Any], order_id: int, to: str, version: int) -> int:
    row = conn.execute(
        "SELECT version FROM orderdb.transition_order(%s, %s, %s, 'load', NULL, %s)",
        (order_id, to, version, Jsonb({"client": "load"})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def clients_of(deployment: Deployment) -> int:
    return CLUSTER_CLIENTS if deployment.is_cluster else CLIENTS


def check_invariants(deployment: Deployment) -> list[str]:
    """Every invariant violation found in the database, or on every shard of the cluster
    (empty list: none)."""
    checks = {
        "counter out of bounds (on_hand < 0, reserved < 0 or reserved > on_hand)": """
            SELECT warehouse_id, sku, on_hand, reserved FROM orderdb.inventory
             WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand""",
        "oversold: units held or consumed exceed units received": """
            SELECT l.warehouse_id, l.sku, l.taken, r.received
              FROM (SELECT warehouse_id, sku, sum(qty_held + qty_consumed) AS taken
                      FROM orderdb.order_lines GROUP BY 1, 2) l
              LEFT JOIN (SELECT warehouse_id, sku, sum(quantity) AS received
                           FROM orderdb.stock_receipts GROUP BY 1, 2) r
                     USING (warehouse_id, sku)
             WHERE l.taken > coalesce(r.received, 0)""",
        "counters disagree with the ledger (inventory_drift)": """
            SELECT * FROM orderdb_ops.inventory_drift""",
        "ledger state does not match the order status": """
            SELECT o.order_id, o.status, l.sku, l.qty_held, l.qty_consumed, l.qty_released,
                   l.qty_returned
              FROM orderdb.orders o
              JOIN orderdb.order_lines l USING (warehouse_id, order_id)
             WHERE CASE
                     WHEN o.status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed',
                                       'on_hold') THEN l.qty_held <> l.quantity
                     WHEN o.status = 'cancelled' THEN l.qty_released <> l.quantity
                     WHEN o.status = 'returned' THEN l.qty_returned <> l.quantity
                     ELSE l.qty_consumed <> l.quantity
                   END""",
        "version is not 1 + history rows": """
            SELECT o.order_id, o.version, count(h.version)
              FROM orderdb.orders o
              LEFT JOIN orderdb.order_status_history h USING (warehouse_id, order_id)
             GROUP BY o.order_id, o.version
            HAVING o.version <> 1 + count(h.version)""",
        "status is not the last history row's": """
            SELECT o.order_id, o.status, h.to_status
              FROM orderdb.orders o
              LEFT JOIN orderdb.order_status_history h
                ON h.warehouse_id = o.warehouse_id AND h.order_id = o.order_id
               AND h.version = o.version
             WHERE o.status <> coalesce(h.to_status, 'pending')
                OR (o.version > 1 AND h.to_status IS NULL)""",
        "history chain broken (from is not the previous to)": """
            SELECT h.order_id, h.version FROM orderdb.order_status_history h
              LEFT JOIN orderdb.order_status_history p
                ON p.warehouse_id = h.warehouse_id AND p.order_id = h.order_id
               AND p.version = h.version - 1
             WHERE h.from_status <> coalesce(p.to_status, 'pending')""",
        "order without directory entry or directory without order": """
            SELECT coalesce(d.order_id, o.order_id) FROM orderdb.order_directory d
              FULL JOIN orderdb.orders o USING (order_id)
             WHERE d.order_id IS NULL OR o.order_id IS NULL
                OR d.warehouse_id <> o.warehouse_id""",
    }
    violations: list[str] = []
    for shard, dsn in enumerate(deployment.data_dsns):
        where = f"shard {shard}: " if deployment.is_cluster else ""
        with connect(dsn) as conn:
            for name, query in checks.items():
                rows = conn.execute(query).fetchall()
                violations.extend(f"{where}{name}: {r}" for r in rows[:10])
    return violations


def assert_invariants(deployment: Deployment, label: str) -> None:
    violations = check_invariants(deployment)
    print(f"[{label}] invariant violations: {len(violations)}")
    for v in violations:
        print("   ", v)
    assert violations == []


@pytest.fixture
def dsn(deployment: Deployment) -> Iterator[str]:
    """Where the suite's API calls go: a fresh database, or the proxy of a fresh cluster."""
    yield deployment.dsn


# ------------------------------------------------------------------------------------------------


def test_limited_stock_with_a_hot_sku_never_oversells(dsn: str, deployment: Deployment) -> None:
    clients = clients_of(deployment)
    stock = {"HOT": 60, **{f"S{i}": 25 for i in range(8)}}
    with connect(dsn) as conn:
        for sku, qty in stock.items():
            conn.execute("SELECT orderdb.receive_stock(1, %s, %s)", (sku, qty))
    outcomes = Outcomes(allowed=frozenset({"OD001"}))
    placed: list[list[dict[str, Any]]] = []
    placed_lock = threading.Lock()

    def work(i: int, conn: psycopg.Connection[Any]) -> None:
        rnd = random.Random(i)
        for _ in range(30):
            skus = rnd.sample(sorted(stock), rnd.randint(1, 4))
            if "HOT" not in skus and rnd.random() < 0.7:
                skus.append("HOT")
            rnd.shuffle(skus)  # input order is not lock order
            items = [{"sku": s, "quantity": rnd.randint(1, 3)} for s in skus]
            try:
                create(conn, 1 + i, 1, items)
            except psycopg.Error as exc:
                outcomes.failure(exc)
            else:
                outcomes.success("create")
                with placed_lock:
                    placed.append(items)

    run_clients(dsn, clients, work)
    outcomes.assert_clean()
    print(f"orders: {outcomes.ok['create']} placed, {outcomes.states['OD001']} refused (OD001)")
    assert outcomes.ok["create"] > 0 and outcomes.states["OD001"] > 0

    wanted: Counter[str] = Counter()
    for items in placed:
        for line in items:
            wanted[line["sku"]] += line["quantity"]
    rows = deployment.rows(
        "SELECT sku, on_hand, reserved FROM orderdb.inventory_levels WHERE warehouse_id = 1"
    )
    for sku, on_hand, reserved in rows:
        assert on_hand == stock[sku]
        assert reserved == wanted[sku], f"{sku}: reserved {reserved}, orders hold {wanted[sku]}"
        assert reserved <= stock[sku]
    assert_invariants(deployment, "limited stock")


def test_idempotent_replays_create_one_order_per_key(dsn: str, deployment: Deployment) -> None:
    clients = clients_of(deployment)
    with connect(dsn) as conn:
        conn.execute("SELECT orderdb.receive_stock(2, 'IDEM-A', 1000)")
        conn.execute("SELECT orderdb.receive_stock(2, 'IDEM-B', 1000)")
    keys = [f"cart-{k}" for k in range(12)]
    outcomes = Outcomes(allowed=frozenset())
    seen: dict[str, list[tuple[int, bool]]] = {k: [] for k in keys}
    lock = threading.Lock()

    def items_for(key: str) -> list[dict[str, Any]]:
        n = int(key.split("-")[1])
        return [{"sku": "IDEM-A", "quantity": 1 + n % 3}, {"sku": "IDEM-B", "quantity": 2}]

    def work(i: int, conn: psycopg.Connection[Any]) -> None:
        rnd = random.Random(100 + i)
        order = keys * 2
        rnd.shuffle(order)
        for key in order:
            items = items_for(key)
            if rnd.random() < 0.5:
                items = list(reversed(items))  # same request, other spelling
            try:
                order_id, _, replayed = create(conn, 77, 2, items, key)
            except psycopg.Error as exc:
                outcomes.failure(exc)
            else:
                with lock:
                    seen[key].append((order_id, replayed))

    run_clients(dsn, clients, work)
    outcomes.assert_clean()
    for key, results in seen.items():
        assert len(results) == clients * 2
        assert len({order_id for order_id, _ in results}) == 1, f"{key}: several orders"
        assert sum(1 for _, replayed in results if not replayed) == 1, f"{key}: not one creation"
    count = deployment.total("SELECT count(*) FROM orderdb.orders")
    reserved = deployment.rows(
        "SELECT sku, reserved FROM orderdb.inventory_levels WHERE warehouse_id = 2 ORDER BY sku"
    )
    assert count == len(keys)
    expected_a = sum(1 + int(k.split("-")[1]) % 3 for k in keys)
    assert reserved == [("IDEM-A", expected_a), ("IDEM-B", 2 * len(keys))]
    assert_invariants(deployment, "idempotent replays")


def test_same_key_different_requests_one_wins_others_od006(
    dsn: str, deployment: Deployment
) -> None:
    clients = clients_of(deployment)
    with connect(dsn) as conn:
        conn.execute("SELECT orderdb.receive_stock(3, 'K-A', 1000)")
    outcomes = Outcomes(allowed=frozenset({"OD006"}))
    results: list[tuple[int, int]] = []  # (quantity asked, order_id)
    lock = threading.Lock()
    # Through the proxy too a different request racing the key's first one waits for it and
    # gets OD006, never 40001 (docs/scaling.md, Idempotency keys)

    def work(i: int, conn: psycopg.Connection[Any]) -> None:
        for round_ in range(10):
            quantity = 1 + i % 2  # two different requests under one key per round
            try:
                items = [{"sku": "K-A", "quantity": quantity}]
                order_id = create(conn, 5, 3, items, f"dup-{round_}")[0]
            except psycopg.Error as exc:
                outcomes.failure(exc)
            else:
                with lock:
                    results.append((round_ * 10 + quantity, order_id))

    run_clients(dsn, clients, work)
    print(f"idempotency conflicts: {dict(outcomes.states)}")
    outcomes.assert_clean()
    by_round: dict[int, set[tuple[int, int]]] = {}
    for tag, order_id in results:
        by_round.setdefault(tag // 10, set()).add((tag % 10, order_id))
    for round_, winners in by_round.items():
        assert len(winners) == 1, f"round {round_}: {winners}"
    assert outcomes.states["OD006"] == clients * 10 - len(results)
    assert_invariants(deployment, "idempotency conflicts")


def test_racing_transitions_on_one_version_exactly_one_wins(
    dsn: str, deployment: Deployment
) -> None:
    clients = clients_of(deployment)
    pairs = [
        ("dispatched", "cancelled"),
        ("on_hold", "cancelled"),
        ("dispatched", "on_hold"),
        ("cancelled", "cancelled"),
    ]
    rounds = 12
    n_orders = rounds * (clients // 2)
    with connect(dsn) as conn:
        conn.execute("SELECT orderdb.receive_stock(4, 'RACE', %s)", (n_orders,))
        order_ids = []
        for _ in range(n_orders):
            order_id, version, _ = create(conn, 9, 4, [{"sku": "RACE", "quantity": 1}])
            transition(conn, order_id, "confirmed", version)
            order_ids.append(order_id)
    outcomes = Outcomes(allowed=frozenset({"OD002"}))
    wins: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def work(i: int, conn: psycopg.Connection[Any]) -> None:
        for r in range(rounds):
            order_id = order_ids[r * (clients // 2) + i // 2]
            to = pairs[(r + i // 2) % len(pairs)][i % 2]
            barrier.wait()  # both clients of a pair read version 2 and go at once
            try:
                transition(conn, order_id, to, 2)
            except psycopg.Error as exc:
                outcomes.failure(exc)
            else:
                with lock:
                    wins[order_id] += 1

    run_clients(dsn, clients, work)
    outcomes.assert_clean()
    assert all(wins[o] == 1 for o in order_ids), "not exactly one winner per order"
    assert outcomes.states["OD002"] == n_orders
    assert_invariants(deployment, "racing transitions")


# A random lifecycle walker: reads the order, picks an allowed edge (from allowed_transitions, on
# hold: back or cancelled), transitions; conflicts (OD002) and on-hold refusals are expected.
def _edges(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {}
    for f, t in conn.execute("SELECT from_status, to_status FROM orderdb.allowed_transitions()"):
        edges.setdefault(f, []).append(t)
    return edges


def _step(
    conn: psycopg.Connection[Any],
    rnd: random.Random,
    edges: dict[str, list[str]],
    order_id: int,
    outcomes: Outcomes,
) -> bool:
    """One random step of one order; False when the order is in a terminal status."""
    row = conn.execute(
        "SELECT o ->> 'status', (o ->> 'version')::int FROM orderdb.get_order(%s) o", (order_id,)
    ).fetchone()
    assert row is not None
    status, version = str(row[0]), int(row[1])
    choices = edges.get(status, [])
    if not choices:
        return False
    to = rnd.choice(choices)
    if to == "cancelled" and rnd.random() < 0.7:
        to = rnd.choice(choices)  # keep more orders alive
    try:
        transition(conn, order_id, to, version)
    except psycopg.Error as exc:
        outcomes.failure(exc)
    else:
        outcomes.success(to)
    return True


def test_random_lifecycle_walks_with_shared_orders(dsn: str, deployment: Deployment) -> None:
    clients = clients_of(deployment)
    with connect(dsn) as conn:
        for s in range(6):
            conn.execute("SELECT orderdb.receive_stock(5, %s, 10000)", (f"W-{s}",))
        edges = _edges(conn)
        shared = [
            create(conn, 1, 5, [{"sku": f"W-{s}", "quantity": 1 + s} for s in range(3)])[0]
            for _ in range(30)
        ]
    outcomes = Outcomes(allowed=frozenset({"OD002", "OD003"}))

    def work(i: int, conn: psycopg.Connection[Any]) -> None:
        rnd = random.Random(500 + i)
        own = []
        for _ in range(4):
            skus = rnd.sample([f"W-{s}" for s in range(6)], rnd.randint(1, 3))
            own.append(
                create(conn, 2, 5, [{"sku": s, "quantity": rnd.randint(1, 5)} for s in skus])[0]
            )
        for _ in range(60):
            order_id = rnd.choice(shared) if rnd.random() < 0.5 else rnd.choice(own)
            _step(conn, rnd, edges, order_id, outcomes)

    run_clients(dsn, clients, work)
    outcomes.assert_clean()
    print(f"walks: {sum(outcomes.ok.values())} transitions, failures {dict(outcomes.states)}")
    assert outcomes.ok["shipped"] > 0 and outcomes.states["OD002"] > 0
    assert_invariants(deployment, "lifecycle walks")


def test_mixed_load_keeps_every_invariant(
    dsn: str, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """At least 10 seconds of everything at once: stock receipts, orders on a hot sku and on
    scarce stock, idempotent retries, lifecycle walks on shared orders; then the invariants."""
    clients = clients_of(deployment)
    duration = 10.0
    skus = ["HOT", *[f"M-{s}" for s in range(10)]]
    with connect(dsn) as conn:
        for w in (6, 7):
            for s in skus:
                conn.execute("SELECT orderdb.receive_stock(%s, %s, 40)", (w, s))
        edges = _edges(conn)
    outcomes = Outcomes(allowed=frozenset({"OD001", "OD002", "OD003"}))
    shared: list[int] = []
    shared_lock = threading.Lock()
    deadline = time.monotonic() + duration

    def work(i: int, conn: psycopg.Connection[Any]) -> None:
        rnd = random.Random(900 + i)
        mine: list[int] = []
        n = 0
        while time.monotonic() < deadline:
            n += 1
            roll = rnd.random()
            warehouse = rnd.choice((6, 7))
            try:
                if roll < 0.08:
                    conn.execute(
                        "SELECT orderdb.receive_stock(%s, %s, %s, 'dock')",
                        (warehouse, rnd.choice(skus), rnd.randint(1, 20)),
                    )
                    outcomes.success("receive")
                elif roll < 0.45:
                    lines = rnd.sample(skus, rnd.randint(1, 5))
                    if "HOT" not in lines and rnd.random() < 0.6:
                        lines.append("HOT")
                    items = [{"sku": s, "quantity": rnd.randint(1, 3)} for s in lines]
                    key = f"mix-{i}-{n}" if rnd.random() < 0.5 else None
                    order_id, _, _ = create(conn, 1 + i, warehouse, items, key)
                    if key is not None:  # a client retry: must replay, reserve nothing
                        again, _, replayed = create(conn, 1 + i, warehouse, items[::-1], key)
                        assert (again, replayed) == (order_id, True)
                    outcomes.success("create")
                    mine.append(order_id)
                    if rnd.random() < 0.3:
                        with shared_lock:
                            shared.append(order_id)
                else:
                    with shared_lock:
                        pool = shared[-50:]
                    if pool and rnd.random() < 0.4:
                        order_id = rnd.choice(pool)
                    elif mine:
                        order_id = rnd.choice(mine)
                    else:
                        continue
                    if not _step(conn, rnd, edges, order_id, outcomes) and order_id in mine:
                        mine.remove(order_id)
            except psycopg.Error as exc:
                outcomes.failure(exc)

    started = time.monotonic()
    run_clients(dsn, clients, work)
    elapsed = time.monotonic() - started
    total = sum(outcomes.ok.values())
    violations = check_invariants(deployment)
    with capsys.disabled():  # the report is printed on every run, not only on failure
        print(
            f"\nmixed load: {elapsed:.1f} s, {clients} clients, {total} successful calls "
            f"({dict(outcomes.ok)}), refused {dict(outcomes.states)}, "
            f"deadlocks {outcomes.states['40P01']}, "
            f"SQLSTATEs outside the contract {len(outcomes.unexpected)}"
        )
        print(f"mixed load: invariant violations: {len(violations)}")
        for v in violations:
            print("   ", v)
    outcomes.assert_clean()
    assert violations == []
    assert elapsed >= duration
    assert outcomes.ok["create"] > 0 and outcomes.ok["shipped"] > 0
    assert outcomes.states["OD001"] > 0, "the load never ran out of stock"


def test_return_after_a_partial_shipment_keeps_the_lock_order(
    dsn: str, deployment: Deployment
) -> None:
    """A return restocks the shipped lines and releases the held ones (partial shipment): it must
    lock all their inventory rows in sku order, or it deadlocks with a client that locks the same
    rows in sku order (here: B, then C) while the return holds C and waits for B."""
    with connect(dsn) as conn:
        for sku in ("DL-A", "DL-B", "DL-C"):
            conn.execute("SELECT orderdb.receive_stock(8, %s, 10)", (sku,))
        order_id, version, _ = create(
            conn, 1, 8, [{"sku": s, "quantity": 1} for s in ("DL-A", "DL-B", "DL-C")]
        )
        for to in ("confirmed", "dispatched", "picked", "packed"):
            version = transition(conn, order_id, to, version)
    # partial shipment (as a WMS SHIPPED callback with lines does): A and C leave, B stays held;
    # an internal function, so called where the warehouse's data is (its shard in the cluster)
    with connect(deployment.data_dsn_of(8)) as shard:
        row = shard.execute(
            "SELECT version FROM orderdb._apply_transition(8, %s, 'shipped', %s, 'wms', NULL,"
            " '{}', 'wms', NULL, %s)",
            (order_id, version, Jsonb([{"sku": "DL-A"}, {"sku": "DL-C"}])),
        ).fetchone()
        assert row is not None
        version = int(row[0])
    with connect(dsn) as conn:
        for to in ("delivered", "return_requested", "returning"):
            version = transition(conn, order_id, to, version)

    outcomes = Outcomes(allowed=frozenset())
    # the other client locks the rows where they are; the return goes through the API (the
    # proxy in the cluster, whose call waits on the shard in a backend of the shard's own)
    with connect(deployment.data_dsn_of(8)) as other, connect(dsn) as returner:
        other.autocommit = False
        other.execute(
            "SELECT 1 FROM orderdb.inventory WHERE warehouse_id = 8 AND sku = 'DL-B'"
            " FOR NO KEY UPDATE"
        )

        def do_return() -> None:
            try:
                transition(returner, order_id, "returned", version)
            except psycopg.Error as exc:
                outcomes.failure(exc)
            else:
                outcomes.success("returned")

        worker = threading.Thread(target=do_return)
        worker.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the return waits for DL-B
            # a transaction reads pg_stat_activity once unless told to look again
            other.execute("SELECT pg_stat_clear_snapshot()")
            waiting = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0] > 0:
                break
            time.sleep(0.05)
        try:
            other.execute(
                "SELECT 1 FROM orderdb.inventory WHERE warehouse_id = 8 AND sku = 'DL-C'"
                " FOR NO KEY UPDATE"
            )
            other.commit()
        except psycopg.Error as exc:
            outcomes.failure(exc)
            other.rollback()
        worker.join(30)
    outcomes.assert_clean()
    assert outcomes.ok["returned"] == 1
    lines = deployment.rows(
        "SELECT sku, qty_held, qty_consumed, qty_released, qty_returned"
        " FROM orderdb.order_lines WHERE order_id = %s ORDER BY sku",
        (order_id,),
    )
    drift = deployment.rows("SELECT * FROM orderdb_ops.inventory_drift")
    assert lines == [("DL-A", 0, 0, 0, 1), ("DL-B", 0, 0, 1, 0), ("DL-C", 0, 0, 0, 1)]
    assert drift == []
