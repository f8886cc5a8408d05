"""`orderdb migrate`: yoyo applies migrations/ under its lock, then the repeatable files of sql/
are applied in name order in one transaction.

The whole run holds a session advisory lock, so two `orderdb migrate` at once are serialised
(yoyo's own lock table does not exist yet on a fresh database). Running it twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

from orderdb.assets import asset_dir

# one key for every process that changes the schema (advisory locks take a bigint)
MIGRATE_LOCK_KEY = 0x6F72646572646201  # "orderdb\x01"


def migrations_dir() -> Path:
    return asset_dir("migrations")


def sql_dir() -> Path:
    return asset_dir("sql")


def yoyo_url(dsn: str) -> str:
    """A yoyo database URL (postgresql+psycopg://) for a libpq DSN or URL."""
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    user = quote(str(params.pop("user", "")), safe="")
    password = params.pop("password", None)
    host = str(params.pop("host", "") or "")
    port = params.pop("port", None)
    dbname = quote(str(params.pop("dbname", "") or user or "postgres"), safe="")
    auth = user + (":" + quote(str(password), safe="") if password else "")
    netloc = auth + "@" if auth else ""
    if "/" in host or "," in host:
        # a Unix socket folder (or a host list) cannot be a URL's host part, and yoyo reads the
        # host part without unquoting it: passed as a query argument, yoyo hands it to psycopg
        params["host"] = host
        if port:
            params["port"] = port
    else:
        netloc += host + (f":{port}" if port else "")
    query = urlencode({k: str(v) for k, v in params.items()})
    return f"postgresql+psycopg://{netloc}/{dbname}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class MigrationState:
    applied: list[str]
    pending: list[str]


@dataclass(frozen=True)
class MigrateResult:
    applied_now: list[str]
    sql_files: list[str]


@contextmanager
def _schema_lock(dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Poll rather than wait inside pg_advisory_lock(): a session blocked in a statement
        # holds a snapshot, and CREATE INDEX CONCURRENTLY in the migrate that holds the lock
        # waits for every older snapshot (a deadlock until lock_timeout).
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATE_LOCK_KEY,)).fetchone()
            if row is not None and row[0]:
                break
            time.sleep(0.2)
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))


def status(dsn: str) -> MigrationState:
    """Applied and pending migrations, in application order."""
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            pending = {m.id for m in backend.to_apply(migrations)}
        ids = [m.id for m in migrations]
        return MigrationState(
            applied=[i for i in ids if i not in pending],
            pending=[i for i in ids if i in pending],
        )
    finally:
        backend.connection.close()


def apply_sql(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Apply every sql/*.sql file in name order in one transaction; returns the file names."""
    files = sorted(sql_dir().glob("*.sql"))
    with conn.transaction():
        for path in files:
            conn.execute(path.read_text(encoding="utf-8").encode())
    return [p.name for p in files]


def migrate(dsn: str) -> MigrateResult:
    """Apply pending migrations, then the repeatable sql/ files. Idempotent and concurrency-safe."""
    with _schema_lock(dsn) as conn:
        backend = get_backend(yoyo_url(dsn))
        try:
            migrations = read_migrations(str(migrations_dir()))
            with backend.lock():
                todo = backend.to_apply(migrations)
                backend.apply_migrations(todo)
        finally:
            backend.connection.close()
        files = apply_sql(conn)
    return MigrateResult(applied_now=[m.id for m in todo], sql_files=files)


def rollback(dsn: str, count: int = 1) -> list[str]:
    """Roll back the last ``count`` applied migrations (newest first); returns their ids.

    The repeatable sql/ definitions are not dropped; run `orderdb migrate` to bring the schema
    forward again.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    with _schema_lock(dsn):
        backend = get_backend(yoyo_url(dsn))
        try:
            migrations = read_migrations(str(migrations_dir()))
            with backend.lock():
                applied = backend.to_rollback(migrations)
                chosen = applied[:count]
                backend.rollback_migrations(chosen)
        finally:
            backend.connection.close()
    return [m.id for m in chosen]
