"""Connection settings: --dsn, else ORDERDB_DSN, else libpq's environment (PGHOST, PGSERVICE,
PGDATABASE), else the embedded PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
from typing import TextIO

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

EMBEDDED_DBNAME = "orderdb"

# any of these set means "the user has chosen a server the libpq way"
LIBPQ_CHOICE_VARIABLES = ("PGHOST", "PGSERVICE", "PGDATABASE")


def libpq_environment_dsn() -> str | None:
    """A DSN of every libpq setting taken from the environment, when PGHOST, PGSERVICE or
    PGDATABASE is set; else None.

    The settings are spelled out (rather than an empty DSN) so that tools which take the DSN
    apart, such as yoyo, connect to the same server as libpq would.
    """
    if not any(os.environ.get(name) for name in LIBPQ_CHOICE_VARIABLES):
        return None
    params = {}
    for option in pq.Conninfo.get_defaults():
        envvar = option.envvar.decode() if option.envvar else None
        if envvar and os.environ.get(envvar) and option.val is not None:
            params[option.keyword.decode()] = option.val.decode()
    return make_conninfo("", **params)


def resolve_dsn(dsn: str | None = None, *, announce: TextIO | None = None) -> str:
    """The DSN to use: the given one, else $ORDERDB_DSN, else libpq's environment when PGHOST,
    PGSERVICE or PGDATABASE is set, else the embedded server's database.

    The embedded server is started (or reused) and its ``orderdb`` database created on first use;
    with ``announce`` (the CLI passes stderr) the fallback is said there: which server, where its
    data lives.
    """
    if dsn:
        return dsn
    env = os.environ.get("ORDERDB_DSN")
    if env:
        return env
    from_libpq = libpq_environment_dsn()
    if from_libpq is not None:
        return from_libpq
    from orderdb.server import embedded

    server = embedded.ensure_started()
    ensure_database(server.dsn, EMBEDDED_DBNAME)
    if announce is not None:
        print(
            f"orderdb: no --dsn, ORDERDB_DSN or PGHOST/PGSERVICE/PGDATABASE given: using the "
            f"embedded PostgreSQL server (database {EMBEDDED_DBNAME}, socket in "
            f"{server.socket_dir}, data in {server.data_root})",
            file=announce,
        )
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
