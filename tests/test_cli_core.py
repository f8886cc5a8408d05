"""The core CLI (`orderdb stock ...`, `orderdb order ...`) against a real database via --dsn:
--json output for scripts, readable tables otherwise, errors with their SQLSTATE and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orderdb.cli import main
from orderdb.cli.core import parse_item


def run(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dsn", dsn, *args], catch_exceptions=False)


def run_json(dsn: str, *args: str) -> Any:
    result = run(dsn, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stock_receive_and_show(db_dsn: str) -> None:
    level = run_json(db_dsn, "stock", "receive", "31", "CLI-A", "10", "--actor", "dock-1")
    assert level == {
        "warehouse_id": 31,
        "sku": "CLI-A",
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
    }
    table = run(db_dsn, "stock", "show", "31", "CLI-A")
    assert table.exit_code == 0
    assert "CLI-A" in table.stdout and "available" in table.stdout
    assert run_json(db_dsn, "stock", "show", "31", "CLI-A")["available"] == 10


def test_order_lifecycle_through_the_cli(db_dsn: str) -> None:
    run_json(db_dsn, "stock", "receive", "32", "CLI-B", "10")
    run_json(db_dsn, "stock", "receive", "32", "NS:WITH:COLONS", "10")
    created = run_json(
        db_dsn,
        "order",
        "create",
        "--customer",
        "5",
        "--warehouse",
        "32",
        "--item",
        "CLI-B:2:19.90",
        "--item",
        "NS:WITH:COLONS:1",
        "--idempotency-key",
        "cli-cart-1",
        "--actor",
        "cli-test",
    )
    assert (created["status"], created["version"], created["replayed"]) == ("pending", 1, False)
    order_id = str(created["order_id"])

    replay = run_json(
        db_dsn,
        "order",
        "create",
        "--customer",
        "5",
        "--warehouse",
        "32",
        "--item",
        "NS:WITH:COLONS:1",
        "--item",
        "CLI-B:2:19.9",
        "--idempotency-key",
        "cli-cart-1",
    )
    assert (replay["order_id"], replay["replayed"]) == (created["order_id"], True)

    doc = run_json(db_dsn, "order", "show", order_id)
    assert doc["order_no"] == created["order_no"]
    assert [(i["sku"], i["quantity"]) for i in doc["items"]] == [
        ("CLI-B", 2),
        ("NS:WITH:COLONS", 1),
    ]
    assert doc["items"][0]["unit_price"] == "19.90"
    shown = run(db_dsn, "order", "show", order_id)
    assert shown.exit_code == 0 and "CLI-B" in shown.stdout and "pending" in shown.stdout

    state = run_json(
        db_dsn,
        "order",
        "transition",
        order_id,
        "confirmed",
        "--expected-version",
        "1",
        "--actor",
        "payment-svc",
        "--reason",
        "paid",
        "--context",
        '{"ip": "10.0.0.9"}',
    )
    assert state == {"order_id": created["order_id"], "status": "confirmed", "version": 2}
    table = run(db_dsn, "order", "transition", order_id, "dispatched", "--expected-version", "2")
    assert table.exit_code == 0 and "dispatched" in table.stdout

    history = run_json(db_dsn, "order", "history", order_id)
    assert [(h["version"], h["from_status"], h["to_status"]) for h in history] == [
        (1, None, "pending"),
        (2, "pending", "confirmed"),
        (3, "confirmed", "dispatched"),
    ]
    assert history[1]["actor"] == "payment-svc"
    assert history[1]["reason"] == "paid"
    assert history[1]["context"] == {"ip": "10.0.0.9"}
    readable = run(db_dsn, "order", "history", order_id)
    assert readable.exit_code == 0 and "3 entries" in readable.stdout

    assert run_json(db_dsn, "stock", "show", "32", "CLI-B")["reserved"] == 2


@pytest.mark.parametrize(
    ("args", "sqlstate", "status"),
    [
        (("stock", "show", "33", "NOPE"), "OD004", 3),
        (("stock", "receive", "33", "CLI-C", "0"), "22023", 2),
        (
            ("order", "create", "--customer", "1", "--warehouse", "33", "--item", "CLI-C:99"),
            "OD001",
            4,
        ),
        (("order", "show", "987654321"), "OD004", 3),
        (("order", "transition", "987654321", "confirmed", "--expected-version", "1"), "OD004", 3),
        (("order", "transition", "1", "nowhere", "--expected-version", "1"), "22023", 2),
        (("order", "history", "0"), "22023", 2),
    ],
)
def test_errors_print_their_sqlstate_and_exit_status(
    db_dsn: str, args: tuple[str, ...], sqlstate: str, status: int
) -> None:
    """Not found 3, bad input 2, refused by the state 4 (docs/operations.md, exit statuses)."""
    run_json(db_dsn, "stock", "receive", "33", "CLI-C", "1")
    result = run(db_dsn, *args)
    assert result.exit_code == status, result.output
    assert f"({sqlstate})" in result.stderr
    assert result.stdout == ""


def test_version_conflict_shows_detail(db_dsn: str) -> None:
    run_json(db_dsn, "stock", "receive", "34", "CLI-D", "5")
    created = run_json(
        db_dsn, "order", "create", "--customer", "1", "--warehouse", "34", "--item", "CLI-D:1"
    )
    order_id = str(created["order_id"])
    run_json(db_dsn, "order", "transition", order_id, "confirmed", "--expected-version", "1")
    result = run(db_dsn, "order", "transition", order_id, "cancelled", "--expected-version", "1")
    assert result.exit_code == 4  # a conflict
    assert "(OD002)" in result.stderr
    assert "status=confirmed version=2" in result.stderr


def test_bad_item_and_context_are_usage_errors(db_dsn: str) -> None:
    bad_item = run(db_dsn, "order", "create", "--customer", "1", "--warehouse", "1", "--item", "X")
    assert bad_item.exit_code == 2 and "SKU:QTY" in bad_item.output
    bad_ctx = run(
        db_dsn,
        "order",
        "transition",
        "1",
        "confirmed",
        "--expected-version",
        "1",
        "--context",
        "[]",
    )
    assert bad_ctx.exit_code == 2 and "JSON object" in bad_ctx.output


def test_parse_item() -> None:
    assert parse_item("A:2") == {"sku": "A", "quantity": 2}
    assert parse_item("A:2:19.90") == {"sku": "A", "quantity": 2, "unit_price": "19.90"}
    assert parse_item("A:B:2") == {"sku": "A:B", "quantity": 2}
    assert parse_item("A:B:2:0.5") == {"sku": "A:B", "quantity": 2, "unit_price": "0.5"}
    assert parse_item("A:-1") == {"sku": "A", "quantity": -1}  # the server says 22023


def test_the_installed_command_with_a_subcommand_dsn(db_dsn: str) -> None:
    """The real entry point, the --dsn of the subcommand, one process per call."""
    cmd = [sys.executable, "-m", "orderdb", "stock", "receive", "35", "CLI-E", "3", "--json"]
    done = subprocess.run([*cmd, "--dsn", db_dsn], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["on_hand"] == 3
    failed = subprocess.run(
        [sys.executable, "-m", "orderdb", "stock", "show", "35", "NOPE", "--dsn", db_dsn],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 3 and "(OD004)" in failed.stderr
