"""CLI commands: tracking.

``orderdb track ORDER [--customer ID] [--locale L] [--json]``
                                                      the customer's timeline of an order
``orderdb ingest tracking FILE.jsonl``                 bulk carrier events (one JSON object a line)
``orderdb routes plan WAREHOUSE [--json]``             plan courier routes for packed orders
"""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from orderdb import locales
from orderdb.cli.base import (
    EXIT_RETRY_LATER,
    INT4,
    INT8,
    client_session,
    console,
    dsn_option,
    echo_json,
    err_console,
    esc,
    handle_errors,
    main,
    print_error,
    print_table,
)
from orderdb.fulfillment import Timeline, TimelinePerson
from orderdb.richtext import progress_bar


def _cells(text: str) -> int:
    """Terminal columns of ``text`` (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _person(p: TimelinePerson) -> str:
    """``name · 138****5678 · city`` (the phone as the document has it: masked)."""
    return " · ".join(str(v) for v in (p.name, p.phone, p.city) if v)


def _print_timeline(t: Timeline) -> None:
    """The customer's view in the document's language (its texts and ``labels``, the terminal's
    few own words from :mod:`orderdb.locales`) and times in its time zone. Every value is data:
    escaped or printed without markup."""
    words = locales.texts(t.locale, t.document)

    def when(value: datetime | None) -> str:
        return locales.fmt_local_time(value, t.time_zone, t.locale) if value else "-"

    status = t.status_text or t.status.replace("_", " ")
    console.print(
        f"[bold]{esc(words['order'])} {esc(t.order_no)}[/bold] (id {t.order_id}): "
        f"[bold]{esc(status)}[/bold] ({esc(t.status)})",
        highlight=False,
    )
    facts = [
        (words["status"], status),
        (words["current_location"], t.current_location or words["not_known"]),
        (
            words["estimated_delivery"],
            when(t.estimated_delivery) if t.estimated_delivery else words["no_estimate"],
        ),
    ]
    if t.recipient is not None:
        facts.append((words["recipient"], _person(t.recipient)))
    if t.courier is not None:
        facts.append((words["courier"], _person(t.courier)))
    facts.append((words["time_zone"], t.time_zone))
    width = max(_cells(label) for label, _ in facts)
    for label, value in facts:
        pad = " " * (width - _cells(label))
        console.print(f"{label}:{pad} {value}", markup=False, highlight=False)
    if t.shipments:
        print_table(
            words["shipments"],
            [
                words["carrier"],
                words["tracking_number"],
                words["col_shipped"],
                words["col_delivered"],
            ],
            [
                (
                    s.carrier,
                    s.tracking_number,
                    when(s.shipped_at),
                    when(s.delivered_at) if s.delivered_at else "",
                )
                for s in t.shipments
            ],
        )
    print_table(
        words["timeline"],
        [words["col_time"], words["col_event"], words["col_location"]],
        [(when(e.time), e.description, e.location) for e in t.timeline],
    )


@main.command("track")
@click.argument("order_id", type=INT8)
@click.option(
    "--customer", "customer_id", type=INT8, default=None, help="Only if this customer owns it."
)
@click.option(
    "--locale",
    default="en",
    show_default=True,
    help="The customer's language: en or zh-CN (or any locale of orderdb.customer_texts).",
)
@click.option("--json", "as_json", is_flag=True, help="The order_timeline JSON document.")
@dsn_option
@click.pass_context
@handle_errors
def track_cmd(
    ctx: click.Context,
    order_id: int,
    customer_id: int | None,
    locale: str,
    as_json: bool,
    sub_dsn: str | None,
) -> None:
    """Show an order's timeline as its customer sees it (orderdb.order_timeline): its texts in
    LOCALE, times in the order's time zone (Asia/Shanghai for zh-CN unless the order names one),
    the recipient and, while out for delivery, the courier (phones masked)."""
    with client_session(ctx, sub_dsn) as (db, conn):
        timeline = db.order_timeline(order_id, customer_id=customer_id, locale=locale, conn=conn)
    if as_json:
        echo_json(timeline.document)
    else:
        _print_timeline(timeline)


@main.group("ingest")
def ingest_group() -> None:
    """Bulk ingestion of integration events."""


class BadLine(ValueError):
    """One line of an ingest file that cannot be recorded: the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _check_text(field: str, value: str) -> str:
    """``value`` if PostgreSQL can store it as text: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise BadLine(field, "contains a NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadLine(field, "is not valid Unicode (a lone surrogate)") from None
    return value


def _scalar(field: str, value: Any, *, required: bool) -> str | None:
    """A text field: a string (a number is taken as its text), storable; None when absent."""
    if value is None:
        if required:
            raise BadLine(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadLine(field, "must be a string")
    return _check_text(field, str(value))


def _check_json(field: str, value: Any) -> None:
    """Every key and string inside a JSON value is storable text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(field, item)
        elif isinstance(item, dict):
            for k, v in item.items():
                _check_text(field, k)
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)


