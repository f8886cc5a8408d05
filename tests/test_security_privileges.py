"""Least privilege, end to end (DESIGN principle 8), with SET ROLE on a real server.

As orderdb_app (and orderdb_ingest, orderdb_ops) every direct INSERT, UPDATE, DELETE, TRUNCATE
and SELECT on every table of schema orderdb fails with 42501 — the tables are listed from
pg_tables at test time, so tables added later are covered — while the API works through its
SECURITY DEFINER functions. orderdb_ops reads every view of orderdb_ops. Webhook secrets are
readable by the owner only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

ROLES = ("orderdb_app", "orderdb_ingest", "orderdb_ops")
INSUFFICIENT_PRIVILEGE = "42501"


def _as_role(dsn: str, role: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    return conn


@pytest.fixture
def owner(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


def _tables(owner: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(table, a column an UPDATE may set) of every table in schema orderdb."""
    rows = owner.execute(
        """
        SELECT t.tablename,
               (SELECT a.attname FROM pg_attribute a
                 WHERE a.attrelid = format('%I.%I', t.schemaname, t.tablename)::regclass
                   AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attidentity <> 'a' AND a.attgenerated = ''
                 ORDER BY a.attnum LIMIT 1)
          FROM pg_tables t
         WHERE t.schemaname = 'orderdb'
         ORDER BY 1
        """
    ).fetchall()
    assert len(rows) >= 9, rows  # the core tables at least
    return [(str(r[0]), str(r[1])) for r in rows]


def _refused(conn: psycopg.Connection[Any], query: sql.Composable) -> str | None:
    """None if ``query`` failed with 42501, else what happened instead."""
    try:
        conn.execute(query)
    except psycopg.Error as exc:
        if exc.sqlstate == INSUFFICIENT_PRIVILEGE:
            return None
        return f"{exc.sqlstate}: {exc}"
    return "succeeded"


@pytest.mark.parametrize("role", ROLES)
def test_no_role_reads_or_writes_any_table(
    db_dsn: str, owner: psycopg.Connection[Any], role: str
) -> None:
    tables = _tables(owner)
    problems: list[str] = []
    with _as_role(db_dsn, role) as conn:
        for table, column in tables:
            name = sql.Identifier("orderdb", table)
            col = sql.Identifier(column)
            statements = {
                "INSERT": sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name),
                "UPDATE": sql.SQL("UPDATE {} SET {} = {}").format(name, col, col),
                "DELETE": sql.SQL("DELETE FROM {}").format(name),
                "TRUNCATE": sql.SQL("TRUNCATE {}").format(name),
                "SELECT": sql.SQL("SELECT * FROM {} LIMIT 1").format(name),
            }
            for verb, query in statements.items():
                outcome = _refused(conn, query)
                if outcome is not None:
                    problems.append(f"{verb} orderdb.{table} as {role}: {outcome}")
    assert problems == []


@pytest.mark.parametrize("role", ROLES)
def test_no_role_uses_a_sequence(db_dsn: str, owner: psycopg.Connection[Any], role: str) -> None:
    seqs = [
        str(r[0])
        for r in owner.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'orderdb' ORDER BY 1"
        ).fetchall()
    ]
    assert "order_id_seq" in seqs
    problems: list[str] = []
    with _as_role(db_dsn, role) as conn:
        for seq in seqs:
            regclass = sql.Literal(f"orderdb.{seq}")
            for query in (
                sql.SQL("SELECT nextval({})").format(regclass),
                sql.SQL("SELECT setval({}, 1)").format(regclass),
                sql.SQL("SELECT last_value FROM {}").format(sql.Identifier("orderdb", seq)),
            ):
                outcome = _refused(conn, query)
                if outcome is not None:
                    problems.append(f"{query.as_string(conn)} as {role}: {outcome}")
    assert problems == []


