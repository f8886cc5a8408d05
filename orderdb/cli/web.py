"""CLI command: ``orderdb web`` (the tracking page and the operations board)."""

from __future__ import annotations

import signal
import threading

import click

from orderdb.cli.base import (
    console,
    dsn_option,
    get_dsn,
    handle_errors,
    log_format_option,
    main,
    notice,
    redact,
    setup_logging,
)


@main.command("web")
@dsn_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free port).",
)
@click.option(
    "--ops-dsn",
    envvar="ORDERDB_OPS_DSN",
    default=None,
    help="DSN of a login in role orderdb_ops for the board (default: $ORDERDB_OPS_DSN, else the "
    "main DSN; its connections then step down to orderdb_ops when they may).",
)
@log_format_option
@click.pass_context
@handle_errors
def web_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    host: str,
    port: int,
    ops_dsn: str | None,
    log_format: str,
) -> None:
    """Serve the customer tracking page and the operations board (read-only) until Ctrl-C."""
    from orderdb.web import WebServer

    setup_logging(log_format)
    dsn = get_dsn(ctx, sub_dsn)
    server = WebServer(dsn, host, port, ops_dsn=ops_dsn, uvicorn_logging=log_format == "text")
    try:
        url = server.start()
    except (RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    if log_format == "json":
        notice(f"orderdb web on {url}", url=url, database=redact(dsn))
    else:
        console.print(
            f"orderdb web on {url}  (database {redact(dsn)})", markup=False, highlight=False
        )
        console.print(f"  operations board: {url}/ops", markup=False, highlight=False)
        console.print(
            f"  tracking page:    {url}/track/<order_no>?customer=<id>",
            markup=False,
            highlight=False,
        )
        console.print("Ctrl-C (or SIGTERM) stops it.")
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    try:
        done.wait()
    finally:
        server.stop()
