"""read_events / ack_events against a real server: commit-safe order under concurrent writers that
commit out of id order, at-least-once, independent consumers, the horizon, errors, retention."""

from __future__ import annotations

import random
import re
import threading
import time
from typing import Any

import psycopg
import pytest

from orderdb import events as ev
from orderdb.client import Client
from orderdb.errors import InvalidInput, NotFound

from .conftest import PgServer

Conn = psycopg.Connection[Any]


def _stock(conn: Conn, warehouse_id: int = 1, skus: int = 8) -> None:
    for i in range(skus):
        conn.execute("SELECT orderdb.receive_stock(%s, %s, 1000000)", (warehouse_id, f"SKU-{i}"))


def _create_order(conn: Conn, customer_id: int = 1, sku: str = "SKU-0") -> int:
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(%s, 1, %s::jsonb)",
        (customer_id, f'[{{"sku": "{sku}", "quantity": 1, "unit_price": 1}}]'),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _event_ids_of(conn: Conn, order_ids: list[int]) -> set[int]:
    rows = conn.execute(
        "SELECT event_id FROM orderdb.outbox WHERE order_id = ANY(%s)", (order_ids,)
    ).fetchall()
    return {r[0] for r in rows}


def _drain(conn: Conn, consumer: str, limit: int = 1000) -> list[ev.Event]:
    out: list[ev.Event] = []
    while True:
        batch = ev.read_events(conn, consumer, limit)
        if not batch:
            return out
        out += batch
        ev.ack_events(conn, consumer, batch[-1].event_id)


@pytest.fixture
def db(fresh_dsn: str) -> Any:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        _stock(conn)
        yield fresh_dsn, conn


def test_higher_ids_committing_first_are_not_skipped(db: Any) -> None:
    dsn, conn = db
    with psycopg.connect(dsn) as slow, psycopg.connect(dsn) as fast:
        slow_order = _create_order(slow, sku="SKU-0")  # lower event id, left open
        fast_order = _create_order(fast, sku="SKU-1")  # higher event id
        fast.commit()
        assert ev.read_events(conn, "c", 100) == [], "the horizon holds back the later commit"
        slow.commit()
    got = _drain(conn, "c")
    assert [e.order_id for e in got] == [slow_order, fast_order]
    assert [e.event_type for e in got] == ["order.created", "order.created"]


def test_lower_xid_with_higher_event_id(db: Any) -> None:
    """A transaction that got its xid first but wrote its event last sorts first (tx_id order)."""
    dsn, conn = db
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        first.execute("SELECT pg_current_xact_id()")  # xid assigned, no event yet
        second_order = _create_order(second)
        second.commit()
        assert ev.read_events(conn, "c", 100) == []
        first_order = _create_order(first)  # higher event id, lower tx_id
        first.commit()
    got = _drain(conn, "c")
    assert [e.order_id for e in got] == [first_order, second_order]
    assert got[0].event_id > got[1].event_id


def test_rolled_back_events_never_appear(db: Any) -> None:
    dsn, conn = db
    with psycopg.connect(dsn) as tx:
        _create_order(tx)
        tx.rollback()
    kept = _create_order(conn)
    assert [e.order_id for e in _drain(conn, "c")] == [kept]


def test_transaction_in_another_database_does_not_hold_back(
    db: Any, pg_server: PgServer, template_db: str
) -> None:
    dsn, conn = db
    other_dsn = pg_server.dsn(template_db)
    with psycopg.connect(other_dsn) as other, psycopg.connect(dsn) as same:
        other.execute("SELECT pg_current_xact_id()")  # an xid held open elsewhere
        order_id = _create_order(conn)
        assert [e.order_id for e in ev.read_events(conn, "c", 10)] == [order_id]
        same.execute("SELECT pg_current_xact_id()")  # one held open in this database
        later = _create_order(conn)
        ev.ack_events(conn, "c", ev.read_events(conn, "c", 10)[-1].event_id)
        assert ev.read_events(conn, "c", 10) == [], "same-database xid holds back"
        lag = conn.execute(
            "SELECT pending_events, unreadable_events, horizon_xact_pid"
            " FROM orderdb_ops.relay_lag WHERE consumer = 'c'"
        ).fetchone()
        same_pid = same.info.backend_pid
        assert lag == (1, 1, same_pid)
        other.rollback()
        same.rollback()
    assert [e.order_id for e in ev.read_events(conn, "c", 10)] == [later]


def test_concurrent_writers_with_open_transactions_nothing_missed(db: Any) -> None:
    """Writers hold transactions open for random times (so higher ids often commit first), some
    roll back; a consumer reads and acknowledges all along. It gets every committed event exactly
    once (it acknowledges each batch before reading on), in a stable order."""
    dsn, conn = db
    committed: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(dsn) as w:
                while not stop.is_set():
                    oid = _create_order(w, customer_id=seed + 1, sku=f"SKU-{seed}")
                    time.sleep(rnd.uniform(0, 0.03))
                    if rnd.random() < 0.15:
                        w.rollback()
                    else:
                        w.commit()
                        with lock:
                            committed.append(oid)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    seen: list[ev.Event] = []

    def consumer() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                while not stop.is_set():
                    batch = ev.read_events(c, "live", 50)
                    if batch:
                        seen.extend(batch)
                        ev.ack_events(c, "live", batch[-1].event_id)
                    else:
                        time.sleep(0.005)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    threads.append(threading.Thread(target=consumer))
    for t in threads:
        t.start()
    time.sleep(6)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    seen += _drain(conn, "live")

    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "no duplicates when every batch is acknowledged"
    expected = _event_ids_of(conn, committed)
    assert len(committed) > 100
    assert set(ids) == expected, f"missed {sorted(expected - set(ids))[:10]}"

    # the order is stable: a fresh consumer reads the same sequence
    again = [e.event_id for e in _drain(conn, "replay")]
    assert again == ids
    # and it is not plain id order (commits happened out of id order)
    assert ids != sorted(ids)


