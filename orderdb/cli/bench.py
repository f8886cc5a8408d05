"""CLI command: ``orderdb bench`` (the benchmark, with its references in the same run)."""

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

QUICK = {"seconds": 1, "clients": 2, "orders": 1000, "skus": 300, "rounds": 1}


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value < 10:
            return f"{value:,.3g}{suffix}" if value < 1 else f"{value:,.2f}{suffix}"
        return f"{value:,.1f}{suffix}" if value < 100 else f"{value:,.0f}{suffix}"
    return f"{value}{suffix}"


def _met(value: bool | None) -> str:
    return {True: "[green]met[/green]", False: "[red]not met[/red]", None: "n/a"}[value]


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    # wide enough for the tables when the output is a file or a pipe (docs, CI logs)
    console = _console if _console.is_terminal else Console(width=200)
    cfg = report.config
    server = report.server
    settings = server["settings"]
    machine = report.machine
    console.print(
        f"[bold]orderdb bench[/bold] {esc(report.started_at)} .. {esc(report.finished_at)}: "
        f"{esc(cfg['clients'])} clients, {esc(cfg['jobs'])} pgbench threads, "
        f"{esc(cfg['seconds'])} s per run, {esc(cfg['rounds'])} round(s), round trips "
        f"{esc(', '.join(f'{x:g} ms' for x in cfg['rtt_ms']))}; machine: "
        f"{esc(machine['nproc'])} CPUs ({esc(machine.get('cpu') or '?')}), "
        f"{esc(machine['memory_gb'])} GB, Linux {esc(machine.get('kernel', '?'))}; load average "
        f"{esc(machine['load_before'])} before, {esc(report.load_after)} after; commit "
        f"{esc(cfg.get('revision') or '?')}"
    )
    console.print(
        f"server ({server['kind']}): PostgreSQL {settings.get('server_version', '?')}, "
        f"shared_buffers={settings.get('shared_buffers')}, "
        f"synchronous_commit={settings.get('synchronous_commit')} (the 'off' runs: "
        f"PGOPTIONS='-c synchronous_commit=off'), fsync={settings.get('fsync')}, "
        f"pgbench scale {cfg['pgbench_scale']}; PgBouncer: "
        + (
            f"{report.pgbouncer.get('version')}, transaction mode, pool size "
            f"{report.pgbouncer.get('pool_size')}"
            if report.pgbouncer.get("status") == "ok"
            else str(report.pgbouncer.get("note"))
        ),
        markup=False,
        highlight=False,
    )
    table = Table(
        title="runs (percentiles from pgbench's per-transaction logs; CPU and WAL per "
        "transaction, per event for the tracking runs)"
    )
    for col in (
        "run",
        "tps",
        "events/s",
        "p50 ms",
        "p99 ms",
        "server CPU ms",
        "pgbench CPU ms",
        "WAL bytes",
        "top waits",
    ):
        table.add_column(col, justify="left" if col in ("run", "top waits") else "right")
    for row in report.rows:
        if row.status != "ok":
            note = " ".join((row.note or "").splitlines()[:2])[:160]
            table.add_row(plain(row.key), plain(row.status), "", "", "", "", "", "", plain(note))
            continue
        waits = ", ".join(f"{k} {v:.0f}%" for k, v in list(row.waits.items())[:3])
        table.add_row(
            plain(row.key),
            _fmt(row.tps),
            _fmt(row.units_per_s) if row.unit == "event" else "",
            _fmt(row.p50_ms),
            _fmt(row.p99_ms),
            _fmt(row.server_cpu_ms),
            _fmt(row.client_cpu_ms),
            f"{row.wal_bytes:,.0f}" if row.wal_bytes is not None else "-",
            plain(waits),
        )
    console.print(table)
    if report.comparisons:
        comp = Table(title="the application baseline: ratio of create_order's tps to the app's")
        for col in ("comparison", "sync on", "sync off"):
            comp.add_column(col, justify="left" if col == "comparison" else "right")
        for c in report.comparisons:
            comp.add_row(plain(c["title"]), _fmt(c["ratio_on"]), _fmt(c["ratio_off"]))
        console.print(comp)
    for sync, s in report.sellout.items():
        console.print(
            f"sell-out, synchronous_commit={sync}: {s['clients']} sessions bought "
            f"{s['sold']} of {s['units']} units of {s['sku']} ({s['orders_per_s']} orders/s), "
            f"oversold {s['oversold']}, OD001 answers {s['od001']} (false {s['false_od001']}), "
            f"left {s['left_available']}, counters == ledger: {s['reserved'] == s['ledger_held']}"
            + (f", errors: {s['errors']}" if s["errors"] else ""),
            markup=False,
            highlight=False,
        )
    if report.table_health:
        health = Table(title="table health after the runs (HOT = n_tup_hot_upd / n_tup_upd)")
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
    goals = Table(
        title="goals (ratio = tps, or events/s, over the reference's in the same run; "
        "met/not met: the server's default synchronous_commit=on)"
    )
    for col in ("workload", "reference", "ratio, sync on", "ratio, sync off", "goal", "met"):
        goals.add_column(col, justify="right" if col.startswith("ratio") else "left")
    for g in report.goals:
        goals.add_row(
            plain(g["title"]),
            plain(g["reference"]),
            _fmt(g["ratio_on"]),
            _fmt(g["ratio_off"]),
            plain(g["target"] or ""),
            _met(g["met"]),
        )
    console.print(goals)
    for g in report.goals:
        if g["met"] is False and g["why"]:
            console.print(f"why not met, {g['title']}: {g['why']}", markup=False, highlight=False)


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(
            f"a comma-separated list of numbers, got {text!r}", param_hint=name
        ) from None
    if not values or any(not 0 <= v <= 1000 for v in values):
        raise click.BadParameter("values between 0 and 1000 (ms)", param_hint=name)
    return values


