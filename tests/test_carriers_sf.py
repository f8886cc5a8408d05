"""The SF Express plugin (orderdb/integrations/carriers/sf.py) against a local fake of SF's open
platform (tests/carrier_fakes.py) that checks every msgDigest itself and answers in SF's
documented shapes and error codes; and end to end: `orderdb poll-carriers --once` drives an SF
parcel to delivered in a real database."""

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
from orderdb.integrations.carriers.sf import (
    ROUTE_PUSH_ANSWER,
    SFExpress,
    java_urlencode,
    msg_digest,
    parse_route_push,
)

from .carrier_fakes import FakeSF, docs_config, java_url_encoder, sf_digest

WAREHOUSE = 3811
CHINA = ZoneInfo("Asia/Shanghai")
SENDER = Address(
    name="orderdb 仓库",
    line1="科苑路 1 号",
    city="深圳市",
    postal_code="518000",
    phone="0755-1234567",
)
RECIPIENT = Address(
    name="李雷",
    line1="朝阳区建国路 88 号",
    city="北京市",
    postal_code="100022",
    phone="13800138000",
)


@pytest.fixture
def fake() -> Iterator[FakeSF]:
    server = FakeSF()
    with server.running():
        yield server


@pytest.fixture
def sf(fake: FakeSF) -> Iterator[SFExpress]:
    plugin = SFExpress(
        fake.config(
            sender={
                "name": "orderdb 仓库",
                "phone": "0755-1234567",
                "line1": "科苑路 1 号",
                "city": "深圳市",
                "postal_code": "518000",
            }
        )
    )
    yield plugin
    plugin.close()


def _china(delta: timedelta) -> str:
    return (datetime.now(CHINA) + delta).strftime("%Y-%m-%d %H:%M:%S")


# -- signing -----------------------------------------------------------------------------------


def test_msg_digest_matches_sfs_documented_example() -> None:
    """The worked example of SF's signing guide (数字签名认证说明)."""
    msg = '{"language":"zh-CN","orderId":"QIAO-20200618-004"}'
    assert msg_digest(msg, "12312334453453", "fjcg5PGKaNpPSHFAZ4QsCOkV71R3zVci") == (
        "IIKJtuLVzoFTu4kHI8M8vA=="
    )


@pytest.mark.parametrize(
    "text",
    ["a b", "*", "~", "-_.", "+&=%", "收件人 张三", '{"k":"v / w?"}', "emoji 😀", "\n\t"],
)
def test_urlencoding_is_javas_urlencoder(text: str) -> None:
    """Java's URLEncoder keeps ``*``, encodes ``~`` and turns a space into ``+`` (Python's
    quote_plus keeps ``~``, encodes ``*``): the plugin follows Java, byte for byte."""
    assert java_urlencode(text) == java_url_encoder(text)
    assert msg_digest(text, "1", "cw") == sf_digest(text, "1", "cw")


# -- waybills ----------------------------------------------------------------------------------


def test_create_waybill_books_an_order_and_returns_its_waybill(fake: FakeSF, sf: SFExpress) -> None:
    waybill = sf.create_waybill(
        WaybillRequest(order_id=42, warehouse_id=WAREHOUSE, recipient=RECIPIENT, weight_grams=1250)
    )
    assert waybill.carrier == "SF" and waybill.tracking_number.startswith("SF")
    assert waybill.raw["orderId"] == "orderdb-42"
    booked = fake.orders["orderdb-42"].request
    assert booked["monthlyCard"] == "7551234567" and booked["totalWeight"] == 1.25
    assert [c["contactType"] for c in booked["contactInfoList"]] == [1, 2]
    assert booked["contactInfoList"][1]["contact"] == "李雷"
    assert fake.requests[-1]["serviceCode"] == "EXP_RECE_CREATE_ORDER"
    # the same order booked again (a retry): SF refuses the orderId (8016), the plugin answers
    # with the waybill SF already gave it
    again = sf.create_waybill(
        WaybillRequest(order_id=42, warehouse_id=WAREHOUSE, recipient=RECIPIENT)
    )
    assert again.tracking_number == waybill.tracking_number
    assert [r["serviceCode"] for r in fake.requests[-2:]] == [
        "EXP_RECE_CREATE_ORDER",
        "EXP_RECE_SEARCH_ORDER_RESP",
    ]
    assert len(fake.orders) == 1


