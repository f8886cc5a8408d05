"""CLI commands of the core engine: ``orderdb stock receive|show`` and
``orderdb order create|show|transition|history``.

Each command is one call of the SQL API through :class:`orderdb.Client` on one connection;
``--json`` prints the result for scripts, otherwise a readable table. Errors are printed with their
SQLSTATE by ``handle_errors`` (exit status 1). Other modules may add commands to ``stock_group`` and
``order_group`` (e.g. ``orderdb order timeline``).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from orderdb.cli.base import (
    INT4,
    INT8,
    client_session,
    console,
    dsn_option,
    echo_json,
    handle_errors,
    main,
    print_table,
)
from orderdb.client import Order, StockLevel


def json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")(func)


def parse_item(text: str) -> dict[str, Any]:
    """``SKU:QTY[:PRICE]`` -> {"sku", "quantity"[, "unit_price"]}. The sku may contain ':'."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[0] and _is_int(parts[1]):
        sku, qty, price = parts
        try:
            Decimal(price)
        except InvalidOperation:
            raise click.BadParameter(f"{text!r}: PRICE must be a decimal number") from None
        return {"sku": sku, "quantity": int(qty), "unit_price": price}
    parts = text.rsplit(":", 1)
    if len(parts) == 2 and parts[0] and _is_int(parts[1]):
        return {"sku": parts[0], "quantity": int(parts[1])}
    raise click.BadParameter(f"{text!r}: expected SKU:QTY or SKU:QTY:PRICE")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _print_level(level: StockLevel) -> None:
    print_table(
        f"stock of {level.sku} in warehouse {level.warehouse_id}",
        ["warehouse", "sku", "on hand", "reserved", "available"],
        [(level.warehouse_id, level.sku, level.on_hand, level.reserved, level.available)],
    )


def _print_order(order: Order) -> None:
    print_table(
        f"order {order.order_id} ({order.order_no})",
        ["field", "value"],
        [
            ("status", order.status),
            ("version", order.version),
            ("customer", order.customer_id),
            ("warehouse", order.warehouse_id),
            ("previous status", order.previous_status),
            ("created", f"{order.created_at:%Y-%m-%d %H:%M:%S%z} by {order.created_by or '-'}"),
            ("updated", f"{order.updated_at:%Y-%m-%d %H:%M:%S%z}"),
            ("options", json.dumps(order.options) if order.options else None),
            ("shipments", len(order.shipments)),
            ("WMS order id", order.wms_order_id),
        ],
    )
    print_table(
        "items",
        ["sku", "quantity", "unit price", "held", "consumed", "released", "returned"],
        [
            (i.sku, i.quantity, i.unit_price, i.held, i.consumed, i.released, i.returned)
            for i in order.items
        ],
    )


# -- stock ---------------------------------------------------------------------------------------


@main.group("stock")
def stock_group() -> None:
    """Stock levels: receive goods, show a sku's level."""


@stock_group.command("receive")
@click.argument("warehouse_id", type=INT4)
@click.argument("sku")
@click.argument("quantity", type=INT4)
@click.option("--actor", default=None, help="Who received the goods (recorded).")
@json_option
@dsn_option
@click.pass_context
@handle_errors
def stock_receive(
    ctx: click.Context,
    warehouse_id: int,
    sku: str,
    quantity: int,
    actor: str | None,
    as_json: bool,
    sub_dsn: str | None,
) -> None:
    """Add QUANTITY units of SKU to WAREHOUSE_ID (orderdb.receive_stock)."""
    with client_session(ctx, sub_dsn) as (client, conn):
        level = client.receive_stock(warehouse_id, sku, quantity, actor=actor, conn=conn)
    if as_json:
        echo_json(level)
    else:
        _print_level(level)


@stock_group.command("show")
@click.argument("warehouse_id", type=INT4)
@click.argument("sku")
@json_option
@dsn_option
@click.pass_context
@handle_errors
def stock_show(
    ctx: click.Context, warehouse_id: int, sku: str, as_json: bool, sub_dsn: str | None
) -> None:
    """Show on hand, reserved and available units of SKU in WAREHOUSE_ID (orderdb.stock_level)."""
    with client_session(ctx, sub_dsn) as (client, conn):
        level = client.stock_level(warehouse_id, sku, conn=conn)
    if as_json:
        echo_json(level)
    else:
        _print_level(level)


# -- orders --------------------------------------------------------------------------------------


@main.group("order")
def order_group() -> None:
    """Orders: create, show, change status, history."""


