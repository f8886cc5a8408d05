"""CLI commands: ``orderdb migrate`` and ``orderdb db start|stop|status|url``."""

from __future__ import annotations

import click

from orderdb.cli.base import (
    console,
    dsn_option,
    echo_json,
    get_dsn,
    handle_errors,
    main,
    print_table,
    redact,
)
from orderdb.server import embedded, migrate


@main.command("migrate")
@dsn_option
@click.option("--status", "show_status", is_flag=True, help="List applied and pending migrations.")
@click.option(
    "--rollback",
    "rollback_count",
    type=click.IntRange(min=1),
    default=None,
    help="Roll back the last N applied migrations (newest first).",
)
@click.pass_context
@handle_errors
def migrate_cmd(
    ctx: click.Context, sub_dsn: str | None, show_status: bool, rollback_count: int | None
) -> None:
    """Apply migrations/ then the repeatable sql/ files; running it twice changes nothing."""
    dsn = get_dsn(ctx, sub_dsn)
    if show_status:
        state = migrate.status(dsn)
        rows = [(m, "applied") for m in state.applied] + [(m, "pending") for m in state.pending]
        print_table(f"migrations on {redact(dsn)}", ["migration", "state"], rows)
        return
    if rollback_count is not None:
        undone = migrate.rollback(dsn, rollback_count)
        for m in undone:
            console.print(f"rolled back {m}", markup=False)
        if not undone:
            console.print("nothing to roll back")
        return
    result = migrate.migrate(dsn)
    if result.applied_now:
        console.print(
            f"applied {len(result.applied_now)} migration(s): {', '.join(result.applied_now)}",
            markup=False,
        )
    else:
        console.print("migrations: up to date")
    console.print(f"applied {len(result.sql_files)} sql/ file(s)")


@main.group("db")
def db_group() -> None:
    """The embedded PostgreSQL server (used when no DSN is configured)."""


@db_group.command("start")
@handle_errors
def db_start() -> None:
    """Start (initialising on first use) the embedded server, or report the running one."""
    server = embedded.ensure_started()
    console.print(f"embedded PostgreSQL running: {server.url('orderdb')}", markup=False)


@db_group.command("stop")
@handle_errors
def db_stop() -> None:
    """Stop the embedded server."""
    if embedded.stop():
        console.print("embedded PostgreSQL stopped")
    else:
        console.print("embedded PostgreSQL was not running")


@db_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def db_status(as_json: bool) -> None:
    """Whether the embedded server runs, its port, pid and data folder."""
    st = embedded.status()
    info = {
        "running": st.running,
        "port": st.port,
        "pid": st.pid,
        "data_dir": str(st.data_dir),
        "version": st.version,
    }
    if as_json:
        echo_json(info)
    else:
        print_table("embedded PostgreSQL", ["key", "value"], info.items())
    if not st.running:
        raise SystemExit(3)


@db_group.command("url")
@handle_errors
def db_url() -> None:
    """Print the connection URL of the embedded server's orderdb database (starting it)."""
    from orderdb.config import EMBEDDED_DBNAME, ensure_database

    server = embedded.ensure_started()
    ensure_database(server.dsn, EMBEDDED_DBNAME)
    click.echo(server.url(EMBEDDED_DBNAME))
