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
    "--shards",
    type=click.IntRange(1, 64),
    default=None,
    help="Run the shop through a cluster proxy over N shard databases created beside the "
    "DSN's database (DB_shard0.., DB_proxy; needs PL/Proxy: docs/scaling.md).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the web pages (board, tracking) running after the simulation, until Ctrl-C.",
)
@click.pass_context
@handle_errors
def demo_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    orders: int,
    seed: int,
    shards: int | None,
    serve: bool,
) -> None:
    """Start the embedded server (unless a DSN is given), migrate and run a simulated shop.

    While it runs, the operations board and one order's tracking page are served on 127.0.0.1
    (their URLs are printed); the simulation ends by itself with a summary. With --shards N
    the shop runs through a proxy over N shard databases (`orderdb cluster init`); what does
    not work through the proxy yet is printed (docs/scaling.md).
    """
    import time

    from orderdb.demo import run_demo
    from orderdb.web import stop_all

    dsn = get_dsn(ctx, sub_dsn)
    try:
        if shards is not None:
            from orderdb.demo.cluster import ClusterDemoError, run_cluster_demo

            try:
                cluster = run_cluster_demo(dsn, console, shards=shards, orders=orders, seed=seed)
            except ClusterDemoError as exc:
                raise click.UsageError(str(exc)) from exc
            if serve:
                console.print(
                    f"serving the tracking page on {cluster.web_url} until Ctrl-C", markup=False
                )
                while True:
                    time.sleep(3600)
            return
        stats = run_demo(dsn, console, orders=orders, seed=seed)
        if serve:
            console.print(f"serving {stats.web_url}/ops until Ctrl-C", markup=False)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()
