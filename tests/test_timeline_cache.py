"""order_timeline's read-through cache (migrations/0017_timeline_cache, sql/47_timeline_cache.sql)
answers exactly what the uncached computation (orderdb._order_timeline_build) answers, whatever
was written before the read: random interleavings (hypothesis) of transitions, shipments, carrier
events (late, duplicate, out of order, unknown codes, couriers in the payload), amendments (promised
times near now, time zones, recipients), cancellations, returns, reallocations, routes and courier
renames, deliveries of other orders of the carrier (the median estimate), customer-text edits,
locales (any case), session time zones, read-only transactions and reads inside a writing
transaction; the customer check on every call; concurrent writers and readers; purges and the
generation bumps of retention."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

WH, WH2 = 7717001, 7717002
SKU = "TLC-A"
CUSTOMER = 9917001
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def conn(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        for wh in (WH, WH2):
            c.execute("SELECT FROM orderdb.receive_stock(%s, %s, 100000)", (wh, SKU))
            c.execute("SELECT FROM orderdb.set_warehouse_location(%s, 22.5, 113.9)", (wh,))
            c.execute(
                "SELECT FROM orderdb.add_courier(%s, %s, 22.5, 113.9, 50, true, '13711112222')",
                (wh, f"Courier {wh}"),
            )
        yield c


def _now() -> datetime:
    return datetime.now(UTC)


def _compare(
    c: psycopg.Connection[Any], order_id: int, customer: int | None, locale: str
) -> tuple[Any, Any]:
    """order_timeline and the uncached build in one statement (one snapshot, one now()), or the
    error each raises (SQLSTATE and message)."""
    try:
        with c.transaction():
            row = c.execute(
                "SELECT orderdb.order_timeline(%s, %s, %s),"
                " orderdb._order_timeline_build(%s, %s, %s)",
                (order_id, customer, locale) * 2,
            ).fetchone()
        assert row is not None
        return row[0], row[1]
    except psycopg.Error:
        pass
    results: list[Any] = []
    for fn in ("order_timeline", "_order_timeline_build"):
        try:
            with c.transaction():
                c.execute(f"SELECT orderdb.{fn}(%s, %s, %s)", (order_id, customer, locale))
            results.append("no error")
        except psycopg.Error as exc:
            results.append((exc.sqlstate, str(exc).splitlines()[0]))
    return results[0], results[1]


def _served_from_cache(c: psycopg.Connection[Any], order_id: int, locale: str) -> bool:
    """Whether a current document of this order, locale and session time zone is stored."""
    row = c.execute(
        "SELECT count(*) FROM orderdb.order_timeline_cache ca"
        " JOIN orderdb.order_directory d USING (order_id)"
        " CROSS JOIN orderdb.order_timeline_generation g"
        " WHERE ca.order_id = %s AND ca.locale = %s AND ca.time_zone = current_setting('TimeZone')"
        " AND ca.generation = d.timeline_generation AND ca.texts_generation = g.generation",
        (order_id, locale),
    ).fetchone()
    return row == (1,)


def _new_order(c: psycopg.Connection[Any], options: dict[str, Any]) -> int:
    row = c.execute(
        "SELECT order_id FROM orderdb.create_order(%s, %s, %s, NULL, NULL, %s)",
        (CUSTOMER, WH, Jsonb([{"sku": SKU, "quantity": 2}]), Jsonb(options)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _version(c: psycopg.Connection[Any], order_id: int) -> int:
    row = c.execute(
        "SELECT o.version FROM orderdb.order_directory d JOIN orderdb.orders o"
        " ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id WHERE d.order_id = %s",
        (order_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _try(c: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> None:
    """A write that may be refused (a transition the order's status does not allow, ...)."""
    try:
        with c.transaction():
            c.execute(sql, params)
    except psycopg.Error:
        pass


CARRIER_CODES = [
    "info_received",
    "in_transit",
    "out_for_delivery",
    "failed_attempt",
    "delivered",
    "exception",
    "NO-SUCH-CODE",
]
STATUSES = [
    "confirmed",
    "dispatched",
    "picked",
    "packed",
    "shipped",
    "delivering",
    "delivered",
    "on_hold",
    "cancelled",
    "delivery_failed",
]

actions = st.one_of(
    st.tuples(st.just("transition"), st.integers(0, 2), st.sampled_from(STATUSES)),
    # a transition the order's status allows (random ones are mostly refused): one of its edges
    st.tuples(st.just("advance"), st.integers(0, 2), st.integers(0, 7)),
    st.tuples(st.just("ship"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(
        st.just("event"),
        st.integers(0, 2),
        st.sampled_from(CARRIER_CODES),
        st.integers(-72, 3),  # hours from now: late, out of order, a clock ahead
        st.sampled_from([None, "Shenzhen hub", "深圳市南山区", "call 13812345678"]),
        st.sampled_from([None, "Parcel scanned", "快件已签收", "courier 13900001111"]),
        st.booleans(),  # a courier in the payload
        st.integers(0, 3),  # event id (duplicates)
    ),
    st.tuples(  # a carrier's batch (record_tracking_events): events of two orders' parcels
        st.just("batch"),
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.sampled_from(CARRIER_CODES),
                st.integers(-72, 3),
                st.integers(0, 3),  # event id (duplicates, within the batch too)
            ),
            min_size=1,
            max_size=6,
        ),
    ),
    st.tuples(
        st.just("amend"),
        st.integers(0, 2),
        st.sampled_from(["promised", "time_zone", "ship_to", "attributes"]),
        st.integers(-120, 120),  # minutes from now
    ),
    st.tuples(st.just("return"), st.integers(0, 2)),
    st.tuples(st.just("reallocate"), st.integers(0, 2)),
    st.tuples(st.just("route"), st.integers(0, 2)),
    st.tuples(st.just("rename_courier"), st.integers(0, 99)),
    st.tuples(st.just("other_delivery"), st.integers(1, 96)),
    st.tuples(st.just("edit_text"), st.sampled_from(["status", "carrier", "page", "change"])),
    st.tuples(st.just("time_zone"), st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York"])),
    st.tuples(st.just("write_then_read"), st.integers(0, 2)),
    st.tuples(st.just("read_only"), st.integers(0, 2)),
)
reads = st.tuples(
    st.integers(0, 2),
    st.sampled_from([None, CUSTOMER, CUSTOMER + 1]),
    st.sampled_from(["en", "zh-CN", "ZH-cn", "fr"]),
)


def _apply(c: psycopg.Connection[Any], orders: list[int], action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "transition":
        o = orders[action[1]]
        _try(
            c,
            "SELECT FROM orderdb.transition_order(%s, %s, %s, 'prop', 'internal reason')",
            (o, action[2], _version(c, o)),
        )
    elif kind == "advance":
        o = orders[action[1]]
        edges = c.execute(
            "SELECT t.to_status FROM orderdb.allowed_transitions() t"
            " JOIN orderdb.orders o ON o.status = t.from_status"
            " JOIN orderdb.order_directory d"
            "   ON d.warehouse_id = o.warehouse_id AND d.order_id = o.order_id"
            " WHERE d.order_id = %s"
            "   AND (o.status <> 'on_hold' OR t.to_status IN (o.previous_status, 'cancelled'))"
            " ORDER BY 1",
            (o,),
        ).fetchall()
        if edges:
            to_status = edges[action[2] % len(edges)][0]
            _try(
                c,
                "SELECT FROM orderdb.transition_order(%s, %s, %s, 'prop', 'internal reason')",
                (o, to_status, _version(c, o)),
            )
    elif kind == "ship":
        o = orders[action[1]]
        tn = f"TLC-{o}-{action[2]}"
        for step in ("PICKED", "PACKED"):
            _try(c, "SELECT FROM orderdb.wms_callback(%s, %s, %s)", (f"{tn}-{step}", o, step))
        _try(
            c,
            "SELECT FROM orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (f"{tn}-SHIP", o, Jsonb({"carrier": "GENERIC", "tracking_number": tn})),
        )
    elif kind == "event":
        _, i, code, hours, location, description, courier, event_id = action
        o = orders[i]
        payload = {"courier": {"name": "赵师傅", "phone": "+86 139 0000 1111"}} if courier else {}
        _try(
            c,
            "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, %s, %s, %s, %s, %s, %s)",
            (
                f"TLC-{o}-0",
                _now() + timedelta(hours=hours),
                code,
                location,
                description,
                f"ev-{o}-{event_id}",
                Jsonb(payload),
            ),
        )
    elif kind == "batch":
        events = [
            {
                "carrier": "GENERIC",
                "tracking_number": f"TLC-{orders[i]}-0",
                "event_time": (_now() + timedelta(hours=hours)).isoformat(),
                "carrier_status": code,
                "location": f"Batch hub {hours}",
                "event_id": f"bev-{orders[i]}-{event_id}",
            }
            for i, code, hours, event_id in action[1]
        ]
        _try(c, "SELECT FROM orderdb.record_tracking_events(%s)", (Jsonb(events),))
    elif kind == "amend":
        _, i, what, minutes = action
        o = orders[i]
        changes: dict[str, Any] = {
            "promised": {"promised_delivery_at": (_now() + timedelta(minutes=minutes)).isoformat()},
            "time_zone": {"time_zone": "Europe/Berlin" if minutes % 2 else "Asia/Tokyo"},
            "ship_to": {
                "ship_to": {
                    "name": f"收件人 {minutes}",
                    "phone": "138 1234 5678",
                    "city": "深圳市",
                    "line1": "科技园1号",
                    "lat": 22.54,
                    "lon": 113.95,
                }
            },
            "attributes": {"attributes": {"gift": minutes}},
        }[what]
        _try(
            c,
            "SELECT FROM orderdb.amend_order(%s, %s, %s, 'prop')",
            (o, _version(c, o), Jsonb(changes)),
        )
    elif kind == "return":
        o = orders[action[1]]
        _try(
            c,
            "SELECT FROM orderdb.request_return(%s, %s, %s)",
            (o, Jsonb([{"sku": SKU, "quantity": 1}]), _version(c, o)),
        )
        _try(c, "SELECT FROM orderdb.receive_return(%s)", (o,))
    elif kind == "reallocate":
        o = orders[action[1]]
        row = c.execute(
            "SELECT warehouse_id FROM orderdb.order_directory WHERE order_id = %s", (o,)
        ).fetchone()
        assert row is not None
        target = WH2 if row[0] == WH else WH
        _try(
            c,
            "SELECT FROM orderdb.reallocate_order(%s, %s, %s, 'ops', 'moved')",
            (o, target, _version(c, o)),
        )
    elif kind == "route":
        for wh in (WH, WH2):
            _try(c, "SELECT FROM orderdb.plan_routes(%s)", (wh,))
    elif kind == "rename_courier":
        c.execute(
            "UPDATE orderdb.couriers SET name = %s WHERE warehouse_id IN (%s, %s)",
            (f"Courier {action[1]}", WH, WH2),
        )
        c.execute("UPDATE orderdb.couriers SET lat = lat WHERE warehouse_id IN (%s, %s)", (WH, WH2))
    elif kind == "other_delivery":
        # another parcel of the carrier delivered: the median estimate moves
        o = _new_order(c, {})
        tn = f"TLC-OTHER-{uuid.uuid4().hex[:12]}"
        for status in ("confirmed", "dispatched"):
            _try(c, "SELECT FROM orderdb.transition_order(%s, %s, %s)", (o, status, _version(c, o)))
        _try(
            c,
            "SELECT FROM orderdb.wms_callback(%s, %s, 'SHIPPED', %s)",
            (f"{tn}-SHIP", o, Jsonb({"carrier": "GENERIC", "tracking_number": tn})),
        )
        c.execute(
            "UPDATE orderdb.shipments SET shipped_at = now() - %s * interval '1 hour'"
            " WHERE order_id = %s",
            (action[1], o),
        )
        _try(
            c,
            "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, now(), 'delivered')",
            (tn,),
        )
    elif kind == "edit_text":
        c.execute(
            "UPDATE orderdb.customer_texts SET text = text || '.'"
            " WHERE kind = %s AND ctid = (SELECT min(ctid) FROM orderdb.customer_texts"
            " WHERE kind = %s)",
            (action[1], action[1]),
        )
    elif kind == "time_zone":
        c.execute(f"SET TimeZone = '{action[1]}'")
    elif kind == "write_then_read":
        # inside a writing transaction: its own changes are in the answer, nothing is stored
        o = orders[action[1]]
        with c.transaction(force_rollback=True):
            _try(
                c,
                "SELECT FROM orderdb.amend_order(%s, %s, %s, 'prop')",
                (o, _version(c, o), Jsonb({"attributes": {"in_tx": 1}})),
            )
            c.execute(
                "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, now(), 'in_transit',"
                " 'Inside a transaction')",
                (f"TLC-{o}-0",),
            )
            row = c.execute(
                "SELECT orderdb.order_timeline(%s), orderdb._order_timeline_build(%s)", (o, o)
            ).fetchone()
            assert row is not None and row[0] == row[1]
    elif kind == "read_only":
        o = orders[action[1]]
        c.execute("BEGIN READ ONLY")
        try:
            row = c.execute(
                "SELECT orderdb.order_timeline(%s, NULL, 'zh-CN'),"
                " orderdb._order_timeline_build(%s, NULL, 'zh-CN')",
                (o, o),
            ).fetchone()
            assert row is not None and row[0] == row[1]
        finally:
            c.execute("ROLLBACK")


@SETTINGS
@given(
    promised=st.lists(st.one_of(st.none(), st.integers(-90, 90)), min_size=3, max_size=3),
    steps=st.lists(st.tuples(actions, st.lists(reads, min_size=1, max_size=3)), max_size=25),
)
def test_cached_answer_is_the_computed_one(
    conn: psycopg.Connection[Any],
    promised: list[int | None],
    steps: list[tuple[tuple[Any, ...], list[tuple[int, int | None, str]]]],
) -> None:
    c = conn
    c.execute("SET TimeZone = 'UTC'")
    orders = []
    for minutes in promised:
        options: dict[str, Any] = {}
        if minutes is not None:
            options["promised_delivery_at"] = (_now() + timedelta(minutes=minutes)).isoformat()
        orders.append(_new_order(c, options))
    for action, step_reads in steps:
        _apply(c, orders, action)
        for i, customer, locale in step_reads:
            for _ in range(2):  # the second read is served from the cache the first filled
                cached, computed = _compare(c, orders[i], customer, locale)
                assert cached == computed, (action, i, customer, locale)
            if isinstance(cached, dict):
                assert _served_from_cache(c, orders[i], locale)


def test_reads_are_served_from_the_cache_and_writes_invalidate(
    conn: psycopg.Connection[Any],
) -> None:
    c = conn
    c.execute("SET TimeZone = 'UTC'")
    o = _new_order(c, {})
    _apply(c, [o], ("transition", 0, "confirmed"))
    _apply(c, [o], ("transition", 0, "dispatched"))
    _apply(c, [o], ("ship", 0, 0))

    def cached() -> list[tuple[Any, ...]]:
        return c.execute(
            "SELECT c.locale, c.time_zone, c.generation = d.timeline_generation"
            " FROM orderdb.order_timeline_cache c JOIN orderdb.order_directory d USING (order_id)"
            " WHERE c.order_id = %s ORDER BY 1, 2",
            (o,),
        ).fetchall()

    first = c.execute("SELECT orderdb.order_timeline(%s)", (o,)).fetchone()
    assert cached() == [("en", "UTC", True)]
    c.execute("SET TimeZone = 'Asia/Shanghai'")
    c.execute("SELECT orderdb.order_timeline(%s, NULL, 'zh-CN')", (o,))
    assert cached() == [("en", "UTC", True), ("zh-CN", "Asia/Shanghai", True)]
    c.execute("SET TimeZone = 'UTC'")
    # a carrier event that changes neither the order nor the parcel's status still invalidates
    _apply(c, [o], ("event", 0, "in_transit", -1, "Hub A", None, False, 0))
    _apply(c, [o], ("event", 0, "in_transit", -5, "Hub B (late)", None, False, 1))
    assert cached() == [("en", "UTC", False), ("zh-CN", "Asia/Shanghai", False)]
    second = c.execute("SELECT orderdb.order_timeline(%s)", (o,)).fetchone()
    assert first != second
    assert second is not None and second[0]["current_location"] == "Hub A"
    assert cached()[0] == ("en", "UTC", True)
    # the customer check on a cached document
    with pytest.raises(psycopg.Error) as exc:
        c.execute("SELECT orderdb.order_timeline(%s, %s)", (o, CUSTOMER + 1))
    assert exc.value.sqlstate == "OD005"
    assert c.execute("SELECT orderdb.order_timeline(%s, %s)", (o, CUSTOMER)).fetchone() == second
    # a customer text: every document
    g = c.execute("SELECT generation FROM orderdb.order_timeline_generation").fetchone()
    c.execute(
        "UPDATE orderdb.customer_texts SET text = 'Order placed!' WHERE locale = 'en'"
        " AND kind = 'status' AND code = 'pending'"
    )
    try:
        g2 = c.execute("SELECT generation FROM orderdb.order_timeline_generation").fetchone()
        assert g is not None and g2 is not None and g2[0] > g[0]
        third = c.execute("SELECT orderdb.order_timeline(%s)", (o,)).fetchone()
        assert third is not None and third[0]["timeline"][0]["description"] == "Order placed!"
    finally:
        c.execute(
            "UPDATE orderdb.customer_texts SET text = 'Order placed' WHERE locale = 'en'"
            " AND kind = 'status' AND code = 'pending'"
        )


def test_a_purged_order_takes_its_cache_rows_along(conn: psycopg.Connection[Any]) -> None:
    c = conn
    o = _new_order(c, {})
    c.execute("SELECT orderdb.order_timeline(%s)", (o,))
    assert c.execute(
        "SELECT count(*) FROM orderdb.order_timeline_cache WHERE order_id = %s", (o,)
    ).fetchone() == (1,)
    with c.transaction():
        c.execute("DELETE FROM orderdb.order_lines WHERE order_id = %s", (o,))
        c.execute("DELETE FROM orderdb.orders WHERE order_id = %s", (o,))
        c.execute("DELETE FROM orderdb.order_directory WHERE order_id = %s", (o,))
    assert c.execute(
        "SELECT count(*) FROM orderdb.order_timeline_cache WHERE order_id = %s", (o,)
    ).fetchone() == (0,)
    with pytest.raises(psycopg.Error) as exc:
        c.execute("SELECT orderdb.order_timeline(%s)", (o,))
    assert exc.value.sqlstate == "OD004"


def test_concurrent_writers_never_leave_a_stale_document(
    conn: psycopg.Connection[Any], db_dsn: str
) -> None:
    """Readers store documents while writers add carrier events and move the orders: once all
    are done, every order's cached answer is the computed one."""
    c = conn
    c.execute("SET TimeZone = 'UTC'")
    orders = [_new_order(c, {}) for _ in range(4)]
    for o in orders:
        for status in ("confirmed", "dispatched"):
            _apply(c, [o], ("transition", 0, status))
        _apply(c, [o], ("ship", 0, 0))
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True) as w:
                for k in range(60):
                    o = orders[(n + k) % len(orders)]
                    code = ["in_transit", "out_for_delivery", "in_transit"][k % 3]
                    _try(
                        w,
                        "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, %s, %s, %s)",
                        (f"TLC-{o}-0", _now() - timedelta(minutes=k % 7), code, f"W{n}-{k}"),
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True) as r:
                r.execute("SET TimeZone = 'UTC'")
                while not stop.is_set():
                    for o in orders:
                        for locale in ("en", "zh-CN"):
                            r.execute("SELECT orderdb.order_timeline(%s, NULL, %s)", (o, locale))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    for o in orders:
        for locale in ("en", "zh-CN"):
            cached, computed = _compare(c, o, None, locale)
            assert cached == computed
        assert c.execute(
            "SELECT count(*) FROM orderdb.order_timeline_cache c"
            " JOIN orderdb.order_directory d USING (order_id)"
            " WHERE c.order_id = %s AND c.generation = d.timeline_generation",
            (o,),
        ).fetchone() == (2,)


def test_retention_and_truncate_bump_every_document(conn: psycopg.Connection[Any]) -> None:
    c = conn

    def generation() -> int:
        row = c.execute("SELECT generation FROM orderdb.order_timeline_generation").fetchone()
        assert row is not None
        return int(row[0])

    g = generation()
    c.execute("SELECT orderdb._timeline_bump_all()")
    assert generation() == g + 1
    with c.transaction(force_rollback=True):
        c.execute("TRUNCATE orderdb.order_status_history")
        assert generation() == g + 2, "a TRUNCATE fires no row trigger: every document goes"
    assert generation() == g + 1
    src = c.execute(
        "SELECT pg_get_functiondef(%s::regprocedure)",
        ("orderdb._maintain_partitions(timestamptz, boolean)",),
    ).fetchone()
    assert src is not None
    assert "_timeline_bump_all()" in src[0].split("DETACH PARTITION", 1)[1]


def test_writers_bump_only_stored_orders_and_block_storing(
    conn: psycopg.Connection[Any], db_dsn: str
) -> None:
    """A carrier event for an order nobody has read leaves its directory row alone; once a
    document is stored, the next event bumps the generation. While a writer of the order has not
    committed, a reader answers (the document as of its snapshot) but stores nothing; outside
    READ COMMITTED nothing is stored either."""
    c = conn
    c.execute("SET TimeZone = 'UTC'")
    o = _new_order(c, {})
    for status in ("confirmed", "dispatched"):
        _apply(c, [o], ("transition", 0, status))
    _apply(c, [o], ("ship", 0, 0))

    def generation() -> int:
        row = c.execute(
            "SELECT timeline_generation FROM orderdb.order_directory WHERE order_id = %s", (o,)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def stored() -> int:
        row = c.execute(
            "SELECT count(*) FROM orderdb.order_timeline_cache WHERE order_id = %s", (o,)
        ).fetchone()
        assert row is not None
        return int(row[0])

    g = generation()
    _apply(c, [o], ("event", 0, "in_transit", -2, "Hub A", None, False, 0))
    assert generation() == g, "no document stored: no update of the directory row"
    c.execute("SELECT orderdb.order_timeline(%s)", (o,))
    assert stored() == 1
    _apply(c, [o], ("event", 0, "in_transit", -1, "Hub B", None, False, 1))
    assert generation() == g + 1, "a stored document: the generation moves"

    c.execute("DELETE FROM orderdb.order_timeline_cache WHERE order_id = %s", (o,))
    with psycopg.connect(db_dsn) as writer:  # a writer left uncommitted
        writer.execute(
            "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, now(), 'in_transit',"
            " 'Hub C')",
            (f"TLC-{o}-0",),
        )
        doc = c.execute("SELECT orderdb.order_timeline(%s)", (o,)).fetchone()
        assert doc is not None and doc[0]["current_location"] == "Hub B"
        assert stored() == 0, "nothing stored while the order's writer is open"
        writer.commit()
    with c.transaction():
        c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cached, computed = c.execute(
            "SELECT orderdb.order_timeline(%s), orderdb._order_timeline_build(%s)", (o, o)
        ).fetchone() or (None, None)
        assert cached == computed and cached["current_location"] == "Hub C"
    assert stored() == 0, "not stored outside READ COMMITTED"
    c.execute("SELECT orderdb.order_timeline(%s)", (o,))
    assert stored() == 1


def test_a_writer_bumps_while_a_reader_is_storing(
    conn: psycopg.Connection[Any], db_dsn: str
) -> None:
    """A reader storing a document holds the order's advisory lock (its document may predate the
    writer's change): a writer that finds the lock taken bumps the generation even though no
    document is stored yet."""
    c = conn
    o = _new_order(c, {})
    g = c.execute(
        "SELECT timeline_generation FROM orderdb.order_directory WHERE order_id = %s", (o,)
    ).fetchone()
    with psycopg.connect(db_dsn) as reader:  # a reader in the middle of storing
        reader.execute("SELECT pg_advisory_xact_lock(1869898596, hashint8(%s::bigint))", (o,))
        _apply(c, [o], ("transition", 0, "confirmed"))
        reader.rollback()
    g2 = c.execute(
        "SELECT timeline_generation FROM orderdb.order_directory WHERE order_id = %s", (o,)
    ).fetchone()
    assert g is not None and g2 is not None and g2[0] == g[0] + 1


def test_every_writer_invalidates_without_triggers(conn: psycopg.Connection[Any]) -> None:
    """The tables a document reads have no insert/update row triggers for the cache (they cost a
    quarter of record_tracking_event): every function of the schema that inserts into or updates
    carrier events, shipments or an order's history, or updates an order, calls
    orderdb._timeline_bump_order itself (an order's insert needs none: nothing of it is cached).
    A new writer without the call fails here; deletes and TRUNCATE keep their triggers."""
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, p.prosrc FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " JOIN pg_language l ON l.oid = p.prolang AND l.lanname IN ('plpgsql', 'sql')"
        " WHERE n.nspname LIKE 'orderdb%'"
        "   AND (p.prosrc ~* '(insert\\s+into|update)\\s+orderdb\\."
        "(tracking_events|shipments|order_status_history)\\M'"
        "        OR p.prosrc ~* 'update\\s+orderdb\\.orders\\M')"
    ).fetchall()
    writers = {name.split("(")[0] for name, _ in rows}
    assert {
        "orderdb.record_tracking_event",
        "orderdb.record_tracking_events",
        "orderdb._create_shipment",
        "orderdb._apply_transition",
        "orderdb._record_status_change",
        "orderdb.amend_order",
        "orderdb.reallocate_order",
    } <= writers, writers
    missing = sorted(name for name, src in rows if "_timeline_bump_order(" not in src)
    assert missing == [], f"writers without a timeline bump: {missing}"
    triggers = conn.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
        " WHERE tgname LIKE 'timeline_cache_row_%' AND tgparentid = 0"
        " ORDER BY 1, 2"
    ).fetchall()
    assert [t for t in triggers if not t[1].endswith("_del")] == [], triggers


def test_each_tracking_writer_invalidates_a_stored_document(conn: psycopg.Connection[Any]) -> None:
    """For an order whose document is stored, each writer of carrier events and shipments makes
    the next read answer the new state: an event matched when its parcel ships
    (_create_shipment, _match_tracking_events), a single event (record_tracking_event), a batch
    (record_tracking_events), a late delivered scan in a batch and alone; each read equals the
    uncached build and is stored again."""
    c = conn
    c.execute("SET TimeZone = 'UTC'")
    o = _new_order(c, {})
    tn = f"TLC-{o}-0"
    for status in ("confirmed", "dispatched"):
        _apply(c, [o], ("transition", 0, status))

    def read_and_check(location: str | None) -> None:
        for _ in range(2):
            cached, computed = _compare(c, o, None, "en")
            assert cached == computed
        assert _served_from_cache(c, o, "en")
        if location is not None:
            assert cached["current_location"] == location, cached

    def event(code: str, hours: int, location: str) -> None:
        c.execute(
            "SELECT FROM orderdb.record_tracking_event('GENERIC', %s, %s, %s, %s)",
            (tn, _now() + timedelta(hours=hours), code, location),
        )

    def batch(*events: tuple[str, int, str]) -> None:
        c.execute(
            "SELECT FROM orderdb.record_tracking_events(%s)",
            (
                Jsonb(
                    [
                        {
                            "carrier": "GENERIC",
                            "tracking_number": tn,
                            "event_time": (_now() + timedelta(hours=h)).isoformat(),
                            "carrier_status": code,
                            "location": loc,
                        }
                        for code, h, loc in events
                    ]
                ),
            ),
        )

    event("in_transit", -10, "Before shipping")  # unmatched: no shipment with that number yet
    read_and_check(None)
    _apply(c, [o], ("ship", 0, 0))  # the shipment matches the earlier event
    read_and_check("Before shipping")
    event("in_transit", -8, "Single event")
    read_and_check("Single event")
    batch(("in_transit", -6, "Batch one"), ("in_transit", -5, "Batch two"))
    read_and_check("Batch two")
    batch(("in_transit", -9, "Late in a batch"))  # older than the newest: location unchanged
    read_and_check("Batch two")
    event("delivered", -7, "Late delivered scan")  # delivered, though older than the newest
    read_and_check(None)
    cached, _ = _compare(c, o, None, "en")
    assert cached["status"] == "delivered", cached


def test_each_order_writer_invalidates_a_stored_document(conn: psycopg.Connection[Any]) -> None:
    """For an order whose document is stored, each writer of the order and its history makes the
    next read answer the new state: a transition, an amendment (its promised time), a hold and
    its release, a reallocation to another warehouse; each read equals the uncached build and is
    stored again."""
    c = conn
    c.execute("SET TimeZone = 'UTC'")
    o = _new_order(c, {})

    def read_and_check() -> dict[str, Any]:
        for _ in range(2):
            cached, computed = _compare(c, o, None, "en")
            assert cached == computed
        assert _served_from_cache(c, o, "en")
        assert isinstance(cached, dict)
        return cached

    assert read_and_check()["status"] == "pending"
    c.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', %s)", (o, _version(c, o)))
    assert read_and_check()["status"] == "confirmed"
    before = read_and_check()
    promised = (_now() + timedelta(days=3)).replace(microsecond=0)
    c.execute(
        "SELECT FROM orderdb.amend_order(%s, %s, %s, 'test')",
        (o, _version(c, o), Jsonb({"promised_delivery_at": promised.isoformat()})),
    )
    assert read_and_check() != before
    c.execute("SELECT FROM orderdb.transition_order(%s, 'on_hold', %s)", (o, _version(c, o)))
    assert read_and_check()["status"] == "on_hold"
    c.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', %s)", (o, _version(c, o)))
    assert read_and_check()["status"] == "confirmed"
    before = read_and_check()
    c.execute(
        "SELECT FROM orderdb.reallocate_order(%s, %s, %s, 'ops', 'moved')",
        (o, WH2, _version(c, o)),
    )
    after = read_and_check()
    assert after != before, "a reallocation adds a step to the timeline"
