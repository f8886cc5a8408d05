"""Partitions and retention: orderdb.maintain_partitions and `orderdb maintain` on a
range-partitioned append-only table (created here; see docs/operations.md for which orderdb tables
are meant to be partitioned)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from orderdb.cli import main


@pytest.fixture
def db(fresh_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE orderdb.t_events (
                event_id    bigint GENERATED ALWAYS AS IDENTITY,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                body        text,
                PRIMARY KEY (event_id, recorded_at)
            ) PARTITION BY RANGE (recorded_at);
            CREATE TABLE orderdb.t_events_default PARTITION OF orderdb.t_events DEFAULT
                WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
            INSERT INTO orderdb.partition_policy (table_name, premake, retention)
            VALUES ('orderdb.t_events', 2, interval '3 months');
            """
        )
        yield conn


def _maintain(conn: psycopg.Connection[Any], now: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT action, partition_name, rows_moved FROM orderdb.maintain_partitions(%s)"
        " WHERE parent_table = 'orderdb.t_events'",
        (now,),
    ).fetchall()


def _where(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in conn.execute(
            "SELECT tableoid::regclass::text, body FROM orderdb.t_events ORDER BY recorded_at"
        ).fetchall()
    ]


def test_creates_months_ahead_and_moves_rows_out_of_default(db: psycopg.Connection[Any]) -> None:
    db.execute(
        "INSERT INTO orderdb.t_events (recorded_at, body) VALUES"
        " ('2026-11-03Z', 'nov'), ('2026-12-24Z', 'dec'), ('2026-06-05Z', 'june')"
    )
    assert _maintain(db, "2026-11-25T10:00:00Z") == [
        ("created", "orderdb.t_events_p202611", 1),
        ("created", "orderdb.t_events_p202612", 1),
        ("created", "orderdb.t_events_p202701", 0),
    ]
    assert _where(db) == [
        ("orderdb.t_events_default", "june"),  # no partition is made for past months
        ("orderdb.t_events_p202611", "nov"),
        ("orderdb.t_events_p202612", "dec"),
    ]
    assert _maintain(db, "2026-11-25T10:00:00Z") == []  # idempotent
    # new partitions keep the storage settings of the DEFAULT partition
    options = db.execute(
        "SELECT reloptions FROM pg_class WHERE oid = 'orderdb.t_events_p202612'::regclass"
    ).fetchone()
    assert options is not None
    assert sorted(options[0]) == ["autovacuum_vacuum_insert_scale_factor=0.05", "fillfactor=100"]
    # inserts of the new months land in their partitions, not in DEFAULT
    row = db.execute(
        "INSERT INTO orderdb.t_events (recorded_at, body) VALUES ('2027-01-02Z', 'jan')"
        " RETURNING tableoid::regclass::text"
    ).fetchone()
    assert row == ("orderdb.t_events_p202701",)


def test_archives_partitions_past_retention(db: psycopg.Connection[Any]) -> None:
    _maintain(db, "2026-11-25T10:00:00Z")
    db.execute(
        "INSERT INTO orderdb.t_events (recorded_at, body) VALUES"
        " ('2026-11-03Z', 'nov'), ('2026-12-24Z', 'dec')"
    )
    # March 2027 with 3 months' retention: partitions ending by 2026-12-01 go
    actions = _maintain(db, "2027-03-02T00:00:00Z")
    assert ("archived", "orderdb_archive.t_events_p202611", 0) in actions
    assert [a for a in actions if a[0] == "archived"] == [
        ("archived", "orderdb_archive.t_events_p202611", 0)
    ]
    assert _where(db) == [("orderdb.t_events_p202612", "dec")]
    assert db.execute("SELECT body FROM orderdb_archive.t_events_p202611").fetchall() == [("nov",)]
    health = db.execute(
        "SELECT table_name FROM orderdb_ops.table_health WHERE table_name LIKE '%t_events_p%'"
    ).fetchall()
    assert ("orderdb_archive.t_events_p202611",) in health

    db.execute("UPDATE orderdb.partition_policy SET archive = false")
    dropped = _maintain(db, "2027-04-02T00:00:00Z")
    assert ("dropped", "orderdb.t_events_p202612", 0) in dropped
    assert _where(db) == []


