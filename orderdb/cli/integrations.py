"""CLI commands: integrations (carrier plugins, polling, signed HTTP ingestion, reallocation).

``orderdb ingest serve [--host 127.0.0.1] [--port 8089]``   the signed HTTP ingestion server
``orderdb poll-carriers [--once]``                           poll carriers for due shipments
    (with a cluster proxy's DSN: one poller per shard)
``orderdb integrations list|add|remove``                     who may post to the ingestion server
``orderdb integrations carriers``                            installed carrier plugins
``orderdb integrations poll-interval CARRIER SECONDS``      how often a carrier is polled
``orderdb order reallocate ORDER --to WAREHOUSE --expected-version N``
"""

from __future__ import annotations

import json
import logging
import secrets
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
    NotFoundExit,
    console,
    dsn_option,
    echo_json,
    get_dsn,
    handle_errors,
    log_format_option,
    main,
    notice,
    print_table,
    read_secret,
    refuse_cluster_proxy,
    secret_options,
    setup_logging,
)
from orderdb.cli.core import order_group
from orderdb.cli.tracking import ingest_group
from orderdb.cluster import operations as cluster_operations
from orderdb.cluster.relay import ShardLog, proxy_shards
from orderdb.integrations import carriers

if TYPE_CHECKING:
    from orderdb.integrations.polling import PollReport

CARRIER_CONFIG_ENV = "ORDERDB_CARRIERS_CONFIG"
INTEGRATION_SECRET_ENV = "ORDERDB_INTEGRATIONS_ADD_SECRET"  # noqa: S105 - a variable name


@ingest_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8089, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--pool-size",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Database connections for events.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
@click.option(
    "--read-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 300.0),
    help="Seconds a request body may take to arrive (else 408 and the connection is closed).",
)
@log_format_option
@dsn_option
@click.pass_context
@handle_errors
def ingest_serve_cmd(
    ctx: click.Context,
    host: str,
    port: int,
    pool_size: int,
    log_level: str,
    read_timeout: float,
    log_format: str,
    sub_dsn: str | None,
) -> None:
    """Serve POST /hooks/carriers/<carrier>, POST /hooks/wms (HMAC-signed), the carriers' own
    pushes POST /hooks/sf/route-push/<token> and POST /hooks/kuaidi100/callback
    (docs/carriers.md), GET /status/<tn> and GET /healthz (docs/integrations.md)."""
    from orderdb.integrations.http import serve

    setup_logging(log_format, log_level.upper() if log_format == "json" else logging.WARNING)
    dsn = get_dsn(ctx, sub_dsn)
    refuse_cluster_proxy(dsn, "ingest serve")
    notice(f"orderdb ingest: listening on http://{host}:{port}", host=host, port=port)
    serve(
        dsn,
        host=host,
        port=port,
        pool_size=pool_size,
        log_level=log_level,
        read_timeout=read_timeout,
        uvicorn_logging=log_format == "text",
    )


def _carrier_config(path: Path | None) -> dict[str, dict[str, Any]]:
    """The carrier settings of --config (or $ORDERDB_CARRIERS_CONFIG: the option reads it)."""
    if path is None:
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise click.BadParameter(
            'the carrier config must be a JSON object {"CODE": {...}, ...}', param_hint="config"
        )
    return data


