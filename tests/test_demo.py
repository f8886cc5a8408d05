"""`orderdb demo` runs the whole simulated shop on a real server and ends with its summary."""

from __future__ import annotations

import re
import subprocess
import sys

import psycopg


def test_demo_runs_the_shop_and_prints_a_summary(fresh_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orderdb", "demo", "--orders", "40", "--dsn", fresh_dsn],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "operations board: http://127.0.0.1:" in out
    assert "tracking page: http://127.0.0.1:" in out and "/track/ORD" in out
    assert "counters equal the ledger" in out
    assert "timeline of ORD" in out
    assert "simulated carrier SIM:" in out and "every scan landed exactly once" in out
    # the warehouses are connected to the simulated WMS; the dispatcher sent every command
    for warehouse in (1, 2, 3):
        assert f"warehouse {warehouse}: WMS connector sim" in out
    commands_line = re.search(
        r"WMS commands \(orderdb wms-dispatch, simulated WMS\): (\d+) sent \(create (\d+)"
        r"(?:, update (\d+))?\), (\d+) retried after an outage, (\d+) dead-lettered",
        " ".join(out.split()),
    )
    assert commands_line, out
    sent, creates, updates, retried, dead = (int(g or 0) for g in commands_line.groups())
    assert "done in" in out
    # Chinese addresses, one amended while held for ADDRESS_INCOMPLETE, one courier on the way
    assert "addresses: every order to a generated Chinese recipient" in out
    assert re.search(r"address amended on ORD\d+: \S+ -> \S+室", out), out
    courier_line = re.search(r"courier: (\S+) \((1\d\d\*{4}\d{4})\) is bringing (ORD\d+)", out)
    assert courier_line, out
    assert "tracking page (zh-CN, courier on the way): http://127.0.0.1:" in out
    assert "收件人" in out and "配送员" in out and "派送中" in out
    with psycopg.connect(fresh_dsn) as conn:
        statuses: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM orderdb.orders GROUP BY 1").fetchall()
        )
        drift = conn.execute("SELECT count(*) FROM orderdb_ops.inventory_drift").fetchone()
        tracked = conn.execute("SELECT count(*) FROM orderdb.tracking_events").fetchone()
        ship_tos = conn.execute(
            "SELECT options -> 'ship_to' FROM orderdb.orders WHERE options ? 'ship_to'"
        ).fetchall()
        amended = conn.execute(
            "SELECT changes -> 'ship_to' FROM orderdb.order_amendments WHERE changes ? 'ship_to'"
        ).fetchall()
        row = conn.execute(
            "SELECT order_id FROM orderdb.orders WHERE order_no = %s", (courier_line[3],)
        ).fetchone()
        assert row is not None
        seen = conn.execute(
            "SELECT orderdb.order_timeline(%s, NULL, 'zh-CN')", (row[0],)
        ).fetchone()
        phones = [p for (p,) in conn.execute("SELECT phone FROM orderdb.couriers").fetchall()]
        commands = dict(
            conn.execute(
                "SELECT kind || '/' || status, count(*) FROM orderdb.wms_commands GROUP BY 1"
            ).fetchall()
        )
        stored = conn.execute(
            "SELECT count(*) FILTER (WHERE attempts > 1), count(*) FILTER (WHERE status = 'dead')"
            "  FROM orderdb.wms_commands"
        ).fetchone()
        unsent_dispatched = conn.execute(
            # an order handed to a connected warehouse whose create the WMS never accepted
            "SELECT count(*) FROM orderdb.orders o WHERE o.warehouse_id IN (1, 2, 3)"
            " AND EXISTS (SELECT 1 FROM orderdb.order_status_history h"
            "              WHERE h.order_id = o.order_id AND h.to_status = 'dispatched')"
            " AND NOT EXISTS (SELECT 1 FROM orderdb.wms_commands c WHERE c.order_id = o.order_id"
            "                   AND c.kind = 'create' AND c.status = 'done'"
            "                   AND c.wms_order_id = 'SIM-' || o.order_no)"
        ).fetchone()
        shipped_by = dict(
            conn.execute("SELECT carrier, count(*) FROM orderdb.shipments GROUP BY 1").fetchall()
        )
        hand_made = conn.execute(
            # WMS callbacks not made by the simulated WMS: only the courier warehouse's
            "SELECT count(*), count(*) FILTER (WHERE warehouse_id <> 4) FROM orderdb.wms_events"
            " WHERE event_id NOT LIKE 'sim-%'"
        ).fetchone()
    assert sum(statuses.values()) >= 30  # a few greedy orders are refused for lack of stock
    assert statuses.get("completed", 0) + statuses.get("delivered", 0) > 0
    assert drift == (0,)
    assert tracked is not None and tracked[0] > 0
    assert len(ship_tos) == sum(statuses.values())  # every order has a recipient and address
    # stored normalised (E.164): a Chinese mobile number each
    assert all(re.fullmatch(r"\+861[3-9]\d{9}", s["phone"]) for (s,) in ship_tos)
    assert all({"name", "province", "city", "district", "line1"} <= set(s) for (s,) in ship_tos)
    assert amended, "an address was amended"
    assert seen is not None and seen[0]["status"] == "delivering"
    assert seen[0]["courier"]["name"] == courier_line[1]
    assert seen[0]["courier"]["phone"] == courier_line[2]
    assert phones and all(p[-11:] not in out for p in phones)  # full phones never printed
    assert not any(s["phone"][3:] in out for (s,) in ship_tos)
    # every command done, counted as the summary says; no order waits for its WMS
    assert commands == {
        "create/done": creates,
        **({"update/done": updates} if updates else {}),
    }, commands
    assert sent == creates + updates and creates > 0 and updates == len(amended)
    assert stored == (retried, dead) and dead == 0
    assert unsent_dispatched == (0,)
    assert set(shipped_by) == {"SIM", "GENERIC"} and shipped_by["GENERIC"] == 1
    assert hand_made == (3, 0), "the loop runs without a hand-made WMS callback"
