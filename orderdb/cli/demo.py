"""CLI command: ``orderdb demo``."""

from __future__ import annotations

import click

from orderdb.cli.base import console, dsn_option, get_dsn, handle_errors, main


@main.command("demo")
@dsn_option
@click.option(
    "--orders",
    default=300,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many orders the simulated customers place.",
)
@click.option("--seed", default=7, show_default=True, help="Random seed of the simulation.")
@click.pass_context
@handle_errors
def demo_cmd(ctx: click.Context, sub_dsn: str | None, orders: int, seed: int) -> None:
    """Start the embedded server (unless a DSN is given), migrate and run a simulated shop."""
    from orderdb.demo import run_demo

    dsn = get_dsn(ctx, sub_dsn)
    run_demo(dsn, console, orders=orders, seed=seed)
