"""The ``orderdb`` command group and what every subcommand shares: the DSN, output, errors."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from orderdb.client import Client, Conn
from orderdb.config import redact, resolve_dsn
from orderdb.errors import OrderDBError, TransientError, from_psycopg, is_transient
from orderdb.richtext import Console, Table, esc, plain

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


#: every option of every command can be set from the environment: ORDERDB_DSN for --dsn, and
#: ORDERDB_<COMMAND>_<OPTION> for the others (ORDERDB_EVENTS_TAIL_CONSUMER for
#: ``orderdb events tail --consumer``); --help shows each option's variable
ENV_PREFIX = "ORDERDB"
DSN_ENV = "ORDERDB_DSN"


def option_envvar(path: Sequence[str], option: click.Option) -> str:
    """The environment variable of ``option`` of the command at ``path`` (("events", "tail")):
    ORDERDB_<COMMAND>_<OPTION>, from the option's long name (--no-purge -> NO_PURGE)."""
    longs = [o for o in option.opts if o.startswith("--")]
    flag = (longs[0] if longs else option.opts[0]).lstrip("-")
    return re.sub(r"[^A-Z0-9]+", "_", "_".join([ENV_PREFIX, *path, flag]).upper())


def apply_env_conventions(command: click.Command, path: tuple[str, ...] = ()) -> None:
    """Give every option of ``command`` and its subcommands its environment variable (unless
    it names one itself) and show it in --help. Eager options (--help, --version) have none."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_eager or not param.expose_value:
            continue
        if param.envvar is None:
            param.envvar = option_envvar(path, param)
        param.show_envvar = True
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            apply_env_conventions(sub, (*path, name))


class OrderdbGroup(click.Group):
    """The root group: before it runs, every option of the tree gets its environment variable
    (commands are registered by several modules, so this is done once the tree is complete)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        apply_env_conventions(self)
        return super().main(*args, **kwargs)


@click.group(cls=OrderdbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar=DSN_ENV,
    default=None,
    help=(
        "PostgreSQL connection string (default: $ORDERDB_DSN, else libpq's environment when "
        "PGHOST, PGSERVICE or PGDATABASE is set, else the embedded server)."
    ),
)
@click.version_option(package_name="orderdb")
@click.pass_context
def main(ctx: click.Context, dsn: str | None) -> None:
    """orderdb: order fulfillment and order tracking inside PostgreSQL."""
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
        envvar=DSN_ENV,
        default=None,
        help="PostgreSQL connection string (overrides the group's --dsn).",
    )(func)


def chosen_dsn(ctx: click.Context, sub_dsn: str | None = None) -> str | None:
    """The DSN given: the command's --dsn, else the group's --dsn, else $ORDERDB_DSN (both
    options read it: the variable never overrides a --dsn on the command line); else None.
    A password inside a --dsn typed on the command line is warned about (on stderr)."""
    root = ctx.find_root()
    root_dsn = (root.obj or {}).get("dsn")
    if sub_dsn and ctx.get_parameter_source("sub_dsn") is not ParameterSource.ENVIRONMENT:
        _warn_password_in_argv(sub_dsn)
        return sub_dsn
    if root_dsn and root.get_parameter_source("dsn") is ParameterSource.COMMANDLINE:
        _warn_password_in_argv(root_dsn)
    return root_dsn or sub_dsn


DSN_ARGV_WARNING = (
    "warning: the password in --dsn is visible to other local users (ps) and kept in shell "
    "histories: put it in ORDERDB_DSN, PGPASSWORD or ~/.pgpass instead"
)