@main.command("poll-carriers")
@click.option("--once", is_flag=True, help="One round, then exit (cron); else poll until stopped.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--worker", default=None, help="This poller's name (default host:pid).")
@click.option(
    "--lease",
    default=300,
    show_default=True,
    type=click.IntRange(1, 2**31 - 1),
    help="Claim lease, seconds.",
)
@click.option(
    "--idle",
    default=5.0,
    show_default=True,
    type=FiniteFloatRange(min=0.1),
    help="Sleep when nothing is due, s.",
)
@click.option(
    "--carrier",
    "only",
    multiple=True,
    help="Poll only this carrier's plugin (repeatable; default every installed plugin).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar=CARRIER_CONFIG_ENV,
    help='Carrier settings, JSON {"SIM": {"seed": 1}}.',
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@log_format_option
@dsn_option
@click.pass_context
@handle_errors
def poll_carriers_cmd(
    ctx: click.Context,
    once: bool,
    limit: int,
    worker: str | None,
    lease: int,
    idle: float,
    only: tuple[str, ...],
    config_path: Path | None,
    as_json: bool,
    log_format: str,
    sub_dsn: str | None,
) -> None:
    """Poll carrier plugins for shipments that are due and record their events.

    Several pollers may run at once: each claims different shipments (FOR UPDATE SKIP LOCKED).
    """
    from orderdb.integrations.polling import Poller, PollReport

    if log_format == "json" or not once:
        setup_logging(log_format, logging.INFO, text_format="%(asctime)s %(message)s")
    plugins = carriers.load_all(_carrier_config(config_path), only=list(only) or None)
    if not plugins:
        notice("no carrier plugin is installed (entry point group orderdb.carriers)")
    dsn = get_dsn(ctx, sub_dsn)
    shards = proxy_shards(dsn)
    if shards is not None:  # a cluster's proxy: one poller per shard (docs/scaling.md)
        total = _poll_per_shard(
            shards,
            lambda: carriers.load_all(_carrier_config(config_path), only=list(only) or None),
            once=once,
            worker=worker,
            limit=limit,
            lease=lease,
            idle=idle,
        )
        _print_poll_report(total, as_json)
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        poller = Poller(conn, plugins, worker=worker, limit=limit, lease_seconds=lease)
        if once:
            total = PollReport()
            while True:
                report = poller.poll_once()
                total.add(report)
                if report.claimed < limit:
                    break
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            notice(
                f"polling {', '.join(sorted(plugins)) or 'nothing'} as {poller.worker}; "
                "Ctrl-C stops",
                carriers=sorted(plugins),
                worker=poller.worker,
            )
            total = poller.run(stop, idle_seconds=idle)
    _print_poll_report(total, as_json)


def _print_poll_report(total: PollReport, as_json: bool) -> None:
    if as_json:
        echo_json(total.as_dict())
        return
    summary = total.as_dict()
    del summary["errors_by_carrier"], summary["last_error_by_carrier"]
    print_table("poll-carriers", ["metric", "value"], list(summary.items()))
    if total.last_error_by_carrier:
        print_table(
            "carriers that failed (their shipments are polled again later)",
            ["carrier", "failures", "last error"],
            [
                (carrier, total.errors_by_carrier[carrier], error)
                for carrier, error in sorted(total.last_error_by_carrier.items())
            ],
        )


def _poll_per_shard(
    shards: dict[int, str],
    load_plugins: Callable[[], dict[str, carriers.CarrierPlugin]],
    *,
    once: bool,
    worker: str | None,
    limit: int,
    lease: int,
    idle: float,
) -> PollReport:
    """``orderdb poll-carriers --dsn PROXY``: one poller per shard in this process, on the
    shard's DSN as the proxy records it (libpq's environment or password file supplies the
    credentials), each with its own plugins, its own claims and its own reconnection backoff:
    a shard that is down holds back only its own parcels (log lines begin ``shard N:``).
    ``once``: every shard polled once (what is due), then the combined report; a shard that
    failed is logged and its error raised after the others finished (its exit status)."""
    from orderdb.cluster.workers import reconnecting, run_tool_per_shard
    from orderdb.integrations.polling import Poller, PollReport, default_worker_name

    base = worker or default_worker_name()
    logger = logging.getLogger("orderdb.integrations.polling")

    def poll(shard: int, shard_dsn: str, stop: threading.Event) -> PollReport:
        log = ShardLog(logger, shard)
        plugins = load_plugins()

        def session() -> PollReport:
            with psycopg.connect(shard_dsn, autocommit=True, connect_timeout=10) as conn:
                poller = Poller(
                    conn,
                    plugins,
                    worker=f"{base}/shard{shard}",
                    limit=limit,
                    lease_seconds=lease,
                    logger=log,
                )
                if not once:
                    return poller.run(stop, idle_seconds=idle)
                total = PollReport()
                while not stop.is_set():
                    report = poller.poll_once()
                    total.add(report)
                    if report.claimed < limit:
                        break
                return total

        if once:
            return session()
        report = reconnecting(session, stop, log, first_wait=idle, longest_wait=max(idle, 60.0))
        log.info("poller of shard %s stopped", shard)
        return PollReport() if report is None else report

    return run_tool_per_shard(
        shards,
        poll,
        total=PollReport(),
        once=once,
        logger=logger,
        what="poller",
        announce=lambda: notice(
            f"polling the {len(shards)} shards of the cluster as {base}/shard<N>; Ctrl-C stops",
            shards=sorted(shards),
            worker=base,
        ),
        print_partial=lambda total: _print_poll_report(total, as_json=False),
        name="poll-carriers-shard",
    )


@main.group("integrations")
def integrations_group() -> None:
    """Carrier plugins, carrier polling and the integrations of the HTTP ingestion server."""


@integrations_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def integrations_list(ctx: click.Context, as_json: bool, sub_dsn: str | None) -> None:
    """The integrations allowed to post to `orderdb ingest serve` (secrets not shown)."""
    dsn = get_dsn(ctx, sub_dsn)
    # through a cluster's proxy: shard 0's (the same on every shard: orderdb cluster status)
    table = (
        "orderdb_cluster.integration_rows(0)"
        if cluster_operations.is_proxy(dsn)
        else "orderdb.integrations"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            f"SELECT name, kind, rate, burst, enabled, updated_at FROM {table} "  # noqa: S608
            "ORDER BY kind, name"
        )
        cols = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    if as_json:
        echo_json([dict(zip(cols, r, strict=True)) for r in rows])
    else:
        print_table("integrations", cols, rows)


@integrations_group.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["carrier", "wms"]), required=True)
@secret_options(INTEGRATION_SECRET_ENV, "the shared HMAC key (16 to 255 characters)")
@click.option(
    "--rate",
    default=50.0,
    show_default=True,
    type=FiniteFloatRange(min=0, min_open=True, max=100_000),
    help="Requests per second.",
)
@click.option(
    "--burst",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Token bucket size.",
)
@click.option("--disabled", is_flag=True, help="Store it disabled (404 until enabled).")
@dsn_option
@click.pass_context
@handle_errors
def integrations_add(
    ctx: click.Context,
    name: str,
    kind: str,
    secret_file: str | None,
    prompt_secret: bool,
    rate: float,
    burst: int,
    disabled: bool,
    sub_dsn: str | None,
) -> None:
    """Create or update an integration (orderdb.set_integration). A carrier's NAME is its
    carrier code (POST /hooks/carriers/NAME). Prints the secret once when it was generated.

    A key of your own is never a command-line argument: --secret-file, --prompt-secret or
    $ORDERDB_INTEGRATIONS_ADD_SECRET."""
    secret = read_secret(secret_file, prompt_secret, INTEGRATION_SECRET_ENV)
    generated = secret is None
    key = secret if secret is not None else secrets.token_urlsafe(32)
    with psycopg.connect(get_dsn(ctx, sub_dsn), autocommit=True) as conn:
        conn.execute(
            "SELECT * FROM orderdb.set_integration(%s, %s, %s, %s::numeric, %s::integer, %s)",
            (name, kind, key, rate, burst, not disabled),
        )
    console.print(
        f"integration {name} ({kind}) saved: rate {rate:g}/s, burst {burst}", markup=False
    )
    if generated:
        console.print(f"secret (shown once): {key}", markup=False, highlight=False)


