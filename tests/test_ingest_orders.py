"""`orderdb ingest orders FILE.jsonl` against a real database: orders from another system placed
through create_order with their idempotency keys; a re-run replays; bad lines are reported with
their number and reason while the others are placed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orderdb.cli import main
from orderdb.cli.orders_import import parse_order_line
from orderdb.cli.tracking import BadLine
from orderdb.client import Client

WH = 8301
CUSTOMER = 83001


def run(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dsn", dsn, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def db(db_dsn: str) -> Client:
    client = Client.connect(db_dsn, max_size=2)
    client.receive_stock(WH, "IMP-1", 50)
    return client


SHIP_TO = {
    "name": "王芳",
    "phone": "13812345678",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "line1": "文三路90号",
    "postcode": "310012",
}


def _line(key: str, **changes: Any) -> str:
    order: dict[str, Any] = {
        "customer_id": CUSTOMER,
        "warehouse_id": WH,
        "idempotency_key": key,
        "items": [{"sku": "IMP-1", "quantity": 1, "unit_price": "39.90"}],
        "options": {"ship_to": SHIP_TO, "currency": "CNY", "shipping_fee": "8.00"},
    }
    order.update(changes)
    return json.dumps({k: v for k, v in order.items() if v is not None}, ensure_ascii=False)


def test_ingest_orders_places_replays_and_reports_bad_lines(
    db: Client, db_dsn: str, tmp_path: Path
) -> None:
    lines = [
        _line("erp-1"),  # 1 new
        _line("erp-2", warehouse_id=None, options=None),  # 2 new: warehouse chosen by orderdb
        "",  # 3 blank: skipped
        "{not json",  # 4
        _line("erp-4", idempotency_key=None),  # 5 an import needs its key
        _line(
            "erp-5", options={"ship_to": {**SHIP_TO, "phone": "12345"}}
        ),  # 6 refused by create_order: names ship_to.phone
        _line("erp-6", shop="x"),  # 7 unknown key
        _line("erp-7", items=[{"sku": "IMP-1", "quantity": 1000}]),  # 8 not enough stock
        _line("erp-8", customer_id="83001"),  # 9 customer_id as a string
    ]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    out = run(db_dsn, "ingest", "orders", str(path), "--json")
    assert out.exit_code == 1, out.output
    summary = json.loads(out.stdout)
    assert (summary["new"], summary["replayed"], summary["refused"]) == (2, 0, 6)
    reasons = {p["line"]: p["reason"] for p in summary["problems"]}
    assert set(reasons) == {4, 5, 6, 7, 8, 9}
    assert reasons[4].startswith("line: not JSON")
    assert reasons[5].startswith("idempotency_key: missing")
    assert "ship_to.phone" in reasons[6] and "(22023)" in reasons[6]
    assert reasons[7].startswith("shop: unknown key")
    assert "(OD001)" in reasons[8]
    assert reasons[9] == "customer_id: must be a whole number"
    keys = {p["line"]: p["idempotency_key"] for p in summary["problems"]}
    assert keys[6] == "erp-5" and keys[8] == "erp-7"

    orders = db.customer_orders(CUSTOMER)
    assert len(orders) == 2
    placed = [db.get_order(o.order_id) for o in orders]
    shipped_to = [o for o in placed if o.document["options"].get("ship_to")]
    assert len(shipped_to) == 1
    assert shipped_to[0].document["options"]["ship_to"]["city"] == "杭州市"
    assert shipped_to[0].totals is not None and str(shipped_to[0].totals.total) == "47.90"

    # a re-run is harmless: every placed line replays, nothing is placed twice
    again = run(db_dsn, "ingest", "orders", str(path), "--json")
    assert again.exit_code == 1
    summary = json.loads(again.stdout)
    assert (summary["new"], summary["replayed"], summary["refused"]) == (0, 2, 6)
    assert len(db.customer_orders(CUSTOMER)) == 2


def test_ingest_orders_human_summary_and_exit_zero_when_all_placed(
    db: Client, db_dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(_line("erp-good-1") + "\r\n" + _line("erp-good-2") + "\r\n", encoding="utf-8")
    out = run(db_dsn, "ingest", "orders", str(path))
    assert out.exit_code == 0, out.output
    assert "orders from good.jsonl" in out.stdout
    assert "new" in out.stdout and "replayed" in out.stdout and "refused" in out.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line("[red]erp-bad", items=[]) + "\n", encoding="utf-8")
    out = run(db_dsn, "ingest", "orders", str(bad))
    assert out.exit_code == 1
    assert "line 1 [[red]erp-bad]: refused: " in out.output  # data is never read as markup


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"[1]", "line"),
        (b'{"customer_id": 1, "idempotency_key": "k"}', "items"),
        (b'{"customer_id": 0, "idempotency_key": "k", "items": []}', "customer_id"),
        (b'{"customer_id": 1, "idempotency_key": "k", "items": [], "options": []}', "options"),
        (b'{"customer_id": 1, "idempotency_key": 5, "items": []}', "idempotency_key"),
        (b'{"customer_id": 1, "idempotency_key": " ", "items": []}', "idempotency_key"),
        (b'{"customer_id": 1, "idempotency_key": "k\\u0000", "items": []}', "idempotency_key"),
        (b'{"customer_id": 1, "warehouse_id": 2147483648, "idempotency_key": "k", "items": []}',
         "warehouse_id"),
        (b'{"customer_id": NaN, "idempotency_key": "k", "items": []}', "line"),
        (b"\xff", "line"),
    ],
)  # fmt: skip
def test_a_bad_line_names_its_field(raw: bytes, field: str) -> None:
    with pytest.raises(BadLine) as caught:
        parse_order_line(raw)
    assert caught.value.field == field
