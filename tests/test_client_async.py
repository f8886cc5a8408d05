"""orderdb.AsyncClient beside orderdb.Client: the same methods, arguments, results and errors;
``conn=`` and ``transaction()`` sharing a transaction; the pool's health check; TransientError
for what a caller can retry (a lost connection, a serialization failure)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolClosed

from orderdb import AsyncClient, Client, OrderDBError, TransientError, errors
from orderdb.client import CreatedOrder, HistoryEntry, Order, OrderItem, OrderState, StockLevel
from orderdb.errors import from_psycopg

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # psycopg's async API runs on asyncio


@pytest.fixture
async def client(db_dsn: str) -> AsyncIterator[AsyncClient]:
    async with await AsyncClient.connect(db_dsn, min_size=2, max_size=8) as c:
        yield c


async def _scalar(dsn: str, query: str, params: tuple[object, ...] = ()) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
        assert row is not None
        return row[0]


async def _backend_pid(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT pg_backend_pid()")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _terminate(dsn: str, pid: int) -> None:
    """Terminates backend ``pid`` and waits (5 s at most) until it is gone."""
    assert await _scalar(dsn, "SELECT pg_terminate_backend(%s, 5000)", (pid,)) is True


async def _terminate_idle(dsn: str) -> int:
    """Terminates every idle session of this database but the caller's, waiting until each is
    gone; returns how many."""
    return int(
        await _scalar(
            dsn,
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'",
        )
    )


def _signature(method: Any) -> list[tuple[str, Any, Any, Any]]:
    """Each parameter's name, kind, default and annotation, ``conn``'s annotation left out (a
    Connection for Client, an AsyncConnection for AsyncClient)."""
    return [
        (p.name, p.kind, p.default, None if p.name == "conn" else p.annotation)
        for p in inspect.signature(method).parameters.values()
    ]


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


async def test_async_client_has_clients_methods_arguments_and_results() -> None:
    sync_methods = _public_methods(Client)
    async_methods = _public_methods(AsyncClient)
    assert set(sync_methods) == set(async_methods)
    for name, method in sync_methods.items():
        if name in ("connect", "close", "transaction"):
            continue
        twin = async_methods[name]
        assert inspect.iscoroutinefunction(twin), name
        assert _signature(twin) == _signature(method), name
        assert inspect.signature(twin).return_annotation == (
            inspect.signature(method).return_annotation
        ), name
        assert "conn" in inspect.signature(twin).parameters, name
        assert twin.__doc__ == method.__doc__, name
    assert _signature(AsyncClient.connect) == _signature(Client.connect)


async def test_stock_and_order_round_trip(client: AsyncClient) -> None:
    level = await client.receive_stock(21, "AC-A", 10, actor="dock")
    assert level == StockLevel(warehouse_id=21, sku="AC-A", on_hand=10, reserved=0, available=10)
    assert await client.stock_level(21, "AC-A") == StockLevel(21, "AC-A", 10, 0, 10)

    created = await client.create_order(
        customer_id=7,
        warehouse_id=21,
        items=[{"sku": "AC-A", "quantity": 2, "unit_price": Decimal("19.90")}],
        idempotency_key="ac-cart-1",
        actor="shop",
        options={"channel": "web"},
    )
    assert isinstance(created, CreatedOrder)
    assert (created.status, created.version, created.replayed) == ("pending", 1, False)

    order = await client.get_order(created.order_id)
    assert isinstance(order, Order)
    assert order.items == (
        OrderItem("AC-A", 2, Decimal("19.90"), held=2, consumed=0, released=0, returned=0),
    )
    assert order.options == {"channel": "web"}

    state = await client.transition(
        created.order_id, "confirmed", expected_version=1, actor="payment-svc", reason="paid"
    )
    assert state == OrderState(created.order_id, "confirmed", 2)
    history = await client.order_history(created.order_id)
    assert all(isinstance(h, HistoryEntry) for h in history)
    assert [(h.version, h.to_status, h.actor) for h in history] == [
        (1, "pending", "shop"),
        (2, "confirmed", "payment-svc"),
    ]

    replay = await client.create_order(
        7,
        21,
        [{"sku": "AC-A", "quantity": 2, "unit_price": "19.9"}],
        idempotency_key="ac-cart-1",
        options={"channel": "web"},
    )
    assert replay == CreatedOrder(created.order_id, created.order_no, "confirmed", 2, True)
    edges = await client.allowed_transitions()
    assert ("pending", "confirmed") in {(t.from_status, t.to_status) for t in edges}


async def test_errors_map_to_the_error_classes_and_their_old_names(client: AsyncClient) -> None:
    await client.receive_stock(22, "AC-E", 3)
    with pytest.raises(errors.InsufficientStockError) as od001:
        await client.create_order(1, 22, [{"sku": "AC-E", "quantity": 4}])
    assert od001.value.sqlstate == "OD001"
    assert od001.value.detail == "sku=AC-E requested=4 available=3"
    created = await client.create_order(
        1, 22, [{"sku": "AC-E", "quantity": 1}], idempotency_key="ac-e"
    )
    with pytest.raises(errors.VersionConflictError) as od002:
        await client.transition(created.order_id, "confirmed", expected_version=7)
    with pytest.raises(errors.InvalidTransitionError) as od003:
        await client.transition(created.order_id, "shipped", expected_version=1)
    with pytest.raises(errors.NotFoundError) as od004:
        await client.get_order(987654321)
    with pytest.raises(errors.ForbiddenError) as od005:
        await client.order_timeline(created.order_id, customer_id=2)
    with pytest.raises(errors.IdempotencyConflictError) as od006:
        await client.create_order(2, 22, [{"sku": "AC-E", "quantity": 1}], idempotency_key="ac-e")
    with pytest.raises(errors.InvalidInputError) as bad:
        await client.create_order(1, 22, [{"sku": "AC-E", "quantity": 0}])
    assert "items[0].quantity" in str(bad.value)

    # the names without the suffix are the same classes
    old_names = [
        (od001, errors.InsufficientStock),
        (od002, errors.VersionConflict),
        (od003, errors.InvalidTransition),
        (od004, errors.NotFound),
        (od005, errors.Forbidden),
        (od006, errors.IdempotencyConflict),
        (bad, errors.InvalidInput),
    ]
    for raised, old in old_names:
        assert isinstance(raised.value, old)
        assert type(raised.value) is old
        assert type(raised.value).__name__.endswith("Error")
        assert isinstance(raised.value, OrderDBError)
        assert not isinstance(raised.value, TransientError)
    assert [type(r.value).sqlstate for r, _ in old_names] == [
        "OD001",
        "OD002",
        "OD003",
        "OD004",
        "OD005",
        "OD006",
        "22023",
    ]


async def test_conn_shares_the_callers_transaction(client: AsyncClient, db_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_dsn) as tx:  # one transaction
        await client.receive_stock(23, "AC-TX", 5, conn=tx)
        created = await client.create_order(3, 23, [{"sku": "AC-TX", "quantity": 2}], conn=tx)
        # the calls see each other inside the transaction ...
        assert (await client.stock_level(23, "AC-TX", conn=tx)).reserved == 2
        assert (await client.get_order(created.order_id, conn=tx)).status == "pending"
        # ... and nobody else does
        with pytest.raises(errors.NotFoundError):
            await client.get_order(created.order_id)
        await tx.rollback()
    with pytest.raises(errors.NotFoundError):
        await client.stock_level(23, "AC-TX")
    with pytest.raises(errors.NotFoundError):
        await client.get_order(created.order_id)
    assert (
        await _scalar(db_dsn, "SELECT count(*) FROM orderdb.warehouses WHERE warehouse_id = 23")
        == 0
    )


async def test_transaction_commits_at_the_end_and_rolls_back_on_an_error(
    client: AsyncClient, db_dsn: str
) -> None:
    async with client.transaction() as tx:
        await client.receive_stock(24, "AC-T1", 5, conn=tx)
        kept = await client.create_order(3, 24, [{"sku": "AC-T1", "quantity": 2}], conn=tx)
        with pytest.raises(errors.NotFoundError):  # not committed yet
            await client.get_order(kept.order_id)
    assert (await client.get_order(kept.order_id)).status == "pending"
    assert (await client.stock_level(24, "AC-T1")).reserved == 2

    with pytest.raises(errors.InsufficientStockError):
        async with client.transaction() as tx:
            await client.receive_stock(25, "AC-T2", 1, conn=tx)
            await client.create_order(3, 25, [{"sku": "AC-T2", "quantity": 1}], conn=tx)
            await client.create_order(3, 25, [{"sku": "AC-T2", "quantity": 1}], conn=tx)
    with pytest.raises(errors.NotFoundError):  # the receipt and the first order are undone too
        await client.stock_level(25, "AC-T2")
    assert (
        await _scalar(
            db_dsn,
            "SELECT count(*) FROM orderdb.orders WHERE warehouse_id = 25",
        )
        == 0
    )


async def test_concurrent_creates_from_many_tasks_never_oversell(client: AsyncClient) -> None:
    await client.receive_stock(26, "AC-HOT", 10)

    async def buy(customer: int) -> CreatedOrder | None:
        try:
            return await client.create_order(customer, 26, [{"sku": "AC-HOT", "quantity": 1}])
        except errors.InsufficientStockError:
            return None

    results = await asyncio.gather(*(buy(1000 + i) for i in range(40)))
    sold = [r for r in results if r is not None]
    assert len(sold) == 10
    assert len({r.order_id for r in sold}) == 10
    assert await client.stock_level(26, "AC-HOT") == StockLevel(26, "AC-HOT", 10, 10, 0)


async def test_the_pool_replaces_connections_the_server_closed(
    client: AsyncClient, db_dsn: str
) -> None:
    await client.receive_stock(27, "AC-P", 1)
    stats = client.pool.get_stats()
    assert stats["pool_available"] >= 1
    assert await _terminate_idle(db_dsn) >= 1
    # every idle pooled connection is dead: the check at checkout replaces them
    for _ in range(3):
        assert (await client.stock_level(27, "AC-P")).on_hand == 1


async def test_a_connection_lost_inside_a_transaction_is_transient(
    client: AsyncClient, db_dsn: str
) -> None:
    await client.receive_stock(28, "AC-K", 3)
    with pytest.raises(TransientError) as lost:
        async with client.transaction() as tx:
            await client.receive_stock(28, "AC-K", 1, conn=tx)
            pid = await _backend_pid(tx)
            await _terminate(db_dsn, pid)
            await client.stock_level(28, "AC-K", conn=tx)
    assert isinstance(lost.value, OrderDBError)
    assert isinstance(lost.value.__cause__, psycopg.OperationalError)
    assert lost.value.sqlstate in (None, "57P01") or lost.value.sqlstate.startswith("08")
    # nothing of the transaction was committed, and the client goes on with a new connection
    assert (await client.stock_level(28, "AC-K")).on_hand == 3
    # the caller's own connection, lost: the same
    async with await psycopg.AsyncConnection.connect(db_dsn) as own:
        pid = await _backend_pid(own)
        await _terminate(db_dsn, pid)
        with pytest.raises(TransientError):
            await client.get_order(1, conn=own)


async def test_a_serialization_failure_is_transient_and_a_retry_succeeds(
    client: AsyncClient,
) -> None:
    await client.receive_stock(29, "AC-S", 5)
    created = await client.create_order(4, 29, [{"sku": "AC-S", "quantity": 1}])
    with pytest.raises(TransientError) as failed:
        async with client.transaction() as tx:
            await tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seen = await client.get_order(created.order_id, conn=tx)  # the snapshot is taken
            # another session changes the order meanwhile
            await client.transition(created.order_id, "confirmed", expected_version=1)
            await client.transition(
                created.order_id, "cancelled", expected_version=seen.version, conn=tx
            )
    assert failed.value.sqlstate == "40001"
    assert isinstance(failed.value, OrderDBError)
    assert (await client.get_order(created.order_id)).status == "confirmed"

    # what a caller does with it: run the transaction again, on fresh data
    async with client.transaction() as tx:
        await tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        seen = await client.get_order(created.order_id, conn=tx)
        await client.transition(
            created.order_id, "cancelled", expected_version=seen.version, conn=tx
        )
    assert (await client.get_order(created.order_id)).status == "cancelled"


async def test_from_psycopg_transient_and_not() -> None:
    deadlock = from_psycopg(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert isinstance(deadlock, TransientError) and deadlock.sqlstate == "40P01"
    serialization = from_psycopg(psycopg.errors.SerializationFailure("could not serialize"))
    assert isinstance(serialization, TransientError) and serialization.sqlstate == "40001"
    shutdown = from_psycopg(psycopg.errors.AdminShutdown("terminating connection"))
    assert isinstance(shutdown, TransientError)
    lost = from_psycopg(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert isinstance(lost, TransientError) and lost.sqlstate is None
    # a closed pool, a wrong DSN: retrying does not help
    assert from_psycopg(PoolClosed("the pool is closed")) is None
    try:
        await psycopg.AsyncConnection.connect("postgresql://postgres@127.0.0.1:1/none")
    except psycopg.OperationalError as exc:
        assert from_psycopg(exc) is None
    else:
        pytest.fail("connected to port 1")
    try:  # a host name that does not resolve is a wrong DSN too
        await psycopg.AsyncConnection.connect("host=no-such-host.invalid connect_timeout=2")
    except psycopg.OperationalError as exc:
        assert from_psycopg(exc) is None
    else:
        pytest.fail("connected to no-such-host.invalid")
    # nor is anything else transient
    assert not isinstance(from_psycopg(psycopg.errors.UniqueViolation("dup")), TransientError)


async def test_a_closed_client_says_so(db_dsn: str) -> None:
    client = await AsyncClient.connect(db_dsn, min_size=1, max_size=1)
    await client.close()
    with pytest.raises(PoolClosed):
        await client.stock_level(1, "AC-none")
