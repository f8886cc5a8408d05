"""CLI commands: warehouses' WMS connectors and the WMS command dispatcher.

``orderdb warehouses set-wms WAREHOUSE CONNECTOR [--url U] [--carrier CODE] [--setting k=v]``
``orderdb warehouses list``                  connected warehouses and their queues (no secrets)
``orderdb warehouses connectors``            installed WMS connectors
``orderdb wms-dispatch [--once] [--workers N] [--limit N] [--lease S]``   send queued commands
``orderdb wms-dispatch retry ID``            send a dead command again
``orderdb wms-dispatch dead``                the dead commands

With a cluster proxy's DSN the dispatcher runs per shard in one process, ``retry`` finds the
command's shard and ``dead`` lists every shard's (docs/scaling.md "Tools against the proxy").
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import psycopg

from orderdb.cli.base import (
    INT4,
    INT8,
    FiniteFloatRange,
    console,
    dsn_option,
    echo_json,
    get_dsn,
    handle_errors,
    log_format_option,
    main,
    notice,
    print_table,
    setup_logging,
    stdin_is_terminal,
)
from orderdb.cli.integrations import CARRIER_CONFIG_ENV, _carrier_config
from orderdb.cluster import operations as cluster_operations
from orderdb.cluster.relay import ShardLog, proxy_shards
from orderdb.integrations import wms

if TYPE_CHECKING:
    from orderdb.integrations.wms.dispatch import Dispatcher, DispatchReport

SET_WMS_SECRET_ENV = "ORDERDB_WAREHOUSES_SET_WMS_SECRET"  # noqa: S105 - a variable name
#: setting names that hold a secret: refused by --setting (argv), masked by `list`
SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "apikey",
    "api_key",
    "credential",
    "private",
    "salt",
    "checkword",
    "check_word",
    "signature",
    "auth",
)


def _is_secret_key(key: str) -> bool:
    """Whether a setting's name says it holds a secret: one of SECRET_WORDS in it, or a key
    (``key``, ``app_key``, ``appKey``, ``signing-key``: the secret of many carrier and WMS
    APIs)."""
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS) or lowered.endswith("key")


def _masked(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if _is_secret_key(k) else v) for k, v in settings.items()}


def _refuse_non_json(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


def _strict_json(text: str) -> Any:
    """JSON as PostgreSQL takes it: NaN, Infinity and numbers out of a double's range are not
    JSON (Python's json module would take them, the database then refuses the whole call)."""

    def number(token: str) -> float:
        value = float(token)
        if value in (float("inf"), float("-inf")):
            raise ValueError(f"{token} is out of range")
        return value

    return json.loads(text, parse_constant=_refuse_non_json, parse_float=number)


def _parse_settings(pairs: tuple[str, ...], settings_file: Path | None) -> dict[str, Any]:
    """--settings-file (a JSON object, where secret settings go) then each --setting KEY=VALUE
    (VALUE as JSON when it parses, else as text)."""
    settings: dict[str, Any] = {}
    if settings_file is not None:
        try:
            data = _strict_json(settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--settings-file") from exc
        if not isinstance(data, dict):
            raise click.BadParameter("must hold a JSON object", param_hint="--settings-file")
        settings.update(data)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--setting")
        if _is_secret_key(key):
            raise click.BadParameter(
                f"{key} looks like a secret: put it in --settings-file, not on the command line",
                param_hint="--setting",
            )
        try:
            settings[key] = _strict_json(raw)
        except ValueError:
            settings[key] = raw
    return settings


def _read_wms_secret(secret_file: str | None, prompt: bool) -> str | None:
    """--secret-file, else --prompt-secret, else $ORDERDB_WAREHOUSES_SET_WMS_SECRET, else None
    (the stored secret stays)."""
    if secret_file is not None:
        try:
            with click.open_file(secret_file, "r", encoding="utf-8") as f:
                secret = str(f.readline()).rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
            raise click.BadParameter(
                f"cannot read {secret_file}: {reason}", param_hint="--secret-file"
            ) from None
        if not secret:
            raise click.BadParameter("the secret is empty", param_hint="--secret-file")
        return secret
    if prompt:
        if not stdin_is_terminal():
            raise click.UsageError("--prompt-secret needs a terminal: use --secret-file -")
        secret = str(click.prompt("secret", hide_input=True, confirmation_prompt=True, err=True))
        if not secret:
            raise click.BadParameter("the secret is empty", param_hint="--prompt-secret")
        return secret
    return os.environ.get(SET_WMS_SECRET_ENV) or None


def _check_connector_settings(
    connector: str, row: dict[str, Any], secret: str | None, dsn: str
) -> None:
    """Builds (and closes) the connector with the settings as stored, as the dispatcher will:
    settings it cannot use (a missing url, a bad timeout, ...) are a usage error naming the
    setting now, not a failure of every command of the warehouse later. A secret kept from
    before is not read back: a stand-in shows the connector that one is stored."""
    config = {
        **(row.get("settings") or {}),
        "warehouse_id": row["warehouse_id"],
        "dsn": dsn,
    }
    if row.get("url") is not None:
        config["url"] = row["url"]
    if secret is not None:
        config["secret"] = secret
    elif row.get("has_secret"):
        config["secret"] = "(the stored secret)"  # noqa: S105 - a stand-in, never sent
    try:
        built = wms.load(connector, config)
    except (LookupError, ValueError, TypeError, ImportError) as exc:
        raise click.BadParameter(
            f"the {connector} connector cannot use these settings: {exc}",
            param_hint="CONNECTOR settings",
        ) from None
    built.close()


@main.group("warehouses")
def warehouses_group() -> None:
    """Warehouses' WMS connectors (the outbound command queue: orderdb wms-dispatch)."""


@warehouses_group.command("set-wms")
@click.argument("warehouse", type=INT4)
@click.argument("connector")
@click.option("--url", default=None, help="The WMS's base URL (http connector).")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Read the connector's secret from this file's first line ('-': standard input). Else "
    f"--prompt-secret, else ${SET_WMS_SECRET_ENV}, else the stored secret stays.",
)
@click.option("--prompt-secret", is_flag=True, help="Ask for the secret (not echoed).")
@click.option(
    "--carrier",
    default=None,
    help="Carrier code whose plugin makes waybills for packed orders without a tracking number.",
)
@click.option(
    "--setting",
    "setting_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A connector setting (repeatable; VALUE as JSON when it parses, e.g. timeout=10). "
    "Secret settings go in --settings-file.",
)
@click.option(
    "--settings-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Connector settings as a JSON object (secrets such as the sim's callback_secret).",
)
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def set_wms_cmd(
    ctx: click.Context,
    warehouse: int,
    connector: str,
    url: str | None,
    secret_file: str | None,
    prompt_secret: bool,
    carrier: str | None,
    setting_pairs: tuple[str, ...],
    settings_file: Path | None,
    as_json: bool,
    sub_dsn: str | None,
) -> None:
    """Connect WAREHOUSE to a WMS through CONNECTOR (http, sim, or an installed third-party
    one). From then on, its dispatched, amended and cancelled orders queue commands for
    `orderdb wms-dispatch`. Running it again replaces the settings (the secret stays unless a
    new one is given).

    The secret is never a command-line argument: --secret-file, --prompt-secret or
    $ORDERDB_WAREHOUSES_SET_WMS_SECRET."""
    installed = wms.available()
    if connector not in installed:
        raise click.BadParameter(
            f"no WMS connector {connector!r} is installed; available: "
            f"{', '.join(installed) or 'none'}",
            param_hint="CONNECTOR",
        )
    settings = _parse_settings(setting_pairs, settings_file)
    secret = _read_wms_secret(secret_file, prompt_secret)
    dsn = get_dsn(ctx, sub_dsn)
    if cluster_operations.is_proxy(dsn):
        # through a cluster's proxy the call commits on the warehouse's shard when it returns
        # (docs/scaling.md, What differs 1): the connector is built with the settings first
        _check_connector_settings(
            connector,
            {
                "warehouse_id": warehouse,
                "url": url,
                "settings": settings,
                "has_secret": True,  # without --secret-file a stored one may be kept
            },
            secret,
            dsn,
        )
    # one transaction: the settings are stored only if the connector can be built with them
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT * FROM orderdb.set_warehouse_wms(%s, %s, %s, %s, %s, %s::jsonb)",
            (warehouse, connector, url, secret, carrier, json.dumps(settings)),
        )
        cols = [d.name for d in cur.description or []]
        row = dict(zip(cols, cur.fetchone() or (), strict=True))
        _check_connector_settings(connector, row, secret, dsn)
    row["settings"] = _masked(row.get("settings") or {})
    if as_json:
        echo_json(row)
        return
    console.print(
        f"warehouse {warehouse}: WMS connector {connector}"
        + (f" at {url}" if url else "")
        + (f", waybills by {carrier}" if carrier else "")
        + (", secret stored" if row.get("has_secret") else ""),
        markup=False,
        highlight=False,
    )


