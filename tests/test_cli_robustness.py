"""The command line with hostile data and broken setups, against real databases.

- data is never read as Rich markup: a location `[/x]`, a description `[bold]x`, a SKU `[/x]`
  are printed as they are (`orderdb track`, `orderdb monitor`, error messages);
- `orderdb monitor --once` on a database without orderdb exits 1 and reports no health it did not
  measure (SLA lanes unknown, not ok); the exporter exports none either;
- `orderdb ingest tracking`: bad lines (NUL, a time without zone, lone surrogate, not UTF-8, ...)
  are reported with line and field while the others are recorded, then the summary, exit 1;
- errors: a server that is down (its message, no "(None)", no 30 s wait), a database without
  orderdb ("run `orderdb migrate`"), out-of-range numbers named by their option, negative
  durations refused, a failing carrier's error shown by `poll-carriers`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from orderdb.cli import main
from orderdb.client import Client
from tests.conftest import PgServer, _create_db, _drop_db

WIDE = {"COLUMNS": "250"}  # rich wraps narrow table cells; keep every value on one line
DOWN_DSN = "postgresql://postgres@127.0.0.1:1/orderdb?connect_timeout=5"
WH = 2_104_631  # this module's warehouse


def run(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dsn", dsn, *args], env=WIDE)


@pytest.fixture(scope="module")
def empty_dsn(pg_server: PgServer) -> Iterator[str]:
    """A database on the server without orderdb installed."""
    name = f"test_empty_{secrets.token_hex(4)}"
    _create_db(pg_server.admin_dsn, name)
    try:
        yield pg_server.dsn(name)
    finally:
        _drop_db(pg_server.admin_dsn, name)


@pytest.fixture(scope="module")
def db(db_dsn: str) -> Iterator[Client]:
    client = Client.connect(db_dsn, max_size=2)
    client.receive_stock(WH, "ROBUST-1", 100)
    try:
        yield client
    finally:
        client.close()


def _shipped(db: Client, tn: str) -> int:
    o = db.create_order(7, WH, [{"sku": "ROBUST-1", "quantity": 1}])
    db.transition(o.order_id, "confirmed", expected_version=o.version)
    db.wms_callback(f"rob-{tn}", o.order_id, "SHIPPED", {"carrier": "SF", "tracking_number": tn})
    return o.order_id


# -- data is not markup ------------------------------------------------------------------------


def test_track_prints_brackets_in_carrier_text_literally(db: Client, db_dsn: str) -> None:
    order_id = _shipped(db, "SFROB1")
    db.record_tracking_event(
        "SF", "SFROB1", datetime.now(UTC), "31", location="[/x]", description="[bold]x"
    )
    out = run(db_dsn, "track", str(order_id))
    assert out.exit_code == 0, out.output
    assert "Current location:   [/x]" in out.stdout
    # in the timeline table too (titled with the document's label: "Tracking history")
    assert "[/x]" in out.stdout.split("Tracking history", 1)[1]
    doc = json.loads(run(db_dsn, "track", str(order_id), "--json").stdout)
    if any(e.get("description") == "[bold]x" for e in doc["timeline"]):
        assert "[bold]x" in out.stdout  # a description shown to the customer is shown as is


def test_monitor_prints_a_bracketed_sku_literally(fresh_dsn: str) -> None:
    with Client.connect(fresh_dsn, max_size=1) as client:
        client.receive_stock(WH, "[/x]", 1)
        client.receive_stock(WH, "[bold]SKU", 2)
    out = run(fresh_dsn, "monitor", "--once")
    assert out.exit_code == 0, out.output
    assert "[/x]" in out.stdout
    assert "[bold]SKU" in out.stdout


def test_tables_and_errors_print_brackets_literally(db: Client, db_dsn: str) -> None:
    db.receive_stock(WH, "[red]SKU[/red]", 3)
    shown = run(db_dsn, "stock", "show", str(WH), "[red]SKU[/red]")
    assert shown.exit_code == 0, shown.output
    assert "[red]SKU[/red]" in shown.stdout
    missing = run(db_dsn, "stock", "show", str(WH), "[/x]")
    assert missing.exit_code == 3, missing.output  # not found
    assert "(OD004)" in missing.stderr and "[/x]" in missing.stderr


# -- monitor and exporter on a database without orderdb -----------------------------------------


def test_monitor_once_on_an_unmigrated_database_fails_and_claims_no_health(
    empty_dsn: str,
) -> None:
    as_json = run(empty_dsn, "monitor", "--once", "--json")
    assert as_json.exit_code == 1, as_json.output
    assert "run `orderdb migrate`" in as_json.stderr
    snap = json.loads(as_json.stdout)
    assert snap["errors"], "every view failed and says so"
    lanes = snap["sla_summary"]
    assert lanes and all(lane["level"] == "unknown" for lane in lanes), lanes
    assert all(lane["breaches"] is None for lane in lanes)

    readable = run(empty_dsn, "monitor", "--once")
    assert readable.exit_code == 1, readable.output
    assert "orderdb is not installed in this database: run `orderdb migrate`" in readable.stderr
    assert " ok" not in readable.stdout


def test_monitor_marks_an_unread_view_unknown_not_ok(fresh_dsn: str) -> None:
    from orderdb.ops import monitor

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ALTER VIEW orderdb_ops.sla_breaches RENAME TO sla_breaches_gone")
        snap = monitor.snapshot(conn)
    assert "sla_breaches" in snap["errors"]
    assert {lane["level"] for lane in snap["sla_summary"]} == {"unknown"}
    assert "funnel" not in snap["errors"]
    out = run(fresh_dsn, "monitor", "--once")
    assert out.exit_code == 1
    assert "unknown" in out.stdout
    assert "sla_breaches" in out.stderr


def test_exporter_exports_no_health_it_did_not_read(empty_dsn: str, fresh_dsn: str) -> None:
    from prometheus_client import generate_latest

    from orderdb.ops.exporter import make_registry

    registry, collector = make_registry(lambda: psycopg.connect(empty_dsn, autocommit=True))
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert "orderdb_up 0.0" in text
    assert "orderdb_sla_breaches{" not in text
    assert "orderdb_low_stock_skus{" not in text

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ALTER VIEW orderdb_ops.sla_breaches RENAME TO sla_breaches_gone")
    registry, collector = make_registry(lambda: psycopg.connect(fresh_dsn, autocommit=True))
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert "orderdb_up 1.0" in text
    assert "orderdb_sla_breaches{" not in text  # not "0 breaches": not measured
    assert 'orderdb_exporter_view_errors{view="sla_breaches"} 1.0' in text
    assert "orderdb_low_stock_skus{" in text  # the views that were read are still exported


# -- ingest tracking ----------------------------------------------------------------------------


def test_ingest_tracking_reports_bad_lines_and_goes_on(
    db: Client, db_dsn: str, tmp_path: Path
) -> None:
    order_id = _shipped(db, "SFROB2")
    t0 = datetime.now(UTC) - timedelta(hours=2)

    def line(event_id: str, **extra: Any) -> str:
        minutes = int(event_id.split("-")[1])
        event = {
            "carrier": "SF",
            "tracking_number": "SFROB2",
            "event_time": (t0 + timedelta(minutes=minutes)).isoformat(),
            "carrier_status": "54",
            "event_id": event_id,
            **extra,
        }
        return json.dumps(event, ensure_ascii=False)  # raw non-ASCII: U+2028 stays one character

    body = "\n".join(
        [
            line(event_id="r-1"),  # 1 good
            line(event_id="r-2", location="Shen\u0000zhen"),  # 2 NUL in a text field
            line(event_id="r-3", event_time="2026-05-01T10:00:00"),  # 3 no time zone
            line(event_id="r-4").replace('"r-4"', '"r-4", "description": "\\ud800"'),  # 4 surrogate
            line(event_id="r-5", payload={"k\u0000": 1}),  # 5 NUL in the payload
            line(event_id="r-6", location={"city": "x"}),  # 6 not a string
            '{"carrier": "SF", ',  # 7 not JSON
            line(event_id="r-8", event_time="yesterday"),  # 8 not a time
            line(event_id="r-9", description="a\u2028b"),  # 9 good: U+2028 is not a newline
        ]
    ).encode()
    body += b"\n\xff\xfe not utf-8\n"  # 10 not UTF-8
    body += line(event_id="r-11", carrier_status="44").encode() + b"\n"  # 11 good, after them
    path = tmp_path / "events.jsonl"
    path.write_bytes(body)

    out = CliRunner().invoke(main, ["--dsn", db_dsn, "ingest", "tracking", str(path), "--json"])
    assert out.exit_code == 1, out.output
    summary = json.loads(out.stdout)
    assert (summary["new"], summary["invalid"]) == (3, 8), summary
    problems = summary["problems"]
    expected = [
        "line 2: location: contains a NUL",
        "line 3: event_time: must include a time zone",
        "line 4: description: is not valid Unicode",
        "line 5: payload: contains a NUL",
        "line 6: location: must be a string",
        "line 7: line: not JSON",
        "line 8: event_time: not an ISO 8601 time",
        "line 10: line: not UTF-8",
    ]
    assert len(problems) == len(expected)
    for got, want in zip(problems, expected, strict=True):
        assert got.startswith(want), (got, want)
    ids = {e.get("event_id") for e in _events(db_dsn, "SFROB2")}
    assert {"r-1", "r-9", "r-11"} <= ids and not ids & {"r-2", "r-3", "r-4", "r-5"}
    assert order_id

    readable = CliRunner().invoke(main, ["--dsn", db_dsn, "ingest", "tracking", str(path)])
    assert readable.exit_code == 1
    assert "line 3: event_time: must include a time zone" in readable.stderr
    assert "invalid" in readable.stdout  # the summary table is printed


def test_ingest_tracking_reports_a_time_the_database_refuses(
    db: Client, db_dsn: str, tmp_path: Path
) -> None:
    _shipped(db, "SFROB3")
    good = {
        "carrier": "SF",
        "tracking_number": "SFROB3",
        "event_time": datetime.now(UTC).isoformat(),
        "carrier_status": "54",
        "event_id": "s-1",
    }
    refused = {**good, "event_id": "s-2", "carrier": ""}  # refused by the database (22023)
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(refused) + "\n" + json.dumps(good) + "\n")
    out = CliRunner().invoke(main, ["--dsn", db_dsn, "ingest", "tracking", str(path), "--json"])
    assert out.exit_code == 1, out.output
    summary = json.loads(out.stdout)
    assert (summary["new"], summary["invalid"]) == (1, 1), summary
    assert summary["problems"][0].startswith("line 1: ") and "carrier" in summary["problems"][0]


def _events(dsn: str, tn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_id FROM orderdb.tracking_events WHERE tracking_number = %s",
            (tn,),
        ).fetchall()
    return [{"event_id": r[0]} for r in rows]


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("order", "show", "1"), ("track", "1"), ("routes", "plan", "1"), ("monitor", "--once")],
)
def test_a_server_that_is_down_prints_its_message_at_once(args: tuple[str, ...]) -> None:
    started = time.monotonic()
    out = run(DOWN_DSN, *args)
    assert out.exit_code == 75, out.output  # EX_TEMPFAIL: retry later
    assert time.monotonic() - started < 15, "no pool waiting 30 s for a connection"
    assert "(None)" not in out.stderr
    assert "Connection refused" in out.stderr or "is the server running" in out.stderr.lower()
    assert "Traceback" not in out.output


@pytest.mark.parametrize(
    "args",
    [
        ("order", "show", "1"),
        ("track", "1"),
        ("integrations", "list"),
        ("sla-check",),
        ("events", "tail", "--consumer", "c", "--idle-exit", "0"),
    ],
)
def test_an_unmigrated_database_says_run_migrate(empty_dsn: str, args: tuple[str, ...]) -> None:
    out = run(empty_dsn, *args)
    assert out.exit_code == 1, out.output
    assert "run `orderdb migrate`" in out.stderr, out.stderr
    assert "orderdb is not installed" in out.stderr


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("order", "show", "99999999999999999999"), "'ORDER_ID'"),
        (("track", "1", "--customer", "99999999999999999999"), "'--customer'"),
        (("stock", "receive", "99999999999", "SKU", "1"), "'WAREHOUSE_ID'"),
        (("stock", "receive", "1", "SKU", "99999999999"), "'QUANTITY'"),
        (
            ("order", "transition", "1", "confirmed", "--expected-version", "99999999999"),
            "'--expected-version'",
        ),
        (
            ("order", "create", "--customer", "1", "--warehouse", "99999999999", "--item", "A:1"),
            "'--warehouse'",
        ),
        (("routes", "plan", "99999999999"), "'WAREHOUSE_ID'"),
        (("events", "tail", "--consumer", "c", "--idle-exit", "-5"), "'--idle-exit'"),
        (("events", "tail", "--consumer", "c", "--idle-exit", "nan"), "'--idle-exit'"),
        (("events", "tail", "--consumer", "c", "--poll-interval", "-1"), "'--poll-interval'"),
        (("relay", "--retention-hours", "-1"), "'--retention-hours'"),
        (("relay", "--webhook-timeout", "0"), "'--webhook-timeout'"),
        (("events", "bench", "--seconds", "-1"), "'--seconds'"),
        (("poll-carriers", "--once", "--lease", "-1"), "'--lease'"),
        (("poll-carriers", "--idle", "-1"), "'--idle'"),
        (("ingest", "serve", "--port", "70000"), "'--port'"),
        (("ingest", "serve", "--pool-size", "0"), "'--pool-size'"),
        (("integrations", "add", "x", "--kind", "wms", "--rate", "-1"), "'--rate'"),
        (("integrations", "add", "x", "--kind", "wms", "--burst", "0"), "'--burst'"),
        (("webhooks", "add", "http://127.0.0.1:9/", "--max-attempts", "0"), "'--max-attempts'"),
        (("monitor", "--interval", "inf"), "'--interval'"),
    ],
)
def test_out_of_range_numbers_name_their_option(args: tuple[str, ...], name: str) -> None:
    out = run(DOWN_DSN, *args)  # refused before any connection
    assert out.exit_code == 2, out.output
    assert f"Invalid value for {name}" in out.output, out.output


def test_plan_routes_of_an_unknown_warehouse_says_not_found(db_dsn: str) -> None:
    out = run(db_dsn, "routes", "plan", "77")
    assert out.exit_code == 3, out.output  # not found
    assert "(OD004)" in out.stderr and "warehouse 77 not found" in out.stderr


def test_poll_carriers_shows_why_a_carrier_failed(fresh_dsn: str, tmp_path: Path) -> None:
    with Client.connect(fresh_dsn, max_size=1) as client:
        client.receive_stock(WH, "ROBUST-P", 5)
        o = client.create_order(7, WH, [{"sku": "ROBUST-P", "quantity": 1}])
        client.transition(o.order_id, "confirmed", expected_version=o.version)
        client.wms_callback(
            "rob-poll", o.order_id, "SHIPPED", {"carrier": "NOPLUGIN", "tracking_number": "NP1"}
        )
    out = run(fresh_dsn, "poll-carriers", "--once")
    assert out.exit_code == 0, out.output
    assert "NOPLUGIN" in out.stdout
    assert "no carrier plugin 'NOPLUGIN' is installed" in out.stdout
    as_json = run(fresh_dsn, "poll-carriers", "--once", "--json")
    assert as_json.exit_code == 0, as_json.output
