"""Carrier events and the operations tools through the cluster proxy (docs/scaling.md "Carrier
events", "Tools against the proxy"): an event that arrives before its shipment exists anywhere,
for an order that then ships on another shard, ends matched exactly once — moved by the SHIPPED
callback through the proxy, or by the sweep of `orderdb maintain --dsn PROXY` when the callback
went to the shard directly, also while events of the same parcel keep arriving; the tracking
page through the proxy; the tools that run per shard refuse a proxy DSN and say so."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result

from orderdb.cli import main
from orderdb.web import WebServer
from tests.cluster_fixtures import SHARDS, Cluster, cluster  # noqa: F401  (fixture)

ITEMS = '[{"sku": "SKU-TR", "quantity": 1, "unit_price": 3.00}]'


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def proxy(cl: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cl.proxy_dsn, autocommit=True)


def confirmed_order(cl: Cluster, warehouse: int, shard: int, customer: int = 9) -> int:
    pinned = run("cluster", "map-warehouse", "--dsn", cl.proxy_dsn, str(warehouse), str(shard))
    assert pinned.exit_code == 0, pinned.output
    with proxy(cl) as conn:
        conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-TR', 100)", (warehouse,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(%s, %s, %s)", (customer, warehouse, ITEMS)
        ).fetchone()
        assert row is not None
        conn.execute("SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (row[0],))
    return int(row[0])


def number_homed_away_from(cl: Cluster, shard: int, prefix: str) -> tuple[str, int]:
    """A tracking number (carrier GENERIC) whose home shard is not ``shard``, and its home."""
    with proxy(cl) as conn:
        for i in range(1000):
            number = f"{prefix}{i:08d}"
            row = conn.execute(
                "SELECT orderdb_cluster.tracking_home('GENERIC', %s)", (number,)
            ).fetchone()
            assert row is not None
            if int(row[0]) != shard:
                return number, int(row[0])
    raise AssertionError("no tracking number homed elsewhere")


def stored_events(cl: Cluster, number: str) -> list[tuple[int, str, int | None, str | None]]:
    """(shard, carrier status, order id, event id) of every stored event of ``number``."""
    found: list[tuple[int, str, int | None, str | None]] = []
    for shard, dsn in enumerate(cl.shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            found += [
                (shard, str(r[0]), r[1], r[2])
                for r in conn.execute(
                    "SELECT carrier_status, order_id, event_id FROM orderdb.tracking_events"
                    " WHERE carrier = 'GENERIC' AND tracking_number = %s"
                    " ORDER BY event_time, event_id",
                    (number,),
                ).fetchall()
            ]
    return found


#: the carrier events' times are minutes before this
NOW = datetime.now(UTC)


def record(
    conn: psycopg.Connection[Any], number: str, minutes_ago: float, status: str, event_id: str
) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT order_id, duplicate, order_status FROM orderdb.record_tracking_event("
        "'GENERIC', %s, %s, %s, 'Shenzhen hub', NULL, %s)",
        (number, NOW - timedelta(minutes=minutes_ago), status, event_id),
    ).fetchone()
    assert row is not None
    return tuple(row)


def timeline(cl: Cluster, order_id: int) -> dict[str, Any]:
    with proxy(cl) as conn:
        row = conn.execute("SELECT orderdb.order_timeline(%s)", (order_id,)).fetchone()
    assert row is not None
    return dict(row[0])


def carrier_entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["timeline"] if e.get("location") == "Shenzhen hub"]


def shipped(order_id: int, number: str, event_id: str) -> tuple[str, str]:
    return (
        "SELECT status FROM orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
        (event_id, order_id, json.dumps({"carrier": "GENERIC", "tracking_number": number})),
    )  # type: ignore[return-value]


def test_event_first_then_shipped_through_the_proxy_on_another_shard(cluster: Cluster) -> None:  # noqa: F811
    order_id = confirmed_order(cluster, 2101, 1)
    number, home = number_homed_away_from(cluster, 1, "TRA")
    with proxy(cluster) as conn:
        assert record(conn, number, 30, "in_transit", "tra-1") == (None, False, None)
        assert stored_events(cluster, number) == [(home, "in_transit", None, "tra-1")]
        query, args = shipped(order_id, number, "tra-ship")
        assert conn.execute(query, args).fetchone() == ("shipped",)
    assert stored_events(cluster, number) == [(1, "in_transit", order_id, "tra-1")]
    doc = timeline(cluster, order_id)
    assert doc["status"] == "delivering"
    assert [(s["tracking_number"]) for s in doc["shipments"]] == [number]
    assert len(carrier_entries(doc)) == 1  # the event, exactly once
    # the sweep finds nothing more to do; the event again is a duplicate on the order's shard
    swept = run("maintain", "--dsn", cluster.proxy_dsn, "--json")
    assert swept.exit_code == 0, swept.output
    assert [r for r in json.loads(swept.stdout) if r["tracking_number"] == number] == []
    with proxy(cluster) as conn:
        assert record(conn, number, 30, "in_transit", "tra-1") == (order_id, True, "delivering")
    assert len(stored_events(cluster, number)) == 1
    assert len(carrier_entries(timeline(cluster, order_id))) == 1


def test_the_maintain_sweep_moves_events_of_a_shipment_made_on_its_shard(
    cluster: Cluster,  # noqa: F811
) -> None:
    order_id = confirmed_order(cluster, 2102, 2)
    number, home = number_homed_away_from(cluster, 2, "TRB")
    with proxy(cluster) as conn:
        record(conn, number, 40, "in_transit", "trb-1")
        record(conn, number, 20, "out_for_delivery", "trb-2")
    # SHIPPED sent to the shard's own DSN: the proxy does not see the shipment appear
    with psycopg.connect(cluster.shard_dsns[2], autocommit=True) as shard:
        query, args = shipped(order_id, number, "trb-ship")
        assert shard.execute(query, args).fetchone() == ("shipped",)
    assert {s for s, *_ in stored_events(cluster, number)} == {home}
    assert carrier_entries(timeline(cluster, order_id)) == []
    dry = run("maintain", "--dsn", cluster.proxy_dsn, "--json", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not [r for r in json.loads(dry.stdout) if r["action"] == "moved"]
    swept = run("maintain", "--dsn", cluster.proxy_dsn, "--json")
    assert swept.exit_code == 0, swept.output
    rows = json.loads(swept.stdout)
    moved = [r for r in rows if r["tracking_number"] == number]
    assert moved == [
        {
            "shard": home,
            "parent_table": "orderdb.tracking_events",
            "action": "moved",
            "partition_name": None,
            "range_from": None,
            "range_to": None,
            "rows_moved": 2,
            "exported_to": None,
            "carrier": "GENERIC",
            "tracking_number": number,
            "to_shard": 2,
            "order_id": None,
            "warehouse_id": None,
        }
    ]
    # every shard's partition maintenance ran too (each shard reported, as on one database)
    assert {r["shard"] for r in rows if r["action"] != "moved"} <= set(range(SHARDS))
    assert stored_events(cluster, number) == [
        (2, "in_transit", order_id, "trb-1"),
        (2, "out_for_delivery", order_id, "trb-2"),
    ]
    doc = timeline(cluster, order_id)
    assert doc["status"] == "delivering"
    assert len(carrier_entries(doc)) == 2
    again = run("maintain", "--dsn", cluster.proxy_dsn)
    assert again.exit_code == 0, again.output
    assert "parked carrier events: none to move" in again.stdout
    assert "partition" in again.stdout
    assert len(stored_events(cluster, number)) == 2


def test_events_racing_the_shipment_and_the_sweep_end_matched_once(cluster: Cluster) -> None:  # noqa: F811
    """Carrier events of one parcel keep arriving through the proxy (four connections) while
    the order ships on its shard directly and two sweeps run: every event is stored once, on
    the order's shard, matched; nothing stays parked."""
    order_id = confirmed_order(cluster, 2103, 0)
    number, _home = number_homed_away_from(cluster, 0, "TRC")
    with proxy(cluster) as conn:
        record(conn, number, 100, "in_transit", "trc-first")
    errors: list[BaseException] = []
    second_not_duplicate: list[str] = []
    start = threading.Barrier(7)

    def send(worker: int) -> None:
        try:
            start.wait()
            with proxy(cluster) as conn:
                for i in range(15):
                    minutes_ago = 90 - (worker * 15 + i) / 2
                    event_id = f"trc-{worker}-{i}"
                    first = record(conn, number, minutes_ago, "in_transit", event_id)
                    # each event twice: the second changes nothing in the end (checked below).
                    # It says duplicate = false when the first one was parked and is being moved
                    # by a concurrent mover at that moment (docs/scaling.md "What differs")
                    again = record(conn, number, minutes_ago, "in_transit", event_id)
                    assert not first[1], (event_id, first)
                    if not again[1]:
                        second_not_duplicate.append(event_id)
        except BaseException as exc:
            errors.append(exc)

    def ship() -> None:
        try:
            start.wait()
            with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as shard:
                query, args = shipped(order_id, number, "trc-ship")
                shard.execute(query, args)
        except BaseException as exc:
            errors.append(exc)

    def sweep() -> None:
        try:
            start.wait()
            with proxy(cluster) as conn:
                for _ in range(3):
                    conn.execute("SELECT * FROM orderdb_cluster.sweep_parked_tracking_events()")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=ship), threading.Thread(target=sweep)]
    threads += [threading.Thread(target=sweep)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    final = run("maintain", "--dsn", cluster.proxy_dsn, "--json")
    assert final.exit_code == 0, final.output
    events = stored_events(cluster, number)
    ids = [e[3] for e in events]
    assert len(ids) == len(set(ids)) == 1 + 4 * 15  # each once
    assert {(e[0], e[2]) for e in events} == {(0, order_id)}  # all matched on the order's shard
    assert len(carrier_entries(timeline(cluster, order_id))) == 1 + 4 * 15
    print(f"\nsecond sends answered duplicate = false (moved meanwhile): {second_not_duplicate}")


def test_the_tracking_page_through_the_proxy(cluster: Cluster) -> None:  # noqa: F811
    order_id = confirmed_order(cluster, 2104, 1, customer=31)
    number, _home = number_homed_away_from(cluster, 1, "TRD")
    with proxy(cluster) as conn:
        record(conn, number, 10, "in_transit", "trd-1")
        query, args = shipped(order_id, number, "trd-ship")
        conn.execute(query, args)
        order_no = conn.execute(
            "SELECT orderdb.get_order(%s) ->> 'order_no'", (order_id,)
        ).fetchone()
    assert order_no is not None
    with (
        WebServer(cluster.proxy_dsn, port=0, poll_interval=0.2, board_ttl=0.0) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        doc = http.get(f"/api/track/{order_no[0]}", params={"customer": 31})
        assert doc.status_code == 200, doc.text
        assert doc.json()["status"] == "delivering"
        assert doc.json()["current_location"] == "Shenzhen hub"
        page = http.get(f"/track/{order_no[0]}", params={"customer": 31})
        assert page.status_code == 200
        assert number in page.text and "Shenzhen hub" in page.text
        other = http.get(f"/track/{order_no[0]}", params={"customer": 32})
        assert other.status_code == 404


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("webhooks list", ("webhooks", "list")),
        ("webhooks retry", ("webhooks", "retry", "--all-dead")),
        ("ingest serve", ("ingest", "serve", "--port", "0")),
    ],
)
def test_tools_that_run_per_shard_refuse_the_proxy(
    cluster: Cluster,  # noqa: F811
    tool: str,
    args: tuple[str, ...],
) -> None:
    result = CliRunner().invoke(main, [*args, "--dsn", cluster.proxy_dsn])
    assert result.exit_code == 2, result.output
    assert f"orderdb {tool} does not run against a cluster proxy" in result.stderr
    assert "each shard's DSN" in result.stderr


