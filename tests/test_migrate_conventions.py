"""orderdb migrate's conventions: yoyo's tables in schema orderdb (moved there from public on an
upgrade), --check and --sql for deploy pipelines, progress on stderr, and the clients' schema
revision check on connect."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

from orderdb import AsyncClient, Client
from orderdb.errors import NotInstalledError, OrderDBError, SchemaOutdatedError
from orderdb.server import migrate

from .conftest import PgServer, _create_db, _drop_db
from .test_migrate import _schema_dump

YOYO = {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"}


@pytest.fixture
def empty_dsn(pg_server: PgServer) -> Iterator[str]:
    name = "migconv_" + secrets.token_hex(4)
    _create_db(pg_server.admin_dsn, name)
    try:
        yield pg_server.dsn(name)
    finally:
        _drop_db(pg_server.admin_dsn, name)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdb", *args], capture_output=True, text=True, check=False
    )


def _tables(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
            (schema,),
        ).fetchall()
    return {r[0] for r in rows}


def _old_layout(dsn: str) -> None:
    """A database as an orderdb before this layout left it: every migration applied by yoyo
    with its tables in public (no schema argument)."""
    backend = get_backend(migrate.yoyo_url(dsn))
    try:
        with backend.lock():
            backend.apply_migrations(
                backend.to_apply(read_migrations(str(migrate.migrations_dir())))
            )
    finally:
        backend.connection.close()
    assert _tables(dsn, "public") >= YOYO


def _roll_back_newest(dsn: str) -> None:
    """Roll back until this package's newest migration is no longer applied."""
    while migrate.required_revision() in migrate.status(dsn).applied:
        migrate.rollback(dsn, 1)


def test_yoyo_tables_live_in_schema_orderdb(empty_dsn: str) -> None:
    out = _cli("migrate", "--dsn", empty_dsn)
    assert out.returncode == 0, out.stderr
    assert _tables(empty_dsn, "orderdb") >= YOYO
    assert _tables(empty_dsn, "public") == set()
    with psycopg.connect(empty_dsn) as conn:
        row = conn.execute("SELECT orderdb.schema_revision()").fetchone()
    assert row is not None and row[0] == migrate.required_revision()


