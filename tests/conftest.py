"""Test harness: a real PostgreSQL server, a migrated template database, a fresh clone per module.

Server: ``ORDERDB_TEST_DSN`` (any database on the server; we create our own beside it), else
``ORDERDB_TEST_BACKEND=docker`` (testcontainers, a PostgreSQL image with pgTAP), else an embedded
throwaway PostgreSQL 18. The template is migrated once per session with ``orderdb migrate`` and has
pgTAP installed; every test module gets ``CREATE DATABASE test_... TEMPLATE ...``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orderdb.server import migrate

PGTAP_HINT = (
    "pgTAP is not installed on the test server. Install it with "
    "`apt-get install postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl` "
    "(the embedded PostgreSQL 18 loads the same files through extension_control_path), "
    "or run `make test`, which installs it when run as root."
)


@dataclass(frozen=True)
class PgServer:
    """The server the tests run on: an admin DSN and a way to build DSNs of other databases."""

    admin_dsn: str
    kind: str  # "dsn", "embedded" or "docker"

    def dsn(self, dbname: str) -> str:
        params = {k: v for k, v in conninfo_to_dict(self.admin_dsn).items() if v is not None}
        params["dbname"] = dbname
        return make_conninfo("", **params)

    def conninfo(self) -> dict[str, Any]:
        return {k: v for k, v in conninfo_to_dict(self.admin_dsn).items() if v is not None}


def _docker_server(stack: ExitStack) -> str:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:
        pytest.exit(
            f"ORDERDB_TEST_BACKEND=docker, but no Docker engine answers ({exc}). "
            "Unset ORDERDB_TEST_BACKEND to use an embedded PostgreSQL, or set ORDERDB_TEST_DSN.",
            returncode=2,
        )
    from testcontainers.postgres import PostgresContainer

    image = os.environ.get("ORDERDB_TEST_IMAGE", "ghcr.io/sqitchers/pgtap-postgres:15")
    container = stack.enter_context(PostgresContainer(image, driver=None))
    return str(container.get_connection_url())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with ExitStack() as stack:
        env_dsn = os.environ.get("ORDERDB_TEST_DSN")
        if env_dsn:
            yield PgServer(env_dsn, "dsn")
            return
        if os.environ.get("ORDERDB_TEST_BACKEND", "").lower() == "docker":
            yield PgServer(_docker_server(stack), "docker")
            return
        from orderdb.server import embedded

        server = stack.enter_context(embedded.throwaway({"max_connections": "300"}))
        yield PgServer(server.dsn, "embedded")


def _create_db(admin_dsn: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)


def _drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> Iterator[str]:
    """Name of a migrated template database with pgTAP installed (dropped at the end)."""
    name = f"orderdb_tpl_{secrets.token_hex(4)}"
    _create_db(pg_server.admin_dsn, name)
    try:
        dsn = pg_server.dsn(name)
        migrate.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")
            except psycopg.Error as exc:
                pytest.exit(f"{PGTAP_HINT}\n({exc})", returncode=3)
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH is_template = true").format(sql.Identifier(name))
            )
        yield name
    finally:
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH is_template = false").format(sql.Identifier(name))
            )
        _drop_db(pg_server.admin_dsn, name)


def fresh_database(server: PgServer, template: str) -> Iterator[str]:
    """Yield the DSN of a new database cloned from ``template``; drop it afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    _create_db(server.admin_dsn, name, template)
    try:
        yield server.dsn(name)
    finally:
        _drop_db(server.admin_dsn, name)


@pytest.fixture(scope="module")
def db_dsn(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """DSN of a fresh migrated database for this test module."""
    yield from fresh_database(pg_server, template_db)


@pytest.fixture
def fresh_dsn(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """DSN of a fresh migrated database for one test."""
    yield from fresh_database(pg_server, template_db)


@pytest.fixture
def conn(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the module's database."""
    with psycopg.connect(db_dsn, autocommit=True) as connection:
        yield connection


# The core suites run twice: on one database and through a proxy over three shards
# (tests/deployments.py). Imported lazily: tests/deployments.py imports this module.
@pytest.fixture(params=["single", "cluster"])
def deployment(request: pytest.FixtureRequest, pg_server: PgServer, template_db: str) -> Any:
    """A fresh deployment for one test: one database, or a three-shard cluster."""
    from tests.deployments import deploy

    yield from deploy(request.param, pg_server, template_db)


@pytest.fixture(scope="module", params=["single", "cluster"])
def module_deployment(request: pytest.FixtureRequest, pg_server: PgServer, template_db: str) -> Any:
    """A deployment for the test module: one database, or a three-shard cluster."""
    from tests.deployments import deploy

    yield from deploy(request.param, pg_server, template_db)
