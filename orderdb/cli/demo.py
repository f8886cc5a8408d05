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
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the web pages (board, tracking) running after the simulation, until Ctrl-C.",
)
@click.pass_context
@handle_errors
def demo_cmd(ctx: click.Context, sub_dsn: str | None, orders: int, seed: int, serve: bool) -> None:
    """Start the embedded server (unless a DSN is given), migrate and run a simulated shop.

    While it runs, the operations board and one order's tracking page are served on 127.0.0.1
    (their URLs are printed); the simulation ends by itself with a summary.
    """
    import time

    from orderdb.demo import run_demo
    from orderdb.web import stop_all

    dsn = get_dsn(ctx, sub_dsn)
    try:
        stats = run_demo(dsn, console, orders=orders, seed=seed)
        if serve:
            console.print(f"serving {stats.web_url}/ops until Ctrl-C", markup=False)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()
