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
    """maintain_partitions as of `now`; a `now` more than a day ahead of the server's clock
    (simulated months) goes through the owner's orderdb._maintain_partitions, since the public
    function refuses it."""
    ahead = conn.execute("SELECT %s::timestamptz > now() + interval '1 day'", (now,)).fetchone()
    if ahead is not None and ahead[0]:
        return conn.execute(
            "SELECT action, partition_name, rows_moved FROM orderdb._maintain_partitions(%s)"
            " WHERE parent_table = 'orderdb.t_events'",
            (now,),
        ).fetchall()
    return conn.execute(
        "SELECT action, partition_name, rows_moved FROM orderdb.maintain_partitions(%s)"
        " WHERE parent_table = 'orderdb.t_events'",
        (now,),
    ).fetchall()


def _months_ago(conn: psycopg.Connection[Any], months: tuple[int, ...]) -> list[str]:
    """YYYYMM (UTC) of the months that many months before the server's now, oldest first."""
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT to_char((orderdb._month_bounds(now(), -m)).range_from AT TIME ZONE 'UTC',"
            " 'YYYYMM') FROM unnest(%s::int[]) AS m ORDER BY m DESC",
            (list(months),),
        ).fetchall()
    ]


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
    # a dry run lists the same three partitions and changes (and exports) nothing
    dry = runner.invoke(
        main,
        ["--dsn", fresh_dsn, "maintain", "--dry-run", "--json", "--export-dir", str(tmp_path)],
    )
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert sorted(
        a["partition_name"]
        for a in planned
        if a["action"] == "archived" and a["parent_table"] == "orderdb.t_events"
    ) == [f"orderdb_archive.t_events_p{m}" for m in _months_ago(db, (6, 5, 4))]
    assert all(a["exported_to"] is None for a in planned)
    assert list(tmp_path.iterdir()) == []
    assert db.execute("SELECT count(*) FROM orderdb.t_events").fetchone() == (6,)
    table = runner.invoke(main, ["--dsn", fresh_dsn, "maintain", "--dry-run"])
    assert table.exit_code == 0, table.output
    assert "dry run: nothing was changed" in table.output
    assert db.execute("SELECT count(*) FROM orderdb.t_events").fetchone() == (6,)
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
    actions = json.loads(result.stdout)
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


