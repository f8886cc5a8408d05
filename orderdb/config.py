"""Connection settings: --dsn, else ORDERDB_DSN, else the embedded PostgreSQL server."""

from __future__ import annotations

import contextlib
import os

import psycopg
from psycopg import sql

EMBEDDED_DBNAME = "orderdb"


def resolve_dsn(dsn: str | None = None) -> str:
    """The DSN to use: the given one, else $ORDERDB_DSN, else the embedded server's database.

    The embedded server is started (or reused) and its ``orderdb`` database created on first use.
    """
    if dsn:
        return dsn
    env = os.environ.get("ORDERDB_DSN")
    if env:
        return env
    from orderdb import embedded

    server = embedded.ensure_started()
    ensure_database(server.dsn, EMBEDDED_DBNAME)
    return server.url(EMBEDDED_DBNAME)


def ensure_database(admin_dsn: str, dbname: str) -> None:
    """Create database ``dbname`` on the server of ``admin_dsn`` unless it exists."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return
        # another process may create it at the same time
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def redact(dsn: str) -> str:
    """The DSN without its password, safe to print or log."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - a mask, not a secret
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})