def _warn_password_in_argv(dsn: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        has_password = bool(conninfo_to_dict(dsn).get("password"))
    except psycopg.ProgrammingError:  # unparsable: said when it is used
        return
    if has_password:
        warn(DSN_ARGV_WARNING)


def warn(message: str) -> None:
    """A warning of a command on stderr: printed as is, or a WARNING record of orderdb.cli with
    --log-format json (after :func:`setup_logging`)."""
    if _log_format == "json":
        cli_log.warning(message)
    else:
        err_console.print(message, markup=False, highlight=False)


def get_dsn(ctx: click.Context, sub_dsn: str | None = None) -> str:
    """This command's DSN: its --dsn, else the group's --dsn / $ORDERDB_DSN, else libpq's
    environment, else the embedded server (said on stderr)."""
    return resolve_dsn(chosen_dsn(ctx, sub_dsn), announce=sys.stderr)


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


# -- exit statuses ---------------------------------------------------------------------------------

#: the exit statuses of every command (docs/operations.md "Command line conventions")
EXIT_OK = 0
EXIT_ERROR = 1  # any other failure (the message says what)
EXIT_BAD_INPUT = 2  # bad usage or bad input: click's usage errors, SQLSTATE class 22 (22023)
EXIT_NOT_FOUND = 3  # OD004: the order, shipment, warehouse, sku, ... does not exist
EXIT_CONFLICT = 4  # the current state refuses: OD001, OD002, OD003, OD006
EXIT_FORBIDDEN = 5  # OD005, insufficient privilege (42501), authorization (class 28)
EXIT_RETRY_LATER = 75  # EX_TEMPFAIL: transient; running the same command again may succeed

_CONFLICT_STATES = frozenset({"OD001", "OD002", "OD003", "OD006"})
#: server answers after which the same command can succeed later, besides TransientError's
#: lock_not_available (lock_timeout), insufficient resources (53300 too many connections)
_RETRY_LATER_STATES = frozenset({"55P03", "53000", "53100", "53200", "53300", "53400"})
#: a connection attempt the server refused for a reason that passes (PostgreSQL's messages)
_PASSING_REFUSALS = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "remaining connection slots are reserved",
)


def exit_status(exc: BaseException) -> int:
    """The exit status of a command that failed with ``exc`` (see EXIT_*)."""
    import psycopg

    if isinstance(exc, TransientError):
        return EXIT_RETRY_LATER
    state = getattr(exc, "sqlstate", None)
    if isinstance(exc, psycopg.Error) and str(exc).startswith("failed to resolve host"):
        return EXIT_ERROR  # a misspelt host name more often than a DNS outage
    if isinstance(exc, psycopg.Error) and is_transient(exc):
        return EXIT_RETRY_LATER
    if state:
        if state == "OD004":
            return EXIT_NOT_FOUND
        if state in _CONFLICT_STATES:
            return EXIT_CONFLICT
        if state in ("OD005", "42501") or state.startswith("28"):
            return EXIT_FORBIDDEN
        if state.startswith("22"):
            return EXIT_BAD_INPUT
        if state in _RETRY_LATER_STATES:
            return EXIT_RETRY_LATER
        return EXIT_ERROR
    if isinstance(exc, psycopg.OperationalError):
        # a connection that could not be made: the server did not answer (down, refused, timed
        # out: retry later), or answered FATAL (wrong password, no such database: an error)
        text = str(exc)
        if "FATAL:" in text:
            return EXIT_RETRY_LATER if any(p in text for p in _PASSING_REFUSALS) else EXIT_ERROR
        return EXIT_RETRY_LATER
    return EXIT_ERROR


class NotFoundExit(click.ClickException):
    """A command's own "does not exist" (exit status 3, as OD004)."""

    exit_code = EXIT_NOT_FOUND


def handle_errors(func: F) -> F:
    """The CLI's one error handler: orderdb errors (sqlstate, message, detail, hint), connection
    failures (the server's message), an uninstalled schema ("run orderdb migrate") -> stderr and
    the exit status of :func:`exit_status` instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return func(*args, **kwargs)
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            diag = exc.diag
            missing = missing_schema_message(exc)
            if mapped is not None:
                _print_error(mapped)
            elif missing is not None:
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
            sys.exit(exit_status(exc))
        except OrderDBError as exc:
            _print_error(exc)
            sys.exit(exit_status(exc))

    return wrapper  # type: ignore[return-value]


def _print_error(exc: OrderDBError) -> None:
    print_error(str(exc), sqlstate=exc.sqlstate, detail=exc.detail, hint=exc.hint)


# -- logging of the long-running commands --------------------------------------------------------

LOG_FORMATS = ("text", "json")
#: the attributes of every LogRecord: what is left on a record are the ``extra`` fields
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: the logger of the commands' own lifecycle lines (started, listening, stopped)
cli_log = logging.getLogger("orderdb.cli")
_log_format = "text"


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, then the record's
    extra fields, and exception (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=_log_default, ensure_ascii=False)


def _log_default(value: object) -> object:
    try:
        return json_default(value)
    except TypeError:
        return str(value)


class _StderrHandler(logging.StreamHandler[Any]):
    """A handler writing to the current sys.stderr (not the one of when it was made)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_handler: logging.Handler | None = None


