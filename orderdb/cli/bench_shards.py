"""``orderdb bench --shards N`` (registered by :mod:`orderdb.cli.bench`): each workload directly
on a shard and through a PL/Proxy proxy, in the same run (:mod:`orderdb.bench.shards`)."""

from __future__ import annotations

import dataclasses

import click
from click.core import ParameterSource

from orderdb.cli.base import dumps, err_console, esc

#: --seconds and --clients of a --shards run when they are not given
SHARD_SECONDS = 10
SHARD_CLIENTS = 4


def run_shards_cmd(
    ctx: click.Context,
    dsn: str | None,
    shards: int,
    clients: int,
    seconds: int,
    only: str | None,
    keep: bool,
    as_json: bool,
) -> None:
    """Run :func:`orderdb.bench.shards.run_shard_benchmark` and print its table (or JSON)."""
    from orderdb.bench.shards import WORKLOADS, ShardBenchError, render, run_shard_benchmark

    if dsn is None:
        raise click.UsageError(
            "--shards needs --dsn (or ORDERDB_DSN) of a PostgreSQL server with PL/Proxy (Debian "
            "postgresql-15-plproxy): the embedded PostgreSQL 18 has not",
            ctx,
        )
    if ctx.get_parameter_source("seconds") is ParameterSource.DEFAULT:
        seconds = SHARD_SECONDS
    if ctx.get_parameter_source("clients") is ParameterSource.DEFAULT:
        clients = SHARD_CLIENTS
    workloads = tuple(x.strip() for x in only.split(",") if x.strip()) if only else WORKLOADS

    def log(msg: str) -> None:
        err_console.print(f"[dim]bench:[/dim] {esc(msg)}", highlight=False)

    try:
        report = run_shard_benchmark(
            dsn,
            shards=shards,
            clients=clients,
            seconds=seconds,
            workloads=workloads,
            keep=keep,
            log=log,
        )
    except ShardBenchError as exc:
        raise click.UsageError(str(exc), ctx) from exc
    if as_json:
        click.echo(dumps(dataclasses.asdict(report), indent=2))
        return
    for line in render(report):
        click.echo(line)
