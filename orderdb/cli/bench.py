"""CLI command: ``orderdb bench`` (the benchmark, with the pgbench reference in the same run)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from orderdb.cli.base import (
    chosen_dsn,
    dsn_option,
    dumps,
    err_console,
    esc,
    handle_errors,
    main,
    plain,
)
from orderdb.cli.base import console as _console


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}" if value < 100 else f"{value:,.0f}{suffix}"
    return f"{value}{suffix}"


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    # wide enough for the tables when the output is a file or a pipe (docs, CI logs)
    console = _console if _console.is_terminal else Console(width=160)
    cfg = report.config
    server = report.server
    settings = server["settings"]
    console.print(
        f"[bold]orderdb bench[/bold] {esc(report.started_at)}: {esc(cfg['clients'])} clients, "
        f"{esc(cfg['jobs'])} pgbench threads, {esc(cfg['seconds'])} s per run, "
        f"{esc(cfg['rounds'])} round(s); {esc(report.machine['nproc'])} CPUs, "
        f"{esc(report.machine['memory_gb'])} GB; load "
        f"{esc(report.machine['load_before'])} -> {esc(report.load_after)}"
    )
    console.print(
        f"server ({server['kind']}): PostgreSQL {settings.get('server_version', '?')}, "
        f"shared_buffers={settings.get('shared_buffers')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}, "
        f"fsync={settings.get('fsync')}, pgbench scale {cfg['pgbench_scale']}",
        markup=False,
        highlight=False,
    )
    table = Table(title="throughput and latency (percentiles from pgbench's per-transaction logs)")
    for col in ("workload", "tps", "p50 ms", "p95 ms", "p99 ms", "vs", "ratio", "top waits"):
        table.add_column(col, justify="right" if col in ("tps", "ratio") or "ms" in col else "left")
    for row in report.rows:
        if row.status != "ok":
            note = (row.note or "").splitlines()[:2]
            table.add_row(
                plain(row.name),
                plain(row.status),
                "",
                "",
                "",
                plain(row.reference),
                "",
                plain(" ".join(note)[:200]),
            )
            continue
        waits = ", ".join(f"{k} {v:.0f}%" for k, v in list(row.waits.items())[:2])
        table.add_row(
            plain(row.name),
            _fmt(row.tps),
            _fmt(row.p50_ms),
            _fmt(row.p95_ms),
            _fmt(row.p99_ms),
            plain(row.reference if row.reference != row.name else ""),
            _fmt(row.ratio) if row.reference != row.name else "",
            plain(waits),
        )
    console.print(table)
    goals = Table(title="goals")
    for col in ("goal", "target", "measured", "met"):
        goals.add_column(col)
    for g in report.goals:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "n/a"}[g["met"]]
        goals.add_row(plain(g["goal"]), plain(g["target"]), plain(_fmt(g["measured"])), met)
    console.print(goals)
    if report.table_health:
        health = Table(title="table health after the workload (HOT = n_tup_hot_upd / n_tup_upd)")
        for col in ("table", "live", "dead", "updates", "HOT updates", "HOT %"):
            health.add_column(col)
        for t in report.table_health:
            health.add_row(
                plain(t["table"]),
                str(t["live_tuples"]),
                str(t["dead_tuples"]),
                str(t["updates"]),
                str(t["hot_updates"]),
                _fmt(t["hot_pct"]),
            )
        console.print(health)
    if report.scale:
        scale = Table(title="scale: create_order and order_timeline as orders grow")
        for col in (
            "orders",
            "order tables MB",
            "create tps",
            "create p99 ms",
            "timeline tps",
            "timeline p99 ms",
        ):
            scale.add_column(col, justify="right")
        for s in report.scale:
            c = s.get("create_order") or {}
            t = s.get("order_timeline") or {}
            scale.add_row(
                f"{s['orders']:,}",
                _fmt(s.get("order_tables_mb")),
                _fmt(c.get("tps")),
                _fmt(c.get("p99_ms")),
                _fmt(t.get("tps")),
                _fmt(t.get("p99_ms")),
            )
        console.print(scale)
    if report.events is not None:
        ev = report.events
        if ev.get("status") == "ok":
            lat = ev["result"].get("latency", {})
            thr = ev["result"].get("throughput", {})
            console.print(
                f"relay (orderdb.bench.events): create_order {thr.get('tps_without_relay')} tps "
                f"without relay, {thr.get('tps_with_relay')} with, ratio {thr.get('ratio')}; "
                f"commit -> events tail p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms "
                f"at {lat.get('achieved_rate')} events/s",
                markup=False,
                highlight=False,
            )
        else:
            console.print(f"relay benchmark: {dumps(ev)}", markup=False, highlight=False)


@main.command("bench")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--clients", default=16, show_default=True, type=click.IntRange(1, 150))
@click.option(
    "--seconds", default=15, show_default=True, type=click.IntRange(1, 3600), help="Per run."
)
@click.option(
    "--orders",
    default=10_000,
    show_default=True,
    type=click.IntRange(0, 100_000_000),
    help="Historical orders bulk-loaded; above 10,000 the scale runs go 10k, 100k, ... up to it.",
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Repeat the alternating sequence; medians are reported.",
)
@click.option("--jobs", default=None, type=click.IntRange(1, 64), help="pgbench threads.")
@click.option("--skus", default=10_000, show_default=True, type=click.IntRange(30, 1_000_000))
@click.option(
    "--only",
    default=None,
    help="Comma-separated workloads (their references are added), e.g. create_order,hot_sku.",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the bench databases (and the embedded bench server) for runs by hand.",
)
@click.option(
    "--track-all",
    is_flag=True,
    help="pg_stat_statements.track=all during orderdb runs (statements inside functions).",
)
@click.option(
    "--no-events",
    is_flag=True,
    help="Skip the relay benchmark (orderdb/bench/events.py: create with the relay on vs off).",
)
@click.pass_context
@handle_errors
def bench_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    as_json: bool,
    clients: int,
    seconds: int,
    orders: int,
    rounds: int,
    jobs: int | None,
    skus: int,
    only: str | None,
    keep: bool,
    track_all: bool,
    no_events: bool,
) -> None:
    """Run the SQL API under pgbench beside pgbench's own reference transactions.

    Without --dsn (or the group's --dsn / ORDERDB_DSN) a dedicated embedded server is started
    with the benchmark settings (shared_buffers=256MB, synchronous_commit=off, fsync=on).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from orderdb.bench import BenchConfig, BenchError, run_benchmark

    dsn = chosen_dsn(ctx, sub_dsn)
    cfg = BenchConfig(
        dsn=dsn,
        clients=clients,
        jobs=jobs,
        seconds=seconds,
        rounds=rounds,
        orders=orders,
        skus=skus,
        only=tuple(x.strip() for x in only.split(",") if x.strip()) if only else (),
        keep=keep,
        track_all=track_all,
        events=not no_events,
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def log(msg: str) -> None:
        progress.console.print(f"[dim]bench:[/dim] {esc(msg)}", highlight=False)

    def tick(label: str, elapsed: float, total: float, tps: float | None) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(esc(label), total=total, info="")
        info = f"{tps:,.0f} tps" if tps is not None else ""
        progress.update(tasks[label], completed=min(elapsed, total), info=info)

    try:
        with progress:
            report = run_benchmark(cfg, log=log, tick=tick)
    except BenchError as exc:
        err_console.print(f"[red]bench failed[/red]: {esc(exc)}", highlight=False)
        raise SystemExit(1) from exc
    if as_json:
        click.echo(dumps(dataclasses.asdict(report), indent=2))
    else:
        _print_report(report)