def test_cancel_before_and_after_pickup(fake: FakeSF, sf: SFExpress) -> None:
    first = sf.create_waybill(WaybillRequest(order_id=1, warehouse_id=1, recipient=RECIPIENT))
    assert sf.cancel(first.tracking_number) is True
    assert fake.orders["orderdb-1"].cancelled
    assert fake.requests[-1]["serviceCode"] == "EXP_RECE_UPDATE_ORDER"
    assert json.loads(fake.requests[-1]["msgData"])["dealType"] == 2
    assert sf.cancel(first.tracking_number) is True  # 8037: cancelled already
    second = sf.create_waybill(WaybillRequest(order_id=2, warehouse_id=1, recipient=RECIPIENT))
    fake.add_route(second.tracking_number, "50", _china(-timedelta(hours=1)), "深圳市", "已收件")
    assert sf.cancel(second.tracking_number) is False  # picked up: too late
    with pytest.raises(CarrierRejected, match="cancel_order") as unknown:
        sf.cancel("SF9999999999999")
    assert unknown.value.code is None
    with pytest.raises(CarrierRejected) as mismatch:
        sf.cancel_order("orderdb-2", "SF1111111111111")
    assert mismatch.value.code == "8017"
    with pytest.raises(CarrierRejected) as missing:
        sf.cancel_order("no-such-order")
    assert missing.value.code == "6150"


