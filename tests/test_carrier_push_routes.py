"""The carriers' own push formats on ``orderdb ingest serve`` (orderdb/integrations/http.py):
SF's route push (``POST /hooks/sf/route-push/<token>``) and Kuaidi100's subscription callback
(``POST /hooks/kuaidi100/callback``), over real HTTP (uvicorn in a thread, and the documented
``orderdb ingest serve`` as a process) and a real database: pushes of a shipped order deliver it,
a replay is a duplicate, a wrong token or sign is refused with the carrier's failure answer and
records nothing, hostile bodies get 4xx and change nothing, one bad scan does not lose the
others, the rate limit answers 429, and the documented configuration works word for word."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import uvicorn
from psycopg.types.json import Jsonb

from orderdb.integrations.carriers.kuaidi100 import CALLBACK_ANSWER, Kuaidi100, callback_sign
from orderdb.integrations.carriers.sf import ROUTE_PUSH_ANSWER
from orderdb.integrations.http import HIDE_PUSH_TOKENS, IngestApp

from .carrier_fakes import FakeKuaidi100, kuaidi100_md5

WAREHOUSE = 3915
CHINA = ZoneInfo("Asia/Shanghai")
SF_TOKEN = "sf-push-token-0123456789abcdefghij"
SALT = "a-salt-of-32-characters-for-test"  # the fake's default salt
SF_OK = {"return_code": "0000", "return_msg": "成功"}
K100_OK = {"result": True, "returnCode": "200", "message": "成功"}
JSON_TYPE = {"content-type": "application/json;charset=UTF-8"}
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "carriers.md"


# -- servers and data ---------------------------------------------------------------------------


@contextmanager
def _serving(dsn: str, **options: Any) -> Iterator[str]:
    """IngestApp under uvicorn in a thread on a free port; yields its base URL."""
    app = IngestApp(dsn, pool_size=4, status_pool_size=1, **options).app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="module")
def ingest(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.set_integration('SF', 'carrier', %s, 1000, 1000)", (SF_TOKEN,))
        conn.execute(
            "SELECT orderdb.set_integration('KUAIDI100', 'carrier', %s, 1000, 1000)", (SALT,)
        )
        conn.execute("SELECT orderdb.receive_stock(%s, 'PUSH-A', 100000)", (WAREHOUSE,))
    # integrations reloaded every second: the rate test changes SF's bucket
    with _serving(db_dsn, refresh_seconds=1.0) as url:
        yield url


def _ship(dsn: str, carrier: str, number: str) -> int:
    """An order shipped with ``carrier`` under tracking number ``number``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(%s, 'PUSH-A', 10)", (WAREHOUSE,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(2, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "PUSH-A", "quantity": 1}])),
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


def _china(hours_ago: float) -> str:
    return (datetime.now(CHINA) - timedelta(hours=hours_ago)).strftime("%Y-%m-%d %H:%M:%S")


def _route(number: str, route_id: str, op_code: str, hours_ago: float, **extra: Any) -> dict:
    """One WaybillRoute as SF pushes it."""
    return {
        "id": route_id,
        "mailno": number,
        "orderid": f"orderdb-{number}",
        "acceptTime": _china(hours_ago),
        "acceptAddress": "深圳市",
        "remark": "顺丰速运 已收取快件",
        "opCode": op_code,
        "reasonCode": "",
        "reasonName": "",
        **extra,
    }


def _sf_body(*routes: dict) -> bytes:
    return json.dumps({"Body": {"WaybillRoute": list(routes)}}, ensure_ascii=False).encode()


def _sf_push(
    client: httpx.Client, body: bytes, token: str = SF_TOKEN, headers: dict | None = None
) -> httpx.Response:
    return client.post(f"/hooks/sf/route-push/{token}", content=body, headers=headers or JSON_TYPE)


def _k100_param(number: str, *rows: dict, status: str = "polling", state: str = "0") -> str:
    """A callback's ``param`` as Kuaidi100 posts it (rows newest first)."""
    return json.dumps(
        {
            "status": status,
            "billstatus": "",
            "message": "",
            "autoCheck": "0",
            "comOld": "",
            "comNew": "",
            "lastResult": {
                "message": "ok",
                "nu": number,
                "ischeck": "1" if state.startswith("3") else "0",
                "com": "zhongtong",
                "status": "200",
                "state": state,
                "data": list(rows),
            },
        },
        ensure_ascii=False,
    )


