"""POST /hooks/carriers/<carrier>/batch (orderdb ingest serve): the scans of a carrier that
pushes arrays, recorded with one call of orderdb.record_tracking_events; a malformed or refused
scan is answered rejected in its place, the others are recorded."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg.types.json import Jsonb

from orderdb.integrations.http import IngestApp, sign

SECRET = "tbh-secret-0123456789abcdef"
WAREHOUSE = 3702


@pytest.fixture(scope="module")
def base_url(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.set_integration('TBH', 'carrier', %s, 1000, 1000)", (SECRET,))
        conn.execute(
            "INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status)"
            " VALUES ('TBH', 'T', 'in_transit'), ('TBH', 'O', 'out_for_delivery')"
            " ON CONFLICT DO NOTHING"
        )
        conn.execute("SELECT orderdb.receive_stock(%s, 'TBH-A', 1000)", (WAREHOUSE,))
    app = IngestApp(db_dsn, pool_size=2, status_pool_size=1).app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
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


def _post(base_url: str, body: Any) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", "X-OrderDB-Signature": sign(SECRET, raw)}
    return httpx.post(f"{base_url}/hooks/carriers/TBH/batch", content=raw, headers=headers)


def _shipped(dsn: str, tracking_number: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(1, %s, %s)",
            (WAREHOUSE, Jsonb([{"sku": "TBH-A", "quantity": 1}])),
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute(
            "SELECT orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (
                f"tbh-{tracking_number}",
                order_id,
                Jsonb({"carrier": "TBH", "tracking_number": tracking_number}),
            ),
        )
    return order_id


def _scan(event_id: str, status: str, hours_ago: float, **more: Any) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return {
        "event_id": event_id,
        "tracking_number": "TBH-1",
        "status": status,
        "timestamp": at.isoformat(),
        **more,
    }


def test_batch_records_the_good_scans_and_rejects_each_bad_one(base_url: str, db_dsn: str) -> None:
    order_id = _shipped(db_dsn, "TBH-1")
    scans: list[Any] = [
        _scan("tbh-1", "T", 3, location="Hub"),
        {"event_id": "tbh-x", "status": "T", "timestamp": _scan("x", "T", 1)["timestamp"]},
        _scan("tbh-2", "O", 2),
        _scan("tbh-1", "O", 1),  # event id of the first scan reused for another status
        "not a scan",
        _scan("tbh-1", "T", 3, location="Hub"),  # the first scan again
        _scan("tbh-3", "T", -72),  # three days ahead: the database refuses it
    ]
    r = _post(base_url, {"events": scans})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["accepted"], doc["duplicate"], doc["rejected"]) == (2, 1, 4)
    results = doc["results"]
    assert [x["result"] for x in results] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
    ]
    assert results[0]["order_id"] == order_id
    assert results[2]["order_status"] == "delivering"
    assert results[5]["tracking_event_id"] == results[0]["tracking_event_id"]
    assert results[1]["problem"]["field"] == "events[1].tracking_number"
    assert results[1]["problem"]["status"] == 422
    assert results[3]["problem"]["type"] == "/problems/conflict"
    assert results[3]["problem"]["sqlstate"] == "OD006"
    assert results[4]["problem"]["field"] == "events[4]"
    assert results[6]["problem"]["sqlstate"] == "22023"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id FROM orderdb.tracking_events WHERE carrier = 'TBH'"
            " AND tracking_number = 'TBH-1' ORDER BY event_time"
        ).fetchall()
        assert [r[0] for r in rows] == ["tbh-1", "tbh-2"]


@pytest.mark.parametrize(
    "body",
    [{}, {"events": []}, {"events": {}}, {"events": [{}] * 1001}, {"events": [], "x": 1}],
)
def test_batch_body_must_hold_1_to_1000_scans(base_url: str, body: Any) -> None:
    r = _post(base_url, body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "/problems/invalid-field"
    assert problem["field"] in ("events", "x")