def setup_logging(
    log_format: str,
    level: int | str = logging.WARNING,
    *,
    text_format: str = "%(asctime)s %(levelname)s %(name)s: %(message)s",
) -> None:
    """The logging of a long-running command, on stderr: ``text`` lines, or ``json`` lines
    (:class:`JsonLogFormatter`). The root logger gets ``level``; orderdb.cli (the command's
    started/stopped lines) logs INFO whatever the level. Called again, it replaces its handler."""
    global _handler, _log_format
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    handler = _StderrHandler()
    handler.setFormatter(
        JsonLogFormatter() if log_format == "json" else logging.Formatter(text_format)
    )
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    cli_log.setLevel(logging.INFO)
    _handler = handler
    _log_format = log_format


def log_format_option(func: F) -> F:
    """``--log-format text|json`` of a long-running command (its stderr)."""
    return click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        show_default=True,
        help="Log lines on stderr: text, or JSON lines (time, level, logger, message and the "
        "record's extra fields) for log collectors.",
    )(func)


def notice(message: str, **fields: Any) -> None:
    """A lifecycle line of a long-running command on stderr: printed as is with --log-format
    text, an INFO record of orderdb.cli (with ``fields``) with --log-format json."""
    if _log_format == "json":
        cli_log.info(message, extra=fields)
    else:
        err_console.print(message, markup=False, highlight=False)


# -- secrets -------------------------------------------------------------------------------------


def secret_options(env: str, what: str = "the secret") -> Callable[[F], F]:
    """``--secret-file PATH`` and ``--prompt-secret``: ways to give a secret that keep it out of
    the command line (where ``ps`` and shell histories show it). With neither, ``$env`` is read;
    :func:`read_secret` takes them in that order."""

    def decorate(func: F) -> F:
        func = click.option(
            "--prompt-secret",
            is_flag=True,
            help=f"Ask for {what} (not echoed; needs a terminal).",
        )(func)
        return click.option(
            "--secret-file",
            type=click.Path(dir_okay=False, allow_dash=True),
            default=None,
            help=f"Read {what} from this file's first line ('-': standard input). Else "
            f"--prompt-secret, else ${env}, else a new random one is generated.",
        )(func)

    return decorate


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def read_secret(secret_file: str | None, prompt: bool, env: str) -> str | None:
    """The secret given by --secret-file, --prompt-secret or ``$env``, in that order; None when
    none gives one (the command then generates it). An empty secret is a usage error."""
    if secret_file is not None:
        with click.open_file(secret_file, "r", encoding="utf-8") as f:
            secret = str(f.readline()).rstrip("\r\n")
        source = "--secret-file"
    elif prompt:
        if not stdin_is_terminal():
            raise click.UsageError("--prompt-secret needs a terminal: use --secret-file -")
        secret = str(click.prompt("secret", hide_input=True, confirmation_prompt=True, err=True))
        source = "--prompt-secret"
    elif os.environ.get(env):
        return os.environ[env]
    else:
        return None
    if not secret:
        raise click.BadParameter("the secret is empty", param_hint=source)
    return secret


__all__ = [
    "DSN_ENV",
    "ENV_PREFIX",
    "EXIT_BAD_INPUT",
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_FORBIDDEN",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_RETRY_LATER",
    "INT4",
    "INT8",
    "NOT_INSTALLED",
    "SECONDS",
    "FiniteFloatRange",
    "JsonLogFormatter",
    "NotFoundExit",
    "OrderdbGroup",
    "apply_env_conventions",
    "chosen_dsn",
    "client_session",
    "console",
    "dsn_option",
    "dumps",
    "echo_json",
    "err_console",
    "esc",
    "exit_status",
    "get_dsn",
    "handle_errors",
    "log_format_option",
    "main",
    "missing_schema_message",
    "notice",
    "option_envvar",
    "plain",
    "print_error",
    "print_table",
    "read_secret",
    "redact",
    "secret_options",
    "setup_logging",
]


def refuse_cluster_proxy(dsn: str, tool: str) -> None:
    """Exit 2 when ``dsn`` is a cluster proxy that cannot serve ``orderdb <tool>`` (the tool runs
    per shard: docs/scaling.md "Tools against the proxy"); nothing when it is one database."""
    from orderdb.cluster import operations as cluster_operations

    refusal = cluster_operations.per_shard_refusal(dsn, tool)
    if refusal is not None:
        raise click.UsageError(refusal)
