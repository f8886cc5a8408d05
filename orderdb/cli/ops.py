"""CLI commands for operators: ``orderdb monitor``, ``orderdb sla-check``, ``orderdb exporter``."""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

import click
import psycopg
from psycopg.rows import dict_row

from orderdb.cli.base import (
    NOT_INSTALLED,
    FiniteFloatRange,
    console,
    dsn_option,
    dumps,
    get_dsn,
    handle_errors,
    log_format_option,
    main,
    notice,
    print_error,
    print_table,
    redact,
    setup_logging,
)
from orderdb.cli.progress import progress_option, progress_printer
from orderdb.cluster import operations as cluster_operations


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, application_name="orderdb-ops")


@main.command("monitor")
@dsn_option
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: the snapshot as JSON.")
@click.option(
    "--interval",
    type=FiniteFloatRange(min=0.2, max=86400),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes of the live dashboard.",
)
@click.pass_context
@handle_errors
def monitor_cmd(
    ctx: click.Context, sub_dsn: str | None, once: bool, as_json: bool, interval: float
) -> None:
    """The ops views as a live terminal dashboard (funnel, SLA swimlanes, KPIs, stock, health).

    --once prints one snapshot; --once --json prints it as one JSON object (for scripts). A view
    that could not be read is shown as not read (SLA lanes: unknown), never as healthy, and
    --once then exits 1 (on a database without orderdb: run `orderdb migrate`).
    """
    from orderdb.ops import monitor

    dsn = get_dsn(ctx, sub_dsn)
    if as_json and not once:
        raise click.UsageError("--json needs --once")
    if once:
        with _connect(dsn) as conn:
            snap = monitor.snapshot(conn)
        if as_json:
            click.echo(dumps(snap))
        elif len(snap["errors"]) < len(monitor.QUERIES):  # else nothing to show but the error
            console.print(monitor.render(snap))
        if snap["errors"]:
            _unread_views(snap["errors"], len(monitor.QUERIES))
        return
    monitor.run_live(functools.partial(_connect, dsn), interval=interval)


def _unread_views(errors: dict[str, str], views: int) -> None:
    """Exit 1 after a snapshot some views of which could not be read, saying why on stderr."""
    states = {e.split(":", 1)[0] for e in errors.values()}
    not_installed = states <= {"3F000", "42P01", "42883"} and all(
        "orderdb" in e for e in errors.values()
    )
    if not_installed:
        print_error(NOT_INSTALLED, detail=next(iter(errors.values())))
    else:
        print_error(
            f"{len(errors)} of {views} views could not be read: " + ", ".join(sorted(errors))
        )
    sys.exit(1)


@main.command("sla-check")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="The new escalations as one JSON array.")
@click.pass_context
@handle_errors
def sla_check_cmd(ctx: click.Context, sub_dsn: str | None, as_json: bool) -> None:
    """Escalate every new SLA breach once per order and rule (orderdb.sla_check()).

    Each escalation is a row in orderdb.sla_escalations and an sla.escalated outbox event with
    the rule's action (contact_carrier, delay_compensation, satisfaction_survey,
    payment_reminder). Safe to run repeatedly and concurrently (cron, pg_cron, a loop). With a
    cluster proxy's DSN, every shard escalates its own breaches (the proxy's orderdb.sla_check).
    """
    dsn = get_dsn(ctx, sub_dsn)
    with _connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT order_id, rule, action, breached_since, warehouse_id FROM orderdb.sla_check()"
        ).fetchall()
    if as_json:
        click.echo(dumps(rows))
        return
    if rows:
        print_table(
            f"{len(rows)} new escalation(s)",
            ["order_id", "rule", "action", "breached_since", "warehouse_id"],
            [
                [r["order_id"], r["rule"], r["action"], r["breached_since"], r["warehouse_id"]]
                for r in rows
            ],
        )
    else:
        console.print("no new SLA breaches to escalate")


