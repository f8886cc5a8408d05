"""orderdb migrate: schemas exist, running it twice changes nothing, status and rollback work."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orderdb.server import migrate

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
        from orderdb.server import embedded

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
    # newest first in dependency order (yoyo's topological sort, not necessarily name order)
    assert sorted(undone) == sorted(ids) and undone[-1] == "0001_schemas_outbox"
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


@pytest.mark.slow
def test_rollback_one_migration_at_a_time_then_reapply(empty_dsn: str, pg_server: PgServer) -> None:
    """From the top: roll back one migration (then two, ... then all), one step at a time; each
    single step undoes exactly one applied migration that nothing still applied depends on, and
    `migrate` re-applies exactly those and brings back the schema (and privileges) of a straight
    migrate."""
    migrate.migrate(empty_dsn)
    dump = _schema_dump(empty_dsn, pg_server)
    ids = set(migrate.status(empty_dsn).applied)
    assert len(ids) >= 4
    for depth in range(1, len(ids) + 1):
        undone: list[str] = []
        for step in range(depth):
            before = set(migrate.status(empty_dsn).applied)
            one = migrate.rollback(empty_dsn, 1)
            assert len(one) == 1 and one[0] in before, f"depth {depth}, step {step}: {one}"
            assert set(migrate.status(empty_dsn).applied) == before - set(one)
            undone += one
        result = migrate.migrate(empty_dsn)
        assert sorted(result.applied_now) == sorted(undone)
        assert set(migrate.status(empty_dsn).applied) == ids
        assert _schema_dump(empty_dsn, pg_server) == dump, (
            f"schema differs after rolling back {undone} one at a time and re-applying"
        )


def test_migrate_status_never_prints_the_password(pg_server: PgServer, empty_dsn: str) -> None:
    """`orderdb migrate --status --dsn postgresql://u:secret@...` shows the DSN redacted, on
    success and on failure (the servers under test trust local connections, so the password is
    accepted and ignored)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: v for k, v in conninfo_to_dict(empty_dsn).items() if v is not None}
    host = str(params.get("host", "127.0.0.1"))
    port = str(params.get("port", "5432"))
    user = str(params.get("user", "postgres"))
    dbname = str(params["dbname"])
    secret = "s3cr3t-pw-never-shown"
    if host.startswith("/"):  # a Unix socket folder (the embedded server): a query argument
        netloc, query = "", f"?host={quote(host, safe='')}&port={port}"
    else:
        netloc, query = f"{host}:{port}", ""
    url = f"postgresql://{user}:{secret}@{netloc}/{dbname}{query}"
    keyword = make_conninfo(empty_dsn, password=secret)
    missing_db = f"postgresql://{user}:{secret}@{netloc}/no_such_db_orderdb_x{query}"
    missing_user = f"postgresql://no_such_user_x:{secret}@{netloc}/{dbname}{query}"
    for dsn in (url, keyword):
        out = _cli("migrate", "--status", "--dsn", dsn)
        assert out.returncode == 0, out.stderr
        assert "pending" in out.stdout and "***" in out.stdout
        assert secret not in out.stdout + out.stderr
    for dsn in (missing_db, missing_user):
        out = _cli("migrate", "--status", "--dsn", dsn)
        assert out.returncode != 0
        assert secret not in out.stdout + out.stderr, out.stdout + out.stderr
    out = _cli("migrate", "--dsn", missing_db)
    assert out.returncode != 0 and secret not in out.stdout + out.stderr


def test_migrations_are_parsed_once_and_again_after_an_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """migrate reads and parses migrations/ once per process (rolling back one at a time would
    parse every file again at each step); a file edited, added or removed is read again."""
    import shutil

    folder = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), folder)
    monkeypatch.setattr(migrate, "migrations_dir", lambda: folder)
    first = migrate._read_migrations()
    assert all(m.loaded for m in first)
    again = migrate._read_migrations()
    assert again is not first and [id(m) for m in again] == [id(m) for m in first]
    ids = [m.id for m in first]
    newest = max(ids)
    path = folder / f"{newest}.rollback.sql"
    path.write_text(path.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
    edited = migrate._read_migrations()
    assert [m.id for m in edited] == ids
    assert not set(map(id, edited)) & set(map(id, first))
    # the new objects' dependencies are the new objects (yoyo resolves them by id)
    assert all(d in set(edited) for m in edited for d in m.depends)
    (folder / f"{newest}.sql").unlink()
    (folder / f"{newest}.rollback.sql").unlink()
    assert [m.id for m in migrate._read_migrations()] == [i for i in ids if i != newest]
