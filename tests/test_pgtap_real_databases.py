"""The pgTAP suite on a database that already holds data, as a DBA runs it.

``orderdb demo`` fills a new database, pgTAP is installed in it (``CREATE EXTENSION pgtap``, as a
superuser), then ``pg_prove --ext .sql -r tests/pgtap`` runs every file on it: once as a
superuser, and once as the non-superuser owner of the orderdb schemas set up by the recipe of
docs/security.md ("Setting up a server", run as written: the owner owns the database and runs
``orderdb migrate``). Every file builds and scopes its own rows inside its transaction, so all
pass; and no file prints setup rows into the TAP stream.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.devtools import PGTAP_DIR, REPO, pg_prove_command, tap_noise

from .conftest import PgServer

DEMO_ORDERS = "80"  # a few seconds; enough for every status, failed deliveries and returns
GROUPS = ("orderdb_app", "orderdb_ingest", "orderdb_ops")


def _env(password: str | None = None) -> dict[str, str]:
    """The environment of the tools: no ORDERDB_* or PG* setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERDB_", "PG"))}
    env["COLUMNS"] = "200"
    if password:
        env["PGPASSWORD"] = password
    return env


def _orderdb(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orderdb", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, f"orderdb {' '.join(args)}:\n{result.stdout}{result.stderr}"


def security_setup_statements(owner: str, database: str, password: str) -> list[str]:
    """The statements of docs/security.md's server set-up (its first sql block after "Setting up
    a server"), with the owner, database and password of this test."""
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("## Setting up a server", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "docs/security.md: no sql block under 'Setting up a server'"
    body = "\n".join(
        line for line in block.group(1).splitlines() if not line.lstrip().startswith("--")
    )
    body = re.sub(r"\borderdb_owner\b", owner, body)
    body = re.sub(r"\bDATABASE shop\b", f"DATABASE {database}", body)
    body = body.replace("'change-me'", f"'{password}'")
    return [s.strip() for s in body.split(";") if s.strip()]


def _run_as_superuser(admin: psycopg.Connection[object], statement: str) -> None:
    try:
        admin.execute(statement.encode())
    except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        # the groups are cluster-wide: another database of this server created them already
        if not re.fullmatch(rf"CREATE ROLE ({'|'.join(GROUPS)}) NOLOGIN", statement):
            raise


@contextmanager
def demo_database(server: PgServer, *, as_owner: bool) -> Iterator[tuple[str, str | None]]:
    """(DSN, password) of a new database filled by ``orderdb demo`` with pgTAP installed; as the
    docs/security.md owner, or as the server's superuser. Dropped (and the owner) on exit."""
    token = secrets.token_hex(4)
    database = f"shop_{token}"
    owner = f"orderdb_owner_{token}"
    password = secrets.token_urlsafe(16) if as_owner else None
    params = server.conninfo() | {"dbname": database}
    admin_db_dsn = make_conninfo("", **params)
    with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
        if as_owner:
            assert password is not None
            for statement in security_setup_statements(owner, database, password):
                _run_as_superuser(admin, statement)
        else:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        if as_owner:
            dsn = make_conninfo("", **(params | {"user": owner, "password": password}))
            # docs/security.md: ORDERDB_DSN=postgresql://orderdb_owner@.../shop orderdb migrate
            _orderdb(["migrate"], _env(password) | {"ORDERDB_DSN": dsn})
        else:
            dsn = admin_db_dsn
        _orderdb(["demo", "--orders", DEMO_ORDERS, "--dsn", dsn], _env(password))
        with psycopg.connect(admin_db_dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgtap")
        yield dsn, password
    finally:
        with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            if as_owner:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


@pytest.mark.parametrize("as_owner", [False, True], ids=["superuser", "owner"])
def test_pgtap_suite_passes_on_a_demo_database(pg_server: PgServer, as_owner: bool) -> None:
    psql = None
    if pg_server.kind == "embedded":
        from orderdb.server import embedded

        psql = str(embedded.bin_path("psql"))
    with demo_database(pg_server, as_owner=as_owner) as (dsn, password):
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT rolsuper, (SELECT count(*) FROM orderdb.orders)"
                " FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        assert row is not None
        superuser, orders = row
        assert superuser is not as_owner
        assert orders >= 40, "the demo placed its orders"
        # pg_prove --ext .sql -r tests/pgtap, with the TAP stream of every file shown
        result = subprocess.run(
            pg_prove_command(dsn, [PGTAP_DIR], psql, verbose=True),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
            env=_env(password),
            cwd=REPO,
        )
    assert result.returncode == 0, _failures(result.stdout) + result.stderr
    assert "All tests successful" in result.stdout, result.stdout[-5000:] + result.stderr
    noise = tap_noise(result.stdout)
    assert noise == [], "setup rows in the TAP stream:\n" + "\n".join(noise)


def _failures(verbose_output: str) -> str:
    """The failed tests of a ``pg_prove --verbose`` run, under their file, and the summary."""
    lines: list[str] = []
    current = ""
    keep = False
    for line in verbose_output.splitlines():
        if re.fullmatch(r"\S+\.sql \.+ ?", line):
            current, keep = line, False
        elif line.startswith("not ok"):
            if current:
                lines.append(current)
                current = ""
            lines.append(line)
            keep = True
        elif keep and line.startswith("#"):
            lines.append(line)
        else:
            keep = False
    summary = verbose_output.split("Test Summary Report", 1)
    return "\n".join(lines) + ("\nTest Summary Report" + summary[1] if len(summary) > 1 else "")