def _syncs(text: str) -> tuple[str, ...]:
    values = tuple(x.strip() for x in text.split(",") if x.strip())
    if not values or any(v not in ("on", "off") for v in values):
        raise click.BadParameter(f"on, off or on,off; got {text!r}", param_hint="'--sync'")
    return values


@main.command("bench")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--json-file",
    "json_file",
    default=None,
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the JSON report to this file (the tables are still printed).",
)
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
    help="Repeat the sequence; medians are reported (ratios are taken within a round).",
)
@click.option("--jobs", default=None, type=click.IntRange(1, 64), help="pgbench threads.")
@click.option("--skus", default=10_000, show_default=True, type=click.IntRange(30, 1_000_000))
@click.option(
    "--rtt-ms",
    "rtt_ms",
    default="0,1",
    show_default=True,
    help="Emulated network round-trip times (ms, comma-separated): \\sleep after every "
    "statement of create_order's and the application baseline's scripts.",
)
@click.option(
    "--sync",
    default="on,off",
    show_default=True,
    help="synchronous_commit of the runs: on (the server's default) and/or off (PGOPTIONS).",
)
@click.option(
    "--pgbouncer/--no-pgbouncer",
    default=True,
    show_default=True,
    help="Also compare create_order with the application through a private PgBouncer "
    "(transaction mode); skipped with a message when pgbouncer is not installed.",
)
@click.option(
    "--pool-size",
    default=None,
    type=click.IntRange(1, 500),
    help="PgBouncer's server connections (default: 2 x CPUs).",
)
@click.option(
    "--only",
    default=None,
    help="Comma-separated workloads (their references are added), e.g. create_order,hot_sku.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="A smoke run for tests: 1 s per run, 2 clients, 1,000 orders, 300 SKUs, 1 round, "
    "no relay benchmark (overrides those options). Its figures mean nothing.",
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
@click.option(
    "--shards",
    default=None,
    type=click.IntRange(2, 64),
    help="Instead: each workload directly on a shard and through a PL/Proxy proxy over this "
    "many shards made beside the DSN's database (overhead per call, tps ratio; "
    "docs/scaling.md). --seconds per side (default 10), --clients (default 4), --only, --keep.",
)
@click.pass_context
@handle_errors
def bench_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    as_json: bool,
    json_file: str | None,
    clients: int,
    seconds: int,
    orders: int,
    rounds: int,
    jobs: int | None,
    skus: int,
    rtt_ms: str,
    sync: str,
    pgbouncer: bool,
    pool_size: int | None,
    only: str | None,
    quick: bool,
    keep: bool,
    track_all: bool,
    no_events: bool,
    shards: int | None,
) -> None:
    """Run the SQL API under pgbench beside its references and print the goals table.

    Each goal is a ratio to a reference measured in the same run: pgbench's builtin
    transactions, the same events one call each, the same orders on random SKUs, and the same
    work done by an application in 9 round trips (with an emulated network: --rtt-ms), directly
    and through PgBouncer; with synchronous_commit on (the server's default) and off.
    Without --dsn (or the group's --dsn / ORDERDB_DSN) a dedicated embedded server is started
    with the benchmark settings (shared_buffers=256MB, fsync and synchronous_commit on).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from orderdb.bench import BenchConfig, BenchError, run_benchmark

    if shards is not None:
        from orderdb.cli.bench_shards import run_shards_cmd

        run_shards_cmd(ctx, chosen_dsn(ctx, sub_dsn), shards, clients, seconds, only, keep, as_json)
        return
    if quick:
        seconds, clients, orders, skus, rounds = (
            QUICK["seconds"],
            QUICK["clients"],
            QUICK["orders"],
            QUICK["skus"],
            QUICK["rounds"],
        )
        no_events = True
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
        rtt_ms=_floats(rtt_ms, "'--rtt-ms'"),
        sync=_syncs(sync),
        pgbouncer=pgbouncer,
        pool_size=pool_size,
        sellout_units=20 * clients if quick else None,
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
    if json_file:
        with open(json_file, "w", encoding="utf-8") as fh:
            fh.write(dumps(dataclasses.asdict(report), indent=2) + "\n")
    if as_json:
        click.echo(dumps(dataclasses.asdict(report), indent=2))
    else:
        _print_report(report)