@pytest.mark.parametrize("role", ROLES)
def test_no_role_calls_an_internal_function(
    db_dsn: str, owner: psycopg.Connection[Any], role: str
) -> None:
    """Every orderdb._x helper (SECURITY DEFINER ones included) refuses every role."""
    helpers = owner.execute(
        """
        SELECT p.oid::integer, p.oid::regprocedure::text,
               p.prosecdef AND p.provolatile = 'v' AS powerful
          FROM pg_proc p
         WHERE p.pronamespace = 'orderdb'::regnamespace AND p.proname ~ '^_'
         ORDER BY 2
        """
    ).fetchall()
    assert helpers
    with _as_role(db_dsn, role) as conn:
        for oid, helper, powerful in helpers:
            allowed = conn.execute(
                "SELECT has_function_privilege(%s::integer::oid, 'EXECUTE')", (oid,)
            ).fetchone()
            # orderdb_ops may run the helpers its views call when that adds no power
            # (sql/90_grants.sql step 4); nobody may run a writing SECURITY DEFINER helper
            if role != "orderdb_ops" or powerful:
                assert allowed == (False,), f"{role} may execute {helper}"
        outcome = _refused(
            conn,
            sql.SQL("SELECT orderdb._emit_event('order.created', 1, 1, '{}')"),
        )
        assert outcome is None, outcome


def test_the_api_works_as_orderdb_app(db_dsn: str) -> None:
    with _as_role(db_dsn, "orderdb_app") as app:
        stock = app.execute(
            "SELECT on_hand FROM orderdb.receive_stock(901, 'PRIV-SKU', 10, 'test')"
        ).fetchone()
        assert stock == (10,)
        created = app.execute(
            "SELECT order_id, version FROM orderdb.create_order(5, 901, %s::jsonb, 'priv-key-1')",
            (json.dumps([{"sku": "PRIV-SKU", "quantity": 2, "unit_price": "1.50"}]),),
        ).fetchone()
        assert created is not None
        order_id, version = created
        moved = app.execute(
            "SELECT status, version FROM orderdb.transition_order(%s, 'confirmed', %s, 'test')",
            (order_id, version),
        ).fetchone()
        assert moved == ("confirmed", 2)
        doc = app.execute("SELECT orderdb.get_order(%s)", (order_id,)).fetchone()
        assert doc is not None and doc[0]["status"] == "confirmed"
        history = app.execute(
            "SELECT version FROM orderdb.order_history(%s)", (order_id,)
        ).fetchall()
        assert [h[0] for h in history] == [1, 2]
        level = app.execute("SELECT * FROM orderdb.stock_level(901, 'PRIV-SKU')").fetchone()
        assert level == (10, 2, 8)
        edges = app.execute("SELECT count(*) FROM orderdb.allowed_transitions()").fetchone()
        assert edges is not None and edges[0] > 10
        events = app.execute(
            "SELECT event_id, event_type FROM orderdb.read_events('priv-consumer', 100)"
        ).fetchall()
        assert ("order.created" in {e[1] for e in events}) and events
        app.execute("SELECT orderdb.ack_events('priv-consumer', %s)", (events[-1][0],))
        timeline = app.execute(
            "SELECT to_regprocedure('orderdb.order_timeline(bigint, bigint, text)') IS NOT NULL"
        ).fetchone()
        if timeline is not None and timeline[0]:
            doc = app.execute("SELECT orderdb.order_timeline(%s)", (order_id,)).fetchone()
            assert doc is not None and doc[0]["order_id"] == order_id
        # not the ingest entry points, not the admin functions
        for query in (
            "SELECT orderdb.purge_events()",
            "SELECT * FROM orderdb.create_webhook_subscription('https://example.org/hook')",
        ):
            assert _refused(app, sql.SQL(query)) is None, query


