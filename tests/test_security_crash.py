"""Crash safety: kill PostgreSQL under concurrent load, restart it, check the invariants.

An embedded PostgreSQL 18 server of its own (always, whatever ORDERDB_TEST_DSN says: the test kills
the server) with the durable settings a production server has (fsync, synchronous_commit and
full_page_writes on; a throwaway normally runs with them off). Several threads create and advance
orders as orderdb_app while an outbox relay (orderdb.events.Relay) consumes the events; then
``pg_ctl stop -m immediate`` kills every server process mid-flight (no shutdown checkpoint: the
restart runs crash recovery from the WAL).

After the restart:
  * every commit a client saw succeed is there (orders, their versions and statuses, history);
  * no oversell: reserved <= on_hand, on_hand >= 0; counters equal the ledger
    (orderdb_ops.inventory_drift is empty; on_hand = received - consumed);
  * valid histories: every order's version = 1 + its history rows (versions 2..n, each with its
    order.status_changed event), and every order has its order.created event;
  * idempotent retries of acknowledged creates replay the original order;
  * the relay resumes from its durable position: every event in the outbox is handed to it.

Limits: an immediate stop is a PostgreSQL crash, not a power cut (the kernel's page cache
survives). That still tests what matters for acknowledged commits: with synchronous_commit=on a
commit returns only after its WAL is flushed; with it off, commits acknowledged shortly before the
crash would be lost from the server's WAL buffers.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from orderdb.config import ensure_database
from orderdb.events import Event, Relay
from orderdb.server import embedded, migrate

Conn = psycopg.Connection[Any]

DURABLE = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "60",
}
THREADS = 6
LOAD_SECONDS = 3.0
SKUS = [f"CR-{i}" for i in range(6)]
STOCK_PER_SKU = 150  # scarce on purpose: creates fail with OD001 and reservations compete
PATH = ["confirmed", "dispatched", "picked", "packed", "shipped", "delivering", "delivered"]
EXPECTED_FAILURES = {"OD001", "OD002", "OD003"}


@dataclass
class Acked:
    """What the clients saw succeed (committed and acknowledged)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (key, items json)
    versions: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (version, status)
    unexpected: list[str] = field(default_factory=list)
    operations: int = 0


def _worker(dsn: str, n: int, acked: Acked, crashed: threading.Event) -> None:
    rnd = random.Random(n)
    mine: dict[int, tuple[int, str]] = {}
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        return
    with conn:
        conn.execute("SET ROLE orderdb_app")
        seq = 0
        while True:
            try:
                if not mine or rnd.random() < 0.45:
                    seq += 1
                    key = f"crash-{n}-{seq}"
                    lines = rnd.sample(SKUS, rnd.randint(1, 3))
                    items = json.dumps([{"sku": s, "quantity": rnd.randint(1, 3)} for s in lines])
                    row = conn.execute(
                        "SELECT order_id, version FROM orderdb.create_order(%s, 1, %s::jsonb, %s)",
                        (n + 1, items, key),
                    ).fetchone()
                    assert row is not None
                    mine[row[0]] = (row[1], "pending")
                    with acked.lock:
                        acked.created[row[0]] = (key, items)
                        acked.versions[row[0]] = (row[1], "pending")
                        acked.operations += 1
                else:
                    order_id = rnd.choice(list(mine))
                    version, status = mine[order_id]
                    if status in ("cancelled", "delivered"):
                        del mine[order_id]
                        continue
                    if status in [*PATH[:4], "pending"] and rnd.random() < 0.1:
                        target = "cancelled"
                    else:
                        target = PATH[PATH.index(status) + 1] if status in PATH else PATH[0]
                    row = conn.execute(
                        "SELECT version, status FROM orderdb.transition_order(%s, %s, %s, %s)",
                        (order_id, target, version, f"worker-{n}"),
                    ).fetchone()
                    assert row is not None
                    mine[order_id] = (row[0], row[1])
                    with acked.lock:
                        acked.versions[order_id] = (row[0], row[1])
                        acked.operations += 1
            except psycopg.OperationalError:
                return  # the server is gone
            except psycopg.Error as exc:
                if crashed.is_set():
                    return
                if exc.sqlstate not in EXPECTED_FAILURES:
                    with acked.lock:
                        acked.unexpected.append(f"{exc.sqlstate}: {exc}")
                    return


