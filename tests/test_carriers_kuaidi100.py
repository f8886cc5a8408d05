"""The Kuaidi100 plugin (orderdb/integrations/carriers/kuaidi100.py) against a local fake of
Kuaidi100 (tests/carrier_fakes.py) that checks every query's sign itself and answers in the
documented shapes and return codes; its signed callback; the KUAIDI100 status codes in
orderdb.carrier_status_map (migrations/0004_fulfilment.sql, 0016_carrier_kuaidi100.sql); and
`orderdb poll-carriers --once` driving a KUAIDI100 parcel to delivered in a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from orderdb.integrations import carriers
from orderdb.integrations.carriers import (
    Address,
    CarrierRejected,
    CarrierUnavailable,
    WaybillRequest,
)
from orderdb.integrations.carriers.kuaidi100 import (
    CALLBACK_ANSWER,
    CallbackRejected,
    Kuaidi100,
    callback_sign,
    parse_callback,
    query_sign,
)

from .carrier_fakes import FakeKuaidi100, kuaidi100_md5

WAREHOUSE = 3812
CHINA = ZoneInfo("Asia/Shanghai")
NUMBER = "75123456789012"

# every code Kuaidi100 documents (basic states and resultv2 detailed codes) and what orderdb
# makes of it
DOCUMENTED = {
    "0": "in_transit",
    "1": "in_transit",
    "101": "info_received",
    "102": "info_received",
    "103": "in_transit",
    "1001": "in_transit",
    "1002": "in_transit",
    "1003": "in_transit",
    "2": "exception",
    "201": "exception",
    "202": "exception",
    "203": "failed_attempt",
    "204": "failed_attempt",
    "205": "exception",
    "206": "failed_attempt",
    "207": "exception",
    "208": "exception",
    "209": "exception",
    "210": "exception",
    "3": "delivered",
    "301": "delivered",
    "302": "delivered",
    "303": "delivered",
    "304": "delivered",
    "4": "returned_to_sender",
    "401": "exception",
    "5": "out_for_delivery",
    "501": "available_for_pickup",
    "6": "returned_to_sender",
    "7": "in_transit",
    "8": "in_transit",
    "10": "in_transit",
    "11": "in_transit",
    "12": "in_transit",
    "13": "exception",
    "14": "failed_attempt",
}


@pytest.fixture
def fake() -> Iterator[FakeKuaidi100]:
    server = FakeKuaidi100()
    with server.running():
        yield server


@pytest.fixture
def k100(fake: FakeKuaidi100) -> Iterator[Kuaidi100]:
    plugin = Kuaidi100(fake.config(company="zhongtong"))
    yield plugin
    plugin.close()


def _china(delta: timedelta) -> str:
    return (datetime.now(CHINA) + delta).strftime("%Y-%m-%d %H:%M:%S")


def _story(fake: FakeKuaidi100, number: str, company: str = "zhongtong") -> None:
    fake.add_scan(
        number,
        company,
        "103",
        "揽收",
        _china(-timedelta(hours=30)),
        "【深圳市】 深圳宝安 的 小王 已揽收",
        "广东,深圳市",
    )
    fake.add_scan(
        number,
        company,
        "1002",
        "干线",
        _china(-timedelta(hours=20)),
        "【深圳市】 快件离开 【深圳中心】 已发往 【北京中心】",
        "广东,深圳市",
    )
    fake.add_scan(
        number,
        company,
        "1001",
        "到达派件城市",
        _china(-timedelta(hours=6)),
        "【北京市】 快件已经到达 【北京中心】",
        "北京,北京市",
    )
    fake.add_scan(
        number,
        company,
        "5",
        "派件",
        _china(-timedelta(hours=3)),
        "【北京市】 【朝阳】 的 李四（13812345678） 正在第1次派件",  # noqa: RUF001
        "北京,北京市,朝阳区",
    )
    fake.add_scan(
        number,
        company,
        "304",
        "投柜或站签收",
        _china(-timedelta(hours=1)),
        "【北京市】 快件已从 【丰巢柜】 取出,已签收",
        "北京,北京市,朝阳区",
    )


# -- signing -----------------------------------------------------------------------------------


def test_signs_are_upper_case_md5() -> None:
    param = '{"com":"yuantong","num":"YT9693083639795"}'
    assert query_sign(param, "key", "CUSTOMER") == kuaidi100_md5(param + "key" + "CUSTOMER")
    assert query_sign(param, "key", "CUSTOMER").isupper()
    assert callback_sign(param, "salt") == kuaidi100_md5(param + "salt")


# -- query ---------------------------------------------------------------------------------------


def test_query_tracking_returns_every_scan_oldest_first(
    fake: FakeKuaidi100, k100: Kuaidi100
) -> None:
    _story(fake, NUMBER)
    events = k100.query_tracking(NUMBER)
    assert [e.status for e in events] == ["103", "1002", "1001", "5", "304"]
    assert all(e.tracking_number == NUMBER and e.event_time.tzinfo for e in events)
    assert events[-1].location == "北京,北京市,朝阳区"
    assert events[-1].payload is not None and events[-1].payload["com"] == "zhongtong"
    sent = fake.requests[-1]
    assert sent["path"] == "/poll/query.do" and sent["customer"] == fake.customer
    param = json.loads(sent["param"])
    assert param["com"] == "zhongtong" and param["num"] == NUMBER and param["resultv2"] == "1"


def test_scans_without_status_codes_take_the_code_of_their_name(fake: FakeKuaidi100) -> None:
    plugin = Kuaidi100(fake.config(company="yuantong"))
    fake.add_scan("YT1", "yuantong", "", "在途", "2026-11-24 10:00:00", "已发出")
    fake.add_scan("YT1", "yuantong", "", "签收", "2026-11-25 10:00:00", "已签收", state="3")
    events = plugin.query_tracking("YT1")
    assert [e.status for e in events] == ["0", "3"]
    assert events[0].event_time == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def test_no_scan_yet_is_no_error(k100: Kuaidi100) -> None:
    assert k100.query_tracking("75000000000000") == []  # returnCode 500: 查询无结果


def test_the_company_is_looked_up_when_not_configured(fake: FakeKuaidi100) -> None:
    _story(fake, NUMBER)
    plugin = Kuaidi100(fake.config())
    assert len(plugin.query_tracking(NUMBER)) == 5
    assert [r["path"] for r in fake.requests] == ["/autonumber/auto", "/poll/query.do"]
    plugin.query_tracking(NUMBER)
    assert [r["path"] for r in fake.requests].count("/autonumber/auto") == 1  # remembered
    with pytest.raises(CarrierRejected, match="set company"):
        plugin.query_tracking("00000000")


def test_a_wrong_key_or_customer_is_rejected(fake: FakeKuaidi100) -> None:
    for config in (
        fake.config(key="wrong", company="zhongtong"),
        fake.config(customer="SOMEONEELSE", company="zhongtong"),
    ):
        with pytest.raises(CarrierRejected) as refused:
            Kuaidi100(config).query_tracking(NUMBER)
        assert refused.value.code == "503" and "验证签名失败" in str(refused.value)


def test_a_wrong_phone_is_rejected(fake: FakeKuaidi100) -> None:
    _story(fake, NUMBER)
    fake.parcels[NUMBER].phone = "13800138000"
    with pytest.raises(CarrierRejected) as refused:
        Kuaidi100(fake.config(company="zhongtong", phone="1234")).query_tracking(NUMBER)
    assert refused.value.code == "408"
    assert (
        len(Kuaidi100(fake.config(company="zhongtong", phone="8000")).query_tracking(NUMBER)) == 5
    )


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("http500", CarrierUnavailable),
        ("502", CarrierUnavailable),
        ("501", CarrierUnavailable),
        ("slow", CarrierUnavailable),
        ("601", CarrierRejected),
    ],
)
def test_failures_map_to_clear_errors(
    fake: FakeKuaidi100, k100: Kuaidi100, failure: str, error: type[Exception]
) -> None:
    _story(fake, NUMBER)
    fake.fail_next(failure)
    with pytest.raises(error):
        k100.query_tracking(NUMBER)
    assert len(k100.query_tracking(NUMBER)) == 5


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"key": "k"}, "customer is required"),
        ({"customer": "c"}, "key is required"),
        ({"customer": "c", "key": "k", "secret": "x"}, "unknown key"),
        ({"customer": "c", "key": "k", "company": "ZhongTong"}, "lower case"),
        ({"customer": "c", "key": "k", "timezone": "Nowhere/Else"}, "timezone"),
    ],
)
def test_config_errors_name_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Kuaidi100(config)


def test_kuaidi100_books_no_waybills(k100: Kuaidi100) -> None:
    address = Address(name="X", line1="Y", city="Z", postal_code="1")
    with pytest.raises(CarrierRejected, match="book the waybill"):
        k100.create_waybill(WaybillRequest(order_id=1, warehouse_id=1, recipient=address))
    with pytest.raises(CarrierRejected):
        k100.cancel(NUMBER)


# -- subscription and callback -----------------------------------------------------------------


def test_subscribe_then_the_signed_callback(fake: FakeKuaidi100) -> None:
    plugin = Kuaidi100(fake.config(company="zhongtong", callback_url="https://shop.example/k100"))
    _story(fake, NUMBER)
    assert plugin.subscribe(NUMBER) is True
    sent = json.loads(fake.requests[-1]["param"])
    assert fake.requests[-1]["schema"] == "json" and sent["key"] == fake.key
    assert sent["parameters"] == {
        "callbackurl": "https://shop.example/k100",
        "resultv2": "1",
        "salt": fake.salt,
    }
    assert plugin.subscribe(NUMBER) is False  # 501: watched already
    form = fake.callback_form(NUMBER)
    events = plugin.parse_callback(form)
    assert [e.status for e in events] == ["103", "1002", "1001", "5", "304"]
    assert CALLBACK_ANSWER == {"result": True, "returnCode": "200", "message": "成功"}
    # the sign in lower case is the same sign
    assert parse_callback({**form, "sign": form["sign"].lower()}, fake.salt) == events


def test_callbacks_that_are_not_signed_with_the_salt_are_refused(fake: FakeKuaidi100) -> None:
    _story(fake, NUMBER)
    form = fake.callback_form(NUMBER)
    tampered = {**form, "param": form["param"].replace('"304"', '"3"')}
    for bad, message in [
        (tampered, "not MD5"),
        ({"param": form["param"]}, "sign is missing"),
        ({**form, "sign": callback_sign(form["param"], "another-salt")}, "not MD5"),
        ({}, "param is missing"),
    ]:
        with pytest.raises(CallbackRejected, match=message):
            parse_callback(bad, fake.salt)
    not_json = {"param": "{", "sign": callback_sign("{", fake.salt)}
    with pytest.raises(CallbackRejected, match="not JSON"):
        parse_callback(not_json, fake.salt)
    with pytest.raises(CallbackRejected, match="salt is required"):
        Kuaidi100(fake.config(salt=None)).parse_callback(form)


def test_subscription_errors(fake: FakeKuaidi100) -> None:
    with pytest.raises(ValueError, match="callback_url"):
        Kuaidi100(fake.config(company="zhongtong")).subscribe(NUMBER)
    wrong_key = Kuaidi100(
        fake.config(key="wrong", company="zhongtong", callback_url="https://shop.example/k")
    )
    with pytest.raises(CarrierRejected) as refused:
        wrong_key.subscribe(NUMBER)
    assert refused.value.code == "600"
    unknown_company = Kuaidi100(
        fake.config(company="nosuchco", callback_url="https://shop.example/k")
    )
    with pytest.raises(CarrierRejected) as bad:
        unknown_company.subscribe(NUMBER)
    assert bad.value.code == "700"


# -- the mapping ------------------------------------------------------------------------------


def test_every_documented_state_code_is_mapped(conn: psycopg.Connection[Any]) -> None:
    rows = dict(
        conn.execute(
            "SELECT carrier_status, normalized_status FROM orderdb.carrier_status_map "
            "WHERE carrier = 'KUAIDI100'"
        ).fetchall()
    )
    assert rows == DOCUMENTED


# -- end to end --------------------------------------------------------------------------------


def _ship(dsn: str, number: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, 'K100-A', 100)", (WAREHOUSE,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(2, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "K100-A", "quantity": 1}])),
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
        conn.execute(
            "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (
                f"ship-{number}",
                order_id,
                Jsonb({"carrier": "KUAIDI100", "tracking_number": number}),
            ),
        )
    return order_id


def test_poll_carriers_drives_a_kuaidi100_parcel_to_delivered(
    fresh_dsn: str, fake: FakeKuaidi100, tmp_path: Path
) -> None:
    _story(fake, NUMBER)
    order_id = _ship(fresh_dsn, NUMBER)
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"KUAIDI100": fake.config(company="zhongtong")}))
    from orderdb.cli import main

    result = CliRunner().invoke(
        main,
        [
            "poll-carriers",
            "--once",
            "--json",
            "--carrier",
            "KUAIDI100",
            "--config",
            str(config),
            "--dsn",
            fresh_dsn,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["polled"] == 1 and summary["events_recorded"] == 5, summary
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        assert conn.execute(
            "SELECT status FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ).fetchone() == ("delivered",)
        statuses = conn.execute(
            "SELECT normalized_status FROM orderdb.tracking_events "
            "WHERE carrier = 'KUAIDI100' AND tracking_number = %s ORDER BY event_time",
            (NUMBER,),
        ).fetchall()
        assert [s[0] for s in statuses] == [
            "in_transit",
            "in_transit",
            "in_transit",
            "out_for_delivery",
            "delivered",
        ]
    assert carriers.load("KUAIDI100", fake.config()).code == "KUAIDI100"
