"""CLI command: ``orderdb ingest orders FILE.jsonl`` — orders from another system (an ERP, a
marketplace export) placed through ``create_order`` with their own idempotency keys.

One JSON object a line::

    {"customer_id": 1001, "warehouse_id": 1, "idempotency_key": "erp-SO-4711",
     "items": [{"sku": "TEA-01", "quantity": 2, "unit_price": "39.90"}],
     "options": {"ship_to": {"name": "王芳", "phone": "13812345678", "province": "浙江省",
                             "city": "杭州市", "district": "西湖区", "line1": "文三路 90 号"}}}

``warehouse_id`` and ``options`` may be left out (``actor`` too: the default is ``import``);
``idempotency_key`` is required, so running the same file again places nothing twice: every line
already placed answers "replayed". A line that cannot be placed (not JSON, a missing or wrong key,
data create_order refuses, no stock) is reported with its number and the reason and the other
lines go on; the command exits 1 when any line was refused, 75 when the connection was lost
(run the file again: the orders placed before are replayed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from orderdb.cli.base import (
    EXIT_RETRY_LATER,
    client_session,
    dsn_option,
    echo_json,
    err_console,
    handle_errors,
    print_error,
    print_table,
)
from orderdb.cli.tracking import BadLine, _check_json, _check_text, ingest_group
from orderdb.errors import OrderDBError, TransientError
from orderdb.richtext import progress_bar

#: the keys of one line (anything else is refused: a typo must not drop data silently)
KEYS = frozenset({"customer_id", "warehouse_id", "items", "idempotency_key", "options", "actor"})
INT8_MAX = 2**63 - 1
INT4_MAX = 2**31 - 1


def _positive(field: str, value: Any, maximum: int, *, required: bool) -> int | None:
    if value is None:
        if required:
            raise BadLine(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadLine(field, "must be a whole number")
    if not 0 < value <= maximum:
        raise BadLine(field, f"must be between 1 and {maximum}")
    return value


def order_args(obj: Any) -> dict[str, Any]:
    """The create_order arguments of one line's object (raises BadLine naming the key)."""
    if not isinstance(obj, dict):
        raise BadLine("line", "must be a JSON object")
    unknown = sorted(str(k) for k in obj if k not in KEYS)
    if unknown:
        raise BadLine(unknown[0], f"unknown key (expected: {', '.join(sorted(KEYS))})")
    key = obj.get("idempotency_key")
    if key is None or (isinstance(key, str) and not key.strip()):
        raise BadLine("idempotency_key", "missing (an import needs one so that re-runs replay)")
    if not isinstance(key, str):
        raise BadLine("idempotency_key", "must be a string")
    _check_text("idempotency_key", key)
    items = obj.get("items")
    if not isinstance(items, list):
        raise BadLine("items", "missing" if items is None else "must be a JSON array")
    _check_json("items", items)
    options = obj.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadLine("options", "must be a JSON object")
    _check_json("options", options)
    actor = obj.get("actor", "import")
    if not isinstance(actor, str):
        raise BadLine("actor", "must be a string")
    return {
        "customer_id": _positive("customer_id", obj.get("customer_id"), INT8_MAX, required=True),
        "warehouse_id": _positive(
            "warehouse_id", obj.get("warehouse_id"), INT4_MAX, required=False
        ),
        "items": items,
        "idempotency_key": key,
        "actor": _check_text("actor", actor),
        "options": options,
    }


def parse_order_line(raw: bytes) -> dict[str, Any] | None:
    """The create_order arguments of one raw line (None for a blank line); raises BadLine."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine("line", f"not UTF-8 (byte {exc.start + 1})") from None
    if not text.strip():
        return None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadLine("line", "JSON nested too deep") from None
    except ValueError as exc:
        raise BadLine("line", f"not JSON: {exc}") from None
    return order_args(obj)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


@ingest_group.command("orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@dsn_option
@click.pass_context
@handle_errors
def ingest_orders_cmd(ctx: click.Context, file: Path, as_json: bool, sub_dsn: str | None) -> None:
    """Place orders from FILE.jsonl through create_order (one JSON object per line:
    customer_id, warehouse_id?, items, idempotency_key, options?, actor?).

    idempotency_key is required: running the file again is harmless (those orders are
    "replayed", not placed twice). Each order is its own transaction. A line that cannot be
    placed is reported (line number and reason) and the others go on. Prints how many orders
    were new, replayed and refused (a progress bar on stderr while it runs, on a terminal);
    exits 1 when any line was refused, 75 when the connection was lost (the summary says where;
    running the file again places the rest)."""
    import psycopg

    lines = file.read_bytes().split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last line
    counts = {"new": 0, "replayed": 0, "refused": 0}
    problems: list[dict[str, Any]] = []
    aborted: str | None = None

    def refuse(lineno: int, key: Any, reason: str) -> None:
        counts["refused"] += 1
        problems.append(
            {"line": lineno, "idempotency_key": key if isinstance(key, str) else None,
             "reason": reason}
        )  # fmt: skip

    # a progress bar on a terminal only (a log or a pipe gets the summary alone)
    bar: AbstractContextManager[Callable[[], None]] = (
        progress_bar("orders", len(lines), console=err_console, transient=as_json)
        if err_console.is_terminal
        else nullcontext(lambda: None)
    )
    with client_session(ctx, sub_dsn) as (db, conn), bar as advance:
        for lineno, raw in enumerate(lines, start=1):
            advance()
            args: dict[str, Any] | None = None
            try:
                args = parse_order_line(raw.removesuffix(b"\r"))
                if args is None:
                    continue
                created = db.create_order(**args, conn=conn)
            except BadLine as exc:
                refuse(lineno, None, f"{exc.field}: {exc.reason}")
                continue
            except TransientError as exc:  # the connection is lost: no later line can be placed
                aborted = f"line {lineno}: {_first_line(str(exc))}"
                break
            except OrderDBError as exc:
                key = args["idempotency_key"] if args else None
                refuse(lineno, key, f"{_first_line(str(exc))} ({exc.sqlstate})")
                continue
            except psycopg.Error as exc:
                if conn.closed or isinstance(exc, psycopg.OperationalError):
                    aborted = f"line {lineno}: {_first_line(str(exc))}"
                    break
                key = args["idempotency_key"] if args else None
                first = _first_line(exc.diag.message_primary or str(exc))
                refuse(lineno, key, f"{first} ({exc.sqlstate})")
                continue
            counts["replayed" if created.replayed else "new"] += 1
    if as_json:
        summary: dict[str, Any] = {**counts, "problems": problems}
        if aborted is not None:
            summary["aborted"] = aborted
        echo_json(summary)
    else:
        print_table(
            f"orders from {file.name}",
            ["new", "replayed", "refused"],
            [(counts["new"], counts["replayed"], counts["refused"])],
        )
        for p in problems[:20]:
            key = f" [{p['idempotency_key']}]" if p["idempotency_key"] else ""
            err_console.print(
                f"line {p['line']}{key}: refused: {p['reason']}", markup=False, highlight=False
            )
        if len(problems) > 20:
            err_console.print(
                f"... and {len(problems) - 20} more (--json lists every one)", markup=False
            )
    if aborted is not None:
        print_error(f"stopped at {aborted} (the lines before it are placed)")
    if aborted is not None:
        sys.exit(EXIT_RETRY_LATER)
    if counts["refused"]:
        sys.exit(1)