@warehouses_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def warehouses_list_cmd(ctx: click.Context, as_json: bool, sub_dsn: str | None) -> None:
    """Warehouses connected to a WMS: connector, url, waybill carrier, settings (secret ones
    masked), whether a secret is stored, and their queue (pending, dead). Secrets are never
    shown."""
    dsn = get_dsn(ctx, sub_dsn)
    # through a cluster's proxy: every shard's warehouses (docs/scaling.md)
    table = (
        "orderdb_cluster.warehouse_wms_rows()"
        if cluster_operations.is_proxy(dsn)
        else "(SELECT w.*, w.secret IS NOT NULL AS has_secret FROM orderdb.warehouse_wms w)"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT w.warehouse_id, w.connector, w.url, w.carrier, w.settings,"  # noqa: S608
            " w.has_secret, coalesce(b.pending, 0) AS pending,"
            " coalesce(b.dead, 0) AS dead, w.updated_at"
            f" FROM {table} w"
            " LEFT JOIN orderdb_ops.wms_backlog b ON b.warehouse_id = w.warehouse_id"
            " ORDER BY w.warehouse_id"
        )
        cols = [d.name for d in cur.description or []]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["settings"] = _masked(row["settings"] or {})
    if as_json:
        echo_json(rows)
        return
    print_table(
        "warehouses with a WMS connector",
        cols,
        [[json.dumps(v) if k == "settings" else v for k, v in r.items()] for r in rows],
    )