def _k100_row(code: str, hours_ago: float, context: str, area: str = "北京市") -> dict:
    when = _china(hours_ago)
    return {"time": when, "ftime": when, "context": context, "areaName": area, "statusCode": code}


def _k100_post(client: httpx.Client, param: str, sign: str | None = None) -> httpx.Response:
    form = {"param": param, "sign": kuaidi100_md5(param + SALT) if sign is None else sign}
    return client.post(
        "/hooks/kuaidi100/callback", content=urllib.parse.urlencode(form), headers=FORM_TYPE
    )


def _events(dsn: str, number: str | None = None) -> int:
    with psycopg.connect(dsn) as conn:
        if number is None:
            row = conn.execute("SELECT count(*) FROM orderdb.tracking_events").fetchone()
        else:
            row = conn.execute(
                "SELECT count(*) FROM orderdb.tracking_events WHERE tracking_number = %s",
                (number,),
            ).fetchone()
    assert row is not None
    return int(row[0])


def _order(dsn: str, order_id: int) -> tuple[str, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status::text, version FROM orderdb.orders WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


# -- SF route push ------------------------------------------------------------------------------


def test_sf_route_push_delivers_the_order_and_a_replay_is_a_duplicate(
    ingest: str, db_dsn: str
) -> None:
    number = "SF7100000000001"
    order_id = _ship(db_dsn, "SF", number)
    body = _sf_body(
        _route(number, "7100001", "50", 5),
        _route(number, "7100002", "80", 1, acceptAddress="北京市", remark="已签收,感谢使用顺丰"),
    )
    with httpx.Client(base_url=ingest) as client:
        r = _sf_push(client, body)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == SF_OK == ROUTE_PUSH_ANSWER  # exactly SF's success answer
        delivered = _order(db_dsn, order_id)
        assert delivered[0] == "delivered"
        again = _sf_push(client, body)
        assert again.status_code == 200 and again.json() == SF_OK
    assert _order(db_dsn, order_id) == delivered  # the replay changed nothing
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT event_id, carrier_status, normalized_status, location, description "
            "FROM orderdb.tracking_events WHERE carrier = 'SF' AND tracking_number = %s "
            "ORDER BY event_time",
            (number,),
        ).fetchall()
    assert rows == [
        ("7100001", "50", "in_transit", "深圳市", "顺丰速运 已收取快件"),
        ("7100002", "80", "delivered", "北京市", "已签收,感谢使用顺丰"),
    ]