def sla_order(cl: Cluster, warehouse: int, shard: int, options: dict[str, str]) -> int:
    """An order of ``warehouse`` (pinned to ``shard``) with ``options``, confirmed unless it
    waits for its payment."""
    pinned = run("cluster", "map-warehouse", "--dsn", cl.proxy_dsn, str(warehouse), str(shard))
    assert pinned.exit_code == 0, pinned.output
    with proxy(cl) as conn:
        conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-TR', 100)", (warehouse,))
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(9, %s, %s, p_options => %s::jsonb)",
            (warehouse, ITEMS, json.dumps(options)),
        ).fetchone()
        assert row is not None
        if "payment_due_by" not in options:
            conn.execute("SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (row[0],))
    return int(row[0])


def test_sla_check_through_the_proxy_escalates_every_shard_once(cluster: Cluster) -> None:  # noqa: F811
    drained = run("sla-check", "--dsn", cluster.proxy_dsn)  # earlier tests' breaches, if any
    assert drained.exit_code == 0, drained.output
    now = datetime.now(UTC)
    unpaid_due = {"payment_due_by": (now - timedelta(minutes=10)).isoformat()}
    very_late = {"promised_ship_at": (now - timedelta(hours=30)).isoformat()}
    late_not_yet = {"promised_ship_at": (now - timedelta(hours=2)).isoformat()}
    expected: list[tuple[int, str, str, int, int]] = []  # order, rule, action, warehouse, shard
    for warehouse, shard in ((2201, 0), (2202, 2)):
        unpaid = sla_order(cluster, warehouse, shard, unpaid_due)
        late = sla_order(cluster, warehouse, shard, very_late)
        sla_order(cluster, warehouse, shard, late_not_yet)  # a breach, not escalated yet
        expected += [
            (unpaid, "unpaid", "payment_reminder", warehouse, shard),
            (late, "late_shipment", "delay_compensation", warehouse, shard),
        ]
    expected.sort()
    first = run("sla-check", "--json", "--dsn", cluster.proxy_dsn)
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    # every shard's new escalations, in one database's order (order id, rule)
    assert [(r["order_id"], r["rule"], r["action"], r["warehouse_id"]) for r in rows] == [
        e[:4] for e in expected
    ]
    assert all(r["breached_since"] for r in rows)
    # each escalated on its order's shard: a row and an sla.escalated event there, once
    for shard, dsn in enumerate(cluster.shard_dsns):
        mine = sorted((e[0], e[1], e[2]) for e in expected if e[4] == shard)
        with psycopg.connect(dsn, autocommit=True) as conn:
            stored = conn.execute(
                "SELECT order_id, rule, action FROM orderdb.sla_escalations"
                " WHERE order_id = ANY(%s) ORDER BY 1, 2",
                ([e[0] for e in expected],),
            ).fetchall()
            events = conn.execute(
                "SELECT order_id, payload ->> 'rule', payload ->> 'action' FROM orderdb.outbox"
                " WHERE event_type = 'sla.escalated' AND order_id = ANY(%s) ORDER BY 1, 2",
                ([e[0] for e in expected],),
            ).fetchall()
        assert [tuple(r) for r in stored] == mine
        assert [tuple(r) for r in events] == mine
    # a second run finds nothing new (table output, as on one database)
    second = run("sla-check", "--dsn", cluster.proxy_dsn)
    assert second.exit_code == 0, second.output
    assert "no new SLA breaches to escalate" in second.output
    with proxy(cluster) as conn:
        assert conn.execute("SELECT count(*) FROM orderdb.sla_check()").fetchone() == (0,)
        # the owner's alone, as on one database
        assert conn.execute(
            "SELECT has_function_privilege('orderdb_app', 'orderdb.sla_check()', 'EXECUTE'),"
            " has_function_privilege('orderdb_ops', 'orderdb.sla_check()', 'EXECUTE')"
        ).fetchone() == (False, False)
    # a new breach on a third shard: the table, as on one database
    third = sla_order(cluster, 2203, 1, unpaid_due)
    table = run("sla-check", "--dsn", cluster.proxy_dsn)
    assert table.exit_code == 0, table.output
    assert "1 new escalation(s)" in table.output
    assert str(third) in table.output and "payment_reminder" in table.output


def test_monitor_snapshot_through_the_proxy(cluster: Cluster) -> None:  # noqa: F811
    confirmed_order(cluster, 2105, 2)
    result = CliRunner().invoke(main, ["monitor", "--once", "--json", "--dsn", cluster.proxy_dsn])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)
    assert snap["errors"] == {}
    assert sum(r["orders"] for r in snap["funnel"] if r["status"] == "confirmed") >= 1