@integrations_group.command("remove")
@click.argument("name")
@dsn_option
@click.pass_context
@handle_errors
def integrations_remove(ctx: click.Context, name: str, sub_dsn: str | None) -> None:
    """Delete an integration (its posts get 404 from the next refresh, within 30 s)."""
    dsn = get_dsn(ctx, sub_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if cluster_operations.is_proxy(dsn):
            # every shard's copy (docs/scaling.md, Reference data), serial with the proxy's
            # other configuration writes
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('orderdb_cluster.configuration'))"
                )
                removed = conn.execute(
                    "SELECT count(*) FILTER (WHERE removed)"
                    " FROM orderdb_cluster.remove_integration(%s)",
                    (name,),
                ).fetchone()
            found = bool(removed and removed[0])
        else:
            cur = conn.execute("DELETE FROM orderdb.integrations WHERE name = %s", (name,))
            found = cur.rowcount > 0
    if not found:
        raise NotFoundExit(f"no integration {name!r}")
    console.print(f"integration {name} removed", markup=False)


@integrations_group.command("carriers")
@click.option("--json", "as_json", is_flag=True)
def integrations_carriers(as_json: bool) -> None:
    """The carrier plugins installed (entry point group orderdb.carriers)."""
    from importlib.metadata import entry_points

    rows = [
        (ep.name, ep.value, ep.dist.name if ep.dist else "")
        for ep in sorted(entry_points(group=carriers.ENTRY_POINT_GROUP), key=lambda e: e.name)
    ]
    if as_json:
        echo_json([{"code": c, "factory": v, "package": p} for c, v, p in rows])
    else:
        print_table("carrier plugins", ["code", "factory", "package"], rows)