def test_bad_input_names_the_field(sf: SFExpress) -> None:
    no_phone = Address(name="X", line1="Y", city="Z", postal_code="1")
    with pytest.raises(ValueError, match=r"recipient\.phone"):
        sf.create_waybill(WaybillRequest(order_id=3, warehouse_id=1, recipient=no_phone))
    with pytest.raises(ValueError, match="weight_grams"):
        sf.create_waybill(
            WaybillRequest(order_id=3, warehouse_id=1, recipient=RECIPIENT, weight_grams=0)
        )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"check_word": "x", "env": "sandbox"}, "partner_id is required"),
        ({"partner_id": "p", "env": "sandbox"}, "check_word is required"),
        ({"partner_id": "p", "check_word": "x"}, "env must be"),
        ({"partner_id": "p", "check_word": "x", "env": "prod"}, "env must be"),
        ({"partnerID": "p", "check_word": "x", "env": "sandbox"}, "write partnerID as partner_id"),
        ({"partner_id": "p", "check_word": "x", "env": "sandbox", "chek": 1}, "unknown key"),
        (
            {"partner_id": "p", "check_word": "x", "env": "sandbox", "timezone": "Mars/X"},
            "timezone",
        ),
        ({"partner_id": "p", "check_word": "x", "env": "sandbox", "timeout": 0}, "timeout"),
    ],
)
def test_config_errors_name_the_key(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SFExpress(config)


def test_env_picks_sfs_documented_urls() -> None:
    assert SFExpress({"partner_id": "p", "check_word": "x", "env": "sandbox"}).url == (
        "https://sfapi-sbox.sf-express.com/std/service"
    )
    assert SFExpress({"partner_id": "p", "check_word": "x", "env": "production"}).url == (
        "https://bspgw.sf-express.com/std/service"
    )


# -- errors ------------------------------------------------------------------------------------


def test_bad_credentials_are_rejected_with_sfs_code(fake: FakeSF) -> None:
    wrong_word = SFExpress(fake.config(check_word="not-the-check-word"))
    with pytest.raises(CarrierRejected) as signature:
        wrong_word.query_tracking("SF1234567890123")
    assert signature.value.code == "A1006" and "数字签名无效" in str(signature.value)
    wrong_partner = SFExpress(fake.config(partner_id="SOMEONE"))
    with pytest.raises(CarrierRejected) as permission:
        wrong_partner.query_tracking("SF1234567890123")
    assert permission.value.code == "A1004"
    unknown_card = SFExpress(fake.config(monthly_card="7550000000"))
    with pytest.raises(CarrierRejected) as card:
        unknown_card.create_waybill(
            WaybillRequest(order_id=5, warehouse_id=1, recipient=RECIPIENT, sender=SENDER)
        )
    assert card.value.code == "8119"
    bad_card = SFExpress(fake.config(monthly_card="12345"))
    with pytest.raises(CarrierRejected) as malformed:
        bad_card.create_waybill(
            WaybillRequest(order_id=5, warehouse_id=1, recipient=RECIPIENT, sender=SENDER)
        )
    assert malformed.value.code == "6126"
    assert fake.orders == {}


@pytest.mark.parametrize(
    "failure", ["http500", "http503", "A1005", "A1009", "A1099", "not-json", "slow", "busy:S0001"]
)
def test_transient_failures_are_carrier_unavailable(
    fake: FakeSF, sf: SFExpress, failure: str
) -> None:
    fake.slow_seconds = 3.0  # the plugin waits 2 s
    fake.fail_next(failure)
    with pytest.raises(CarrierUnavailable):
        sf.query_tracking("SF1234567890123")
    assert sf.query_tracking("SF1234567890123") == []  # the next call goes through


def test_unreachable_sf_is_carrier_unavailable() -> None:
    dead = SFExpress(
        {"partner_id": "p", "check_word": "x", "url": "http://127.0.0.1:9/std/service"}
    )
    with pytest.raises(CarrierUnavailable):
        dead.query_tracking("SF1")


def test_too_many_numbers_in_one_route_query(sf: SFExpress) -> None:
    with pytest.raises(ValueError, match="tracking_numbers"):
        sf.query_routes([f"SF{i}" for i in range(11)])


# -- routes ------------------------------------------------------------------------------------


def test_query_tracking_returns_the_route_scans(fake: FakeSF, sf: SFExpress) -> None:
    number = "SF4400000000999"
    fake.add_route(number, "50", "2026-11-24 17:00:00", "深圳市", "顺丰速运 已收取快件")
    fake.add_route(number, "31", "2026-11-25 03:10:00", "北京市", "快件到达 【北京顺义集散中心】")
    fake.add_route(number, "80", "2026-11-25 11:30:00", "北京市", "已签收,感谢使用顺丰")
    events = sf.query_tracking(number)
    assert [e.status for e in events] == ["50", "31", "80"]
    assert events[0].event_time == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert events[2].location == "北京市" and events[2].description == "已签收,感谢使用顺丰"
    assert all(e.tracking_number == number and e.event_id is None for e in events)
    sent = json.loads(fake.requests[-1]["msgData"])
    assert sent["trackingType"] == 1 and sent["trackingNumber"] == [number]
    assert sf.query_routes([number, "SF0"])["SF0"] == []


def test_parse_route_push(fake: FakeSF) -> None:
    number = "SF4400000000777"
    fake.add_route(number, "50", "2026-11-24 17:00:00", "深圳市", "顺丰速运 已收取快件")
    fake.add_route(number, "44", "2026-11-25 09:00:00", "北京市", "正在派送途中")
    events = parse_route_push(fake.route_push_body(number))
    assert [(e.status, e.event_id is not None) for e in events] == [("50", True), ("44", True)]
    assert events[1].event_time == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert ROUTE_PUSH_ANSWER == {"return_code": "0000", "return_msg": "成功"}
    for bad, message in [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (b"{}", "Body is missing"),
        (b'{"Body": {"WaybillRoute": []}}', "no route"),
        (b'{"Body": {"WaybillRoute": [{"opCode": "50"}]}}', r"WaybillRoute\[0\]\.mailno"),
        (
            b'{"Body": {"WaybillRoute": [{"mailno": "SF1", "opCode": "50", '
            b'"acceptTime": "yesterday"}]}}',
            "not",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_route_push(bad)


# -- discovery ---------------------------------------------------------------------------------


def test_sf_and_kuaidi100_are_entry_points(fake: FakeSF) -> None:
    assert {"SF", "KUAIDI100"} <= set(carriers.available())
    plugin = carriers.load("SF", fake.config())
    assert isinstance(plugin, SFExpress) and plugin.code == "SF"
    from orderdb.cli import main

    listed = CliRunner().invoke(main, ["integrations", "carriers", "--json"])
    assert listed.exit_code == 0, listed.output
    codes = {row["code"]: row["factory"] for row in json.loads(listed.output)}
    assert codes["SF"] == "orderdb.integrations.carriers.sf:factory"
    assert codes["KUAIDI100"] == "orderdb.integrations.carriers.kuaidi100:factory"


# -- end to end --------------------------------------------------------------------------------


def _ship(dsn: str, carrier: str, number: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, 'SF-A', 100)", (WAREHOUSE,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(2, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "SF-A", "quantity": 1}])),
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
        conn.execute(
            "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (f"ship-{number}", order_id, Jsonb({"carrier": carrier, "tracking_number": number})),
        )
    return order_id


def test_poll_carriers_drives_an_sf_parcel_to_delivered(
    fresh_dsn: str, fake: FakeSF, sf: SFExpress, tmp_path: Path
) -> None:
    """A real database, an order shipped with SF, the fake SF, `orderdb poll-carriers --once
    --config <json>`: the route scans are recorded and the order is delivered. SF's route push
    of the same scans afterwards changes nothing (same carrier, number, time and opCode)."""
    waybill = sf.create_waybill(
        WaybillRequest(order_id=9001, warehouse_id=WAREHOUSE, recipient=RECIPIENT)
    )
    number = waybill.tracking_number
    order_id = _ship(fresh_dsn, "SF", number)
    scans = [
        ("50", -timedelta(hours=20), "深圳市", "顺丰速运 已收取快件"),
        ("30", -timedelta(hours=18), "深圳市", "快件在【深圳宝安集散中心】完成分拣"),
        ("31", -timedelta(hours=6), "北京市", "快件到达 【北京顺义集散中心】"),
        (
            "44",
            -timedelta(hours=3),
            "北京市",
            "正在派送途中,请您准备签收(派件人:王五,电话:13912345678)",
        ),
        ("80", -timedelta(hours=1), "北京市", "已签收,感谢使用顺丰,期待再次为您服务"),
    ]
    for op_code, delta, address, remark in scans:
        fake.add_route(number, op_code, _china(delta), address, remark)
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"SF": fake.config()}, ensure_ascii=False))
    from orderdb.cli import main

    result = CliRunner().invoke(
        main,
        [
            "poll-carriers",
            "--once",
            "--json",
            "--carrier",
            "SF",
            "--config",
            str(config),
            "--dsn",
            fresh_dsn,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["claimed"] == 1 and summary["polled"] == 1, summary
    assert summary["events_recorded"] == 5 and summary["carrier_errors"] == 0, summary
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        status = conn.execute(
            "SELECT status FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ).fetchone()
        assert status == ("delivered",)
        rows = conn.execute(
            "SELECT carrier_status, normalized_status, order_id FROM orderdb.tracking_events "
            "WHERE carrier = 'SF' AND tracking_number = %s ORDER BY event_time",
            (number,),
        ).fetchall()
        assert [r[0] for r in rows] == ["50", "30", "31", "44", "80"]
        assert [r[1] for r in rows] == [
            "in_transit",
            "in_transit",
            "in_transit",
            "out_for_delivery",
            "delivered",
        ]
        assert {r[2] for r in rows} == {order_id}
        # the push of the same scans (with SF's route ids) is absorbed
        for event in parse_route_push(fake.route_push_body(number)):
            row = conn.execute(
                "SELECT duplicate FROM orderdb.record_tracking_event("
                "%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    "SF",
                    event.tracking_number,
                    event.event_time,
                    event.status,
                    event.location,
                    event.description,
                    event.event_id,
                    Jsonb(dict(event.payload or {})),
                ),
            ).fetchone()
            assert row == (True,)
        count = conn.execute(
            "SELECT count(*) FROM orderdb.tracking_events WHERE tracking_number = %s", (number,)
        ).fetchone()
        assert count == (5,)


def test_poll_carriers_backs_sf_off_when_it_is_down(
    fresh_dsn: str, fake: FakeSF, tmp_path: Path
) -> None:
    number = "SF4400000000555"
    _ship(fresh_dsn, "SF", number)
    fake.fail_next("http503")
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"SF": fake.config()}))
    from orderdb.cli import main

    result = CliRunner().invoke(
        main,
        [
            "poll-carriers",
            "--once",
            "--json",
            "--carrier",
            "SF",
            "--config",
            str(config),
            "--dsn",
            fresh_dsn,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["carrier_errors"] == 1 and summary["events_recorded"] == 0
    assert "CarrierUnavailable" in summary["last_error_by_carrier"]["SF"]


def test_the_documented_configuration_loads() -> None:
    """docs/carriers.md's configuration example, word for word."""
    config = docs_config()
    sf = carriers.load("SF", config["SF"])
    assert isinstance(sf, SFExpress) and sf.url == "https://sfapi-sbox.sf-express.com/std/service"
    assert sf.sender is not None and sf.sender.city == "Shenzhen"
    assert carriers.load("KUAIDI100", config["KUAIDI100"]).code == "KUAIDI100"


def test_without_a_section_the_plugins_say_they_are_not_configured(
    fresh_dsn: str, tmp_path: Path
) -> None:
    """Installations that do not use SF or Kuaidi100 poll as before (no traceback for plugins
    they never configured); a shipment of an unconfigured carrier fails with a clear message."""
    for code in ("SF", "KUAIDI100"):
        plugin = carriers.load(code, {})
        with pytest.raises(CarrierRejected, match=f'add a "{code}" section'):
            plugin.query_tracking("X1")
    _ship(fresh_dsn, "SF", "SF4400000000333")
    config = tmp_path / "carriers.json"
    config.write_text(json.dumps({"SIM": {"seed": 1}}))
    from orderdb.cli import main

    result = CliRunner().invoke(
        main, ["poll-carriers", "--once", "--json", "--config", str(config), "--dsn", fresh_dsn]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "failed to load" not in result.output
    summary = json.loads(result.stdout)
    assert "SF is not configured" in summary["last_error_by_carrier"]["SF"]


def test_wms_dispatch_cancels_an_sf_waybill_booked_by_another_dispatcher(
    db_dsn: str, fake: FakeSF
) -> None:
    """SF cancels by the order id of the booking, which the waybill number does not give. The
    waybill is booked by one dispatcher and its order cancelled meanwhile; the cancel_waybill is
    sent by another dispatcher (another thread's or process's plugin instance): SF still gets
    the booking's orderId, and the parcel is cancelled."""
    from orderdb.integrations.wms.dispatch import Dispatcher

    warehouse = 3861
    sender = {
        "name": "orderdb 仓库",
        "phone": "0755-1234567",
        "line1": "科苑路 1 号",
        "city": "深圳市",
        "postal_code": "518000",
    }
    ship_to = {"name": "李雷", "phone": "13800138000", "line1": "建国路 88 号", "city": "北京市"}
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, 'SF-W', 10)", (warehouse,))
        conn.execute(
            "SELECT FROM orderdb.set_warehouse_wms(%s, 'none', NULL, NULL, 'SF')", (warehouse,)
        )
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(2, %s, %s, NULL, NULL, %s)",
            (warehouse, Jsonb([{"sku": "SF-W", "quantity": 1}]), Jsonb({"ship_to": ship_to})),
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT orderdb.wms_callback(%s, %s, 'PACKED')", (f"sfw-{order_id}", order_id))

    class CancelledWhileBooking(SFExpress):
        def create_waybill(self, request: WaybillRequest) -> Any:
            waybill = super().create_waybill(request)
            with psycopg.connect(db_dsn, autocommit=True) as other:
                version = other.execute(
                    "SELECT version FROM orderdb.orders WHERE order_id = %s", (order_id,)
                ).fetchone()
                assert version is not None
                other.execute(
                    "SELECT orderdb.transition_order(%s, 'cancelled', %s)", (order_id, version[0])
                )
            return waybill

    with Dispatcher(
        db_dsn,
        worker="booking",
        carrier_factory=lambda _code, _config: CancelledWhileBooking(fake.config(sender=sender)),
    ) as booking:
        booking.run_once()
    ((number, status),) = (
        psycopg.connect(db_dsn, autocommit=True)
        .execute(
            "SELECT tracking_number, status FROM orderdb.wms_commands"
            " WHERE order_id = %s AND kind = 'waybill'",
            (order_id,),
        )
        .fetchall()
    )
    assert status == "done" and number
    with Dispatcher(
        db_dsn,
        worker="cancelling",
        carrier_factory=lambda _code, _config: SFExpress(fake.config(sender=sender)),
    ) as cancelling:
        report = cancelling.run_once()
    assert report.done == 1, report
    assert [o.cancelled for o in fake.orders.values() if o.waybill == number] == [True]