def test_maintain_export_dir_is_per_shard(cluster: Cluster, tmp_path: Any) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main, ["maintain", "--dsn", cluster.proxy_dsn, "--export-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "each shard's DSN" in result.stderr


def test_an_event_id_stored_on_another_shard_is_refused_as_on_one_database(
    cluster: Cluster,  # noqa: F811
) -> None:
    """A carrier's event id is unique per carrier on one database: reused for another parcel
    it is OD006, and nothing is stored. Through the proxy the parcels may live on different
    shards (or one may be parked at its number's home): still OD006 with one database's
    message and detail, 22023 first for a bad argument, and nothing stored anywhere."""
    first = confirmed_order(cluster, 2111, 0)
    second = confirmed_order(cluster, 2112, 1)
    number_a, _ = number_homed_away_from(cluster, 1, "EIA")
    number_b, _ = number_homed_away_from(cluster, 0, "EIB")
    number_c, _ = number_homed_away_from(cluster, 0, "EIC")  # no shipment anywhere
    with proxy(cluster) as conn:
        for order_id, number in ((first, number_a), (second, number_b)):
            query, args = shipped(order_id, number, f"eid-ship-{number}")
            assert conn.execute(query, args).fetchone() == ("shipped",)
        assert record(conn, number_a, 30, "in_transit", "eid-1") == (first, False, "delivering")
        for number, status in (
            (number_b, "in_transit"),
            (number_c, "in_transit"),
            (number_a, "delivered"),
        ):
            with pytest.raises(psycopg.Error) as refused:
                record(conn, number, 20, status, "eid-1")
            diag = refused.value.diag
            assert diag.sqlstate == "OD006", diag.message_primary
            assert diag.message_primary == (
                "event_id 'eid-1' of carrier 'GENERIC' was already used for another event"
            )
            assert diag.message_detail == (
                f"stored: tracking_number={number_a} carrier_status=in_transit; "
                f"this call: tracking_number={number} carrier_status={status}"
            )
            assert diag.message_hint == (
                "Each carrier event needs its own event id (unique per carrier)."
            )
        # a bad argument is refused first, as on one database
        with pytest.raises(psycopg.Error) as bad:
            conn.execute(
                "SELECT * FROM orderdb.record_tracking_event('GENERIC', %s, 'infinity',"
                " 'in_transit', NULL, NULL, 'eid-1')",
                (number_b,),
            )
        assert bad.value.diag.sqlstate == "22023"
        assert "event_time" in str(bad.value.diag.message_primary)
        # the same event again is still a duplicate
        assert record(conn, number_a, 30, "in_transit", "eid-1") == (first, True, "delivering")
    assert stored_events(cluster, number_a) == [(0, "in_transit", first, "eid-1")]
    assert stored_events(cluster, number_b) == []
    assert stored_events(cluster, number_c) == []