def test_the_same_push_from_many_senders_at_once_is_recorded_once(ingest: str, db_dsn: str) -> None:
    """SF and Kuaidi100 retry and overlap: 12 connections post the same push at the same time
    (the push pool has 2 connections); every one is answered success, each scan is stored once
    and the order moves once."""
    number = "SF7100000000005"
    order_id = _ship(db_dsn, "SF", number)
    body = _sf_body(_route(number, "7600001", "50", 3), _route(number, "7600002", "80", 1))
    start = threading.Barrier(12)
    answers: list[httpx.Response] = []

    def sender() -> None:
        with httpx.Client(base_url=ingest, timeout=30) as client:
            start.wait()
            answers.append(_sf_push(client, body))

    threads = [threading.Thread(target=sender) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 12
    assert all(a.json() == SF_OK for a in answers)
    assert _events(db_dsn, number) == 2
    with psycopg.connect(db_dsn) as conn:
        moves = conn.execute(
            "SELECT array_agg(to_status ORDER BY version) FROM orderdb.order_status_history "
            "WHERE order_id = %s AND version > 3",
            (order_id,),
        ).fetchone()
    assert moves is not None and moves[0][-1] == "delivered"
    assert moves[0].count("delivered") == 1


def test_sf_wrong_or_missing_token_is_refused_with_sfs_failure_answer(
    ingest: str, db_dsn: str
) -> None:
    number = "SF7100000000002"
    body = _sf_body(_route(number, "7200001", "50", 1))
    with httpx.Client(base_url=ingest) as client:
        for token in ("guessed-token-0123456789abcdefghij", SF_TOKEN[:-1], SF_TOKEN + "x", "%00"):
            r = _sf_push(client, body, token=token)
            assert r.status_code == 401, (token, r.text)
            assert r.json()["return_code"] == "1000" and "token" in r.json()["return_msg"]
            assert SF_TOKEN not in r.text
        for path in ("/hooks/sf/route-push", "/hooks/sf/route-push/"):  # no such route
            assert client.post(path, content=body, headers=JSON_TYPE).status_code == 404
        # orderdb's own signed format does not open the push route either
        r = client.post(
            "/hooks/sf/route-push/x",
            content=body,
            headers={**JSON_TYPE, "X-OrderDB-Signature": "sha256=" + "0" * 64},
        )
        assert r.status_code == 401
    assert _events(db_dsn, number) == 0


def test_one_bad_route_does_not_lose_the_others(ingest: str, db_dsn: str) -> None:
    """A route the parser refuses (a time SF never sends) and routes the database refuses (an
    opCode over 255 characters; a route id SF already used for another parcel, OD006) are
    logged and left out; the others are recorded."""
    number = "SF7100000000003"
    order_id = _ship(db_dsn, "SF", number)
    with httpx.Client(base_url=ingest) as client:
        other = _sf_push(client, _sf_body(_route("SF7100000000013", "7300005", "50", 4)))
        assert other.json() == SF_OK
        body = _sf_body(
            _route(number, "7300001", "50", 3),
            _route(number, "7300002", "44", 2, acceptTime="yesterday"),
            _route(number, "7300003", "9" * 300, 2),
            _route(number, "7300005", "30", 2),  # the other parcel's route id
            _route(number, "7300004", "80", 1),
        )
        r = _sf_push(client, body)
    assert r.status_code == 200 and r.json() == SF_OK
    with psycopg.connect(db_dsn) as conn:
        ids = conn.execute(
            "SELECT array_agg(event_id ORDER BY event_id) FROM orderdb.tracking_events "
            "WHERE tracking_number = %s",
            (number,),
        ).fetchone()
    assert ids == (["7300001", "7300004"],)
    assert _order(db_dsn, order_id)[0] == "delivered"


def test_texts_are_data_not_markup(ingest: str, db_dsn: str) -> None:
    """``[/x]`` (Rich's closing tag), quotes and backslashes in a push are stored as sent."""
    number = "SF7100000000004"
    route = _route(number, "7400001", "50", 1, acceptAddress="[/x]", remark='[bold]"a\\b" <i>')
    with httpx.Client(base_url=ingest) as client:
        assert _sf_push(client, _sf_body(route)).json() == SF_OK
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT location, description FROM orderdb.tracking_events WHERE event_id = '7400001'"
        ).fetchone()
    assert row == ("[/x]", '[bold]"a\\b" <i>')


def _deep(levels: int) -> bytes:
    return (
        b'{"Body": {"WaybillRoute": [{"mailno": "SF1", "x": '
        + b"[" * levels
        + b"]" * levels
        + b"}]}}"
    )