def _event_time(value: Any) -> datetime:
    """An ISO 8601 time with its zone (a time without one would be read in the operator's
    PGTZ: refused, as the HTTP ingestion does)."""
    if value is None:
        raise BadLine("event_time", "missing")
    if not isinstance(value, str):
        raise BadLine("event_time", "must be an ISO 8601 string")
    _check_text("event_time", value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadLine("event_time", f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise BadLine(
            "event_time", "must include a time zone (e.g. 2026-05-01T10:00:00Z or +08:00)"
        )
    return parsed


def _event_args(obj: Any) -> dict[str, Any]:
    """The record_tracking_event arguments of one JSONL object (raises BadLine)."""
    if not isinstance(obj, dict):
        raise BadLine("line", "must be a JSON object")
    status_field = "status" if "carrier_status" not in obj and "status" in obj else "carrier_status"
    payload = obj.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise BadLine("payload", "must be a JSON object")
    _check_json("payload", payload)
    return {
        "carrier": _scalar("carrier", obj.get("carrier"), required=True),
        "tracking_number": _scalar("tracking_number", obj.get("tracking_number"), required=True),
        "event_time": _event_time(obj.get("event_time")),
        "carrier_status": _scalar(status_field, obj.get(status_field), required=True),
        "location": _scalar("location", obj.get("location"), required=False),
        "description": _scalar("description", obj.get("description"), required=False),
        "event_id": _scalar("event_id", obj.get("event_id"), required=False),
        "payload": payload,
    }


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """The event of one raw line (None for a blank line); raises BadLine."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine("line", f"not UTF-8 (byte {exc.start + 1})") from None
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise BadLine("line", "JSON nested too deep") from None
    except ValueError as exc:
        raise BadLine("line", f"not JSON: {exc}") from None
    return _event_args(obj)


#: lines per call of orderdb.record_tracking_events in `orderdb ingest tracking`
INGEST_BATCH = 500


@ingest_group.command("tracking")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@dsn_option
@click.pass_context
@handle_errors
def ingest_tracking_cmd(ctx: click.Context, file: Path, as_json: bool, sub_dsn: str | None) -> None:
    """Record carrier events from FILE.jsonl (one JSON object per line: carrier,
    tracking_number, event_time, carrier_status, location?, description?, event_id?, payload?).

    event_time is ISO 8601 with a zone (Z or +08:00). Events go to the database in batches of
    up to 500 lines, one call of orderdb.record_tracking_events and one transaction each;
    duplicates are harmless. A bad line is reported (line number, field, reason) and the others
    go on (a line the database refuses is left out of its batch, the rest of it is recorded).
    Prints how many were new, duplicate, unmatched (no shipment yet) and invalid; exits 1 when
    any line was invalid, 75 when the connection was lost (the summary says where; running the
    file again records the rest, the lines before are duplicates then)."""
    import psycopg

    from orderdb.integrations.tracking_batches import (
        RefusedEvent,
        event_element,
        record_tracking_batch,
    )

    lines = file.read_bytes().split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last line
    counts = {"new": 0, "duplicate": 0, "unmatched": 0, "invalid": 0}
    problems: list[str] = []
    aborted: str | None = None
    with (
        client_session(ctx, sub_dsn) as (_db, conn),
        progress_bar("ingest", len(lines), console=err_console, transient=as_json) as advance,
    ):
        batch: list[tuple[int, dict[str, Any]]] = []  # (line number, batch element)

        def flush() -> str | None:
            """Records the batch; the line where the connection was lost, else None."""
            if not batch:
                return None
            try:
                outcomes = record_tracking_batch(conn, [element for _, element in batch])
            except psycopg.Error as exc:
                first = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
                if conn.closed or isinstance(exc, psycopg.OperationalError):
                    return f"line {batch[0][0]}: {first}"
                # not one line's fault (no ordinal): every line of the batch is reported
                for lineno, _ in batch:
                    counts["invalid"] += 1
                    problems.append(f"line {lineno}: {first} ({exc.sqlstate})")
                batch.clear()
                return None
            for (lineno, _), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, RefusedEvent):
                    counts["invalid"] += 1
                    problems.append(f"line {lineno}: {outcome.message} ({outcome.sqlstate})")
                elif outcome.duplicate:
                    counts["duplicate"] += 1
                else:
                    counts["new"] += 1
                    if outcome.order_id is None:
                        counts["unmatched"] += 1
            batch.clear()
            return None

        for lineno, raw in enumerate(lines, start=1):
            advance()
            try:
                args = _parse_line(raw.removesuffix(b"\r"))
            except BadLine as exc:
                counts["invalid"] += 1
                problems.append(f"line {lineno}: {exc.field}: {exc.reason}")
                continue
            if args is None:
                continue
            batch.append((lineno, event_element(**args)))
            if len(batch) >= INGEST_BATCH:
                aborted = flush()
                if aborted is not None:
                    break
        if aborted is None:
            aborted = flush()
    # in line order (a line the database refused is known only when its batch is sent)
    problems.sort(key=lambda p: int(p.split(":", 1)[0].removeprefix("line ")))
    if as_json:
        summary: dict[str, Any] = {**counts, "problems": problems}
        if aborted is not None:
            summary["aborted"] = aborted
        echo_json(summary)
    else:
        print_table(
            f"tracking events from {file.name}",
            ["new", "duplicate", "unmatched", "invalid"],
            [(counts["new"], counts["duplicate"], counts["unmatched"], counts["invalid"])],
        )
        for p in problems[:20]:
            err_console.print(p, markup=False, highlight=False)
        if len(problems) > 20:
            err_console.print(f"... and {len(problems) - 20} more (--json lists every one)")
    if aborted is not None:
        print_error(f"stopped at {aborted} (the lines before it are recorded)")
    if aborted is not None:
        sys.exit(EXIT_RETRY_LATER)
    if counts["invalid"]:
        sys.exit(1)


@main.group("routes")
def routes_group() -> None:
    """Courier routes."""


@routes_group.command("plan")
@click.argument("warehouse_id", type=INT4)
@click.option("--json", "as_json", is_flag=True, help="The planned routes as JSON.")
@dsn_option
@click.pass_context
@handle_errors
def routes_plan_cmd(
    ctx: click.Context, warehouse_id: int, as_json: bool, sub_dsn: str | None
) -> None:
    """Plan courier routes for WAREHOUSE's packed, unrouted orders (orderdb.plan_routes)."""
    with client_session(ctx, sub_dsn) as (db, conn):
        routes = db.plan_routes(warehouse_id, conn=conn)
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
