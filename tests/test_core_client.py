"""orderdb.Client over the core API: typed results, the sqlstate -> exception mapping, and
``conn=`` sharing the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from orderdb import Client, errors
from orderdb.client import CreatedOrder, HistoryEntry, Order, OrderItem, OrderState, StockLevel
from orderdb.errors import OrderDBError, from_psycopg


@pytest.fixture(scope="module")
def client(db_dsn: str) -> Iterator[Client]:
    with Client.connect(db_dsn, min_size=1, max_size=4) as c:
        yield c


def _count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_stock_round_trip(client: Client) -> None:
    level = client.receive_stock(11, "CL-A", 10, actor="dock")
    assert level == StockLevel(warehouse_id=11, sku="CL-A", on_hand=10, reserved=0, available=10)
    assert client.receive_stock(11, "CL-A", 5).on_hand == 15
    assert client.stock_level(11, "CL-A") == StockLevel(11, "CL-A", 15, 0, 15)


def test_order_round_trip_is_typed(client: Client) -> None:
    client.receive_stock(11, "CL-B", 10)
    client.receive_stock(11, "CL-C", 10)
    created = client.create_order(
        customer_id=7,
        warehouse_id=11,
        items=[
            {"sku": "CL-B", "quantity": 2, "unit_price": Decimal("19.90")},
            {"sku": "CL-C", "quantity": 1, "unit_price": "0.10"},
        ],
        idempotency_key="cl-cart-1",
        actor="shop",
        options={"channel": "web"},
    )
    assert isinstance(created, CreatedOrder)
    assert (created.status, created.version, created.replayed) == ("pending", 1, False)
    assert created.order_no.startswith("ORD")

    order = client.get_order(created.order_id)
    assert isinstance(order, Order)
    assert (order.order_id, order.order_no, order.customer_id, order.warehouse_id) == (
        created.order_id,
        created.order_no,
        7,
        11,
    )
    assert order.items == (
        OrderItem("CL-B", 2, Decimal("19.90"), held=2, consumed=0, released=0, returned=0),
        OrderItem("CL-C", 1, Decimal("0.10"), held=1, consumed=0, released=0, returned=0),
    )
    assert order.options == {"channel": "web"}
    assert order["status"] == "pending"  # the raw document stays readable

    state = client.transition(
        created.order_id,
        "confirmed",
        expected_version=1,
        actor="payment-svc",
        reason="paid",
        context={"ip": "10.0.0.1"},
    )
    assert state == OrderState(created.order_id, "confirmed", 2)

    history = client.order_history(created.order_id)
    assert all(isinstance(h, HistoryEntry) for h in history)
    assert [(h.version, h.from_status, h.to_status, h.actor) for h in history] == [
        (1, None, "pending", "shop"),
        (2, "pending", "confirmed", "payment-svc"),
    ]
    assert history[1].context == {"ip": "10.0.0.1"}
    assert history[1].reason == "paid"
    assert history[1].source == "api"
    assert history[1].occurred_at is not None

    replay = client.create_order(
        7,
        11,
        [
            {"sku": "CL-C", "quantity": 1, "unit_price": "0.1"},
            {"sku": "CL-B", "quantity": 2, "unit_price": "19.9"},
        ],
        idempotency_key="cl-cart-1",
        actor="someone-else",
        options={"channel": "web"},
    )
    assert replay == CreatedOrder(created.order_id, created.order_no, "confirmed", 2, True)
    assert client.stock_level(11, "CL-B").reserved == 2

    edges = client.allowed_transitions()
    assert ("pending", "confirmed") in {(t.from_status, t.to_status) for t in edges}


def test_errors_map_to_their_classes(client: Client) -> None:
    client.receive_stock(12, "CL-E", 3)
    with pytest.raises(errors.InsufficientStock) as od001:
        client.create_order(1, 12, [{"sku": "CL-E", "quantity": 4}])
    assert od001.value.sqlstate == "OD001"
    assert od001.value.detail == "sku=CL-E requested=4 available=3"
    assert od001.value.hint

    created = client.create_order(1, 12, [{"sku": "CL-E", "quantity": 1}], idempotency_key="cl-e")
    with pytest.raises(errors.VersionConflict) as od002:
        client.transition(created.order_id, "confirmed", expected_version=7)
    assert od002.value.sqlstate == "OD002"
    assert od002.value.detail == "status=pending version=1"
    with pytest.raises(errors.InvalidTransition) as od003:
        client.transition(created.order_id, "shipped", expected_version=1)
    assert od003.value.sqlstate == "OD003"
    with pytest.raises(errors.NotFound):
        client.get_order(987654321)
    with pytest.raises(errors.NotFound):
        client.stock_level(12, "CL-NEVER")
    with pytest.raises(errors.IdempotencyConflict) as od006:
        client.create_order(2, 12, [{"sku": "CL-E", "quantity": 1}], idempotency_key="cl-e")
    assert od006.value.sqlstate == "OD006"
    with pytest.raises(errors.InvalidInput) as bad:
        client.create_order(1, 12, [{"sku": "CL-E", "quantity": 0}])
    assert bad.value.sqlstate == "22023"
    assert "items[0].quantity" in str(bad.value)
    with pytest.raises(errors.InvalidInput, match="unknown to_status"):
        client.transition(created.order_id, "nowhere", expected_version=1)
    for exc in (od001.value, od002.value, od003.value, od006.value, bad.value):
        assert isinstance(exc, OrderDBError)


def test_out_of_range_ids_and_quantities_are_invalid_input(client: Client) -> None:
    with pytest.raises(errors.InvalidInput):
        client.receive_stock(16, "CL-BIG", 2**31)
    with pytest.raises(errors.InvalidInput):
        client.receive_stock(2**31, "CL-BIG", 1)
    with pytest.raises(errors.InvalidInput):
        client.get_order(2**63)
    with pytest.raises(errors.InvalidInput):
        client.transition(1, "confirmed", expected_version=2**31)
    with pytest.raises(errors.InvalidInput, match="quantity must be a positive integer"):
        client.receive_stock(16, "CL-BIG", -(2**31))


def test_from_psycopg_covers_class_22_and_ignores_the_rest(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as overflow:
            conn.execute("SELECT 2147483647::integer + 1")
        mapped = from_psycopg(overflow.value)
        assert isinstance(mapped, errors.InvalidInput)
        assert mapped.sqlstate == "22003"
        with pytest.raises(psycopg.Error) as syntax:
            conn.execute("SELEC 1")
        assert from_psycopg(syntax.value) is None
    assert set(errors.BY_SQLSTATE) == {
        "OD001",
        "OD002",
        "OD003",
        "OD004",
        "OD005",
        "OD006",
        "22023",
    }


def test_conn_shares_the_callers_transaction(client: Client, db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as tx:  # not autocommit: one transaction until rollback
        client.receive_stock(13, "CL-TX", 5, conn=tx)
        created = client.create_order(3, 13, [{"sku": "CL-TX", "quantity": 2}], conn=tx)
        client.transition(created.order_id, "confirmed", expected_version=1, conn=tx)
        # the calls see each other inside the transaction ...
        assert client.stock_level(13, "CL-TX", conn=tx).reserved == 2
        assert client.get_order(created.order_id, conn=tx).version == 2
        # ... and nobody else does
        with pytest.raises(errors.NotFound):
            client.get_order(created.order_id)
        tx.rollback()
    with pytest.raises(errors.NotFound):
        client.stock_level(13, "CL-TX")
    with pytest.raises(errors.NotFound):
        client.get_order(created.order_id)
    with psycopg.connect(db_dsn, autocommit=True) as check:
        assert _count(check, "SELECT count(*) FROM orderdb.warehouses WHERE warehouse_id = 13") == 0
        row = check.execute(
            "SELECT count(*) FROM orderdb.outbox WHERE order_id = %s", (created.order_id,)
        ).fetchone()
        assert row is not None and row[0] == 0


def test_conn_commit_is_the_callers_choice(client: Client, db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as tx:
        client.receive_stock(14, "CL-TX2", 5, conn=tx)
        created = client.create_order(3, 14, [{"sku": "CL-TX2", "quantity": 2}], conn=tx)
        tx.commit()
    assert client.get_order(created.order_id).status == "pending"
    assert client.stock_level(14, "CL-TX2").reserved == 2


def test_an_error_inside_the_callers_transaction_is_mapped(client: Client, db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as tx:
        client.receive_stock(15, "CL-TX3", 1, conn=tx)
        with pytest.raises(errors.InsufficientStock):
            client.create_order(3, 15, [{"sku": "CL-TX3", "quantity": 2}], conn=tx)
        tx.rollback()
    with pytest.raises(errors.NotFound):
        client.stock_level(15, "CL-TX3")


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


def test_deep_json_is_refused_so_get_order_reads_every_order(client: Client, db_dsn: str) -> None:
    """Options nested 1,000 deep (2 kB) used to be stored, and Client.get_order then failed with
    RecursionError: the database refuses JSON nested more than 32 levels, so every stored order
    reads back."""
    client.receive_stock(11, "CL-DEEP", 10)
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(
                "SELECT * FROM orderdb.create_order(915402, 11, %s::jsonb, NULL, NULL, %s::jsonb)",
                ('[{"sku": "CL-DEEP", "quantity": 1}]', deep),
            )
        assert info.value.sqlstate == "22023"
        assert info.value.diag.message_primary == "options must nest at most 32 levels deep"
    with pytest.raises(errors.InvalidInputError, match="options must nest at most 32 levels"):
        client.create_order(915402, 11, [{"sku": "CL-DEEP", "quantity": 1}], options=_nested(33))
    with psycopg.connect(db_dsn) as conn:
        assert _count(conn, "SELECT count(*) FROM orderdb.orders WHERE customer_id = 915402") == 0
    created = client.create_order(
        915402, 11, [{"sku": "CL-DEEP", "quantity": 1}], options=_nested(32)
    )
    assert client.get_order(created.order_id).options == _nested(32)


def test_transaction_commits_at_the_end_and_rolls_back_on_an_error(client: Client) -> None:
    with client.transaction() as tx:
        client.receive_stock(17, "CL-T1", 5, conn=tx)
        kept = client.create_order(3, 17, [{"sku": "CL-T1", "quantity": 2}], conn=tx)
        with pytest.raises(errors.NotFoundError):  # not committed yet
            client.get_order(kept.order_id)
    assert client.get_order(kept.order_id).status == "pending"
    with pytest.raises(errors.InsufficientStockError), client.transaction() as tx:
        client.receive_stock(18, "CL-T2", 1, conn=tx)
        client.create_order(3, 18, [{"sku": "CL-T2", "quantity": 2}], conn=tx)
    with pytest.raises(errors.NotFoundError):  # the receipt is undone too
        client.stock_level(18, "CL-T2")


def _terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
        assert row == (True,)


def test_lost_connections_are_transient_and_the_pool_replaces_them(
    client: Client, db_dsn: str
) -> None:
    client.receive_stock(19, "CL-K", 3)
    with pytest.raises(errors.TransientError) as lost, client.transaction() as tx:
        client.receive_stock(19, "CL-K", 1, conn=tx)
        _terminate(db_dsn, tx.info.backend_pid)
        client.stock_level(19, "CL-K", conn=tx)
    assert isinstance(lost.value, OrderDBError)
    assert client.stock_level(19, "CL-K").on_hand == 3  # nothing was committed
    # idle pooled connections the server closed are replaced at checkout (the pool's check)
    with client.pool.connection() as pooled:
        idle_pid = pooled.info.backend_pid
    _terminate(db_dsn, idle_pid)
    for _ in range(5):
        assert client.stock_level(19, "CL-K").on_hand == 3


def test_a_serialization_failure_is_transient(client: Client) -> None:
    client.receive_stock(20, "CL-S", 5)
    created = client.create_order(4, 20, [{"sku": "CL-S", "quantity": 1}])
    with pytest.raises(errors.TransientError) as failed, client.transaction() as tx:
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        client.get_order(created.order_id, conn=tx)  # the snapshot is taken
        client.transition(created.order_id, "confirmed", expected_version=1)
        client.transition(created.order_id, "cancelled", expected_version=1, conn=tx)
    assert failed.value.sqlstate == "40001"
    assert client.get_order(created.order_id).status == "confirmed"


def test_a_dsn_given_to_the_constructor_is_a_clear_error(db_dsn: str) -> None:
    """Client(dsn) is a natural mistake: it says to use Client.connect, and holds nothing."""
    with pytest.raises(TypeError, match=r"Client\.connect\(dsn\)"):
        Client(db_dsn)  # type: ignore[arg-type]