def _rows(conn: Conn, query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()  # type: ignore[arg-type]


def _check_invariants(conn: Conn, acked: Acked) -> None:
    # no oversell, counters == ledger (inventory_levels: the inventory row plus the stock buckets
    # of a SKU that split itself under the load)
    assert (
        _rows(
            conn,
            "SELECT * FROM orderdb.inventory_levels WHERE reserved > on_hand OR on_hand < 0",
        )
        == []
    )
    assert _rows(conn, "SELECT * FROM orderdb_ops.inventory_drift") == []
    assert (
        _rows(
            conn,
            """
            SELECT i.sku, i.on_hand, r.received, coalesce(c.consumed, 0)
              FROM orderdb.inventory_levels i
              JOIN (SELECT warehouse_id, sku, sum(quantity) AS received
                      FROM orderdb.stock_receipts GROUP BY 1, 2) r USING (warehouse_id, sku)
              LEFT JOIN (SELECT warehouse_id, sku, sum(qty_consumed) AS consumed
                           FROM orderdb.order_lines GROUP BY 1, 2) c USING (warehouse_id, sku)
             WHERE i.on_hand <> r.received - coalesce(c.consumed, 0)
            """,
        )
        == []
    )
    # valid histories: version = 1 + history rows, versions 2..n, each with its event
    assert (
        _rows(
            conn,
            """
            SELECT o.order_id, o.version, count(h.version), min(h.version), max(h.version)
              FROM orderdb.orders o
              LEFT JOIN orderdb.order_status_history h
                ON h.warehouse_id = o.warehouse_id AND h.order_id = o.order_id
             GROUP BY o.order_id, o.version
            HAVING o.version <> 1 + count(h.version)
                OR (count(h.version) > 0 AND (min(h.version) <> 2 OR max(h.version) <> o.version))
            """,
        )
        == []
    )
    assert (
        _rows(
            conn,
            """
            SELECT h.order_id, h.version FROM orderdb.order_status_history h
             WHERE NOT EXISTS (
                   SELECT 1 FROM orderdb.outbox e
                    WHERE e.event_type = 'order.status_changed' AND e.order_id = h.order_id
                      AND (e.payload ->> 'version')::integer = h.version)
            """,
        )
        == []
    )
    assert (
        _rows(
            conn,
            """
            SELECT o.order_id FROM orderdb.orders o
             WHERE NOT EXISTS (SELECT 1 FROM orderdb.outbox e
                                WHERE e.event_type = 'order.created' AND e.order_id = o.order_id)
            """,
        )
        == []
    )
    # every acknowledged commit is there
    current = {
        int(r[0]): (int(r[1]), str(r[2]))
        for r in _rows(conn, "SELECT order_id, version, status FROM orderdb.orders")
    }
    missing = sorted(set(acked.created) - set(current))
    assert missing == [], f"acknowledged orders lost in the crash: {missing[:20]}"
    history = {
        (int(r[0]), int(r[1])): str(r[2])
        for r in _rows(
            conn, "SELECT order_id, version, to_status FROM orderdb.order_status_history"
        )
    }
    lost: list[str] = []
    for order_id, (version, status) in acked.versions.items():
        now_version, now_status = current[order_id]
        if now_version < version:
            lost.append(f"order {order_id}: acknowledged v{version} {status}, now v{now_version}")
        elif version >= 2 and history.get((order_id, version)) != status:
            lost.append(f"order {order_id}: no history row v{version} -> {status}")
        elif now_version == version and now_status != status:
            lost.append(f"order {order_id}: acknowledged {status}, now {now_status}")
    assert lost == [], lost[:20]


@pytest.mark.slow
def test_acknowledged_commits_and_invariants_survive_a_crash() -> None:
    with embedded.throwaway(DURABLE) as server:
        ensure_database(server.dsn, "crash")
        dsn = server.url("crash")
        migrate.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as owner:
            settings = dict(
                _rows(
                    owner,
                    "SELECT name, setting FROM pg_settings "
                    "WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')",
                )
            )
            assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            for sku in SKUS:
                owner.execute("SELECT orderdb.receive_stock(1, %s, %s)", (sku, STOCK_PER_SKU))

        seen: set[int] = set()
        seen_lock = threading.Lock()

        def handler(event: Event) -> None:
            with seen_lock:
                seen.add(event.event_id)

        relay = Relay(
            dsn,
            consumer="crash-relay",
            webhooks=False,
            notify=False,
            retention=None,
            reconnect_max=0.5,
            batch_size=50,
        )
        relay_thread = threading.Thread(target=relay.run, args=(handler,), daemon=True)
        relay_thread.start()

        acked = Acked()
        crashed = threading.Event()
        workers = [
            threading.Thread(target=_worker, args=(dsn, n, acked, crashed), daemon=True)
            for n in range(THREADS)
        ]
        for w in workers:
            w.start()
        time.sleep(LOAD_SECONDS)
        with acked.lock:
            before_crash = acked.operations
        crashed.set()
        assert embedded.crash(server.data_root), "the server was not running"
        for w in workers:
            w.join(timeout=30)
            assert not w.is_alive()
        assert acked.unexpected == []
        assert before_crash > 50, f"too little load before the crash: {before_crash} operations"

        restarted = embedded.restart(server.data_root, extra_settings=DURABLE)
        assert restarted.port == server.port
        log = (server.data_root / "postgresql.log").read_text(errors="replace")
        assert "automatic recovery in progress" in log, "the restart ran no crash recovery"
        with psycopg.connect(dsn, autocommit=True) as owner:
            _check_invariants(owner, acked)

            # idempotent retries of acknowledged creates replay the original order
            sample = random.Random(0).sample(sorted(acked.created), min(20, len(acked.created)))
            owner.execute("SET ROLE orderdb_app")
            for order_id in sample:
                key, items = acked.created[order_id]
                customer = int(key.split("-")[1]) + 1
                row = owner.execute(
                    "SELECT order_id, replayed FROM orderdb.create_order(%s, 1, %s::jsonb, %s)",
                    (customer, items, key),
                ).fetchone()
                assert row == (order_id, True)
            # the API works after recovery, and new ids do not collide with old ones
            owner.execute("SELECT orderdb.receive_stock(1, %s, 5)", (SKUS[0],))
            fresh = owner.execute(
                "SELECT order_id FROM orderdb.create_order(99, 1, %s::jsonb)",
                (json.dumps([{"sku": SKUS[0], "quantity": 1}]),),
            ).fetchone()
            assert fresh is not None and fresh[0] > max(acked.created)
            owner.execute("RESET ROLE")

            # the relay resumes from its durable position: nothing is lost
            all_events = {int(r[0]) for r in _rows(owner, "SELECT event_id FROM orderdb.outbox")}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with seen_lock:
                    if all_events <= seen:
                        break
                time.sleep(0.1)
            relay.stop()
            relay_thread.join(timeout=30)
            with seen_lock:
                not_relayed = sorted(all_events - seen)
            assert not_relayed == [], f"{len(not_relayed)} events never reached the relay"
            assert relay.loop.reconnects >= 1, "the relay did not notice the crash"
            _check_invariants(owner, acked)
        print(  # shown with -s
            f"crash test: {before_crash} acknowledged operations before the crash, "
            f"{len(acked.created)} orders, {len(all_events)} events relayed, "
            f"relay reconnects {relay.loop.reconnects}"
        )
