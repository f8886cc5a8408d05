"""`orderdb migrate`: yoyo applies migrations/ under its lock, then the repeatable files of sql/
are applied in name order in one transaction.

The whole run holds a session advisory lock, so two `orderdb migrate` at once are serialised
(yoyo's own lock table does not exist yet on a fresh database). Running it twice changes nothing.

yoyo's bookkeeping tables (``_yoyo_migration``, ``_yoyo_log``, ``_yoyo_version``, ``yoyo_lock``)
live in schema ``orderdb``: a database migrated by an older orderdb has them in ``public``, and
the next migrate moves them (before yoyo runs, under the advisory lock). The schema revision is
the newest applied migration id (``orderdb.schema_revision()``, read by the clients on connect);
the sha256 of the sql/ files last applied is ``orderdb._sql_digest()``, so that ``--check`` can
tell whether the repeatable definitions are those of this package.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import read_migrations
from yoyo.backends import get_backend_class
from yoyo.connections import parse_uri
from yoyo.exceptions import BadMigration
from yoyo.migrations import MigrationList, default_migration_table, topological_sort

from orderdb.assets import asset_dir

# one key for every process that changes the schema (advisory locks take a bigint)
MIGRATE_LOCK_KEY = 0x6F72646572646201  # "orderdb\x01"

#: the schema of yoyo's bookkeeping tables
YOYO_SCHEMA = "orderdb"
#: yoyo's bookkeeping tables (yoyo 8/9 names)
YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")

#: a function of one line, called with each step as it happens (``migrate(progress=...)``)
Progress = Callable[[str], None]


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


def _backend(conn: psycopg.Connection[tuple[object, ...]]) -> Any:
    """yoyo's backend on the database of ``conn``, with its tables in schema orderdb.

    The URL is built from the parameters libpq used for ``conn`` (PGSERVICE, PGDATABASE, the
    service file and the defaults resolved), so yoyo connects to the very same database even when
    the DSN names none. yoyo's ``schema`` URL argument sets the search_path of its connections to
    that schema alone (its tables, and the unqualified names of a migration, resolve there; every
    migration of orderdb qualifies its names)."""
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    url = yoyo_url(make_conninfo(**params))
    # what yoyo.get_backend does, but with the backend class looked up once per process: yoyo
    # finds it among the entry points of every installed distribution on each call (~35 ms)
    parsed = parse_uri(url + ("&" if "?" in url else "?") + urlencode({"schema": YOYO_SCHEMA}))
    backend = _backend_class(parsed.scheme.lower())(parsed, default_migration_table)
    backend.init_database()
    return backend


@cache
def _backend_class(scheme: str) -> Any:
    """yoyo's backend class for a URL scheme (``postgresql+psycopg``)."""
    return get_backend_class(scheme)


#: the migrations of a folder as last read: (the folder's fingerprint, yoyo's list, loaded)
_read_cache: dict[str, tuple[tuple[tuple[str, int, int], ...], MigrationList]] = {}
_read_lock = threading.Lock()