def test_unacknowledged_events_come_again_and_consumers_are_independent(db: Any) -> None:
    _, conn = db
    for _ in range(5):
        _create_order(conn)
    first = ev.read_events(conn, "a", 3)
    assert ev.read_events(conn, "a", 3) == first
    ev.ack_events(conn, "a", first[1].event_id)
    rest = ev.read_events(conn, "a", 10)
    assert [e.event_id for e in rest] == [first[2].event_id] + [e.event_id for e in rest[1:]]
    assert len(rest) == 3
    assert len(ev.read_events(conn, "b", 10)) == 5


def test_ack_errors(db: Any) -> None:
    dsn, conn = db
    for _ in range(3):
        _create_order(conn)
    batch = ev.read_events(conn, "c", 2)
    last = conn.execute("SELECT max(event_id) FROM orderdb.outbox").fetchone()
    assert last is not None
    with Client.connect(dsn) as client:
        with pytest.raises(InvalidInput) as info:
            client.ack_events("c", last[0])
        assert info.value.sqlstate == "22023"
        assert "was not returned to consumer c" in str(info.value)
        with pytest.raises(InvalidInput):
            client.ack_events("c", 10**12)
        with pytest.raises(NotFound):
            client.ack_events("never-read", batch[0].event_id)
        client.ack_events("c", batch[1].event_id)
        assert [e.event_id for e in client.read_events("c", 10)] == [last[0]]


def test_client_read_and_ack_share_a_transaction(db: Any) -> None:
    dsn, conn = db
    _create_order(conn)
    with Client.connect(dsn) as client, psycopg.connect(dsn) as tx:
        got = client.read_events("t", 10, conn=tx)
        client.ack_events("t", got[-1].event_id, conn=tx)
        tx.rollback()  # the read position and the ack roll back together
        assert [e.event_id for e in client.read_events("t", 10)] == [got[0].event_id]


def test_purge_events_respects_consumers_and_age(db: Any) -> None:
    _, conn = db
    for _ in range(5):
        _create_order(conn)
    total = 5
    a = ev.read_events(conn, "a", 3)
    ev.ack_events(conn, "a", a[-1].event_id)
    ev.read_events(conn, "b", 1)
    # b has acknowledged nothing: nothing goes
    assert conn.execute("SELECT orderdb.purge_events('0 seconds', 100)").fetchone() == (0,)
    b = ev.read_events(conn, "b", 10)
    ev.ack_events(conn, "b", b[1].event_id)
    # too young: nothing goes
    assert conn.execute("SELECT orderdb.purge_events('1 hour', 100)").fetchone() == (0,)
    # old enough and passed by both (a: 3, b: 2): two go, in batches of one
    assert conn.execute("SELECT orderdb.purge_events('0 seconds', 1)").fetchone() == (1,)
    assert conn.execute("SELECT orderdb.purge_events('0 seconds', 100)").fetchone() == (1,)
    left = conn.execute("SELECT count(*) FROM orderdb.outbox").fetchone()
    assert left == (total - 2,)
    # consumers still read on from their positions
    assert [e.event_id for e in ev.read_events(conn, "b", 10)] == [e.event_id for e in b[2:]]
    assert conn.execute("SELECT orderdb.drop_consumer('b')").fetchone() == (True,)
    assert conn.execute("SELECT orderdb.purge_events('0 seconds', 100)").fetchone() == (1,)
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT orderdb.purge_events('-1 second', 100)")
    assert info.value.sqlstate == "22023"


NOTIFY_STATEMENT = re.compile(r"pg_notify\s*\(|^\s*notify\s+\w+\s*(,|;|$)", re.IGNORECASE)


def test_no_business_function_notifies(conn: Conn) -> None:
    """Business transactions never NOTIFY: no function in the orderdb schemas does (the relay
    notifies, from its own transaction)."""
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, p.prosrc FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname IN ('orderdb', 'orderdb_ops')"
    ).fetchall()
    assert len(rows) > 20
    offenders = [
        name
        for name, src in rows
        for line in src.splitlines()
        if NOTIFY_STATEMENT.search(line.split("--")[0])
    ]
    assert offenders == []


def test_business_function_writes_its_event_in_its_own_transaction(db: Any) -> None:
    dsn, conn = db
    with psycopg.connect(dsn) as tx:
        order_id = _create_order(tx)
        # visible to the writing transaction, invisible to everyone else until commit
        own = tx.execute("SELECT count(*) FROM orderdb.outbox WHERE order_id = %s", (order_id,))
        assert own.fetchone() == (1,)
        other = conn.execute(
            "SELECT count(*) FROM orderdb.outbox WHERE order_id = %s", (order_id,)
        ).fetchone()
        assert other == (0,)
        tx.commit()
    got = _drain(conn, "c")
    assert [(e.event_type, e.order_id) for e in got] == [("order.created", order_id)]