@main.command("exporter")
@dsn_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8187,
    show_default=True,
    help="TCP port (not postgres_exporter's 9187: run both side by side).",
)
@log_format_option
@click.pass_context
@handle_errors
def exporter_cmd(
    ctx: click.Context, sub_dsn: str | None, host: str, port: int, log_format: str
) -> None:
    """Serve Prometheus metrics from the ops views on http://HOST:PORT/metrics until Ctrl-C.

    With a cluster proxy's DSN every series is per shard, with a `shard` label.
    """
    from orderdb.ops import exporter

    setup_logging(log_format)
    dsn = get_dsn(ctx, sub_dsn)
    server, _thread, collector = exporter.serve(
        functools.partial(_connect, dsn), host=host, port=port
    )
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}/metrics"
    if log_format == "json":
        notice(f"orderdb exporter: {url}", url=url, database=redact(dsn))
    else:
        console.print(f"orderdb exporter: {url} (database {redact(dsn)})", markup=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        collector.close()


@main.command("maintain")
@dsn_option
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, writable=True),
    default=None,
    help="COPY each partition archived now to DIR/<partition>.csv (with a header).",
)
@click.option(
    "--drop-exported",
    is_flag=True,
    help="With --export-dir: drop an archived partition once its file is written.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only report what would be done (rows that would move included); change nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="The actions as one JSON array.")
@progress_option
@click.pass_context
@handle_errors
def maintain_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    export_dir: str | None,
    drop_exported: bool,
    dry_run: bool,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Create monthly partitions ahead and archive partitions past their retention.

    For every table in orderdb.partition_policy (orderdb.maintain_partitions()): partitions
    <table>_pYYYYMM for this month and `premake` months ahead (rows already in the DEFAULT
    partition move in), and partitions older than `retention` detached into schema
    orderdb_archive (or dropped); an outbox month some consumer has not acknowledged yet stays
    (reported as held). It also merges back the stock buckets of SKUs that were split
    automatically and have cooled down (table orderdb.stock_buckets, action merged; SKUs split
    with set_stock_buckets are left alone). Run it daily or weekly; a second run does nothing
    more. --dry-run
    lists the same actions and changes nothing (nothing is exported). --progress reports each
    partition action (and each export) on stderr as it happens.
    """
    from pathlib import Path

    from psycopg import sql

    if drop_exported and not export_dir:
        raise click.UsageError("--drop-exported needs --export-dir")
    dsn = get_dsn(ctx, sub_dsn)
    report = progress_printer(progress)
    if cluster_operations.is_proxy(dsn):  # docs/scaling.md "Tools against the proxy"
        if export_dir:
            raise click.UsageError(
                "--export-dir works per shard: run orderdb maintain --export-dir against each "
                "shard's DSN (orderdb cluster status lists them)"
            )
        _print_cluster_maintenance(
            cluster_operations.maintain(dsn, dry_run=dry_run, report=report), dry_run, as_json
        )
        return
    with _connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET lock_timeout = '5s'")
        if report is not None:
            # orderdb._maintain_progress sends a NOTICE per action while the function runs
            prefix = "orderdb maintain: "

            def on_notice(diag: psycopg.errors.Diagnostic) -> None:
                message = diag.message_primary or ""
                if report is not None and message.startswith(prefix):
                    report(message.removeprefix(prefix))

            conn.add_notice_handler(on_notice)
            cur.execute("SET orderdb.progress = 'on'")
        rows = cur.execute(
            "SELECT parent_table, action, partition_name, range_from, range_to, rows_moved"
            " FROM orderdb.maintain_partitions(p_dry_run => %s)",
            (dry_run,),
        ).fetchall()
        for row in rows:
            row["exported_to"] = None
            if row["action"] != "archived" or export_dir is None or dry_run:
                continue
            schema, name = row["partition_name"].split(".", 1)
            target = Path(export_dir) / f"{name}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            copy = sql.SQL("COPY {}.{} TO STDOUT (FORMAT csv, HEADER)").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
            with target.open("wb") as out, cur.copy(copy) as data:
                for chunk in data:
                    out.write(chunk)
            row["exported_to"] = str(target)
            if report is not None:
                report(f"exported {row['partition_name']} to {target}")
            if drop_exported:
                cur.execute(
                    sql.SQL("DROP TABLE {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                )
                row["action"] = "archived, exported, dropped"
                if report is not None:
                    report(f"dropped {row['partition_name']}")
    if as_json:
        click.echo(dumps(rows))
        return
    if not rows:
        console.print("partitions and stock buckets: up to date")
        return
    print_table(
        "maintenance (dry run: nothing was changed)" if dry_run else "maintenance",
        ["table", "action", "partition", "from", "to", "rows moved", "file"],
        [
            [
                r["parent_table"],
                r["action"],
                r["partition_name"],
                r["range_from"],
                r["range_to"],
                r["rows_moved"],
                r["exported_to"] or "",
            ]
            for r in rows
        ],
    )


def _print_cluster_maintenance(rows: list[dict[str, Any]], dry_run: bool, as_json: bool) -> None:
    """`orderdb maintain --dsn PROXY`'s report: moved carrier events, finished reallocations,
    each shard's partitions."""
    if as_json:
        click.echo(dumps(rows))
        return
    moved = [r for r in rows if r["action"] == "moved"]
    if moved:
        print_table(
            "parked carrier events moved to their shipment's shard",
            ["home shard", "carrier", "tracking number", "to shard", "events"],
            [
                [r["shard"], r["carrier"], r["tracking_number"], r["to_shard"], r["rows_moved"]]
                for r in moved
            ],
        )
    elif not dry_run:
        console.print("parked carrier events: none to move")
    finished = [r for r in rows if r["action"] == "reallocation finished"]
    if finished:
        print_table(
            "reallocations stopped in flight, finished",
            ["order", "from shard", "to shard", "warehouse"],
            [[r["order_id"], r["shard"], r["to_shard"], r["warehouse_id"]] for r in finished],
        )
    elif not dry_run:
        console.print("reallocations stopped in flight: none")
    partitions = [r for r in rows if r["action"] not in ("moved", "reallocation finished")]
    if not partitions:
        console.print("partitions: up to date on every shard")
        return
    print_table(
        "maintenance (dry run: nothing was changed)" if dry_run else "maintenance",
        ["shard", "table", "action", "partition", "from", "to", "rows moved"],
        [
            [
                r["shard"],
                r["parent_table"],
                r["action"],
                r["partition_name"],
                r["range_from"],
                r["range_to"],
                r["rows_moved"],
            ]
            for r in partitions
        ],
    )
