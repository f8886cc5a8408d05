"""Signed HTTP ingestion (orderdb/integrations/http.py) over real HTTP: uvicorn in a thread on
127.0.0.1 (a free port), a real database behind it. Covers the WMS and carrier hooks, duplicates,
signatures, body validation, concurrent senders, and a burst over the rate limit while status
queries keep answering."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg.types.json import Jsonb

from orderdb.integrations.http import IngestApp, TokenBucket, sign, sign_status, verify

SECRETS = {
    "SF": "sf-secret-0123456789abcdef",
    "ZTO": "zto-secret-0123456789abcdef",
    "SLOW": "slow-secret-0123456789abcdef",
    "wms": "wms-secret-0123456789abcdef",
    "wms-east": "wms-east-secret-0123456789",
}
WAREHOUSE = 3701


@pytest.fixture(scope="module")
def base_url(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for name, kind, rate, burst in (
            ("SF", "carrier", 1000, 1000),
            ("ZTO", "carrier", 1000, 1000),
            ("SLOW", "carrier", 2, 5),
            ("wms", "wms", 1000, 1000),
            ("wms-east", "wms", 1000, 1000),
        ):
            conn.execute(
                "SELECT orderdb.set_integration(%s, %s, %s, %s, %s)",
                (name, kind, SECRETS[name], rate, burst),
            )
        conn.execute(
            "SELECT orderdb.set_integration('OFF', 'carrier', %s, 10, 10, false)",
            ("off-secret-0123456789abcdef",),
        )
        conn.execute("SELECT orderdb.receive_stock(%s, 'HT-A', 100000)", (WAREHOUSE,))
    app = IngestApp(db_dsn, pool_size=6, status_pool_size=2).app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _post(
    client: httpx.Client,
    path: str,
    body: Any,
    secret: str | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", **(headers or {})}
    if secret is not None:
        hdrs["X-OrderDB-Signature"] = sign(secret, raw)
    return client.post(path, content=raw, headers=hdrs)


def _status(client: httpx.Client, target: str) -> httpx.Response:
    """A status query signed by the ``wms`` integration (target: path and query as sent)."""
    return client.get(target, headers=sign_status(SECRETS["wms"], target))


def _now(delta_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat()


def _packed_order(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(1, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "HT-A", "quantity": 1}])),
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        for version, status in enumerate(("confirmed", "dispatched"), start=1):
            conn.execute("SELECT orderdb.transition_order(%s, %s, %s)", (order_id, status, version))
    return order_id


def test_healthz(base_url: str) -> None:
    r = httpx.get(f"{base_url}/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["database"] == "ok"


def test_wms_event_ids_are_scoped_per_integration(base_url: str, db_dsn: str) -> None:
    first, second = _packed_order(db_dsn), _packed_order(db_dsn)
    event_id = f"scope-{first}"
    east = {"X-OrderDB-Integration": "wms-east"}
    with httpx.Client(base_url=base_url) as client:
        picked = {
            "event_id": event_id,
            "order_id": first,
            "event_type": "PICKED",
            "timestamp": _now(),
        }
        assert _post(client, "/hooks/wms", picked, SECRETS["wms"]).json()["duplicate"] is False
        # the same id from another integration is another event, not a duplicate
        other = {
            "event_id": event_id,
            "order_id": second,
            "event_type": "PICKED",
            "timestamp": _now(),
        }
        r = _post(client, "/hooks/wms", other, SECRETS["wms-east"], east)
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is False and r.json()["status"] == "picked"
        # the same id from the same integration for another order: 409, nothing changes
        reused = {
            "event_id": event_id,
            "order_id": second,
            "event_type": "PACKED",
            "timestamp": _now(),
        }
        r = _post(client, "/hooks/wms", reused, SECRETS["wms"])
        assert r.status_code == 409, r.text
        assert r.json()["type"] == "/problems/conflict", r.text
        assert r.json()["sqlstate"] == "OD006" and event_id in r.json()["detail"]
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT source, order_id FROM orderdb.wms_events WHERE event_id = %s ORDER BY source",
            (event_id,),
        ).fetchall()
        status = conn.execute(
            "SELECT status FROM orderdb.orders WHERE order_id = %s", (second,)
        ).fetchone()
    assert rows == [("wms", first), ("wms-east", second)]
    assert status == ("picked",)


def test_wms_and_carrier_flow_with_duplicates(base_url: str, db_dsn: str) -> None:
    order_id = _packed_order(db_dsn)
    with httpx.Client(base_url=base_url) as client:
        picked = {
            "event_id": f"wms-{order_id}-1",
            "order_id": order_id,
            "event_type": "PICKED",
            "timestamp": _now(-60),
        }
        r = _post(client, "/hooks/wms", picked, SECRETS["wms"])
        assert r.status_code == 200, r.text
        assert r.json() == {
            "result": "accepted",
            "duplicate": False,
            "event_id": picked["event_id"],
            "order_id": order_id,
            "status": "picked",
            "version": 4,
        }
        again = _post(client, "/hooks/wms", picked, SECRETS["wms"])
        assert again.status_code == 200
        assert again.json()["duplicate"] is True and again.json()["result"] == "duplicate"
        assert again.json()["version"] == 4

        # another WMS integration, named by header, with its own secret
        shipped = {
            "event_id": f"wms-{order_id}-2",
            "order_id": order_id,
            "event_type": "SHIPPED",
            "timestamp": _now(-30),
            "payload": {"carrier": "SF", "tracking_number": f"SF37{order_id:08d}"},
        }
        wrong = _post(
            client, "/hooks/wms", shipped, SECRETS["wms"], {"X-OrderDB-Integration": "wms-east"}
        )
        assert wrong.status_code == 401
        r = _post(
            client,
            "/hooks/wms",
            shipped,
            SECRETS["wms-east"],
            {"X-OrderDB-Integration": "wms-east"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "shipped"  # walked through packed, each step in history

        scan = {
            "event_id": f"sf-{order_id}-1",
            "tracking_number": f"SF37{order_id:08d}",
            "status": "50",
            "timestamp": _now(-10),
            "location": "Shenzhen",
            "description": "picked up",
            "data": {"courier": "Li"},
        }
        r = _post(client, "/hooks/carriers/SF", scan, SECRETS["SF"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == "accepted" and body["normalized_status"] == "in_transit"
        assert body["order_id"] == order_id and body["order_status"] == "delivering"
        r2 = _post(client, "/hooks/carriers/SF", scan, SECRETS["SF"])
        assert r2.json()["duplicate"] is True
        assert r2.json()["tracking_event_id"] == body["tracking_event_id"]

        assert client.get(f"/status/SF37{order_id:08d}").status_code == 401  # unsigned
        status = _status(client, f"/status/SF37{order_id:08d}")
        assert status.status_code == 200
        assert status.json()["order_status"] == "delivering"
        assert status.json()["location"] == "Shenzhen"
        assert _status(client, f"/status/SF37{order_id:08d}?carrier=ZTO").status_code == 404
        assert _status(client, "/status/NOPE-404").status_code == 404

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        n = conn.execute(
            "SELECT count(*) FROM orderdb.tracking_events WHERE carrier = 'SF' AND event_id = %s",
            (scan["event_id"],),
        ).fetchone()
        assert n is not None and n[0] == 1
        h = conn.execute(
            "SELECT array_agg(to_status ORDER BY version) FROM orderdb.order_status_history "
            "WHERE order_id = %s",
            (order_id,),
        ).fetchone()
        assert h is not None
        assert h[0] == ["confirmed", "dispatched", "picked", "packed", "shipped", "delivering"]


def test_signatures(base_url: str) -> None:
    scan = {"event_id": "sig-1", "tracking_number": "SIGTEST1", "status": "50", "timestamp": _now()}
    raw = json.dumps(scan).encode()
    with httpx.Client(base_url=base_url) as client:
        assert _post(client, "/hooks/carriers/SF", scan, None).status_code == 401
        assert _post(client, "/hooks/carriers/SF", scan, SECRETS["ZTO"]).status_code == 401
        tampered = client.post(
            "/hooks/carriers/SF",
            content=raw + b" ",
            headers={"X-OrderDB-Signature": sign(SECRETS["SF"], raw)},
        )
        assert tampered.status_code == 401
        assert tampered.headers["content-type"] == "application/problem+json"
        assert tampered.json()["type"] == "/problems/bad-signature"
        bare_hex = sign(SECRETS["SF"], raw).removeprefix("sha256=")
        ok = client.post(
            "/hooks/carriers/SF", content=raw, headers={"X-OrderDB-Signature": bare_hex}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["order_id"] is None  # unknown tracking number: stored unmatched
        # integrations that do not exist, are disabled or of the other kind
        assert _post(client, "/hooks/carriers/NOPE", scan, SECRETS["SF"]).status_code == 404
        assert (
            _post(client, "/hooks/carriers/OFF", scan, "off-secret-0123456789abcdef").status_code
            == 404
        )
        assert _post(client, "/hooks/carriers/wms", scan, SECRETS["wms"]).status_code == 404
        assert (
            _post(
                client, "/hooks/wms", {}, SECRETS["SF"], {"X-OrderDB-Integration": "SF"}
            ).status_code
            == 404
        )
    assert verify(b"k", b"body", sign(b"k", b"body"))
    assert not verify(b"k", b"body", "sha256=00")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, None),
        (b"[1, 2]", 400, None),
        (
            {"tracking_number": "T1", "status": "50", "timestamp": "2026-01-01T00:00:00Z"},
            422,
            "event_id",
        ),
        (
            {"event_id": "b-1", "status": "50", "timestamp": "2026-01-01T00:00:00Z"},
            422,
            "tracking_number",
        ),
        (
            {"event_id": "b-2", "tracking_number": "T1", "timestamp": "2026-01-01T00:00:00Z"},
            422,
            "status",
        ),
        ({"event_id": "b-3", "tracking_number": "T1", "status": "50"}, 422, "timestamp"),
        (
            {"event_id": "b-4", "tracking_number": "T1", "status": "50", "timestamp": "yesterday"},
            422,
            "timestamp",
        ),
        (
            {
                "event_id": "b-5",
                "tracking_number": "T1",
                "status": "50",
                "timestamp": "2026-01-01T00:00:00",
            },
            422,
            "timestamp",
        ),
        (
            {
                "event_id": "",
                "tracking_number": "T1",
                "status": "50",
                "timestamp": "2026-01-01T00:00:00Z",
            },
            422,
            "event_id",
        ),
        (
            {
                "event_id": "b-6",
                "tracking_number": "T" * 256,
                "status": "50",
                "timestamp": "2026-01-01T00:00:00Z",
            },
            422,
            "tracking_number",
        ),
        (
            {
                "event_id": "b-7",
                "tracking_number": "T1",
                "status": 50,
                "timestamp": "2026-01-01T00:00:00Z",
            },
            422,
            "status",
        ),
        (
            {
                "event_id": "b-8",
                "tracking_number": "T1",
                "status": "50",
                "timestamp": "2026-01-01T00:00:00Z",
                "data": [1],
            },
            422,
            "data",
        ),
        # checked by the database: more than a day in the future
        (
            {
                "event_id": "b-9",
                "tracking_number": "T1",
                "status": "50",
                "timestamp": "2999-01-01T00:00:00Z",
            },
            422,
            "timestamp",
        ),
    ],
)
def test_bad_carrier_bodies(base_url: str, body: Any, status: int, field: str | None) -> None:
    with httpx.Client(base_url=base_url) as client:
        r = _post(client, "/hooks/carriers/ZTO", body, SECRETS["ZTO"])
    assert r.status_code == status, r.text
    if field is not None:
        assert r.json()["field"] == field, r.json()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"order_id": 1, "event_type": "PICKED", "timestamp": "2026-01-01T00:00:00Z"},
            422,
            "event_id",
        ),
        (
            {"event_id": "w-1", "event_type": "PICKED", "timestamp": "2026-01-01T00:00:00Z"},
            422,
            "order_id",
        ),
        (
            {
                "event_id": "w-2",
                "order_id": "12",
                "event_type": "PICKED",
                "timestamp": "2026-01-01T00:00:00Z",
            },
            422,
            "order_id",
        ),
        (
            {
                "event_id": "w-3",
                "order_id": 0,
                "event_type": "PICKED",
                "timestamp": "2026-01-01T00:00:00Z",
            },
            422,
            "order_id",
        ),
        (
            {
                "event_id": "w-4",
                "order_id": 1,
                "event_type": "LOST",
                "timestamp": "2026-01-01T00:00:00Z",
            },
            422,
            "event_type",
        ),
        ({"event_id": "w-5", "order_id": 1, "event_type": "PICKED"}, 422, "timestamp"),
        (
            {
                "event_id": "w-6",
                "order_id": 1,
                "event_type": "PICKED",
                "timestamp": "2026-01-01T00:00:00Z",
                "payload": "x",
            },
            422,
            "payload",
        ),
        (
            {
                "event_id": "w-7",
                "order_id": 999999999,
                "event_type": "PICKED",
                "timestamp": "2026-01-01T00:00:00Z",
            },
            404,
            None,
        ),
    ],
)
def test_bad_wms_bodies(base_url: str, body: Any, status: int, field: str | None) -> None:
    with httpx.Client(base_url=base_url) as client:
        r = _post(client, "/hooks/wms", body, SECRETS["wms"])
    assert r.status_code == status, r.text
    if field is not None:
        assert r.json()["field"] == field, r.json()


def test_oversized_body(base_url: str) -> None:
    body = {
        "event_id": "big",
        "tracking_number": "T1",
        "status": "50",
        "timestamp": _now(),
        "description": "x" * 70000,
    }
    with httpx.Client(base_url=base_url) as client:
        assert _post(client, "/hooks/carriers/ZTO", body, SECRETS["ZTO"]).status_code == 413


def test_concurrent_senders_each_event_accepted_once(base_url: str, db_dsn: str) -> None:
    """16 senders post the same 60 events (each event 16 times, in different orders): every
    event is accepted exactly once, every other answer says duplicate."""
    events = [
        {
            "event_id": f"cc-{i}",
            "tracking_number": f"CC{i % 6:04d}",
            "status": "发件",
            "timestamp": _now(-1000 + i),
            "location": "Hub",
        }
        for i in range(60)
    ]
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def sender(k: int) -> None:
        order = events[k % 60 :] + events[: k % 60]
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for event in order:
                r = _post(client, "/hooks/carriers/ZTO", event, SECRETS["ZTO"])
                assert r.status_code == 200, r.text
                with lock:
                    results[f"{event['event_id']}:{r.json()['result']}"] += 1

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(sender, range(16)))
    for event in events:
        assert results[f"{event['event_id']}:accepted"] == 1, event["event_id"]
        assert results[f"{event['event_id']}:duplicate"] == 15
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM orderdb.tracking_events "
            "WHERE carrier = 'ZTO' AND event_id LIKE 'cc-%%'"
        ).fetchone()
        assert row == (60, 60)


def test_burst_over_the_limit_gets_429_while_status_answers(base_url: str, db_dsn: str) -> None:
    """SLOW allows 2 requests/s with a burst of 5. 120 signed posts at once (each event posted
    twice) get mostly 429 with Retry-After; status queries running at the same time all answer
    200 quickly; no event is accepted twice; the database holds exactly the accepted ones."""
    order_id = _packed_order(db_dsn)
    tn = f"SLOW{order_id:08d}"
    with httpx.Client(base_url=base_url) as client:
        shipped = {
            "event_id": f"slow-ship-{order_id}",
            "order_id": order_id,
            "event_type": "SHIPPED",
            "timestamp": _now(-100),
            "payload": {"carrier": "SLOW", "tracking_number": tn},
        }
        assert _post(client, "/hooks/wms", shipped, SECRETS["wms"]).status_code == 200
    events = [
        {
            "event_id": f"slow-{i}",
            "tracking_number": tn,
            "status": "in_transit",
            "timestamp": _now(-90 + i),
        }
        for i in range(60)
    ]
    answers: list[tuple[str, int, str | None, str | None]] = []
    status_log: list[tuple[float, float, int]] = []  # (sent at, seconds, status code)
    lock = threading.Lock()
    stop = threading.Event()
    payload = events + events
    senders = 8

    def burst(k: int) -> None:
        # each sender keeps one connection and posts its share back to back
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for event in payload[k::senders]:
                r = _post(client, "/hooks/carriers/SLOW", event, SECRETS["SLOW"])
                with lock:
                    answers.append(
                        (
                            event["event_id"],
                            r.status_code,
                            r.headers.get("retry-after"),
                            r.json().get("result") if r.status_code == 200 else None,
                        )
                    )

    def status_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while not stop.is_set():
                t0 = time.monotonic()
                r = _status(client, f"/status/{tn}")
                with lock:
                    status_log.append((t0, time.monotonic() - t0, r.status_code))

    checker = threading.Thread(target=status_loop)
    checker.start()
    time.sleep(0.2)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        list(pool.map(burst, range(senders)))
    finished = time.monotonic()
    elapsed = finished - started
    time.sleep(0.2)
    stop.set()
    checker.join()

    codes = Counter(code for _, code, _, _ in answers)
    assert set(codes) <= {200, 429}, codes
    assert codes[429] > 0, codes
    assert all(ra is not None and int(ra) >= 1 for _, code, ra, _ in answers if code == 429)
    # the bucket: burst 5 + 2/s while the burst lasted (+1 for timing at the edges)
    assert codes[200] <= 5 + int(2 * elapsed) + 1, (codes, elapsed)
    accepted = [eid for eid, code, _, result in answers if code == 200 and result == "accepted"]
    assert len(accepted) == len(set(accepted)), "an event was accepted twice"
    print(
        f"burst: {dict(codes)} in {elapsed:.2f} s; status answers during it: "
        f"{sum(1 for t0, secs, _ in status_log if started <= t0 and t0 + secs <= finished)}"
    )
    # status queries kept answering, promptly, while the burst ran
    assert {code for _, _, code in status_log} == {200}, status_log
    during = sorted(secs for t0, secs, _ in status_log if started <= t0 and t0 + secs <= finished)
    assert len(during) >= 3, (len(during), elapsed)
    assert during[len(during) // 2] < 0.5, during
    assert max(secs for _, secs, _ in status_log) < 5.0, status_log
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM orderdb.tracking_events WHERE carrier = 'SLOW' "
            "AND tracking_number = %s",
            (tn,),
        ).fetchone()
        assert row is not None and row[0] == len(accepted)

    # a limited client retrying after Retry-After gets through
    time.sleep(1.1)
    with httpx.Client(base_url=base_url) as client:
        retry = _post(client, "/hooks/carriers/SLOW", events[0], SECRETS["SLOW"])
        assert retry.status_code == 200
        assert retry.json()["result"] == ("duplicate" if "slow-0" in accepted else "accepted")


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 100.0
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]  # never above the burst
    assert bucket.take() > 0


def test_integrations_cli_add_list_remove(db_dsn: str) -> None:
    from click.testing import CliRunner

    from orderdb.cli import main

    runner = CliRunner()
    added = runner.invoke(
        main, ["integrations", "add", "CLI-WMS", "--kind", "wms", "--rate", "5", "--dsn", db_dsn]
    )
    assert added.exit_code == 0, added.output
    assert "secret (shown once):" in added.output
    listed = runner.invoke(main, ["integrations", "list", "--json", "--dsn", db_dsn])
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["CLI-WMS"]["kind"] == "wms" and "secret" not in rows["CLI-WMS"]
    bad = runner.invoke(main, ["integrations", "add", "bad name", "--kind", "wms", "--dsn", db_dsn])
    assert bad.exit_code == 2 and "name must be 1 to 64 characters" in bad.output  # bad input
    short = runner.invoke(
        main,
        ["integrations", "add", "X", "--kind", "wms", "--dsn", db_dsn],
        env={"ORDERDB_INTEGRATIONS_ADD_SECRET": "short"},
    )
    assert short.exit_code == 2 and "secret must be 16 to 255 characters" in short.output
    removed = runner.invoke(main, ["integrations", "remove", "CLI-WMS", "--dsn", db_dsn])
    assert removed.exit_code == 0, removed.output


def test_integration_secrets_are_owner_only(conn: psycopg.Connection[Any]) -> None:
    """No orderdb role may read orderdb.integrations (the secrets) or call the functions of the
    integrations layer; only the two entry points are open to orderdb_ingest."""
    for role in ("orderdb_app", "orderdb_ingest", "orderdb_ops"):
        row = conn.execute(
            "SELECT has_table_privilege(%s, 'orderdb.integrations', 'SELECT'), "
            "has_column_privilege(%s, 'orderdb.integrations', 'secret', 'SELECT'), "
            "has_function_privilege(%s, "
            "'orderdb.set_integration(text, text, text, numeric, integer, boolean)', 'EXECUTE'), "
            "has_function_privilege(%s, 'orderdb.tracking_status(text, text)', 'EXECUTE'), "
            "has_function_privilege(%s, "
            "'orderdb.claim_shipments_for_polling(integer, text, interval)', 'EXECUTE')",
            (role,) * 5,
        ).fetchone()
        assert row == (False, False, False, False, False), role
    row = conn.execute(
        "SELECT has_function_privilege('orderdb_ingest', 'orderdb.record_tracking_event("
        "text, text, timestamptz, text, text, text, text, jsonb)', 'EXECUTE'), "
        "has_function_privilege('orderdb_app', "
        "'orderdb.reallocate_order(bigint, integer, integer, text, text)', 'EXECUTE')"
    ).fetchone()
    assert row == (True, True)