def test_migrate_through_a_service_file_migrates_that_database(
    empty_dsn: str, tmp_path: Path
) -> None:
    """No database in the DSN (PGSERVICE names it): yoyo works on the database libpq chose, not
    on one its URL defaulted to (`postgres`)."""
    params = {k: v for k, v in conninfo_to_dict(empty_dsn).items() if v is not None}
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text("[migconv]\n" + "".join(f"{k}={v}\n" for k, v in params.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "ORDERDB_"))} | {
        "PGSERVICE": "migconv",
        "PGSERVICEFILE": str(service_file),
    }
    out = subprocess.run(
        [sys.executable, "-m", "orderdb", "migrate"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert _tables(empty_dsn, "orderdb") >= YOYO
    assert migrate.status(empty_dsn).pending == []


def test_upgrade_moves_yoyo_tables_from_public_and_reapplies_nothing(empty_dsn: str) -> None:
    _old_layout(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        log_rows = conn.execute("SELECT count(*) FROM public._yoyo_log").fetchone()
    # the client sees a database older than schema_revision(): outdated, not a 42883
    with pytest.raises(SchemaOutdatedError, match="run `orderdb migrate`"):
        Client.connect(empty_dsn, max_size=1)
    assert migrate.status(empty_dsn).pending == []
    check = _cli("migrate", "--check", "--dsn", empty_dsn)
    assert check.returncode == migrate_exit_pending(), check.stdout + check.stderr
    assert "pending: move public._yoyo_migration to schema orderdb" in check.stdout
    assert "pending: migration" not in check.stdout
    out = _cli("migrate", "--dsn", empty_dsn)
    assert out.returncode == 0, out.stderr
    assert "migrations: up to date" in out.stdout
    assert "moved yoyo's tables to schema orderdb" in out.stdout
    assert _tables(empty_dsn, "orderdb") >= YOYO
    assert _tables(empty_dsn, "public") == set()
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orderdb._yoyo_log").fetchone() == log_rows
    assert _cli("migrate", "--check", "--dsn", empty_dsn).returncode == 0
    with Client.connect(empty_dsn, max_size=1) as client:
        assert client.receive_stock(987_123, "MIGCONV", 2).on_hand == 2


def migrate_exit_pending() -> int:
    from orderdb.cli.admin import EXIT_PENDING

    return EXIT_PENDING


def test_check_exits_non_zero_while_anything_is_pending(empty_dsn: str) -> None:
    fresh = _cli("migrate", "--check", "--dsn", empty_dsn)
    assert fresh.returncode == migrate_exit_pending(), fresh.stdout + fresh.stderr
    assert "pending: migration 0001_schemas_outbox" in fresh.stdout
    # --check changed nothing: not even schema orderdb exists
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('orderdb')").fetchone() == (None,)
    migrate.migrate(empty_dsn)
    done = _cli("migrate", "--check", "--dsn", empty_dsn)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout
    _roll_back_newest(empty_dsn)
    behind = _cli("migrate", "--check", "--dsn", empty_dsn)
    assert behind.returncode == migrate_exit_pending()
    assert f"pending: migration {migrate.required_revision()}" in behind.stdout
    migrate.migrate(empty_dsn)
    # sql/ files other than those applied last (an older package's definitions) are pending
    with psycopg.connect(empty_dsn) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION orderdb._sql_digest() RETURNS text LANGUAGE sql"
            " AS $$ SELECT 'older'::text $$"
        )
    stale = _cli("migrate", "--check", "--dsn", empty_dsn)
    assert stale.returncode == migrate_exit_pending()
    assert "pending: the sql/ files" in stale.stdout and "pending: migration" not in stale.stdout
    assert _cli("migrate", "--dsn", empty_dsn).returncode == 0
    assert _cli("migrate", "--check", "--dsn", empty_dsn).returncode == 0


def test_check_of_an_unreachable_database_is_not_pending(pg_server: PgServer) -> None:
    out = _cli("migrate", "--check", "--dsn", pg_server.dsn("no_such_db_migconv"))
    assert out.returncode not in (0, migrate_exit_pending()), out.stdout + out.stderr


def test_sql_prints_the_pending_sql_and_changes_nothing(
    empty_dsn: str, pg_server: PgServer
) -> None:
    migrate.migrate(empty_dsn)
    _roll_back_newest(empty_dsn)
    pending = migrate.status(empty_dsn).pending
    before = _schema_dump(empty_dsn, pg_server)
    out = _cli("migrate", "--sql", "--dsn", empty_dsn)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for mid in pending:
        body = (migrate.migrations_dir() / f"{mid}.sql").read_text(encoding="utf-8").strip()
        assert body in text
    # pending migrations in order, then every sql/ file
    positions = [text.index(f"-- migration {mid} ") for mid in pending]
    assert positions == sorted(positions)
    for path in migrate.sql_files():
        assert f"-- sql/{path.name}" in text
        assert text.index(f"-- sql/{path.name}") > positions[-1]
    assert "0001_schemas_outbox" not in text  # applied: not shown
    assert _schema_dump(empty_dsn, pg_server) == before
    assert migrate.status(empty_dsn).pending == pending


def test_sql_of_a_fresh_database_creates_nothing(empty_dsn: str) -> None:
    out = _cli("migrate", "--sql", "--dsn", empty_dsn)
    assert out.returncode == 0, out.stderr
    assert "CREATE SCHEMA orderdb;" in out.stdout
    assert "-- migration 0001_schemas_outbox " in out.stdout
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('orderdb')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('public._yoyo_migration')").fetchone() == (None,)


def test_client_on_an_unmigrated_database_says_run_migrate(empty_dsn: str) -> None:
    with pytest.raises(NotInstalledError, match="run `orderdb migrate`") as raised:
        Client.connect(empty_dsn, max_size=1)
    assert raised.value.needed == migrate.required_revision() and raised.value.found is None
    assert isinstance(raised.value, OrderDBError)

    async def connect() -> None:
        await AsyncClient.connect(empty_dsn, max_size=1)

    with pytest.raises(NotInstalledError, match="run `orderdb migrate`"):
        asyncio.run(connect())


def test_client_on_an_outdated_database_names_both_revisions(empty_dsn: str) -> None:
    migrate.migrate(empty_dsn)
    _roll_back_newest(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        row = conn.execute("SELECT orderdb.schema_revision()").fetchone()
    assert row is not None
    found = row[0]
    needed = migrate.required_revision()
    with pytest.raises(SchemaOutdatedError) as raised:
        Client.connect(empty_dsn, max_size=1)
    assert not isinstance(raised.value, NotInstalledError)
    assert (raised.value.needed, raised.value.found) == (needed, found)
    assert needed in str(raised.value) and found in str(raised.value)
    assert "run `orderdb migrate`" in str(raised.value)

    async def connect() -> None:
        await AsyncClient.connect(empty_dsn, max_size=1)

    with pytest.raises(SchemaOutdatedError, match=needed):
        asyncio.run(connect())
    migrate.migrate(empty_dsn)
    with Client.connect(empty_dsn, max_size=1) as client:
        assert client.receive_stock(987_124, "MIGCONV", 3).on_hand == 3


def test_rollback_of_everything_keeps_yoyo_tables_in_an_empty_orderdb(empty_dsn: str) -> None:
    migrate.migrate(empty_dsn)
    migrate.rollback(empty_dsn, len(migrate.status(empty_dsn).applied))
    assert _tables(empty_dsn, "orderdb") == YOYO
    assert _tables(empty_dsn, "public") == set()
    with psycopg.connect(empty_dsn) as conn:
        kept = conn.execute("SELECT to_regnamespace('orderdb_yoyo_kept')").fetchone()
        assert kept == (None,)
        assert conn.execute("SELECT count(*) FROM orderdb._yoyo_migration").fetchone() == (0,)
    with pytest.raises(SchemaOutdatedError, match="run `orderdb migrate`"):
        Client.connect(empty_dsn, max_size=1)


def test_progress_goes_to_stderr_and_stdout_stays_the_same(empty_dsn: str) -> None:
    out = _cli("migrate", "--progress", "--dsn", empty_dsn)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert "applying migration 0001_schemas_outbox" in lines
    assert "applied sql/90_grants.sql" in lines
    assert lines.index("applying migration 0001_schemas_outbox") < lines.index(
        "applied sql/10_base.sql"
    )
    quiet = _cli("migrate", "--no-progress", "--dsn", empty_dsn)
    assert quiet.returncode == 0 and quiet.stderr == ""
    again = _cli("migrate", "--progress", "--dsn", empty_dsn)
    assert again.stdout == quiet.stdout  # stdout does not change with --progress

    plain = _cli("maintain", "--dry-run", "--json", "--no-progress", "--dsn", empty_dsn)
    loud = _cli("maintain", "--dry-run", "--json", "--progress", "--dsn", empty_dsn)
    assert plain.returncode == 0 and loud.returncode == 0, plain.stderr + loud.stderr
    assert loud.stdout == plain.stdout and plain.stderr == ""
    actions = json.loads(plain.stdout)
    assert actions, "a freshly migrated database has partitions to create ahead"
    reported = loud.stderr.splitlines()
    assert [f"{a['action']} {a['partition_name']} of {a['parent_table']}" for a in actions] == [
        line.split(" (", 1)[0] for line in reported
    ]