def test_rejects_a_table_that_is_not_range_partitioned(db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE orderdb.t_plain (at timestamptz)")
    db.execute("INSERT INTO orderdb.partition_policy (table_name) VALUES ('orderdb.t_plain')")
    with pytest.raises(psycopg.Error) as info:
        _maintain(db, "2026-11-25T10:00:00Z")
    assert info.value.sqlstate == "22023"
    assert "orderdb.t_plain" in str(info.value)
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT * FROM orderdb.maintain_partitions('infinity')")
    assert info.value.sqlstate == "22023"


def test_maintain_command_exports_archived_partitions(
    fresh_dsn: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    # partitions of the previous 6 months (made as if maintain had run back then, keeping
    # everything), one row each
    db.execute("UPDATE orderdb.partition_policy SET retention = NULL")
    for months_ago in range(6, 0, -1):
        db.execute(
            "SELECT * FROM orderdb.maintain_partitions(now() - make_interval(months => %s))",
            (months_ago,),
        )
        db.execute(
            "INSERT INTO orderdb.t_events (recorded_at, body)"
            " VALUES (date_trunc('month', now() - make_interval(months => %s)) + interval '1 day',"
            " 'm' || %s)",
            (months_ago, months_ago),
        )
    db.execute("UPDATE orderdb.partition_policy SET retention = interval '3 months'")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "--dsn",
            fresh_dsn,
            "maintain",
            "--json",
            "--export-dir",
            str(tmp_path),
            "--drop-exported",
        ],
    )
    assert result.exit_code == 0, result.output
    actions = [json.loads(line) for line in result.output.splitlines()]
    archived = [
        a
        for a in actions
        if a["action"].startswith("archived") and a["parent_table"] == "orderdb.t_events"
    ]
    # retention 3 months: the partitions of 6, 5 and 4 months ago (ending at or before the month
    # start three months back) leave
    assert len(archived) == 3
    for a in archived:
        assert a["action"] == "archived, exported, dropped"
        path = Path(a["exported_to"])
        with path.open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 1 and rows[0]["body"] in {"m6", "m5", "m4"}
    assert {r[0] for r in db.execute("SELECT body FROM orderdb.t_events").fetchall()} == {
        "m3",
        "m2",
        "m1",
    }
    left = db.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'orderdb_archive'"
    ).fetchone()
    assert left == (0,)
    again = runner.invoke(main, ["--dsn", fresh_dsn, "maintain"])
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output


def test_status_history_is_partitioned_and_kept_by_maintain(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        kind = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'orderdb.order_status_history'::regclass"
        ).fetchone()
        assert kind == ("p",)
        key = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'orderdb.order_status_history'::regclass AND contype = 'p'"
        ).fetchone()
        assert key == ("PRIMARY KEY (warehouse_id, order_id, version, changed_at)",)
        policy = conn.execute(
            "SELECT premake, retention, archive FROM orderdb.partition_policy"
            " WHERE table_name = 'orderdb.order_status_history'"
        ).fetchone()
        assert policy == (3, None, True)

        # business as usual: transitions write history rows, order_history reads them
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-P', 10)")
        row = conn.execute(
            'SELECT order_id FROM orderdb.create_order(7, 1, \'[{"sku": "SKU-P", "quantity": 1}]\')'
        ).fetchone()
        assert row is not None
        order_id = row[0]
        conn.execute("SELECT orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT orderdb.transition_order(%s, 'cancelled', 2)", (order_id,))
        where = conn.execute(
            "SELECT tableoid::regclass::text, version FROM orderdb.order_status_history"
            " WHERE order_id = %s ORDER BY version",
            (order_id,),
        ).fetchall()
        # recorded this month: the legacy partition covers everything up to next month
        assert where == [
            ("orderdb.order_status_history_legacy", 2),
            ("orderdb.order_status_history_legacy", 3),
        ]
        history = conn.execute(
            "SELECT version, to_status FROM orderdb.order_history(%s)", (order_id,)
        ).fetchall()
        assert [tuple(h) for h in history if h[0] >= 2] == [(2, "confirmed"), (3, "cancelled")]

        # maintain makes next months; a row recorded next month goes to its partition
        made = conn.execute(
            "SELECT partition_name FROM orderdb.maintain_partitions()"
            " WHERE parent_table = 'orderdb.order_status_history'"
        ).fetchall()
        assert len(made) == 3  # months 1..3 ahead (this month is the legacy partition's)
        nxt = conn.execute(
            "SELECT (orderdb._month_bounds(now(), 1)).range_from + interval '1 hour'"
        ).fetchone()
        assert nxt is not None
        placed = conn.execute(
            "INSERT INTO orderdb.order_status_history (warehouse_id, order_id, version,"
            " from_status, to_status, changed_at) VALUES (1, %s, 99, 'x', 'y', %s)"
            " RETURNING tableoid::regclass::text",
            (order_id, nxt[0]),
        ).fetchone()
        assert placed is not None and placed[0].startswith("orderdb.order_status_history_p")
