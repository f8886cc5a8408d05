"""The tracking CLI against a real database via --dsn: `orderdb track`, `orderdb ingest
tracking FILE.jsonl`, `orderdb routes plan`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orderdb.cli import main
from orderdb.client import Client

WH = 81


def run(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dsn", dsn, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def db(db_dsn: str) -> Client:
    client = Client.connect(db_dsn, max_size=2)
    client.receive_stock(WH, "CLI-T", 100)
    return client


def _shipped(db: Client, customer: int, tn: str, options: dict[str, Any] | None = None) -> int:
    o = db.create_order(customer, WH, [{"sku": "CLI-T", "quantity": 1}], options=options)
    db.transition(o.order_id, "confirmed", expected_version=o.version)
    db.wms_callback(f"cli-{tn}", o.order_id, "SHIPPED", {"carrier": "SF", "tracking_number": tn})
    return o.order_id


def test_track_readable_and_json(db: Client, db_dsn: str) -> None:
    order_id = _shipped(db, 11, "SFCLI1")
    db.record_tracking_event(
        "SF", "SFCLI1", datetime.now(UTC), "31", location="Hangzhou hub", description="Arrived"
    )
    out = run(db_dsn, "track", str(order_id), "--customer", "11")
    assert out.exit_code == 0, out.output
    for text in ("delivering", "Hangzhou hub", "SFCLI1", "Handed to the carrier", "Arrived"):
        assert text in out.stdout
    doc = json.loads(run(db_dsn, "track", str(order_id), "--json").stdout)
    assert doc["status"] == "delivering"
    assert doc["current_location"] == "Hangzhou hub"
    assert [e["status"] for e in doc["timeline"]][-1] == "in_transit"


def test_track_other_customer_is_forbidden(db: Client, db_dsn: str) -> None:
    order_id = _shipped(db, 12, "SFCLI2")
    out = run(db_dsn, "track", str(order_id), "--customer", "13")
    assert out.exit_code == 5  # forbidden
    assert "OD005" in out.output


def test_ingest_tracking_counts_new_duplicate_unmatched(
    db: Client, db_dsn: str, tmp_path: Path
) -> None:
    order_id = _shipped(db, 14, "SFCLI3")
    t0 = datetime.now(UTC) - timedelta(hours=3)
    events = [
        {
            "carrier": "SF",
            "tracking_number": "SFCLI3",
            "event_time": t0.isoformat(),
            "carrier_status": "54",
            "location": "Shenzhen",
            "event_id": "i-1",
        },
        {
            "carrier": "SF",
            "tracking_number": "SFCLI3",
            "event_time": (t0 + timedelta(hours=1)).isoformat(),
            "status": "44",
            "event_id": "i-2",
        },
        {
            "carrier": "SF",
            "tracking_number": "SFCLI3",
            "event_time": t0.isoformat(),
            "carrier_status": "54",
            "location": "Shenzhen",
            "event_id": "i-1",
        },
        {
            "carrier": "GENERIC",
            "tracking_number": "NOPE-1",
            "event_time": t0.isoformat().replace("+00:00", "Z"),
            "carrier_status": "in_transit",
        },
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n\n")
    out = run(db_dsn, "ingest", "tracking", str(path), "--json")
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary == {"new": 3, "duplicate": 1, "unmatched": 1, "invalid": 0, "problems": []}
    assert db.get_order(order_id).status == "delivering"
    again = json.loads(run(db_dsn, "ingest", "tracking", str(path), "--json").stdout)
    assert (again["new"], again["duplicate"]) == (0, 4)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"carrier": "SF"}\nnot json\n')
    out = run(db_dsn, "ingest", "tracking", str(bad))
    assert out.exit_code == 1
    assert "invalid" in out.stdout and "line 1" in out.output


def test_routes_plan(db: Client, db_dsn: str) -> None:
    db.set_warehouse_location(WH, 0.0, 0.0)
    db.add_courier(WH, "Ana", 0.0, 0.0, 2)
    ids = []
    for lon in (0.02, 0.01):
        o = db.create_order(
            15,
            WH,
            [{"sku": "CLI-T", "quantity": 1}],
            options={"ship_to": {"line1": "Dock 1", "lat": 0.0, "lon": lon}},
        )
        db.transition(o.order_id, "confirmed", expected_version=o.version)
        db.wms_callback(f"route-{o.order_id}", o.order_id, "PACKED")
        ids.append(o.order_id)
    out = run(db_dsn, "routes", "plan", str(WH), "--json")
    assert out.exit_code == 0, out.output
    routes = json.loads(out.stdout)
    assert len(routes) == 1
    assert [s["order_id"] for s in routes[0]["stops"]] == [ids[1], ids[0]]
    table = run(db_dsn, "routes", "plan", str(WH))
    assert table.exit_code == 0
    assert "no routes planned" in table.stdout


def test_track_in_chinese_shows_the_recipient_and_the_route_courier_masked(
    db: Client, db_dsn: str
) -> None:
    """`orderdb track --locale zh-CN`: Chinese texts and labels, Beijing time, the recipient and
    the courier plan_routes put the order on, both phones masked; data never read as markup."""
    wh = 82
    db.receive_stock(wh, "CLI-T", 10)
    db.set_warehouse_location(wh, 22.54, 113.93)
    db.add_courier(wh, "[bold]陈师傅", 22.54, 113.93, 3, phone="13700001234")
    ship_to = {
        "name": "刘[red]芳",
        "phone": "+86 139 1234 5678",
        "province": "广东省",
        "city": "深圳市",
        "district": "南山区",
        "line1": "高新南一道6号",
        "lat": 22.541,
        "lon": 113.951,
    }
    o = db.create_order(16, wh, [{"sku": "CLI-T", "quantity": 1}], options={"ship_to": ship_to})
    db.transition(o.order_id, "confirmed", expected_version=o.version)
    db.wms_callback(f"zh-{o.order_id}-p", o.order_id, "PACKED")
    assert len(db.plan_routes(wh)) == 1
    db.wms_callback(
        f"zh-{o.order_id}-s", o.order_id, "SHIPPED", {"carrier": "SF", "tracking_number": "SFZH1"}
    )
    db.record_tracking_event("SF", "SFZH1", datetime.now(UTC), "44", location="南山科技园")

    out = run(db_dsn, "track", str(o.order_id), "--customer", "16", "--locale", "zh-CN")
    assert out.exit_code == 0, out.output
    text = out.stdout
    for expected in (
        "订单",
        "运输中",
        "收件人",
        "刘[red]芳",
        "139****5678",
        "深圳市",
        "配送员",
        "[bold]陈师傅",
        "137****1234",
        "派送中",
        "南山科技园",
        "Asia/Shanghai",
        "物流详情",
    ):
        assert expected in text, (expected, text)
    assert "年" in text and "月" in text  # dates in Chinese
    for full in ("13912345678", "1391234", "13700001234"):
        assert full not in text.replace(" ", "")

    doc = json.loads(run(db_dsn, "track", str(o.order_id), "--locale", "zh-CN", "--json").stdout)
    assert doc["courier"] == {"name": "[bold]陈师傅", "phone": "137****1234"}
    english = run(db_dsn, "track", str(o.order_id), "--locale", "en").stdout
    assert "Your courier" in english and "137****1234" in english
    bad = run(db_dsn, "track", str(o.order_id), "--locale", "xx")
    assert bad.exit_code != 0 and "locale" in bad.output