def _fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The name, mtime (ns) and size of every file of ``folder``, by name."""
    out = []
    for path in sorted(folder.iterdir()):
        try:
            st = path.stat()
        except FileNotFoundError:  # removed meanwhile: the next call sees the folder without it
            continue
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _read_migrations() -> MigrationList:
    """yoyo's migrations of migrations/, read and parsed once per process while no file of the
    folder is added, removed or changed (names, mtimes and sizes are compared on every call).

    yoyo parses a migration lazily (``Migration.load()``: the file read and split by sqlparse,
    its ``-- depends:`` resolved) and keeps the result on the object; it holds no state of a
    database or connection (``process_steps`` is handed the backend), so the objects serve every
    database. They are loaded here, at once: ``load()`` resolves dependencies through yoyo's
    process-wide registry of the last object read under each id, which a later
    ``read_migrations`` (ours after an edit, anyone's) replaces. Each call returns a new list
    (of the same objects), so a caller cannot change the cached one."""
    folder = migrations_dir()
    key = str(folder)
    with _read_lock:
        stamp = _fingerprint(folder)
        cached = _read_cache.get(key)
        if cached is None or cached[0] != stamp:
            migrations = read_migrations(key)
            for m in [*migrations, *migrations.post_apply]:
                m.load()
            cached = (stamp, migrations)
            _read_cache[key] = cached
    return MigrationList(cached[1], cached[1].post_apply)


@cache
def required_revision() -> str:
    """The schema revision this package needs: its newest migration id (ids start with a
    zero-padded number that only grows, so the newest is the greatest)."""
    return max(
        p.name.removesuffix(".sql")
        for p in migrations_dir().glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def sql_files() -> list[Path]:
    """The repeatable files of sql/, in the order they are applied."""
    return sorted(sql_dir().glob("*.sql"))


def sql_digest() -> str:
    """sha256 over the names and contents of the sql/ files, in order."""
    h = hashlib.sha256()
    for path in sql_files():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class MigrationState:
    applied: list[str]
    pending: list[str]


@dataclass(frozen=True)
class MigratePlan:
    """What `orderdb migrate` would do now."""

    #: migration ids not applied yet, in the order they would be applied
    pending: list[str]
    #: yoyo tables still in schema public, to be moved into schema orderdb
    move_tables: list[str]
    #: whether the sql/ files differ from those last applied (or were never applied)
    sql_changed: bool
    #: whether schema orderdb has to be created before yoyo runs
    create_schema: bool

    @property
    def up_to_date(self) -> bool:
        return not (self.pending or self.move_tables or self.sql_changed or self.create_schema)


@dataclass(frozen=True)
class MigrateResult:
    applied_now: list[str]
    sql_files: list[str]
    moved_tables: list[str]


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


def _yoyo_tables(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname = ANY(%s)",
        (schema, list(YOYO_TABLES)),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def _schema_exists(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (YOYO_SCHEMA,)).fetchone()
    return bool(row and row[0])


def _to_move(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """yoyo tables in public that have no namesake in orderdb yet."""
    here = set(_yoyo_tables(conn, YOYO_SCHEMA))
    return [t for t in _yoyo_tables(conn, "public") if t not in here]


def _applied_ids(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    """The applied migration ids, read from yoyo's table wherever it is (orderdb, or public on a
    database migrated by an older orderdb); no table: nothing applied."""
    for schema in (YOYO_SCHEMA, "public"):
        if "_yoyo_migration" in _yoyo_tables(conn, schema):
            rows = conn.execute(
                sql.SQL("SELECT migration_id FROM {}._yoyo_migration").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
            return {str(r[0]) for r in rows}
    return set()


def _stored_digest(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    row = conn.execute("SELECT to_regprocedure('orderdb._sql_digest()') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return None
    found = conn.execute("SELECT orderdb._sql_digest()").fetchone()
    return None if found is None else str(found[0])


def plan(dsn: str) -> MigratePlan:
    """What `orderdb migrate` would do, read without changing anything (no lock is taken). On
    the proxy of a cluster: what it would do on its shards (orderdb.cluster)."""
    from orderdb.cluster import setup as cluster_setup  # it imports this module

    if cluster_setup.is_proxy(dsn):
        return cluster_setup.plan_cluster(dsn)
    migrations = _read_migrations()
    with psycopg.connect(dsn, autocommit=True) as conn:
        applied = _applied_ids(conn)
        move = _to_move(conn)
        create_schema = not _schema_exists(conn)
        digest = None if create_schema else _stored_digest(conn)
    pending = [m.id for m in topological_sort(m for m in migrations if m.id not in applied)]
    return MigratePlan(
        pending=pending,
        move_tables=move,
        sql_changed=digest != sql_digest(),
        create_schema=create_schema,
    )


def status(dsn: str) -> MigrationState:
    """Applied and pending migrations, in application order (read only)."""
    migrations = _read_migrations()
    with psycopg.connect(dsn, autocommit=True) as conn:
        applied = _applied_ids(conn)
    ordered = [m.id for m in topological_sort(migrations)]
    return MigrationState(
        applied=[i for i in ordered if i in applied],
        pending=[i for i in ordered if i not in applied],
    )


def _digest_function(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("digest must be a sha256 in hex")
    return (
        "CREATE OR REPLACE FUNCTION orderdb._sql_digest() RETURNS text\n"
        "    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp\n"
        f"    AS $digest$ SELECT '{digest}'::text $digest$;\n"
        "COMMENT ON FUNCTION orderdb._sql_digest() IS\n"
        "    'Written by orderdb migrate: the sha256 of the sql/ files it applied last.';"
    )


def plan_sql(dsn: str) -> str:
    """The SQL `orderdb migrate` would run now, as one script to read (nothing is run): moving
    yoyo's tables out of public, each pending migration in order, then the sql/ files."""
    p = plan(dsn)
    migrations = {m.id: m for m in _read_migrations()}
    out: list[str] = []
    if p.create_schema:
        out += ["-- schema orderdb (holds yoyo's tables)", "CREATE SCHEMA orderdb;", ""]
    if p.move_tables:
        out.append("-- yoyo's tables move from schema public to schema orderdb")
        out += [f"ALTER TABLE public.{t} SET SCHEMA orderdb;" for t in p.move_tables]
        out.append("")
    for mid in p.pending:
        path = Path(migrations[mid].path)
        out += [
            f"-- migration {mid} (migrations/{path.name}; yoyo records it as applied)",
            path.read_text(encoding="utf-8").rstrip(),
            "",
        ]
    out.append("-- the repeatable sql/ files, in one transaction (applied on every migrate)")
    out.append(_digest_function(sql_digest()))
    for path in sql_files():
        out += [f"-- sql/{path.name}", path.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(out) + "\n"


def _prepare(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Before yoyo runs (under the advisory lock): create schema orderdb on a fresh database and
    move yoyo's tables from public into it; returns the tables moved."""
    with conn.transaction():
        if not _schema_exists(conn):
            # migration 0001 creates it too (IF NOT EXISTS); yoyo needs it for its tables first
            conn.execute("CREATE SCHEMA orderdb")
        moved = _to_move(conn)
        for table in moved:
            conn.execute(
                sql.SQL("ALTER TABLE public.{} SET SCHEMA orderdb").format(sql.Identifier(table))
            )
    return moved


def _comment_yoyo_tables(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with conn.transaction():
        for table in _yoyo_tables(conn, YOYO_SCHEMA):
            conn.execute(
                sql.SQL("COMMENT ON TABLE orderdb.{} IS {}").format(
                    sql.Identifier(table),
                    sql.Literal("yoyo-migrations' bookkeeping (orderdb migrate); do not edit."),
                )
            )


def apply_sql(
    conn: psycopg.Connection[tuple[object, ...]], progress: Progress | None = None
) -> list[str]:
    """Apply every sql/*.sql file in name order in one transaction; returns the file names."""
    files = sql_files()
    with conn.transaction():
        # first, so that the grants of the last file cover it (owner only)
        conn.execute(_digest_function(sql_digest()).encode())
        for path in files:
            conn.execute(path.read_text(encoding="utf-8").encode())
            if progress is not None:
                progress(f"applied sql/{path.name}")
    return [p.name for p in files]


def migrate(dsn: str, progress: Progress | None = None) -> MigrateResult:
    """Apply pending migrations, then the repeatable sql/ files. Idempotent and concurrency-safe.
    ``progress`` (if given) is called with one line per step as it happens. On the proxy of a
    cluster (docs/scaling.md): every shard is migrated, then the proxy (orderdb.cluster)."""
    from orderdb.cluster import setup as cluster_setup  # it imports this module

    if cluster_setup.is_proxy(dsn):
        return cluster_setup.migrate_cluster(dsn, progress)
    with _schema_lock(dsn) as conn:
        moved = _prepare(conn)
        if progress is not None:
            for table in moved:
                progress(f"moved public.{table} to schema orderdb")
        backend = _backend(conn)
        done: list[str] = []
        try:
            migrations = _read_migrations()
            with backend.lock():
                todo = backend.to_apply(migrations)
                for m in todo:
                    if progress is not None:
                        progress(f"applying migration {m.id}")
                    try:
                        backend.apply_one(m)
                    except BadMigration:  # as yoyo's apply_migrations: skipped
                        continue
                    done.append(m.id)
                backend.run_post_apply(todo)
        finally:
            backend.connection.close()
        _comment_yoyo_tables(conn)
        files = apply_sql(conn, progress)
    return MigrateResult(applied_now=done, sql_files=files, moved_tables=moved)


def rollback(dsn: str, count: int = 1) -> list[str]:
    """Roll back the last ``count`` applied migrations (newest first); returns their ids.

    The repeatable sql/ definitions are not dropped; run `orderdb migrate` to bring the schema
    forward again. Rolling back 0001 drops schemas orderdb and orderdb_ops but keeps yoyo's
    tables (in a new, empty schema orderdb).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    with _schema_lock(dsn) as conn:
        _prepare(conn)
        backend = _backend(conn)
        try:
            migrations = _read_migrations()
            with backend.lock():
                applied = backend.to_rollback(migrations)
                chosen = applied[:count]
                backend.rollback_migrations(chosen)
        finally:
            backend.connection.close()
    return [m.id for m in chosen]