@integrations_group.command("poll-interval")
@click.argument("carrier")
@click.argument("seconds", type=click.IntRange(1, 2**31 - 1))
@dsn_option
@click.pass_context
@handle_errors
def integrations_poll_interval(
    ctx: click.Context, carrier: str, seconds: int, sub_dsn: str | None
) -> None:
    """How often shipments of CARRIER are polled (default 1800 s)."""
    with psycopg.connect(get_dsn(ctx, sub_dsn), autocommit=True) as conn:
        conn.execute(
            "SELECT * FROM orderdb.set_carrier_polling(%s, make_interval(secs => %s))",
            (carrier, seconds),
        )
    console.print(f"{carrier}: polled every {seconds} s", markup=False)


@order_group.command("reallocate")
@click.argument("order_id", type=INT8)
@click.option("--to", "to_warehouse_id", type=INT4, required=True, help="Target warehouse id.")
@click.option("--expected-version", type=INT4, required=True, help="The order's current version.")
@click.option("--actor", default=None, help="Who moves the order (recorded).")
@click.option("--reason", default=None, help="Why (recorded in the history).")
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def order_reallocate(
    ctx: click.Context,
    order_id: int,
    to_warehouse_id: int,
    expected_version: int,
    actor: str | None,
    reason: str | None,
    as_json: bool,
    sub_dsn: str | None,
) -> None:
    """Move a not-yet-shipped order and its reservations to another warehouse
    (orderdb.reallocate_order)."""
    with psycopg.connect(get_dsn(ctx, sub_dsn), autocommit=True) as conn:
        row = conn.execute(
            "SELECT order_id, warehouse_id, status, version "
            "FROM orderdb.reallocate_order(%s, %s, %s, %s, %s)",
            (order_id, to_warehouse_id, expected_version, actor, reason),
        ).fetchone()
    assert row is not None
    result = {"order_id": row[0], "warehouse_id": row[1], "status": row[2], "version": row[3]}
    if as_json:
        echo_json(result)
    else:
        console.print(
            f"order {row[0]} now in warehouse {row[1]} ({row[2]}, version {row[3]})",
            markup=False,
            highlight=False,
        )
