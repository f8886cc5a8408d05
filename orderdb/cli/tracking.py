"""CLI commands: tracking.

``orderdb track ORDER [--customer ID] [--json]``      the customer's timeline of an order
``orderdb ingest tracking FILE.jsonl``                 bulk carrier events (one JSON object a line)
``orderdb routes plan WAREHOUSE [--json]``             plan courier routes for packed orders
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orderdb.cli.base import (
    console,
    dsn_option,
    echo_json,
    err_console,
    get_dsn,
    handle_errors,
    main,
    print_table,
)
from orderdb.client import Client
from orderdb.errors import OrderDBError
from orderdb.fulfilment import Timeline


def _fmt_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _print_timeline(t: Timeline) -> None:
    console.print(f"[bold]Order {t.order_no}[/bold] (id {t.order_id}): [bold]{t.status}[/bold]")
    console.print(f"Current location:   {t.current_location or '-'}")
    console.print(f"Estimated delivery: {_fmt_time(t.estimated_delivery)}")
    if t.shipments:
        print_table(
            "Shipments",
            ["carrier", "tracking number", "status", "shipped", "delivered"],
            [
                (
                    s.carrier,
                    s.tracking_number,
                    s.status,
                    _fmt_time(s.shipped_at),
                    _fmt_time(s.delivered_at) if s.delivered_at else "",
                )
                for s in t.shipments
            ],
        )
    print_table(
        "Timeline",
        ["time", "status", "description", "location"],
        [
            (_fmt_time(e.time), e.status.replace("_", " "), e.description, e.location)
            for e in t.timeline
        ],
    )


@main.command("track")
@click.argument("order_id", type=int)
@click.option(
    "--customer", "customer_id", type=int, default=None, help="Only if this customer owns it."
)
@click.option("--json", "as_json", is_flag=True, help="The order_timeline JSON document.")
@dsn_option
@click.pass_context
@handle_errors
def track_cmd(
    ctx: click.Context, order_id: int, customer_id: int | None, as_json: bool, sub_dsn: str | None
) -> None:
    """Show an order's timeline as its customer sees it (orderdb.order_timeline)."""
    with Client.connect(get_dsn(ctx, sub_dsn), min_size=1, max_size=1) as db:
        timeline = db.order_timeline(order_id, customer_id=customer_id)
    if as_json:
        echo_json(timeline.document)
    else:
        _print_timeline(timeline)


@main.group("ingest")
def ingest_group() -> None:
    """Bulk ingestion of integration events."""


def _event_args(obj: Any) -> dict[str, Any]:
    """The record_tracking_event arguments of one JSONL object (raises ValueError)."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    status = obj.get("carrier_status", obj.get("status"))
    missing = [
        k
        for k, v in (
            ("carrier", obj.get("carrier")),
            ("tracking_number", obj.get("tracking_number")),
            ("event_time", obj.get("event_time")),
            ("carrier_status", status),
        )
        if v is None
    ]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    payload = obj.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    return {
        "carrier": str(obj["carrier"]),
        "tracking_number": str(obj["tracking_number"]),
        "event_time": datetime.fromisoformat(str(obj["event_time"]).replace("Z", "+00:00")),
        "carrier_status": str(status),
        "location": obj.get("location"),
        "description": obj.get("description"),
        "event_id": None if obj.get("event_id") is None else str(obj["event_id"]),
        "payload": payload,
    }


@ingest_group.command("tracking")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@dsn_option
@click.pass_context
@handle_errors
def ingest_tracking_cmd(ctx: click.Context, file: Path, as_json: bool, sub_dsn: str | None) -> None:
    """Record carrier events from FILE.jsonl (one JSON object per line: carrier,
    tracking_number, event_time, carrier_status, location?, description?, event_id?, payload?).

    Each event is its own transaction; duplicates are harmless. Prints how many were new,
    duplicate, unmatched (no shipment yet) and invalid; exits 1 when any line was invalid."""
    lines = file.read_text(encoding="utf-8").splitlines()
    counts = {"new": 0, "duplicate": 0, "unmatched": 0, "invalid": 0}
    problems: list[str] = []
    with (
        Client.connect(get_dsn(ctx, sub_dsn), min_size=1, max_size=1) as db,
        Progress(
            TextColumn("[bold]ingest[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=as_json,
        ) as progress,
    ):
        task = progress.add_task("events", total=len(lines))
        for lineno, text in enumerate(lines, start=1):
            progress.advance(task)
            if not text.strip():
                continue
            try:
                result = db.record_tracking_event(**_event_args(json.loads(text)))
            except (ValueError, OrderDBError) as exc:
                counts["invalid"] += 1
                problems.append(f"line {lineno}: {exc}")
                continue
            if result.duplicate:
                counts["duplicate"] += 1
            else:
                counts["new"] += 1
                if result.order_id is None:
                    counts["unmatched"] += 1
    if as_json:
        echo_json({**counts, "problems": problems})
    else:
        print_table(
            f"tracking events from {file.name}",
            ["new", "duplicate", "unmatched", "invalid"],
            [(counts["new"], counts["duplicate"], counts["unmatched"], counts["invalid"])],
        )
        for p in problems[:20]:
            err_console.print(p, markup=False, highlight=False)
    if counts["invalid"]:
        sys.exit(1)


@main.group("routes")
def routes_group() -> None:
    """Courier routes."""


@routes_group.command("plan")
@click.argument("warehouse_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The planned routes as JSON.")
@dsn_option
@click.pass_context
@handle_errors
def routes_plan_cmd(
    ctx: click.Context, warehouse_id: int, as_json: bool, sub_dsn: str | None
) -> None:
    """Plan courier routes for WAREHOUSE's packed, unrouted orders (orderdb.plan_routes)."""
    with Client.connect(get_dsn(ctx, sub_dsn), min_size=1, max_size=1) as db:
        routes = db.plan_routes(warehouse_id)
    if as_json:
        echo_json(routes)
        return
    if not routes:
        console.print("no routes planned (no packed orders with coordinates, or no free courier)")
        return
    print_table(
        f"routes of warehouse {warehouse_id}",
        ["route", "courier", "stops", "km", "minutes", "orders in visiting order"],
        [
            (
                r.route_id,
                r.courier_id,
                r.stop_count,
                r.distance_km,
                r.est_minutes,
                " -> ".join(str(o) for o in r.order_ids),
            )
            for r in routes
        ],
    )