@warehouses_group.command("connectors")
@click.option("--json", "as_json", is_flag=True)
def warehouses_connectors_cmd(as_json: bool) -> None:
    """The WMS connectors installed (entry point group orderdb.wms)."""
    names = wms.available()
    if as_json:
        echo_json(names)
    else:
        print_table("WMS connectors", ["connector"], [[n] for n in names])


@main.group("wms-dispatch", invoke_without_command=True)
@click.option("--once", is_flag=True, help="Send what is due, then exit; else run until stopped.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Dispatchers in this process (threads, one connection each).",
)
@click.option(
    "--limit", default=10, show_default=True, type=click.IntRange(1, 1000), help="Claim size."
)
@click.option(
    "--lease",
    default=120,
    show_default=True,
    type=click.IntRange(2, 86400),
    help="Claim lease, s: at least twice the longest send (the connector's timeout).",
)
@click.option(
    "--backoff",
    default=5.0,
    show_default=True,
    type=FiniteFloatRange(min=0.001, max=86400),
    help="First retry after this many seconds (doubling, jittered).",
)
@click.option(
    "--backoff-max",
    default=3600.0,
    show_default=True,
    type=FiniteFloatRange(min=0.001, max=86400),
    help="Longest wait between retries, s.",
)
@click.option(
    "--max-attempts",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Failed attempts before a command is dead (an alert).",
)
@click.option(
    "--idle",
    default=1.0,
    show_default=True,
    type=FiniteFloatRange(min=0.01),
    help="Sleep when nothing is due, s.",
)
@click.option("--worker", default=None, help="This dispatcher's name (default host:pid).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar=CARRIER_CONFIG_ENV,
    help='Carrier settings for waybills, JSON {"SIM": {"seed": 1}} (as poll-carriers).',
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@log_format_option
@dsn_option
@click.pass_context
@handle_errors
def wms_dispatch_cmd(
    ctx: click.Context,
    once: bool,
    workers: int,
    limit: int,
    lease: int,
    backoff: float,
    backoff_max: float,
    max_attempts: int,
    idle: float,
    worker: str | None,
    config_path: Path | None,
    as_json: bool,
    log_format: str,
    sub_dsn: str | None,
) -> None:
    """Send queued WMS commands (create, update, cancel) through each warehouse's connector and
    waybill requests through the carrier plugins; retry failures with jittered exponential
    back-off; dead-letter what keeps failing (orderdb_ops.alerts; `orderdb wms-dispatch retry
    ID`).

    Several dispatchers may run at once, in one process (--workers) or many: each command is
    leased to one of them (FOR UPDATE SKIP LOCKED), an order's commands go out in order."""
    if ctx.invoked_subcommand is not None:
        return
    from orderdb.integrations.wms.dispatch import (
        Dispatcher,
        RetryPolicy,
        default_worker_name,
        run_workers,
    )

    if backoff_max < backoff:
        raise click.BadParameter("must be at least --backoff", param_hint="--backoff-max")
    if log_format == "json" or not once:
        setup_logging(log_format, logging.INFO, text_format="%(asctime)s %(message)s")
    carrier_config = _carrier_config(config_path)
    policy = RetryPolicy(backoff, backoff_max, max_attempts)
    dsn = get_dsn(ctx, sub_dsn)
    base = worker or default_worker_name()
    shards = proxy_shards(dsn)
    if shards is not None:  # a cluster's proxy: one dispatcher (or --workers) per shard
        _print_dispatch_report(
            _dispatch_per_shard(
                shards,
                lambda shard_dsn, name, logger: Dispatcher(
                    shard_dsn,
                    worker=name,
                    limit=limit,
                    lease_seconds=lease,
                    policy=policy,
                    carrier_config=carrier_config,
                    logger=logger,
                ),
                workers=workers,
                once=once,
                idle=idle,
                base=base,
            ),
            as_json,
        )
        return
    with psycopg.connect(dsn, autocommit=True) as conn:  # fail early on a wrong DSN
        conn.execute("SELECT 1 FROM orderdb.wms_commands LIMIT 0")

    def make(i: int) -> Dispatcher:
        return Dispatcher(
            dsn,
            worker=base if workers == 1 else f"{base}/{i}",
            limit=limit,
            lease_seconds=lease,
            policy=policy,
            carrier_config=carrier_config,
        )

    stop = threading.Event()
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        notice(
            f"wms-dispatch: {workers} dispatcher(s) as {base}; Ctrl-C stops",
            workers=workers,
            worker=base,
        )
    total = run_workers(make, workers, once=once, stop=stop, idle_seconds=idle)
    _print_dispatch_report(total, as_json)


def _print_dispatch_report(total: DispatchReport, as_json: bool) -> None:
    summary = total.as_dict()
    if as_json:
        echo_json(summary)
        return
    errors = summary.pop("last_errors")
    summary["by_kind"] = ", ".join(f"{k} {v}" for k, v in summary["by_kind"].items()) or "-"
    print_table("wms-dispatch", ["metric", "value"], list(summary.items()))
    if errors:
        print_table("last errors", ["where", "error"], list(errors.items()))


def _dispatch_per_shard(
    shards: dict[int, str],
    make: Callable[[str, str, ShardLog], Dispatcher],
    *,
    workers: int,
    once: bool,
    idle: float,
    base: str,
) -> DispatchReport:
    """``orderdb wms-dispatch --dsn PROXY``: ``workers`` dispatchers per shard in this process,
    on the shard's DSN as the proxy records it (libpq's environment or password file supplies
    the credentials), named ``<worker>/shard<N>``; log lines begin ``shard N:``. A shard that
    is down holds back only its own commands (its dispatchers retry after the idle time).
    ``once``: every shard sends what is due, then the combined report; a shard that failed is
    logged and its error raised once the others finished (its exit status). Otherwise another
    error of one shard's dispatcher (not a lost connection) stops every shard's, as one
    dispatcher stops; SIGTERM/SIGINT stop them all."""
    from orderdb.cluster.workers import run_tool_per_shard
    from orderdb.integrations.wms.dispatch import DispatchReport, run_workers

    logger = logging.getLogger("orderdb.integrations.wms.dispatch")

    def dispatch(shard: int, shard_dsn: str, stop: threading.Event) -> DispatchReport:
        log = ShardLog(logger, shard)
        name = f"{base}/shard{shard}"
        report = run_workers(
            lambda i: make(shard_dsn, name if workers == 1 else f"{name}/{i}", log),
            workers,
            once=once,
            stop=stop,
            idle_seconds=idle,
        )
        if not once:
            log.info("dispatcher of shard %s stopped", shard)
        return report

    return run_tool_per_shard(
        shards,
        dispatch,
        total=DispatchReport(),
        once=once,
        logger=logger,
        what="dispatcher",
        announce=lambda: notice(
            f"wms-dispatch: {workers} dispatcher(s) on each of the {len(shards)} shards of the "
            f"cluster as {base}/shard<N>; Ctrl-C stops",
            workers=workers,
            worker=base,
            shards=sorted(shards),
        ),
        print_partial=lambda total: _print_dispatch_report(total, as_json=False),
        name="wms-dispatch-shard",
    )


@wms_dispatch_cmd.command("retry")
@click.argument("command_id", type=INT8)
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def wms_dispatch_retry_cmd(
    ctx: click.Context, command_id: int, as_json: bool, sub_dsn: str | None
) -> None:
    """Send the dead command COMMAND_ID again (pending, due now, attempts from 0; the later
    commands of its order follow it). Exit status 3: no such command; 4: it is not dead.

    With a cluster proxy's DSN: the command is looked for on every shard (command ids are
    unique across the cluster), the row names its shard."""
    dsn = get_dsn(ctx, sub_dsn)
    shards = proxy_shards(dsn)
    row: dict[str, Any] | None = None
    if shards is None:
        row = _retry_command(dsn, command_id)
    else:
        unreachable: psycopg.OperationalError | None = None
        missing: psycopg.Error | None = None
        for shard, shard_dsn in shards.items():
            try:
                row = {"shard": shard, **_retry_command(shard_dsn, command_id)}
                break
            except psycopg.OperationalError as exc:  # another shard may have it
                unreachable = unreachable or exc
            except psycopg.Error as exc:
                if exc.sqlstate != "OD004":
                    raise
                missing = exc
        if row is None:  # not on a shard that answered: unknown, unless one did not answer
            raise unreachable or missing or click.ClickException("the cluster has no shard")
    if as_json:
        echo_json(row)
        return
    console.print(
        f"command {row['command_id']} ({row['kind']} of order {row['order_id']}, warehouse "
        f"{row['warehouse_id']}"
        + (f", shard {row['shard']}" if "shard" in row else "")
        + ") is pending again",
        markup=False,
        highlight=False,
    )


def _retry_command(dsn: str, command_id: int) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute("SELECT * FROM orderdb.retry_wms_command(%s)", (command_id,))
        cols = [d.name for d in cur.description or []]
        return dict(zip(cols, cur.fetchone() or (), strict=True))


@wms_dispatch_cmd.command("dead")
@click.option("--warehouse", type=INT4, default=None, help="Only this warehouse's.")
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def wms_dispatch_dead_cmd(
    ctx: click.Context, warehouse: int | None, as_json: bool, sub_dsn: str | None
) -> None:
    """The dead commands (oldest first): what failed, how often, and why.

    With a cluster proxy's DSN: every shard's, each row naming its shard (a shard that cannot
    be reached: the others' are listed, then its error and its exit status)."""
    dsn = get_dsn(ctx, sub_dsn)
    shards = proxy_shards(dsn)
    if shards is None:
        cols, rows = _dead_commands(dsn, warehouse)
    else:
        cols, rows = ["shard", *_DEAD_COLUMNS], []
        unreachable: list[psycopg.OperationalError] = []
        for shard, shard_dsn in shards.items():
            try:
                rows += [{"shard": shard, **r} for r in _dead_commands(shard_dsn, warehouse)[1]]
            except psycopg.OperationalError as exc:
                unreachable.append(exc)
        rows.sort(key=lambda r: (r["dead_since"], r["shard"], r["command_id"]))
        if unreachable:
            _print_dead(cols, rows, as_json)
            raise unreachable[0]
    _print_dead(cols, rows, as_json)


_DEAD_COLUMNS = [
    "command_id",
    "warehouse_id",
    "order_id",
    "order_no",
    "kind",
    "attempts",
    "last_error",
    "dead_since",
]


def _dead_commands(dsn: str, warehouse: int | None) -> tuple[list[str], list[dict[str, Any]]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(
            "SELECT c.command_id, c.warehouse_id, c.order_id, c.payload ->> 'order_no' AS order_no,"
            " c.kind, c.attempts, c.last_error, c.finished_at AS dead_since"
            " FROM orderdb.wms_commands c"
            " WHERE c.status = 'dead' AND (%s::integer IS NULL OR c.warehouse_id = %s)"
            " ORDER BY c.finished_at, c.command_id",
            (warehouse, warehouse),
        )
        cols = [d.name for d in cur.description or []]
        return cols, [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _print_dead(cols: list[str], rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json(rows)
        return
    print_table(
        "dead WMS commands (send one again: orderdb wms-dispatch retry ID)",
        cols,
        [list(r.values()) for r in rows],
    )