def test_the_ingest_entry_points_work_as_orderdb_ingest(
    db_dsn: str, owner: psycopg.Connection[Any]
) -> None:
    owner.execute("SELECT * FROM orderdb.receive_stock(902, 'INGEST-SKU', 10)")
    row = owner.execute(
        "SELECT order_id FROM orderdb.create_order(6, 902, %s::jsonb)",
        (json.dumps([{"sku": "INGEST-SKU", "quantity": 1}]),),
    ).fetchone()
    assert row is not None
    order_id = row[0]
    for version, status in enumerate(("confirmed", "dispatched"), start=1):
        owner.execute(
            "SELECT * FROM orderdb.transition_order(%s, %s, %s)", (order_id, status, version)
        )
    with _as_role(db_dsn, "orderdb_ingest") as ingest:
        assert (
            _refused(
                ingest,
                sql.SQL('SELECT * FROM orderdb.create_order(1, 902, \'[{"sku": "X"}]\')'),
            )
            is None
        )
        assert _refused(ingest, sql.SQL("SELECT orderdb.get_order(1)")) is None
        wms = owner.execute(
            "SELECT to_regprocedure('orderdb.wms_callback(text, bigint, text, jsonb, text)')"
        ).fetchone()
        if wms is not None and wms[0] is not None:
            result = ingest.execute(
                "SELECT status FROM orderdb.wms_callback('priv-evt-1', %s, 'PICKED', '{}')",
                (order_id,),
            ).fetchone()
            assert result == ("picked",)
        tracking = owner.execute(
            "SELECT to_regprocedure('orderdb.record_tracking_event(text, text, timestamptz, "
            "text, text, text, text, jsonb)')"
        ).fetchone()
        if tracking is not None and tracking[0] is not None:
            result = ingest.execute(
                "SELECT duplicate, order_id FROM orderdb.record_tracking_event("
                "'GENERIC', 'PRIV-UNKNOWN-1', now(), 'in_transit')"
            ).fetchone()
            assert result == (False, None)


def test_ops_reads_every_ops_view_and_nothing_else(
    db_dsn: str, owner: psycopg.Connection[Any]
) -> None:
    views = [
        str(r[0])
        for r in owner.execute(
            """
            SELECT c.relname FROM pg_class c
             WHERE c.relnamespace = 'orderdb_ops'::regnamespace AND c.relkind IN ('v', 'm')
             ORDER BY 1
            """
        ).fetchall()
    ]
    assert {"inventory_drift", "relay_lag"} <= set(views)
    problems: list[str] = []
    with _as_role(db_dsn, "orderdb_ops") as ops:
        for view in views:
            try:
                ops.execute(
                    sql.SQL("SELECT * FROM {} LIMIT 5").format(sql.Identifier("orderdb_ops", view))
                ).fetchall()
            except psycopg.Error as exc:
                problems.append(f"orderdb_ops.{view}: {exc.sqlstate}: {exc}")
        assert _refused(ops, sql.SQL("SELECT orderdb.get_order(1)")) is None
        # pg_monitor: the health views see other sessions' queries
        other = owner.execute("SELECT pg_backend_pid()").fetchone()
        assert other is not None
        seen = ops.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", (other[0],)
        ).fetchone()
        assert seen is not None and seen[0] != "<insufficient privilege>"
    assert problems == []


def test_webhook_secrets_are_readable_by_the_owner_only(
    db_dsn: str, owner: psycopg.Connection[Any]
) -> None:
    owner.execute(
        "SELECT * FROM orderdb.create_webhook_subscription("
        "'https://example.org/priv-hook', NULL, 'priv-secret-0123456789')"
    )
    row = owner.execute(
        "SELECT count(*) FROM orderdb.webhook_subscriptions WHERE secret = 'priv-secret-0123456789'"
    ).fetchone()
    assert row == (1,)
    for role in ROLES:
        with _as_role(db_dsn, role) as conn:
            for query in (
                "SELECT secret FROM orderdb.webhook_subscriptions",
                "SELECT * FROM orderdb._webhook_claim(10)",
            ):
                assert _refused(conn, sql.SQL(query)) is None, (role, query)