def _value(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _track(conn: psycopg.Connection[Any], event_time: Any, event_id: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT tracking_event_id, duplicate FROM orderdb.record_tracking_event("
        "'GENERIC', 'TN-MONTHS', %s, 'in_transit', NULL, NULL, %s)",
        (event_time, event_id),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_outbox_and_tracking_events_are_partitioned_across_a_month_boundary(
    fresh_dsn: str,
) -> None:
    """The outbox (by created_at) and the carrier events (by event_time) are partitioned by
    month: rows land in their month, a carrier event resent with another event time is still a
    duplicate when the two times fall in different months, and an outbox month leaves only once
    every consumer has acknowledged it."""
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        keys = conn.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid IN ('orderdb.outbox'::regclass, 'orderdb.tracking_events'::regclass)"
            " AND contype IN ('p', 'u') ORDER BY 1, 2"
        ).fetchall()
        assert keys == [
            ("orderdb.outbox", "PRIMARY KEY (event_id, created_at)"),
            ("orderdb.tracking_events", "PRIMARY KEY (tracking_event_id, event_time)"),
            (
                "orderdb.tracking_events",
                "UNIQUE (carrier, tracking_number, event_time, carrier_status)",
            ),
        ]
        policies = conn.execute(
            "SELECT table_name, premake, retention::text, archive FROM orderdb.partition_policy"
            " WHERE table_name IN ('orderdb.outbox', 'orderdb.tracking_events') ORDER BY 1"
        ).fetchall()
        assert policies == [
            ("orderdb.outbox", 1, "3 mons", False),
            ("orderdb.tracking_events", 1, None, True),
        ]
        # start from monthly partitions only: the (empty) legacy partitions go, and maintain
        # makes this month and the next
        assert _value(conn, "SELECT count(*) FROM orderdb.outbox_legacy") == 0
        assert _value(conn, "SELECT count(*) FROM orderdb.tracking_events_legacy") == 0
        conn.execute("DROP TABLE orderdb.outbox_legacy, orderdb.tracking_events_legacy")
        this_month = _value(conn, "SELECT (orderdb._month_bounds(now(), 0)).range_from")
        suffix = [
            _value(
                conn,
                "SELECT to_char((orderdb._month_bounds(now(), %s)).range_from AT TIME ZONE 'UTC',"
                " 'YYYYMM')",
                k,
            )
            for k in (-1, 0, 1)
        ]
        made = conn.execute(
            "SELECT parent_table, action, partition_name FROM orderdb.maintain_partitions()"
            " WHERE parent_table IN ('orderdb.outbox', 'orderdb.tracking_events')"
        ).fetchall()
        assert made == [
            ("orderdb.outbox", "created", f"orderdb.outbox_p{suffix[1]}"),
            ("orderdb.outbox", "created", f"orderdb.outbox_p{suffix[2]}"),
            ("orderdb.tracking_events", "created", f"orderdb.tracking_events_p{suffix[1]}"),
            ("orderdb.tracking_events", "created", f"orderdb.tracking_events_p{suffix[2]}"),
        ]

        # one second either side of the start of this month
        before = _value(conn, "SELECT %s - interval '1 second'", this_month)
        after = _value(conn, "SELECT %s + interval '1 second'", this_month)
        first_id, duplicate = _track(conn, after, "EV-1")
        assert not duplicate
        # the same carrier event id again, stamped in the previous month: still the same event
        assert _track(conn, before, "EV-1") == (first_id, True)
        second_id, duplicate = _track(conn, before, "EV-2")
        assert not duplicate and second_id != first_id
        # and the natural key across partitions' own keys: the same (time, code) again
        assert _track(conn, before, "EV-3") == (second_id, True)
        where = conn.execute(
            "SELECT event_id, tableoid::regclass::text FROM orderdb.tracking_events"
            " WHERE tracking_number = 'TN-MONTHS' ORDER BY event_time"
        ).fetchall()
        assert where == [
            ("EV-2", "orderdb.tracking_events_default"),  # last month has no partition yet
            ("EV-1", f"orderdb.tracking_events_p{suffix[1]}"),
        ]
        # the outbox events were written now: this month's partition
        outbox = conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM orderdb.outbox"
            " WHERE event_type = 'tracking.recorded'"
        ).fetchall()
        assert outbox == [(f"orderdb.outbox_p{suffix[1]}",)]

        # maintain as if run last month: it makes that month and moves the row out of DEFAULT
        moved = conn.execute(
            "SELECT action, partition_name, rows_moved FROM orderdb.maintain_partitions(%s)"
            " WHERE parent_table = 'orderdb.tracking_events'",
            (before,),
        ).fetchall()
        assert moved == [("created", f"orderdb.tracking_events_p{suffix[0]}", 1)]
        assert conn.execute(
            "SELECT tableoid::regclass::text FROM orderdb.tracking_events WHERE event_id = 'EV-2'"
        ).fetchone() == (f"orderdb.tracking_events_p{suffix[0]}",)

        # retention: five months on, this month's outbox partition is past its 3 months, but a
        # consumer has not acknowledged its events: it is held, not dropped
        conn.execute("SELECT count(*) FROM orderdb.read_events('months', 1)")  # the consumer
        # five months on, simulated: the owner's orderdb._maintain_partitions takes a now that far
        # ahead (the public maintain_partitions refuses it)
        later = _value(conn, "SELECT now() + interval '5 months'")
        held = conn.execute(
            "SELECT action, partition_name, rows_moved FROM orderdb._maintain_partitions(%s)"
            " WHERE parent_table = 'orderdb.outbox' AND action <> 'created'",
            (later,),
        ).fetchall()
        # (the empty months around it, last month's and next month's, go)
        assert held == [
            ("dropped", f"orderdb.outbox_p{suffix[0]}", 0),
            ("held", f"orderdb.outbox_p{suffix[1]}", 2),
            ("dropped", f"orderdb.outbox_p{suffix[2]}", 0),
        ]
        events = conn.execute("SELECT event_id FROM orderdb.read_events('months', 100)").fetchall()
        assert len(events) == 2
        conn.execute("SELECT orderdb.ack_events('months', %s)", (events[-1][0],))
        dropped = conn.execute(
            "SELECT action, partition_name FROM orderdb._maintain_partitions(%s)"
            " WHERE parent_table = 'orderdb.outbox' AND action <> 'created'",
            (later,),
        ).fetchall()
        assert dropped == [("dropped", f"orderdb.outbox_p{suffix[1]}")]
        assert conn.execute("SELECT count(*) FROM orderdb.outbox").fetchone() == (0,)
        # the carrier events have no retention: nothing of theirs left
        assert conn.execute(
            "SELECT count(*) FROM orderdb.tracking_events WHERE tracking_number = 'TN-MONTHS'"
        ).fetchone() == (2,)


def test_an_outbox_legacy_partition_leaves_with_an_unbounded_start(fresh_dsn: str) -> None:
    """Past its retention the outbox's legacy partition (FROM MINVALUE) is dropped like any month
    once every consumer has acknowledged it; its unbounded start is reported as NULL (clients
    cannot all represent -infinity), and the carrier events, kept forever, stay."""
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        # five months on, simulated: the owner's orderdb._maintain_partitions takes a now that far
        # ahead (the public maintain_partitions refuses it)
        later = _value(conn, "SELECT now() + interval '5 months'")
        boundary = _value(conn, "SELECT (orderdb._month_bounds(now(), 1)).range_from")
        rows = conn.execute(
            "SELECT parent_table, action, partition_name, range_from, range_to"
            " FROM orderdb._maintain_partitions(%s) WHERE action <> 'created'",
            (later,),
        ).fetchall()
        assert ("orderdb.outbox", "dropped", "orderdb.outbox_legacy", None, boundary) in rows
        assert not [r for r in rows if r[0] != "orderdb.outbox"]
        assert _value(conn, "SELECT to_regclass('orderdb.tracking_events_legacy')::text") == (
            "orderdb.tracking_events_legacy"
        )
