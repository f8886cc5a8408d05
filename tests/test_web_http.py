"""The web pages over HTTP: the 404 rule byte for byte, the JSON twins, live updates (SSE), the
board's filters, the CLI and start_in_thread. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from orderdb.cli import main
from orderdb.web import WebServer, i18n, start_in_thread, stop_all, tracking_url
from tests.test_web_support import (
    COURIER_CUSTOMER,
    COURIER_PHONE,
    RECIPIENT_PHONE,
    Shop,
    record_carrier_event,
    seed_courier_order,
    seed_shop,
    timeline,
)


@pytest.fixture(scope="module")
def shop(db_dsn: str) -> Shop:
    return seed_shop(db_dsn)


@pytest.fixture(scope="module")
def web(db_dsn: str, shop: Shop) -> Iterator[str]:
    with WebServer(db_dsn, port=0, poll_interval=0.2, board_ttl=0.0) as server:
        yield server.url


@pytest.fixture(scope="module")
def http(web: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web, timeout=10.0) as client:
        yield client


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")


def test_another_customers_order_answers_exactly_like_an_unknown_one(
    http: httpx.Client, shop: Shop
) -> None:
    unknown = "ORD2099010199999999"
    for prefix in ("/track/", "/api/track/"):
        for suffix in ("", "/events") if prefix == "/api/track/" else ("",):
            reference = http.get(f"{prefix}{unknown}{suffix}", params={"customer": 7})
            assert reference.status_code == 404
            variants = {
                "foreign order (customer 8's, asked by 7)": (shop.foreign_no, "7"),
                "foreign order (7's, asked by 8)": (shop.tracked_no, "8"),
                "unknown number, other customer": ("ORD2099010100000001", "8"),
                "no such customer": (shop.tracked_no, "999999"),
                "customer not a number": (shop.tracked_no, "abc"),
                "customer negative": (shop.tracked_no, "-7"),
                "customer zero": (shop.tracked_no, "0"),
                "order number too long": ("X" * 300, "7"),
            }
            for what, (order_no, customer) in variants.items():
                got = http.get(f"{prefix}{order_no}{suffix}", params={"customer": customer})
                assert got.status_code == 404, (prefix, suffix, what)
                assert got.content == reference.content, (prefix, suffix, what)
                assert _headers(got) == _headers(reference), (prefix, suffix, what)
            missing = http.get(f"{prefix}{shop.tracked_no}{suffix}")
            assert (missing.status_code, missing.content) == (404, reference.content)
    # the HTML 404 names no order number (the bodies of different numbers are compared above)
    page = http.get(f"/track/{shop.foreign_no}", params={"customer": 7})
    assert shop.foreign_no.encode() not in page.content
    assert b"Order not found" in page.content


def test_the_json_twin_is_the_sql_document(
    http: httpx.Client, shop: Shop, conn: psycopg.Connection[Any]
) -> None:
    got = http.get(f"/api/track/{shop.tracked_no}", params={"customer": 7})
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    doc = got.json()
    assert doc == json.loads(json.dumps(timeline(conn, shop.tracked_no, 7)))
    assert doc["status"] == "delivering"
    assert doc["current_location"] == "Guangzhou sorting centre"
    assert [(s["carrier"], s["tracking_number"]) for s in doc["shipments"]] == [
        ("SF", shop.tracking_number)
    ]


def test_the_html_page_shows_the_sql_document(http: httpx.Client, shop: Shop) -> None:
    page = http.get(f"/track/{shop.tracked_no}", params={"customer": 7})
    assert page.status_code == 200
    text = page.text
    for expected in (
        shop.tracked_no,
        "On its way",
        "Guangzhou sorting centre",
        shop.tracking_number,
        "Arrived at the sorting centre",
        "Order placed",
    ):
        assert expected in text
    assert text.index("Arrived at the sorting centre") < text.index("Order placed")
    # the URL carries the customer id: it is not passed on as a Referer; no framing, no sniffing
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def _sse_events(lines: Iterator[str], deadline: float) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in lines:
        if time.monotonic() > deadline:
            return
        if line == "":
            if event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        event[key] = event.get(key, "") + value.removeprefix(" ")


def test_live_updates_stream_the_changed_timeline(
    http: httpx.Client, shop: Shop, conn: psycopg.Connection[Any]
) -> None:
    url = f"/api/track/{shop.tracked_no}/events"
    with http.stream("GET", url, params={"customer": 7}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(stream.iter_lines(), time.monotonic() + 10)
        first = next(e for e in events if e.get("event") == "timeline")
        first_doc = json.loads(first["data"])["timeline"]
        assert first_doc == json.loads(json.dumps(timeline(conn, shop.tracked_no, 7)))
        started = time.monotonic()
        record_carrier_event(
            conn, shop.tracking_number, "130", "Guangzhou Tianhe outlet", "At the outlet", 3
        )
        update = next(e for e in events if e.get("event") == "timeline")
        latency = time.monotonic() - started
        data = json.loads(update["data"])
        assert data["timeline"]["current_location"] == "Guangzhou Tianhe outlet"
        assert data["timeline"]["timeline"][-1]["description"] == "At the outlet"
        assert "At the outlet" in data["html"]
        assert update["id"] != first["id"]
        assert latency < 5, latency
    # reconnecting with the last id: an unchanged document is not sent again
    seen: list[str] = []
    with (
        pytest.raises(httpx.ReadTimeout),
        http.stream(
            "GET",
            url,
            params={"customer": 7},
            headers={"Last-Event-ID": update["id"]},
            timeout=httpx.Timeout(10.0, read=1.5),
        ) as again,
    ):
        for line in again.iter_lines():
            seen.append(line)
    assert [line for line in seen if line] == ["retry: 2000"], seen


def test_the_board_reads_the_ops_views_with_filters(http: httpx.Client, shop: Shop) -> None:
    everything = http.get("/api/ops").json()
    assert everything["snapshot_error"] is None
    lanes = {lane["status"]: lane for lane in everything["snapshot"]["lanes"]}
    assert {"pending", "delivering"} <= set(lanes)
    pending = {o["order_no"]: o for o in lanes["pending"]["top"]}
    assert pending[shop.unpaid_critical_no]["sla_state"] == "red"
    assert pending[shop.unpaid_warning_no]["sla_state"] == "yellow"
    assert pending[shop.foreign_no]["sla_state"] == "green"
    assert lanes["pending"]["critical"] >= 1 and lanes["pending"]["warning"] >= 1
    # oldest first within a lane
    created = [o["created_at"] for o in lanes["pending"]["top"]]
    assert created == sorted(created)
    tracked = lanes["delivering"]["top"][0]
    assert tracked["order_no"] == shop.tracked_no
    assert [s["status"] for s in tracked["stages"]] == [
        "pending", "confirmed", "dispatched", "picked", "packed", "shipped", "delivering",
    ]  # fmt: skip
    assert tracked["stages"][-1]["end"] is None
    breaches = {(b["order_no"], b["rule"]) for b in everything["snapshot"]["breaches"]}
    assert {(shop.unpaid_warning_no, "unpaid"), (shop.unpaid_critical_no, "unpaid")} <= breaches
    assert {"metric", "value", "threshold", "level"} <= set(everything["kpis"]["rows"][0])
    assert [(r["warehouse_id"], r["sku"]) for r in everything["low_stock"]["rows"]] == [
        (2, "LOW-SKU")
    ]

    wh2 = http.get("/api/ops", params={"warehouse": 2}).json()["snapshot"]
    orders = [o["order_no"] for lane in wh2["lanes"] for o in lane["top"]]
    assert orders == [shop.other_warehouse_no]
    assert wh2["breaches"] == []

    sf = http.get("/api/ops", params={"carrier": "SF"}).json()["snapshot"]
    assert [o["order_no"] for lane in sf["lanes"] for o in lane["top"]] == [shop.tracked_no]
    none = http.get("/api/ops", params={"carrier": "ZTO"}).json()["snapshot"]
    assert none["lanes"] == []

    page = http.get("/ops", params={"warehouse": 1, "carrier": "SF"})
    assert page.status_code == 200
    assert shop.tracked_no in page.text and shop.other_warehouse_no not in page.text


def test_board_connections_are_read_only_and_run_as_orderdb_ops(db_dsn: str, shop: Shop) -> None:
    from orderdb.web.data import WebDB

    db = WebDB(db_dsn)
    db.open()
    try:
        with db.ops_pool.connection() as conn:
            row = conn.execute(
                "SELECT current_user, current_setting('default_transaction_read_only')"
            ).fetchone()
            assert row == ("orderdb_ops", "on")
            with pytest.raises(psycopg.Error) as denied:
                conn.execute("SELECT * FROM orderdb.orders LIMIT 1")
            assert denied.value.sqlstate == "42501"
        with db.track_pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("orderdb_app",)
        assert db.timeline(shop.tracked_no, 7)["order_no"] == shop.tracked_no
    finally:
        db.close()


def test_start_in_thread_serves_and_tracking_url(db_dsn: str, shop: Shop) -> None:
    url = start_in_thread(db_dsn, "127.0.0.1", 0)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/healthz", timeout=5).text == "ok"
        page = httpx.get(tracking_url(url, shop.tracked_no, 7), timeout=5)
        assert page.status_code == 200 and shop.tracking_number in page.text
        assert httpx.get(url + "/ops", timeout=10).status_code == 200
    finally:
        stop_all()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=5)


def test_the_cli_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["web", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--ops-dsn", "--dsn"):
        assert option in result.output


def test_the_relays_notify_wakes_the_stream_without_polling(
    db_dsn: str, shop: Shop, conn: psycopg.Connection[Any]
) -> None:
    """With polling every 60 s, an update still arrives at once when NOTIFY orderdb_events (what
    the relay sends after a batch) names the order."""
    with (
        WebServer(db_dsn, port=0, poll_interval=60.0, idle_poll=60.0) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as client,
    ):
        hub = server.app.state.web.hub
        assert hub.connected.wait(10)
        url = f"/api/track/{shop.tracked_no}/events"
        with client.stream("GET", url, params={"customer": 7}) as stream:
            events = _sse_events(stream.iter_lines(), time.monotonic() + 10)
            first = next(e for e in events if e.get("event") == "timeline")
            record_carrier_event(
                conn, shop.tracking_number, "36", "Dongguan depot", "Left the depot", 4
            )
            started = time.monotonic()
            payload = json.dumps(
                [{"event_id": 1, "event_type": "tracking.recorded", "order_id": shop.tracked_id}]
            )
            conn.execute("SELECT pg_notify('orderdb_events', %s)", (payload,))
            update = next(e for e in events if e.get("event") == "timeline")
            assert time.monotonic() - started < 5
            assert update["id"] != first["id"]
            assert json.loads(update["data"])["timeline"]["current_location"] == "Dongguan depot"
        assert hub.relay_heard


def test_the_board_is_shared_and_refreshed_in_the_background(db_dsn: str, shop: Shop) -> None:
    from orderdb.web.data import WebDB

    db = WebDB(db_dsn, board_ttl=0.5)
    db.open()
    try:
        first = db.board(None, None)
        assert db.board(None, None) is first  # within its ttl: the same read
        time.sleep(0.6)
        assert db.board(None, None) is first  # stale: served at once, re-read behind
        deadline = time.monotonic() + 10
        while db.board(None, None) is first:
            assert time.monotonic() < deadline, "no background refresh"
            time.sleep(0.05)
        assert db.board(2, None) is not db.board(None, None)  # one board per filter
    finally:
        db.close()


def test_orderdb_web_serves_until_sigterm(db_dsn: str, shop: Shop) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderdb", "web", "--dsn", db_dsn, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        url = match.group(0)
        assert httpx.get(url + "/healthz", timeout=5).text == "ok"
        page = httpx.get(tracking_url(url, shop.tracked_no, 7), timeout=5)
        assert page.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- languages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "accept", "chosen"),
    [
        (None, None, "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, "fr-FR, de;q=0.9, zh;q=0.5, en;q=0.4", "zh-CN"),  # q-values, not order
        (None, "en;q=0.2, zh-Hans;q=0.7", "zh-CN"),
        (None, "zh-TW;q=0, en-GB", "en"),  # q=0: not this one
        (None, "ja, fr", "en"),
        (None, "*", "en"),
        ("en", "zh-CN", "en"),  # ?lang= wins
        ("zh-cn", None, "zh-CN"),
        ("klingon", "zh-CN", "zh-CN"),  # a language not offered is ignored
        (None, "zh;q=abc, en;q=0.1", "en"),
    ],
)
def test_the_language_is_lang_then_accept_language_then_english(
    lang: str | None, accept: str | None, chosen: str
) -> None:
    assert i18n.negotiate(lang, accept) == chosen


def test_every_locale_has_every_page_string() -> None:
    for locale, table in i18n.CHROME.items():
        assert set(table) == set(i18n.CHROME["en"]), locale
        assert all(v.strip() for v in table.values()), locale


def test_the_page_json_and_stream_speak_the_chosen_language_and_hide_full_phones(
    http: httpx.Client, db_dsn: str
) -> None:
    order = seed_courier_order(db_dsn)
    params = {"customer": COURIER_CUSTOMER}
    zh = {"Accept-Language": "zh-CN,zh;q=0.9"}
    page = http.get(f"/track/{order.order_no}", params=params, headers=zh)
    assert page.status_code == 200
    assert page.headers["content-language"] == "zh-CN"
    assert "Accept-Language" in page.headers["vary"]
    assert '<html lang="zh-CN">' in page.text
    for text in ("运输中", "收件人", "王小明", "138****5678", "配送员", "李师傅", "139****4321"):
        assert text in page.text
    assert "Asia/Shanghai" in page.text

    doc = http.get(f"/api/track/{order.order_no}", params={**params, "lang": "zh-CN"}).json()
    assert doc["locale"] == "zh-CN" and doc["time_zone"] == "Asia/Shanghai"
    assert doc["recipient"] == {"name": "王小明", "phone": "138****5678", "city": "深圳市"}
    assert doc["courier"] == {"name": "李师傅", "phone": "139****4321"}

    en = http.get(f"/track/{order.order_no}", params={**params, "lang": "en"}, headers=zh)
    assert '<html lang="en">' in en.text and "Your courier" in en.text
    missing = http.get("/track/ORD2099010199999999", params=params, headers=zh)
    assert missing.status_code == 404 and "未找到订单" in missing.text

    url = f"/api/track/{order.order_no}/events"
    with http.stream("GET", url, params={**params, "lang": "zh-CN"}) as stream:
        events = _sse_events(stream.iter_lines(), time.monotonic() + 10)
        first = next(e for e in events if e.get("event") == "timeline")
    data = json.loads(first["data"])
    assert data["timeline"]["locale"] == "zh-CN" and "配送员" in data["html"]
    assert data["announce"].startswith("已更新")
    for body in (page.text, en.text, first["data"], json.dumps(doc)):
        assert RECIPIENT_PHONE not in body and COURIER_PHONE not in body