SF_HOSTILE: list[tuple[str, bytes, dict[str, str], int]] = [
    ("not JSON", b"{not json", JSON_TYPE, 400),
    ("empty body", b"", JSON_TYPE, 400),
    ("a JSON array", b"[]", JSON_TYPE, 400),
    ("NaN", b'{"Body": {"WaybillRoute": [{"x": NaN}]}}', JSON_TYPE, 400),
    ("not UTF-8", b'{"Body": "\xff\xfe"}', JSON_TYPE, 400),
    ("no Body", b'{"orderId": "x"}', JSON_TYPE, 422),
    ("no route", b'{"Body": {"WaybillRoute": []}}', JSON_TYPE, 422),
    ("too deep", _deep(40), JSON_TYPE, 422),
    ("20000 brackets", b"[" * 20000 + b"]" * 20000, JSON_TYPE, 422),
    (
        "NUL in a remark",
        _sf_body(_route("SF71H", "7500001", "50", 1, remark="a\x00b")),
        JSON_TYPE,
        422,
    ),
    ("ESC in a number", _sf_body(_route("SF71\x1b[2J", "7500002", "50", 1)), JSON_TYPE, 422),
    ("C1 control", _sf_body(_route("SF71H", "7500003", "50", 1, remark="a\x85b")), JSON_TYPE, 422),
    (
        "lone surrogate",
        b'{"Body": {"WaybillRoute": [{"mailno": "SF71H", "remark": "\\ud800"}]}}',
        JSON_TYPE,
        422,
    ),
    (
        "control character in a key",
        b'{"Body": {"WaybillRoute": [{"mailno": "SF71H", "a\\u0007": 1}]}}',
        JSON_TYPE,
        422,
    ),
    (
        "every route refused",
        _sf_body(_route("SF71H", "7500004", "50", 1, acceptTime="yesterday")),
        JSON_TYPE,
        422,
    ),
    (
        "text/plain",
        _sf_body(_route("SF71H", "7500005", "50", 1)),
        {"content-type": "text/plain"},
        415,
    ),
    ("no content type", _sf_body(_route("SF71H", "7500006", "50", 1)), {}, 415),
    (
        "SF's form method (XML)",
        b"content=%3CRequest%3E",
        FORM_TYPE,
        415,
    ),
    (
        "another charset",
        _sf_body(_route("SF71H", "7500007", "50", 1)),
        {"content-type": "application/json; charset=gbk"},
        415,
    ),
    ("over 64 kB", b'{"Body": "' + b"x" * 70000 + b'"}', JSON_TYPE, 413),
]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [case[1:] for case in SF_HOSTILE],
    ids=[case[0] for case in SF_HOSTILE],
)
def test_hostile_sf_pushes_get_4xx_and_change_nothing(
    ingest: str, db_dsn: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    before = _events(db_dsn)
    with httpx.Client(base_url=ingest) as client:
        r = client.post(f"/hooks/sf/route-push/{SF_TOKEN}", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["return_code"] == "1000" and r.json()["return_msg"]
    assert _events(db_dsn) == before


def test_a_chunked_body_over_the_limit_is_refused(ingest: str, db_dsn: str) -> None:
    before = _events(db_dsn)

    def chunks() -> Iterator[bytes]:
        yield b'{"Body": "'
        for _ in range(40):
            yield b"x" * 4096
        yield b'"}'

    with httpx.Client(base_url=ingest) as client:
        r = client.post(f"/hooks/sf/route-push/{SF_TOKEN}", content=chunks(), headers=JSON_TYPE)
    assert r.status_code == 413 and r.json()["return_code"] == "1000"
    assert _events(db_dsn) == before


def _raw_request(base_url: str, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Sends ``head`` and ``body`` on a raw socket and returns what the server answers within
    ``wait`` seconds (it may answer before the body is complete)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head + body)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            pass
    return answer


def test_a_wrong_token_is_refused_before_the_body_is_read(ingest: str) -> None:
    """A 10 MB body announced with a wrong token: 401 at once, the body never read."""
    head = (
        b"POST /hooks/sf/route-push/not-the-token-0123456789abcdef HTTP/1.1\r\n"
        b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_request(ingest, head, b'{"Body":')
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"return_code":"1000"' in answer and b"connection: close" in answer.lower()
    assert time.monotonic() - started < 3


def test_a_stalled_body_is_refused_after_the_read_timeout(db_dsn: str, ingest: str) -> None:
    """A body that stops arriving: 408 in the carrier's format after ``read_timeout``."""
    with _serving(db_dsn, read_timeout=0.5) as url:
        for path, media, failure in (
            (f"/hooks/sf/route-push/{SF_TOKEN}", b"application/json", b'"return_code":"1000"'),
            ("/hooks/kuaidi100/callback", b"application/x-www-form-urlencoded", b'"result":false'),
        ):
            head = (
                b"POST "
                + path.encode()
                + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                + media
                + b"\r\nContent-Length: 1000\r\n\r\n"
            )
            answer = _raw_request(url, head, b"param=", wait=5.0)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert failure in answer


# -- Kuaidi100 callback -------------------------------------------------------------------------


def test_kuaidi100_callback_from_a_subscription_delivers_the_order(
    ingest: str, db_dsn: str
) -> None:
    """The plugin subscribes with the server's callback URL; the fake Kuaidi100 posts its signed
    callback there, as Kuaidi100 does: the order is delivered, the same callback again is a
    duplicate."""
    number = "75100000000001"
    order_id = _ship(db_dsn, "KUAIDI100", number)
    fake = FakeKuaidi100(salt=SALT)
    with fake.running():
        plugin = Kuaidi100(
            fake.config(company="zhongtong", callback_url=f"{ingest}/hooks/kuaidi100/callback")
        )
        try:
            assert plugin.subscribe(number) is True
        finally:
            plugin.close()
        fake.add_scan(
            number, "zhongtong", "103", "揽收", _china(20), "【深圳市】 已揽收", "广东,深圳市"
        )
        fake.add_scan(number, "zhongtong", "5", "派件", _china(3), "【北京市】 派件中", "北京市")
        fake.add_scan(
            number, "zhongtong", "301", "签收", _china(1), "【北京市】 本人签收", "北京市"
        )
        r = fake.push(number)
        assert r.status_code == 200, r.text
        assert r.json() == K100_OK == CALLBACK_ANSWER
        delivered = _order(db_dsn, order_id)
        assert delivered[0] == "delivered"
        again = fake.push(number)
        assert again.status_code == 200 and again.json() == K100_OK
    assert _order(db_dsn, order_id) == delivered
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT carrier, carrier_status, normalized_status FROM orderdb.tracking_events "
            "WHERE tracking_number = %s ORDER BY event_time",
            (number,),
        ).fetchall()
    assert rows == [
        ("KUAIDI100", "103", "in_transit"),
        ("KUAIDI100", "5", "out_for_delivery"),
        ("KUAIDI100", "301", "delivered"),
    ]


def test_kuaidi100_bad_sign_is_refused_and_records_nothing(ingest: str, db_dsn: str) -> None:
    number = "75100000000002"
    param = _k100_param(number, _k100_row("0", 1, "在途"))
    refused = {"result": False, "returnCode": "500"}
    with httpx.Client(base_url=ingest) as client:
        for sign in (
            callback_sign(param, "guessed-salt-0123456789abcdefgh"),
            callback_sign(param + " ", SALT),  # the sign of another param
            "",
            "x" * 5000,
        ):
            r = _k100_post(client, param, sign)
            assert r.status_code == 401, r.text
            assert {k: r.json()[k] for k in refused} == refused and "sign" in r.json()["message"]
        no_sign = client.post(
            "/hooks/kuaidi100/callback",
            content=urllib.parse.urlencode({"param": param}),
            headers=FORM_TYPE,
        )
        assert no_sign.status_code == 401 and no_sign.json()["result"] is False
        # the sign in lower case is the same sign
        lower = _k100_post(client, param, kuaidi100_md5(param + SALT).lower())
        assert lower.status_code == 200 and lower.json() == K100_OK
    assert _events(db_dsn, number) == 1


def test_kuaidi100_one_bad_scan_does_not_lose_the_others(ingest: str, db_dsn: str) -> None:
    number = "75100000000003"
    param = _k100_param(
        number,
        _k100_row("0", 1, "【北京市】 到达"),
        {"time": "soon", "ftime": "soon", "context": "?", "statusCode": "0"},
        _k100_row("1", 5, "【深圳市】 已揽收"),
    )
    with httpx.Client(base_url=ingest) as client:
        r = _k100_post(client, param)
    assert r.status_code == 200 and r.json() == K100_OK
    assert _events(db_dsn, number) == 2


def test_kuaidi100_abort_without_scans_is_acknowledged(
    ingest: str, db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    number = "75100000000004"
    param = _k100_param(number, status="abort")
    with (
        caplog.at_level(logging.WARNING, logger="orderdb.integrations.http"),
        httpx.Client(base_url=ingest) as client,
    ):
        r = _k100_post(client, param)
    assert r.status_code == 200 and r.json() == K100_OK
    assert _events(db_dsn, number) == 0
    assert any("abort" in rec.getMessage() and number in rec.getMessage() for rec in caplog.records)


def _form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def _signed(param: str) -> bytes:
    return _form(param=param, sign=kuaidi100_md5(param + SALT))


K100_HOSTILE: list[tuple[str, bytes, dict[str, str], int]] = [
    ("JSON instead of a form", b'{"param": "{}"}', JSON_TYPE, 415),
    ("no content type", _signed(_k100_param("K1")), {}, 415),
    ("not UTF-8", b"param=\xff&sign=x", FORM_TYPE, 400),
    ("a bad escape", b"param=%ff%fe&sign=x", FORM_TYPE, 400),
    ("no param", _form(sign="x"), FORM_TYPE, 400),
    ("param twice", b"param=a&param=b&sign=x", FORM_TYPE, 400),
    ("too many fields", b"&".join(b"f%d=1" % i for i in range(40)), FORM_TYPE, 400),
    ("param not JSON", _signed("{not json"), FORM_TYPE, 400),
    ("param a JSON array", _signed("[]"), FORM_TYPE, 400),
    ("no lastResult", _signed('{"status": "polling"}'), FORM_TYPE, 422),
    ("data not a list", _signed('{"lastResult": {"nu": "K1", "data": {}}}'), FORM_TYPE, 422),
    ("no number", _signed('{"lastResult": {"data": []}}'), FORM_TYPE, 422),
    (
        "NUL in a context",
        _signed(_k100_param("K1", _k100_row("0", 1, "a\x00b"))),
        FORM_TYPE,
        422,
    ),
    (
        "ESC in a context",
        _signed(_k100_param("K1", _k100_row("0", 1, "\x1b]0;owned\x07"))),
        FORM_TYPE,
        422,
    ),
    (
        "lone surrogate",
        _signed('{"lastResult": {"nu": "K1", "data": [{"context": "\\udc00"}]}}'),
        FORM_TYPE,
        422,
    ),
    (
        "too deep",
        _signed('{"lastResult": {"nu": "K1", "x": ' + "[" * 40 + "]" * 40 + "}}"),
        FORM_TYPE,
        422,
    ),
    (
        "every scan refused",
        _signed(_k100_param("K1", {"ftime": "tomorrow", "context": "x", "statusCode": "0"})),
        FORM_TYPE,
        422,
    ),
    ("over 64 kB", _form(param="x" * 70000, sign="x"), FORM_TYPE, 413),
]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [case[1:] for case in K100_HOSTILE],
    ids=[case[0] for case in K100_HOSTILE],
)
def test_hostile_kuaidi100_callbacks_get_4xx_and_change_nothing(
    ingest: str, db_dsn: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    before = _events(db_dsn)
    with httpx.Client(base_url=ingest) as client:
        r = client.post("/hooks/kuaidi100/callback", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["result"] is False and r.json()["returnCode"] == "500"
    assert _events(db_dsn) == before


# -- both ---------------------------------------------------------------------------------------


def test_a_disabled_integration_is_refused(ingest: str, db_dsn: str) -> None:
    number = "75100000000005"
    param = _k100_param(number, _k100_row("0", 1, "在途"))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE orderdb.integrations SET enabled = false WHERE name = 'KUAIDI100'")
    try:
        time.sleep(1.2)  # the server reloads the integrations every second
        with httpx.Client(base_url=ingest) as client:
            r = _k100_post(client, param)
        assert r.status_code == 404 and r.json()["result"] is False
        assert "KUAIDI100" in r.json()["message"]
    finally:
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute("UPDATE orderdb.integrations SET enabled = true WHERE name = 'KUAIDI100'")
        time.sleep(1.2)
    assert _events(db_dsn, number) == 0


def test_over_the_rate_the_carrier_is_told_to_retry(ingest: str, db_dsn: str) -> None:
    """The integration's token bucket, as on the other hooks: only authenticated pushes take
    tokens; over it, 429 with Retry-After in the carrier's failure format."""
    number = "SF7100000000009"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.set_integration('SF', 'carrier', %s, 0.01, 2)", (SF_TOKEN,))
    try:
        time.sleep(1.2)
        with httpx.Client(base_url=ingest) as client:
            for _ in range(5):  # refused without the token: no tokens taken
                assert (
                    _sf_push(client, b"{}", token="wrong-token-0123456789abcdef").status_code == 401
                )
            answers = [
                _sf_push(client, _sf_body(_route(number, f"79{k}", "50", 1 + k))) for k in range(3)
            ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["return_code"] == "1000"
        assert int(answers[2].headers["retry-after"]) >= 1
    finally:
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT orderdb.set_integration('SF', 'carrier', %s, 1000, 1000)", (SF_TOKEN,)
            )
        time.sleep(1.2)
    assert _events(db_dsn, number) == 2


def test_the_access_log_does_not_show_the_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/hooks/sf/route-push/{SF_TOKEN}?x=1", "1.1", 200),
        None,
    )
    assert HIDE_PUSH_TOKENS.filter(record)
    assert SF_TOKEN not in record.getMessage()
    assert "/hooks/sf/route-push/***?x=1" in record.getMessage()


# -- docs/carriers.md, word for word ------------------------------------------------------------


def _docs_setup() -> list[str]:
    """The command lines of the sh block after the ``carriers-push-setup`` marker."""
    block = DOCS.read_text().split("<!-- carriers-push-setup -->", 1)[1]
    code = block.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return [line for line in code.splitlines() if line.strip() and not line.startswith("#")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_documented_configuration_works_word_for_word(fresh_dsn: str, tmp_path: Path) -> None:
    """Runs docs/carriers.md's setup as written (the integrations, the salt file, ``orderdb
    ingest serve`` on a free port instead of 8089), then posts SF's push to the documented URL
    with the printed secret and Kuaidi100's callback signed with the salt file: both orders are
    delivered; the server's access log never shows the token."""
    env = {
        **os.environ,
        "ORDERDB_DSN": fresh_dsn,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    lines = _docs_setup()
    serve = [line for line in lines if line.startswith("orderdb ingest serve")]
    assert len(serve) == 1 and "--port 8089" in serve[0]
    printed = ""
    for line in lines:
        if line in serve:
            continue
        done = subprocess.run(  # noqa: S602 - the documented command line, as a reader runs it
            line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        printed += done.stdout
    token = re.search(r"secret \(shown once\): (\S+)", printed)
    assert token is not None, printed
    salt = (tmp_path / "kuaidi100.salt").read_text().strip()
    assert 16 <= len(salt) <= 32

    sf_number, k100_number = "SF7199999999999", "75199999999999"
    sf_order, k100_order = (
        _ship(fresh_dsn, "SF", sf_number),
        _ship(fresh_dsn, "KUAIDI100", k100_number),
    )
    port = _free_port()
    argv = shlex.split(serve[0].replace("--port 8089", f"--port {port}"))
    argv[0] = str(Path(sys.executable).parent / argv[0])  # the installed orderdb
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "orderdb ingest serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=10) as client:
            pushed = _sf_push(
                client,
                _sf_body(
                    _route(sf_number, "7900001", "50", 4), _route(sf_number, "7900002", "80", 1)
                ),
                token=token.group(1),
            )
            assert pushed.status_code == 200 and pushed.json() == SF_OK
            param = _k100_param(k100_number, _k100_row("3", 1, "已签收"), state="3")
            form = {"param": param, "sign": kuaidi100_md5(param + salt)}
            called = client.post(
                "/hooks/kuaidi100/callback", content=urllib.parse.urlencode(form), headers=FORM_TYPE
            )
            assert called.status_code == 200 and called.json() == K100_OK
    finally:
        proc.terminate()
        try:
            log, _err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _err = proc.communicate()
    assert _order(fresh_dsn, sf_order)[0] == "delivered"
    assert _order(fresh_dsn, k100_order)[0] == "delivered"
    assert "/hooks/sf/route-push/***" in log, log
    assert token.group(1) not in log
