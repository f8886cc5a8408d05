"""The ``orderdb`` command group and what every subcommand shares: the DSN, output, errors."""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import click

from orderdb.client import Client, Conn
from orderdb.config import redact, resolve_dsn
from orderdb.errors import OrderDBError, from_psycopg
from orderdb.richtext import Console, Table, esc, plain

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


class FiniteFloatRange(click.FloatRange):
    """A click.FloatRange that also refuses nan and inf (click's range checks let nan through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        result = super().convert(value, param, ctx)
        if not math.isfinite(result):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return result


#: the range of the SQL column behind a number, so that click names the option
#: ("Invalid value for '--warehouse'") instead of the database saying "integer out of range"
INT4 = click.IntRange(-(2**31), 2**31 - 1)
INT8 = click.IntRange(-(2**63), 2**63 - 1)
#: a duration in seconds: finite and not negative
SECONDS = FiniteFloatRange(min=0)


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


@contextmanager
def client_session(ctx: click.Context, sub_dsn: str | None) -> Iterator[tuple[Client, Conn]]:
    """A client and one autocommit connection; every call passes ``conn=`` (no pool is opened).

    The connection is made at once, so a server that is down or a wrong DSN fails with the
    server's message instead of a pool waiting for a connection."""
    import psycopg
    from psycopg_pool import ConnectionPool

    dsn = get_dsn(ctx, sub_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        pool: ConnectionPool[Conn] = ConnectionPool(dsn, open=False)
        yield Client(pool), conn


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
        table.add_row(*[plain(v) for v in row])
    console.print(table)


NOT_INSTALLED = "orderdb is not installed in this database: run `orderdb migrate`"
NOT_UP_TO_DATE = (
    "orderdb is not installed or not up to date in this database: run `orderdb migrate`"
)


def _names_orderdb(message: str) -> bool:
    return re.search(r'"?\borderdb(_ops)?"?\.|schema "orderdb(_ops)?"', message) is not None


def missing_schema_message(exc: Exception) -> str | None:
    """The "run orderdb migrate" message when ``exc`` says the orderdb schema or one of its
    objects does not exist (an empty or outdated database), else None."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return None
    message = exc.diag.message_primary or str(exc)
    if exc.sqlstate == "3F000":
        return NOT_INSTALLED
    if exc.sqlstate in ("42P01", "42883") and _names_orderdb(message):
        return NOT_UP_TO_DATE
    return None


def print_error(
    message: str,
    *,
    sqlstate: str | None = None,
    detail: str | None = None,
    hint: str | None = None,
) -> None:
    """One error on stderr: ``error (SQLSTATE): message``, then its detail and hint lines."""
    state = f" ({esc(sqlstate)})" if sqlstate else ""
    lines = message.strip().splitlines() or ["unknown error"]
    err_console.print(f"[red]error{state}[/red]: {esc(lines[0])}", highlight=False)
    for line in lines[1:]:
        err_console.print(f"  {line.strip()}", markup=False, highlight=False)
    if detail:
        err_console.print(f"  detail: {detail}", markup=False, highlight=False)
    if hint:
        err_console.print(f"  hint: {hint}", markup=False, highlight=False)


def handle_errors(func: F) -> F:
    """The CLI's one error handler: orderdb errors (sqlstate, message, detail, hint), connection
    failures (the server's message), an uninstalled schema ("run orderdb migrate") -> stderr and
    exit status 1 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return func(*args, **kwargs)
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            if mapped is not None:
                _print_error(mapped)
            diag = exc.diag
            missing = missing_schema_message(exc)
            if missing is not None:
                print_error(missing, sqlstate=exc.sqlstate, detail=diag.message_primary)
            elif exc.sqlstate is None:
                # no server answer (refused, unknown host, bad password, pool timeout): psycopg's
                # text carries the server's or libpq's message and its hint lines
                print_error(str(exc) or type(exc).__name__)
            else:
                print_error(
                    diag.message_primary or str(exc),
                    sqlstate=exc.sqlstate,
                    detail=diag.message_detail,
                    hint=diag.message_hint,
                )
            sys.exit(1)
        except OrderDBError as exc:
            _print_error(exc)

    return wrapper  # type: ignore[return-value]


def _print_error(exc: OrderDBError) -> None:
    print_error(str(exc), sqlstate=exc.sqlstate, detail=exc.detail, hint=exc.hint)
    sys.exit(1)


__all__ = [
    "INT4",
    "INT8",
    "NOT_INSTALLED",
    "SECONDS",
    "FiniteFloatRange",
    "client_session",
    "console",
    "dsn_option",
    "dumps",
    "echo_json",
    "err_console",
    "esc",
    "get_dsn",
    "handle_errors",
    "main",
    "missing_schema_message",
    "plain",
    "print_error",
    "print_table",
    "redact",
]
