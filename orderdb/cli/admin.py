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
from orderdb.cli.progress import progress_option, progress_printer
from orderdb.server import embedded, migrate

#: `orderdb migrate --check`: something is pending (distinct from every failure's status)
EXIT_PENDING = 6


@main.command("migrate")
@dsn_option
@click.option("--status", "show_status", is_flag=True, help="List applied and pending migrations.")
@click.option(
    "--check",
    is_flag=True,
    help=f"Change nothing; list what is pending; exit {EXIT_PENDING} if anything is, else 0.",
)
@click.option(
    "--sql", "show_sql", is_flag=True, help="Print the SQL that migrate would run; run nothing."
)
@click.option(
    "--rollback",
    "rollback_count",
    type=click.IntRange(min=1),
    default=None,
    help="Roll back the last N applied migrations (newest first).",
)
@progress_option
@click.pass_context
@handle_errors
def migrate_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    show_status: bool,
    check: bool,
    show_sql: bool,
    rollback_count: int | None,
    progress: bool | None,
) -> None:
    """Apply migrations/ then the repeatable sql/ files; running it twice changes nothing.

    --check changes nothing and exits 0 when nothing is pending: no migration to apply, yoyo's
    tables already in schema orderdb, and the sql/ files the same as those last applied (their
    sha256, kept in the database); else it lists what is pending and exits 6. --sql prints the
    SQL that migrate would run (pending migrations in order, then every sql/ file) and runs
    nothing.
    """
    chosen = [
        n
        for n, on in (
            ("--status", show_status),
            ("--check", check),
            ("--sql", show_sql),
            ("--rollback", rollback_count is not None),
        )
        if on
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be used together")
    dsn = get_dsn(ctx, sub_dsn)
    if show_status:
        state = migrate.status(dsn)
        rows = [(m, "applied") for m in state.applied] + [(m, "pending") for m in state.pending]
        print_table(f"migrations on {redact(dsn)}", ["migration", "state"], rows)
        return
    if check:
        plan = migrate.plan(dsn)
        for table in plan.move_tables:
            click.echo(f"pending: move public.{table} to schema orderdb")
        for m in plan.pending:
            click.echo(f"pending: migration {m}")
        if plan.sql_changed:
            click.echo("pending: the sql/ files (changed since they were last applied)")
        if not plan.up_to_date:
            raise SystemExit(EXIT_PENDING)
        click.echo("up to date")
        return
    if show_sql:
        click.echo(migrate.plan_sql(dsn), nl=False)
        return
    report = progress_printer(progress)
    if rollback_count is not None:
        undone = migrate.rollback(dsn, rollback_count)
        for m in undone:
            console.print(f"rolled back {m}", markup=False)
        if not undone:
            console.print("nothing to roll back")
        return
    result = migrate.migrate(dsn, progress=report)
    if result.moved_tables:
        console.print(
            f"moved yoyo's tables to schema orderdb: {', '.join(result.moved_tables)}",
            markup=False,
        )
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