@order_group.command("create")
@click.option("--customer", "customer_id", type=INT8, required=True, help="Customer id.")
@click.option("--warehouse", "warehouse_id", type=INT4, required=True, help="Warehouse id.")
@click.option(
    "--item",
    "items",
    multiple=True,
    required=True,
    metavar="SKU:QTY[:PRICE]",
    help="An order line (repeat for more lines).",
)
@click.option("--idempotency-key", default=None, help="Retrying with the same key replays.")
@click.option("--actor", default=None, help="Who creates the order (recorded).")
@json_option
@dsn_option
@click.pass_context
@handle_errors
def order_create(
    ctx: click.Context,
    customer_id: int,
    warehouse_id: int,
    items: tuple[str, ...],
    idempotency_key: str | None,
    actor: str | None,
    as_json: bool,
    sub_dsn: str | None,
) -> None:
    """Create an order reserving every line, or nothing (orderdb.create_order)."""
    lines = [parse_item(i) for i in items]
    with client_session(ctx, sub_dsn) as (client, conn):
        created = client.create_order(
            customer_id,
            warehouse_id,
            lines,
            idempotency_key=idempotency_key,
            actor=actor,
            conn=conn,
        )
    if as_json:
        echo_json(created)
        return
    print_table(
        "order replayed (idempotency key seen before)" if created.replayed else "order created",
        ["order_id", "order_no", "status", "version", "replayed"],
        [(created.order_id, created.order_no, created.status, created.version, created.replayed)],
    )


@order_group.command("show")
@click.argument("order_id", type=INT8)
@json_option
@dsn_option
@click.pass_context
@handle_errors
def order_show(ctx: click.Context, order_id: int, as_json: bool, sub_dsn: str | None) -> None:
    """Show an order with its items and their reservations (orderdb.get_order)."""
    with client_session(ctx, sub_dsn) as (client, conn):
        order = client.get_order(order_id, conn=conn)
    if as_json:
        echo_json(order.document)
    else:
        _print_order(order)


@order_group.command("transition")
@click.argument("order_id", type=INT8)
@click.argument("status")
@click.option(
    "--expected-version",
    type=INT4,
    required=True,
    help="The version you read (optimistic lock: OD002 when it changed).",
)
@click.option("--actor", default=None, help="Who changes the status (recorded).")
@click.option("--reason", default=None, help="Why (recorded).")
@click.option(
    "--context",
    "context_json",
    default=None,
    metavar="JSON",
    help='Context recorded with the change, a JSON object (e.g. \'{"ip": "10.0.0.1"}\').',
)
@json_option
@dsn_option
@click.pass_context
@handle_errors
def order_transition(
    ctx: click.Context,
    order_id: int,
    status: str,
    expected_version: int,
    actor: str | None,
    reason: str | None,
    context_json: str | None,
    as_json: bool,
    sub_dsn: str | None,
) -> None:
    """Move ORDER_ID to STATUS (orderdb.transition_order)."""
    context: dict[str, Any] = {}
    if context_json is not None:
        try:
            parsed = json.loads(context_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--context") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--context")
        context = parsed
    with client_session(ctx, sub_dsn) as (client, conn):
        state = client.transition(
            order_id,
            status,
            expected_version=expected_version,
            actor=actor,
            reason=reason,
            context=context,
            conn=conn,
        )
    if as_json:
        echo_json(state)
    else:
        print_table(
            f"order {state.order_id}",
            ["order_id", "status", "version"],
            [(state.order_id, state.status, state.version)],
        )


@order_group.command("history")
@click.argument("order_id", type=INT8)
@json_option
@dsn_option
@click.pass_context
@handle_errors
def order_history(ctx: click.Context, order_id: int, as_json: bool, sub_dsn: str | None) -> None:
    """List every status change of ORDER_ID, oldest first (orderdb.order_history)."""
    with client_session(ctx, sub_dsn) as (client, conn):
        history = client.order_history(order_id, conn=conn)
    if as_json:
        echo_json(history)
        return
    print_table(
        f"history of order {order_id}",
        ["version", "from", "to", "actor", "reason", "context", "source", "time"],
        [
            (
                h.version,
                h.from_status or "-",
                h.to_status,
                h.actor,
                h.reason,
                json.dumps(h.context) if h.context else None,
                h.source,
                f"{h.changed_at:%Y-%m-%d %H:%M:%S%z}",
            )
            for h in history
        ],
    )
    console.print(f"{len(history)} entries")
