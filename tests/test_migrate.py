"""orderdb migrate: schemas exist, running it twice changes nothing, status and rollback work."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from orderdb import migrate

from .conftest import PgServer, _create_db, _drop_db


@pytest.fixture
def empty_dsn(pg_server: PgServer) -> Iterator[str]:
    name = "migrate_" + __import__("secrets").token_hex(4)
    _create_db(pg_server.admin_dsn, name)
    try:
        yield pg_server.dsn(name)
    finally:
        _drop_db(pg_server.admin_dsn, name)


def _schema_dump(dsn: str, pg_server: PgServer) -> str:
    if pg_server.kind == "embedded":
        from orderdb import embedded

        pg_dump = str(embedded.bin_path("pg_dump"))
    else:
        pg_dump = "pg_dump"
    out = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", "-d", dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pg_dump 15+ prints a random \restrict key on some builds; drop volatile lines
    return "\n".join(
        line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdb", *args], capture_output=True, text=True, check=False
    )


def test_migrate_creates_schemas_and_is_idempotent(empty_dsn: str, pg_server: PgServer) -> None:
    first = _cli("migrate", "--dsn", empty_dsn)
    assert first.returncode == 0, first.stderr
    with psycopg.connect(empty_dsn) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert {"orderdb", "orderdb_ops"} <= schemas
    dump1 = _schema_dump(empty_dsn, pg_server)
    second = _cli("migrate", "--dsn", empty_dsn)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert _schema_dump(empty_dsn, pg_server) == dump1


def test_migrate_status_lists_applied_and_pending(empty_dsn: str) -> None:
    before = migrate.status(empty_dsn)
    assert before.applied == [] and before.pending
    migrate.migrate(empty_dsn)
    after = migrate.status(empty_dsn)
    assert after.pending == [] and after.applied == before.pending
    out = _cli("migrate", "--status", "--dsn", empty_dsn)
    assert out.returncode == 0, out.stderr
    assert before.pending[0] in out.stdout and "applied" in out.stdout


def test_rollback_then_reapply_gives_the_same_schema(empty_dsn: str, pg_server: PgServer) -> None:
    migrate.migrate(empty_dsn)
    dump = _schema_dump(empty_dsn, pg_server)
    ids = migrate.status(empty_dsn).applied
    undone = migrate.rollback(empty_dsn, len(ids))
    assert undone == list(reversed(ids))
    assert migrate.status(empty_dsn).applied == []
    migrate.migrate(empty_dsn)
    assert _schema_dump(empty_dsn, pg_server) == dump


def test_two_migrates_at_once_are_safe(empty_dsn: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orderdb", "migrate", "--dsn", empty_dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert migrate.status(empty_dsn).pending == []
