"""The ``orderdb`` command group and what every subcommand shares: the DSN, output, errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from orderdb.config import redact, resolve_dsn
from orderdb.errors import OrderDBError, from_psycopg

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar="ORDERDB_DSN",
    default=None,
    help=(
        "PostgreSQL connection string (default: $ORDERDB_DSN, else libpq's environment when "
        "PGHOST, PGSERVICE or PGDATABASE is set, else the embedded server)."
    ),
)
@click.version_option(package_name="orderdb")
@click.pass_context
def main(ctx: click.Context, dsn: str | None) -> None:
    """orderdb: order fulfilment and order tracking inside PostgreSQL."""
    ctx.ensure_object(dict)
    ctx.obj["dsn"] = dsn


def dsn_option(func: F) -> F:
    """A ``--dsn`` option on a subcommand too (``orderdb migrate --dsn ...``)."""
    return click.option(
        "--dsn",
        "sub_dsn",
        default=None,
        help="PostgreSQL connection string (overrides the group's --dsn).",
    )(func)


def get_dsn(ctx: click.Context, sub_dsn: str | None = None) -> str:
    """This command's DSN: its --dsn, else the group's --dsn / $ORDERDB_DSN, else libpq's
    environment, else the embedded server (said on stderr)."""
    root = ctx.find_root()
    chosen = sub_dsn or (root.obj or {}).get("dsn")
    return resolve_dsn(chosen, announce=sys.stderr)


def json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: object, *, indent: int | None = None) -> str:
    return json.dumps(value, default=json_default, ensure_ascii=False, indent=indent)


def echo_json(value: object) -> None:
    click.echo(dumps(value, indent=2))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


def handle_errors(func: F) -> F:
    """Print orderdb errors (sqlstate, message, detail, hint) and exit 1 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return func(*args, **kwargs)
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            if mapped is None:
                err_console.print(f"[red]error[/red] ({exc.sqlstate}): {exc}", markup=True)
                sys.exit(1)
            _print_error(mapped)
        except OrderDBError as exc:
            _print_error(exc)

    return wrapper  # type: ignore[return-value]


def _print_error(exc: OrderDBError) -> None:
    state = f" ({exc.sqlstate})" if exc.sqlstate else ""
    err_console.print(f"[red]error{state}[/red]: {exc}", markup=True, highlight=False)
    if exc.detail:
        err_console.print(f"  detail: {exc.detail}", markup=False, highlight=False)
    if exc.hint:
        err_console.print(f"  hint: {exc.hint}", markup=False, highlight=False)
    sys.exit(1)


__all__ = [
    "console",
    "dsn_option",
    "dumps",
    "echo_json",
    "err_console",
    "get_dsn",
    "handle_errors",
    "main",
    "print_table",
    "redact",
]
