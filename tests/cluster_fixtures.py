"""A cluster for the cluster suites: three shard databases and a proxy database on the test
server, prepared by `orderdb cluster init` (orderdb.cluster.setup.init).

PL/Proxy is a Debian package of PostgreSQL 15 (postgresql-15-plproxy); on a server without it
(the embedded PostgreSQL 18) every test that uses these fixtures is skipped with
:data:`PLPROXY_MISSING`, the one skip the cluster suites allow.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from orderdb.cluster import setup
from tests.conftest import PgServer

PLPROXY_MISSING = (
    "PL/Proxy is not installed for this server (Debian postgresql-15-plproxy); "
    "the cluster suites run on PostgreSQL 15"
)
SHARDS = 3


@dataclass(frozen=True)
class Cluster:
    proxy_dsn: str
    shard_dsns: list[str]
    admin_dsn: str


def plproxy_available(admin_dsn: str) -> bool:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_available_extensions WHERE name = 'plproxy'"
        ).fetchone()
    return bool(row and row[0])


def _drop(admin_dsn: str, names: list[str]) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def make_cluster(server: PgServer, template: str, shards: int = SHARDS) -> Iterator[Cluster]:
    """Create ``shards`` shard databases (clones of the migrated template) and an empty proxy
    database, run `orderdb cluster init`, yield the cluster, drop the databases."""
    if not plproxy_available(server.admin_dsn):
        pytest.skip(PLPROXY_MISSING)
    tag = secrets.token_hex(4)
    proxy = f"cl_{tag}_proxy"
    shard_names = [f"cl_{tag}_shard{i}" for i in range(shards)]
    try:
        with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(proxy)))
            for name in shard_names:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )
        cluster = Cluster(server.dsn(proxy), [server.dsn(n) for n in shard_names], server.admin_dsn)
        setup.init(cluster.proxy_dsn, cluster.shard_dsns)
        yield cluster
    finally:
        _drop(server.admin_dsn, [proxy, *shard_names])


@pytest.fixture(scope="module")
def cluster(pg_server: PgServer, template_db: str) -> Iterator[Cluster]:
    """A three-shard cluster for this test module."""
    yield from make_cluster(pg_server, template_db)
