"""Property-based tests (hypothesis) of create_order's inputs: every valid request succeeds and
reserves exactly its quantities; every invalid one raises 22023 (InvalidInput) naming the field
and writes nothing."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderdb import Client, errors
from tests.deployments import Deployment

WAREHOUSE = 21
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# what a sku may not consist of only (API: "not blank")
BLANKS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" + (
    "\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _is_sku(text: str) -> bool:
    """A valid sku: 1..255 characters in NFC, no control characters, not blank."""
    return (
        text == unicodedata.normalize("NFC", text)
        and 1 <= len(text) <= 255
        and not any(unicodedata.category(c) == "Cc" for c in text)
        and text.strip(BLANKS) != ""
    )


# skus: any text PostgreSQL can store (no lone surrogates) that is a valid sku, in NFC (the form
# the database stores and get_order returns)
sku_text = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=255)
    .map(lambda s: unicodedata.normalize("NFC", s))
    .filter(_is_sku)
)
quantities = st.integers(min_value=1, max_value=100_000)
prices = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=10**12),
    st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10**6, places=4).map(str),
)


@st.composite
def valid_items(draw: st.DrawFn, max_lines: int = 12) -> list[dict[str, Any]]:
    skus = draw(st.lists(sku_text, min_size=1, max_size=max_lines, unique=True))
    items = []
    for sku in skus:
        line: dict[str, Any] = {"sku": sku, "quantity": draw(quantities)}
        price = draw(prices)
        if price is not None or draw(st.booleans()):
            line["unit_price"] = price
        items.append(line)
    return items


# each test runs on one database and through a proxy over three shards (tests/deployments.py)
@pytest.fixture(scope="module")
def client(module_deployment: Deployment) -> Iterator[Client]:
    with Client.connect(module_deployment.dsn, min_size=1, max_size=2) as c:
        c.receive_stock(WAREHOUSE, "SEED", 1)
        yield c


@pytest.fixture(scope="module")
def conn(module_deployment: Deployment) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(module_deployment.dsn, autocommit=True) as c:
        yield c


def _snapshot(deployment: Deployment) -> list[list[tuple[Any, ...]]]:
    """What the tables hold, on the database or on every shard."""
    return deployment.per_database(
        "SELECT (SELECT count(*) FROM orderdb.orders), (SELECT count(*) FROM orderdb.order_lines),"
        " (SELECT count(*) FROM orderdb.order_directory), (SELECT count(*) FROM orderdb.outbox),"
        " (SELECT coalesce(sum(reserved), 0) FROM orderdb.inventory),"
        " (SELECT coalesce(sum(on_hand), 0) FROM orderdb.inventory)"
    )


def _levels(client: Client, skus: list[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for sku in skus:
        level = client.stock_level(WAREHOUSE, sku)
        out[sku] = (level.on_hand, level.reserved)
    return out


@SETTINGS
@given(items=valid_items(), extra=st.integers(min_value=0, max_value=3), key=st.booleans())
def test_valid_orders_succeed_and_reserve_exactly(
    client: Client, items: list[dict[str, Any]], extra: int, key: bool
) -> None:
    for line in items:  # stock every sku with at least the requested quantity
        client.receive_stock(WAREHOUSE, line["sku"], line["quantity"] + extra)
    skus = [line["sku"] for line in items]
    before = _levels(client, skus)

    idem = f"prop-{uuid.uuid4()}" if key else None  # hypothesis may run an example twice
    created = client.create_order(9, WAREHOUSE, items, idempotency_key=idem)
    assert (created.status, created.version) == ("pending", 1)
    after = _levels(client, skus)
    for line in items:
        on_hand, reserved = before[line["sku"]]
        assert after[line["sku"]] == (on_hand, reserved + line["quantity"])

    order = client.get_order(created.order_id)
    assert [(i.sku, i.quantity, i.held) for i in order.items] == [
        (line["sku"], line["quantity"], line["quantity"]) for line in items
    ]
    for got, line in zip(order.items, items, strict=True):
        price = line.get("unit_price")
        assert got.unit_price == (None if price is None else Decimal(str(price)))

    if idem is not None:  # a retry replays and reserves nothing
        again = client.create_order(9, WAREHOUSE, list(reversed(items)), idempotency_key=idem)
        assert (again.order_id, again.replayed) == (created.order_id, True)
        assert _levels(client, skus) == after


# -- invalid requests: one valid request, then exactly one thing broken --------------------------

LINE_BREAKERS: list[tuple[str, Any]] = [
    ("quantity", 0),
    ("quantity", -1),
    ("quantity", 1.5),
    ("quantity", "2"),
    ("quantity", None),
    ("quantity", 2**31),
    ("quantity", True),
    ("sku", ""),
    ("sku", "x" * 256),
    ("sku", 12),
    ("sku", None),
    ("sku", "\t"),
    ("sku", "A\x85"),
    ("sku", " "),
    ("sku", "\u3000\u200b"),
    ("unit_price", -1),
    ("unit_price", "1,00"),
    ("unit_price", 10**13),
    ("unit_price", False),
    ("unit_price", [1]),
]


@st.composite
def invalid_requests(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """(create_order keyword arguments, the field the error must name)."""
    items = draw(valid_items(max_lines=6))
    request: dict[str, Any] = {"customer_id": 1, "warehouse_id": WAREHOUSE, "items": items}
    kind = draw(st.sampled_from(["line", "drop", "dup", "nonobject", "count", "arg"]))
    if kind == "line":
        index = draw(st.integers(0, len(items) - 1))
        name, value = draw(st.sampled_from(LINE_BREAKERS))
        items[index] = {**items[index], name: value}
        return request, f"items[{index}].{name}"
    if kind == "drop":
        index = draw(st.integers(0, len(items) - 1))
        name = draw(st.sampled_from(["sku", "quantity"]))
        items[index] = {k: v for k, v in items[index].items() if k != name}
        return request, f"items[{index}].{name}"
    if kind == "dup":
        index = draw(st.integers(0, len(items) - 1))
        items.append({**items[index], "quantity": 1})
        return request, f"items[{len(items) - 1}].sku"
    if kind == "nonobject":
        index = draw(st.integers(0, len(items) - 1))
        items[index] = draw(st.sampled_from([1, "sku", None, [items[index]]]))
        return request, f"items[{index}]"
    if kind == "count":
        n = draw(st.sampled_from([0, 501]))
        request["items"] = [{"sku": f"L{i}", "quantity": 1} for i in range(n)]
        return request, "items"
    field = draw(
        st.sampled_from(
            ["customer_id", "warehouse_id", "idempotency_key", "actor", "options", "big_options"]
        )
    )
    if field == "customer_id":
        # within bigint: a wider number is another type, and no create_order takes it
        request["customer_id"] = draw(st.integers(min_value=-(2**63), max_value=0))
    elif field == "warehouse_id":
        request["warehouse_id"] = draw(st.integers(min_value=-(2**31), max_value=0))
    elif field == "idempotency_key":
        request["idempotency_key"] = draw(st.sampled_from(["", "k" * 256]))
    elif field == "actor":
        request["actor"] = "a" * draw(st.integers(1001, 3000))
    elif field == "options":
        request["options"] = draw(st.sampled_from([[], [1], "x", 3]))
    else:
        request["options"] = {"blob": "b" * 65536}
        field = "options"
    return request, field


@SETTINGS
@given(case=invalid_requests())
def test_invalid_orders_raise_22023_and_write_nothing(
    client: Client,
    conn: psycopg.Connection[Any],
    module_deployment: Deployment,
    case: tuple[dict[str, Any], str],
) -> None:
    request, field = case
    for line in request["items"]:  # stock what can be stocked: only the input is wrong
        if isinstance(line, dict) and isinstance(line.get("sku"), str) and _is_sku(line["sku"]):
            client.receive_stock(WAREHOUSE, line["sku"], 100_000)
    before = _snapshot(module_deployment)
    with pytest.raises(errors.InvalidInput) as raised:
        _create_raw(conn, request)
    assert raised.value.sqlstate == "22023"
    message = str(raised.value)
    assert message.startswith(field), f"{message!r} does not name {field}"
    assert _snapshot(module_deployment) == before


def _create_raw(conn: psycopg.Connection[Any], request: dict[str, Any]) -> None:
    """create_order with arbitrary JSON (the typed client would not let some of it through)."""
    try:
        conn.execute(
            "SELECT * FROM orderdb.create_order(%s, %s, %s::jsonb, %s, %s, %s::jsonb)",
            (
                request["customer_id"],
                request["warehouse_id"],
                json.dumps(request["items"], default=str),
                request.get("idempotency_key"),
                request.get("actor"),
                json.dumps(request.get("options", {})),
            ),
        )
    except psycopg.Error as exc:
        mapped = errors.from_psycopg(exc)
        if mapped is None:
            raise
        raise mapped from exc
