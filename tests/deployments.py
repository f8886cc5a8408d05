"""Where a suite runs: on one database ("single") or through a PL/Proxy proxy over three shard
databases ("cluster", docs/scaling.md).

The core suites take the ``deployment`` fixture (tests/conftest.py), so that each of their tests
runs twice, unchanged: its API calls go to :attr:`Deployment.dsn` (the database, or the proxy)
and whatever it reads from the tables directly (invariants, counts) is read on every database
holding data (:attr:`Deployment.data_dsns`: the database, or every shard). In the cluster the
warehouses the suites use are pinned round-robin over the shards (warehouse ``w`` on shard
``w % 3``, with ``orderdb cluster map-warehouse``'s function), so that a suite's warehouses sit
on different shards. On a server without PL/Proxy (the embedded PostgreSQL 18) the cluster
variant is skipped with the cluster suites' one message (tests/cluster_fixtures.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.conftest import PgServer, fresh_database

SINGLE = "single"
CLUSTER = "cluster"
KINDS = (SINGLE, CLUSTER)

#: the warehouses of the core suites (test_core_concurrency 1..8, test_core_properties 21,
#: test_core_hot 1, test_tracking_concurrency 61..63), pinned to shard ``w % 3`` in the cluster
SUITE_WAREHOUSES = (1, 2, 3, 4, 5, 6, 7, 8, 21, 61, 62, 63)


@dataclass(frozen=True)
class Deployment:
    kind: str
    #: where the API calls go: the database, or the cluster's proxy
    dsn: str
    #: every database holding orders and stock: the database, or each shard in shard order
    data_dsns: tuple[str, ...]

    @property
    def is_cluster(self) -> bool:
        return self.kind == CLUSTER

    def data_dsn_of(self, warehouse_id: int) -> str:
        """The database holding a suite warehouse's data (its shard in the cluster)."""
        return self.data_dsns[warehouse_id % len(self.data_dsns)]

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """``query``'s rows on every data database, one after the other."""
        out: list[tuple[Any, ...]] = []
        for dsn in self.data_dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                out.extend(tuple(r) for r in conn.execute(query, params).fetchall())
        return out

    def total(self, query: str, params: Any = None) -> int:
        """The sum over every data database of a query returning one number."""
        return sum(int(r[0] or 0) for r in self.rows(query, params))

    def per_database(self, query: str, params: Any = None) -> list[list[tuple[Any, ...]]]:
        """``query``'s rows on each data database (a list per database, in shard order)."""
        out = []
        for dsn in self.data_dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                out.append([tuple(r) for r in conn.execute(query, params).fetchall()])
        return out


def deploy(kind: str, server: PgServer, template: str) -> Iterator[Deployment]:
    """A fresh deployment of ``kind`` (dropped afterwards)."""
    if kind == SINGLE:
        for dsn in fresh_database(server, template):
            yield Deployment(SINGLE, dsn, (dsn,))
        return
    from orderdb.cluster import setup
    from tests.cluster_fixtures import make_cluster

    for cluster in make_cluster(server, template):
        for warehouse in SUITE_WAREHOUSES:
            setup.map_warehouse(cluster.proxy_dsn, warehouse, warehouse % len(cluster.shard_dsns))
        yield Deployment(CLUSTER, cluster.proxy_dsn, tuple(cluster.shard_dsns))
