"""`orderdb cluster init|status|map-warehouse|sync-reference` and `orderdb migrate --dsn PROXY`.

A cluster is a *proxy* database (PL/Proxy) in front of *shard* databases, each an ordinary
migrated orderdb (docs/scaling.md). ``init`` and ``migrate_cluster`` do the same, idempotent
steps: migrate every shard (the ordinary ``orderdb migrate``), give it its place and id space
and the wrappers the proxy calls, then prepare the proxy: its schema (sql/cluster/proxy_*.sql),
the shard list, the PL/Proxy cluster (a SQL/MED server with one partition per shard and a user
mapping for a dedicated non-superuser role of the shards) and the public functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orderdb.cluster import routing
from orderdb.server import migrate

#: the shards' login role for the proxy's connections (no superuser, no table privilege)
DEFAULT_SHARD_ROLE = "orderdb_proxy"
#: ids of shard k are k + 1 modulo the stride: the most shards a cluster can have
DEFAULT_ID_STRIDE = 64
#: connection parameters of a shard DSN that the proxy does not keep (the user mapping says who)
_CREDENTIALS = frozenset({"user", "password", "passfile"})

Progress = Callable[[str], None]


class ClusterError(Exception):
    """A cluster command cannot do what was asked (the message says why)."""


def cluster_sql_dir() -> Path:
    return migrate.sql_dir() / "cluster"


def cluster_sql_files(side: str) -> list[Path]:
    """The repeatable files of one side (``shard`` or ``proxy``), in name order."""
    return sorted(cluster_sql_dir().glob(f"{side}_*.sql"))


def partition_dsn(dsn: str) -> str:
    """A shard DSN as the proxy keeps it: without user and password."""
    params = {
        k: v for k, v in conninfo_to_dict(dsn).items() if v is not None and k not in _CREDENTIALS
    }
    return make_conninfo("", **params)


def is_proxy(dsn: str) -> bool:
    """Whether the database of ``dsn`` is the proxy of an orderdb cluster."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('orderdb_cluster.shards') IS NOT NULL").fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class ShardStatus:
    shard: int
    dsn: str
    reachable: bool
    schema_revision: str | None
    id_space_ok: bool | None
    warehouses_mapped: int
    orders: int | None
    error: str | None
    #: reference tables whose content differs from shard 0's (None: not compared)
    reference_drift: list[str] | None = None


@dataclass(frozen=True)
class ClusterStatus:
    proxy_schema_revision: str | None
    id_stride: int
    shard_role: str
    shards: list[ShardStatus]
    warehouses: dict[int, int]  # warehouse_id -> shard

    def as_json(self) -> dict[str, Any]:
        return {
            "schema_revision": self.proxy_schema_revision,
            "id_stride": self.id_stride,
            "shard_role": self.shard_role,
            "shards": [s.__dict__ for s in self.shards],
            "warehouses": {str(k): v for k, v in sorted(self.warehouses.items())},
        }


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


def _ensure_role(conn: psycopg.Connection[Any], role: str, password: str | None) -> None:
    """The shards' login role for the proxy: LOGIN, no superuser, member of orderdb_app and
    orderdb_ingest (it executes the API, as the application does), nothing else."""
    exists = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
    if exists.fetchone() is None:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(role)
            )
        )
    if password is not None:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    conn.execute(sql.SQL("GRANT orderdb_app, orderdb_ingest TO {}").format(sql.Identifier(role)))


def prepare_shard(
    dsn: str,
    shard: int,
    id_stride: int,
    shard_role: str,
    password: str | None,
    progress: Progress | None,
    migrated: migrate.MigrateResult,
) -> tuple[list[routing.Signature], list[routing.OpsView], migrate.MigrateResult]:
    """Make a migrated database (``migrated``: what its migrate did) shard number ``shard``;
    returns its public functions, its orderdb_ops views and ``migrated``."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for path in cluster_sql_files("shard"):
            conn.execute(path.read_text(encoding="utf-8").encode())
        row = conn.execute("SELECT shard, id_stride FROM orderdb_shard.shard_identity").fetchone()
        if row is not None and (row[0], row[1]) != (shard, id_stride):
            raise ClusterError(
                f"the database of shard {shard} is shard {row[0]} (id stride {row[1]}) of a "
                "cluster already: give the shards in the order of the first init"
            )
        if row is None:
            conn.execute(
                "INSERT INTO orderdb_shard.shard_identity (shard, id_stride) VALUES (%s, %s)",
                (shard, id_stride),
            )
        changed = conn.execute("SELECT orderdb_shard.apply_id_space()").fetchone()
        _say(progress, f"shard {shard}: id space ({changed[0] if changed else 0} sequences set)")
        _ensure_role(conn, shard_role, password)
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA orderdb_shard TO {}").format(sql.Identifier(shard_role))
        )
        for fn in (
            "shard_info()",
            "warehouse_in_use(integer)",
            "claim_idempotency_key(text, bigint, integer, jsonb, jsonb, integer, integer)",
            "idempotency_key_location(text)",
            "create_order_claimed(integer, bigint, integer, jsonb, text, text, jsonb)",
            "revoke_idempotency_claim(text, integer)",
            "best_warehouse(jsonb)",
            "tracking_number_shard(text, text)",
            "tracking_event_id_use(text, text)",
            "registered_tracking_shard(text, text)",
            "register_tracking_number(text, text, integer)",
            "drop_parked_tracking_events(text, text, bigint[])",
            "record_tracking_event_at_home(text, text, timestamptz, text, text, text, text, jsonb)",
            "reference_digests()",
            "reallocation_held(bigint, integer, integer)",
            "reallocation_reserve(bigint, integer, text[], integer[])",
            "reallocation_unreserve(bigint)",
            "reallocation_send(bigint, integer, integer, integer)",
            "reallocation_receive(bigint, jsonb, text, text)",
            "reallocation_sent(bigint)",
            "reallocations_sent_before(interval)",
            "ops_board_snapshot(integer, text, integer, integer)",
            "put_webhook_subscription(bigint, text, text[], text, integer, text, boolean)",
            "drop_webhook_subscription(bigint)",
            "remove_integration(text)",
            "integration_rows()",
            "warehouse_wms_rows()",
        ):
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION orderdb_shard.{} TO {}").format(
                    sql.SQL(fn), sql.Identifier(shard_role)
                )
            )
        signatures = routing.read_signatures(conn)
        conn.execute(routing.shard_functions_sql(signatures, shard_role).encode())
        views = routing.read_ops_views(conn)
        conn.execute(routing.shard_ops_sql(views, shard_role).encode())
        _say(progress, f"shard {shard}: wrappers for {len(routing.ROUTES)} functions")
    return signatures, views, migrated


def _ensure_api_roles(conn: psycopg.Connection[Any]) -> None:
    """The orderdb roles on the proxy's server (migrations/0006_roles.sql creates them on a
    shard's; a proxy on its own server needs them too)."""
    for role in routing.API_ROLES:
        exists = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))


def _server_sql(partitions: list[str]) -> sql.Composed:
    options: list[sql.Composable] = [
        sql.SQL("modular_mapping '1'"),
        sql.SQL("disable_binary '1'"),
    ]
    options += [
        sql.SQL("{} {}").format(sql.Identifier(f"partition_{i}"), sql.Literal(p))
        for i, p in enumerate(partitions)
    ]
    return sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER plproxy OPTIONS ({})").format(
        sql.Identifier(routing.CLUSTER_NAME), sql.SQL(", ").join(options)
    )


def prepare_proxy(
    proxy_dsn: str,
    shard_dsns: list[str],
    id_stride: int,
    shard_role: str,
    signatures: list[routing.Signature],
    revision: str,
    password: str | None = None,
    progress: Progress | None = None,
    views: list[routing.OpsView] | None = None,
) -> None:
    """The proxy's schema, shard list, PL/Proxy cluster, public functions and orderdb_ops views
    (one transaction)."""
    partitions = [partition_dsn(d) for d in shard_dsns]
    with psycopg.connect(proxy_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrate.MIGRATE_LOCK_KEY,))
        _ensure_api_roles(conn)
        for path in cluster_sql_files("proxy"):
            conn.execute(path.read_text(encoding="utf-8").encode())
        known = conn.execute("SELECT shard, dsn FROM orderdb_cluster.shards ORDER BY shard")
        recorded = [str(r[1]) for r in known.fetchall()]
        if recorded != partitions[: len(recorded)]:
            raise ClusterError(
                "the proxy records other shards ("
                + ", ".join(recorded)
                + "): give the recorded shards first, in their order (new shards after them)"
            )
        settings = conn.execute(
            "SELECT id_stride, shard_role FROM orderdb_cluster.settings"
        ).fetchone()
        if settings is not None and int(str(settings[0])) != id_stride:
            raise ClusterError(f"the cluster's id stride is {settings[0]}, not {id_stride}")
        if len(partitions) > id_stride:
            raise ClusterError(f"at most {id_stride} shards (the id stride)")
        conn.execute(
            "INSERT INTO orderdb_cluster.settings"
            " (id_stride, shard_role, schema_revision, key_home_shards)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (singleton) DO UPDATE"
            " SET shard_role = EXCLUDED.shard_role, schema_revision = EXCLUDED.schema_revision",
            (id_stride, shard_role, revision, len(partitions)),
        )
        for i, p in enumerate(partitions[len(recorded) :], start=len(recorded)):
            conn.execute("INSERT INTO orderdb_cluster.shards (shard, dsn) VALUES (%s, %s)", (i, p))
        # the PL/Proxy cluster: one partition per shard (modular_mapping: any count), connected
        # as the shards' role; the mapping is for the proxy's owner, who alone runs the PL/Proxy
        # functions (the public functions are SECURITY DEFINER)
        if password is None:
            password = _mapped_password(conn)
        conn.execute(
            sql.SQL("DROP SERVER IF EXISTS {} CASCADE").format(sql.Identifier(routing.CLUSTER_NAME))
        )
        conn.execute(_server_sql(partitions))
        mapping: list[sql.Composable] = [sql.SQL("user {}").format(sql.Literal(shard_role))]
        if password is not None:
            mapping.append(sql.SQL("password {}").format(sql.Literal(password)))
        conn.execute(
            sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS ({})").format(
                sql.Identifier(routing.CLUSTER_NAME), sql.SQL(", ").join(mapping)
            )
        )
        conn.execute(_shard_info_sql().encode())
        conn.execute(routing.proxy_functions_sql(signatures).encode())
        conn.execute(routing.proxy_ops_sql(views or []).encode())
        conn.execute("REVOKE ALL ON SCHEMA orderdb FROM PUBLIC")
        conn.execute("GRANT USAGE ON SCHEMA orderdb TO orderdb_app, orderdb_ingest")
        conn.execute(
            "GRANT EXECUTE ON FUNCTION orderdb.schema_revision() TO orderdb_app, orderdb_ingest"
        )
    _say(progress, f"proxy: {len(partitions)} shards, {len(signatures)} public functions")


def _mapped_password(conn: psycopg.Connection[Any]) -> str | None:
    """The shard role's password in the current user mapping of the cluster (kept when
    `orderdb migrate --dsn PROXY` rebuilds the cluster without being given one)."""
    row = conn.execute(
        "SELECT option_value FROM pg_catalog.pg_user_mappings m,"
        " pg_catalog.pg_options_to_table(m.umoptions)"
        " WHERE m.srvname = %s AND m.usename = current_user AND option_name = 'password'",
        (routing.CLUSTER_NAME,),
    ).fetchone()
    return None if row is None else str(row[0])


def _shard_info_sql() -> str:
    """The proxy's PL/Proxy functions besides the routed ones: `orderdb cluster status`,
    `map-warehouse`, and the idempotency keys' homes."""
    return f"""
CREATE OR REPLACE FUNCTION orderdb_cluster.shard_info(p_shard integer)
RETURNS TABLE (shard integer, id_stride integer, schema_revision text, id_space_ok boolean,
               warehouses integer, orders bigint)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.shard_info();
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.warehouse_in_use(p_shard integer,
                                                            p_warehouse_id integer)
RETURNS boolean
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT orderdb_shard.warehouse_in_use(p_warehouse_id);
$fn$;
DROP FUNCTION IF EXISTS orderdb_cluster.claim_idempotency_key(integer, text, bigint, integer,
                                                              jsonb, jsonb, integer, boolean);
DROP FUNCTION IF EXISTS orderdb_cluster.idempotency_key_order(integer, text);
DROP FUNCTION IF EXISTS orderdb_cluster.claim_idempotency_key(integer, text, bigint, integer,
                                                              jsonb, jsonb, integer, integer);
CREATE OR REPLACE FUNCTION orderdb_cluster.claim_idempotency_key(
    p_shard integer, p_key text, p_customer_id bigint, p_warehouse_id integer, p_items jsonb,
    p_options jsonb, p_target integer, p_take_over integer)
RETURNS TABLE (claimed_shard integer, same_request boolean, attempt integer, fresh boolean)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.claim_idempotency_key(p_key, p_customer_id, p_warehouse_id,
                                                      p_items, p_options, p_target,
                                                      p_take_over);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.idempotency_key_location(p_shard integer,
                                                                    p_key text)
RETURNS TABLE (order_id bigint, moved_to integer)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.idempotency_key_location(p_key);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.create_order_claimed(
    p_shard integer, p_attempt integer, p_customer_id bigint, p_warehouse_id integer,
    p_items jsonb, p_idempotency_key text, p_actor text, p_options jsonb)
RETURNS TABLE (revoked boolean, order_id bigint, order_no text, status text, version integer,
               replayed boolean, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.create_order_claimed(p_attempt, p_customer_id, p_warehouse_id,
                                                     p_items, p_idempotency_key, p_actor,
                                                     p_options);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.revoke_idempotency_claim(p_shard integer, p_key text,
                                                                    p_attempt integer)
RETURNS boolean
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT orderdb_shard.revoke_idempotency_claim(p_key, p_attempt);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.tracking_number_shard(p_carrier text,
                                                                 p_tracking_number text)
RETURNS TABLE (shard integer)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.tracking_number_shard(p_carrier, p_tracking_number);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.tracking_event_id_use(p_carrier text,
                                                                 p_event_id text)
RETURNS TABLE (shard integer, tracking_number text, carrier_status text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.tracking_event_id_use(p_carrier, p_event_id);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.registered_tracking_shard(
    p_shard integer, p_carrier text, p_tracking_number text)
RETURNS TABLE (shard integer)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.registered_tracking_shard(p_carrier, p_tracking_number);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.register_tracking_number(
    p_shard integer, p_carrier text, p_tracking_number text, p_target integer)
RETURNS TABLE (registered_shard integer, parked jsonb)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.register_tracking_number(p_carrier, p_tracking_number,
                                                         p_target);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.drop_parked_tracking_events(
    p_shard integer, p_carrier text, p_tracking_number text, p_tracking_event_ids bigint[])
RETURNS integer
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT orderdb_shard.drop_parked_tracking_events(p_carrier, p_tracking_number,
                                                     p_tracking_event_ids);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.record_tracking_event_at_home(
    p_shard integer, p_carrier text, p_tracking_number text, p_event_time timestamptz,
    p_carrier_status text, p_location text, p_description text, p_event_id text,
    p_payload jsonb)
RETURNS TABLE (redirect_shard integer, tracking_event_id bigint, duplicate boolean,
               normalized_status text, order_id bigint, order_status text,
               err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.record_tracking_event_at_home(
        p_carrier, p_tracking_number, p_event_time, p_carrier_status, p_location,
        p_description, p_event_id, p_payload);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reference_digests(p_shard integer)
RETURNS TABLE (table_name text, row_count bigint, digest text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reference_digests();
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocation_held(
    p_shard integer, p_order_id bigint, p_to_warehouse_id integer, p_expected_version integer)
RETURNS TABLE (from_warehouse_id integer, status text, version integer, skus text[],
               quantities integer[], err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reallocation_held(p_order_id, p_to_warehouse_id,
                                                  p_expected_version);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocation_reserve(
    p_shard integer, p_order_id bigint, p_to_warehouse_id integer, p_skus text[],
    p_quantities integer[])
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reallocation_reserve(p_order_id, p_to_warehouse_id, p_skus,
                                                     p_quantities);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocation_unreserve(p_shard integer,
                                                                  p_order_id bigint)
RETURNS boolean
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT orderdb_shard.reallocation_unreserve(p_order_id);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocation_send(
    p_shard integer, p_order_id bigint, p_to_warehouse_id integer, p_expected_version integer,
    p_to_shard integer)
RETURNS TABLE (payload jsonb, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reallocation_send(p_order_id, p_to_warehouse_id,
                                                  p_expected_version, p_to_shard);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocation_receive(
    p_shard integer, p_order_id bigint, p_payload jsonb, p_actor text, p_reason text)
RETURNS TABLE (order_id bigint, warehouse_id integer, status text, version integer,
               err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reallocation_receive(p_order_id, p_payload, p_actor, p_reason);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocation_sent(p_shard integer, p_order_id bigint)
RETURNS TABLE (to_shard integer, payload jsonb)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reallocation_sent(p_order_id);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.reallocations_sent_before(p_shard integer,
                                                                     p_older_than interval)
RETURNS TABLE (order_id bigint, to_shard integer, sent_at timestamptz)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.reallocations_sent_before(p_older_than);
$fn$;
CREATE OR REPLACE FUNCTION orderdb_cluster.best_warehouse(p_items jsonb)
RETURNS TABLE (shard integer, warehouse_id integer, serves_all boolean, lines_served integer,
               priority integer, total_available bigint)
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{routing.CLUSTER_NAME}';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.best_warehouse(p_items);
$fn$;
REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb_cluster FROM PUBLIC;
"""  # noqa: S608 (the cluster's name, a constant)


def init(
    proxy_dsn: str,
    shard_dsns: list[str],
    *,
    shard_role: str = DEFAULT_SHARD_ROLE,
    id_stride: int = DEFAULT_ID_STRIDE,
    password: str | None = None,
    progress: Progress | None = None,
) -> migrate.MigrateResult:
    """Migrate the shards, prepare the proxy, record the cluster. Running it again with the same
    shards changes nothing; shards given after the recorded ones are added."""
    if not shard_dsns:
        raise ClusterError("give at least one --shard")
    partitions = [partition_dsn(d) for d in shard_dsns]
    if len(set(partitions)) != len(partitions):
        raise ClusterError("a shard is given twice")
    if partition_dsn(proxy_dsn) in partitions:
        raise ClusterError("the proxy cannot be one of its shards")
    signatures: list[routing.Signature] = []
    views: list[routing.OpsView] = []
    applied: set[str] = set()
    files: list[str] = []
    for i, dsn in enumerate(shard_dsns):
        _say(progress, f"shard {i}: migrating")
        found, found_views, result = prepare_shard(
            dsn, i, id_stride, shard_role, password, progress, migrate.migrate(dsn, progress)
        )
        signatures = signatures or found
        views = views or found_views
        applied |= set(result.applied_now)
        files = files or result.sql_files
    prepare_proxy(
        proxy_dsn,
        shard_dsns,
        id_stride,
        shard_role,
        signatures,
        migrate.required_revision(),
        password,
        progress,
        views,
    )
    return migrate.MigrateResult(applied_now=sorted(applied), sql_files=files, moved_tables=[])


def _recorded_shards(proxy_dsn: str) -> list[str]:
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT dsn FROM orderdb_cluster.shards ORDER BY shard").fetchall()
    if not rows:
        raise ClusterError("the proxy records no cluster: run orderdb cluster init")
    return [str(r[0]) for r in rows]


def plan_cluster(proxy_dsn: str) -> migrate.MigratePlan:
    """`orderdb migrate --check --dsn PROXY`: what migrate would do on any shard (merged)."""
    plans = [migrate.plan(dsn) for dsn in _recorded_shards(proxy_dsn)]
    pending: list[str] = []
    for p in plans:
        pending += [m for m in p.pending if m not in pending]
    return migrate.MigratePlan(
        pending=pending,
        move_tables=sorted({t for p in plans for t in p.move_tables}),
        sql_changed=any(p.sql_changed for p in plans),
        create_schema=any(p.create_schema for p in plans),
    )


def migrate_cluster(proxy_dsn: str, progress: Progress | None = None) -> migrate.MigrateResult:
    """`orderdb migrate --dsn PROXY`: migrate every recorded shard, then the proxy. The shards
    are reached with the recorded DSNs (no password: libpq's password file or environment
    supplies it). Returns what was applied (on any shard)."""
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        shards = [
            str(r[0])
            for r in conn.execute(
                "SELECT dsn FROM orderdb_cluster.shards ORDER BY shard"
            ).fetchall()
        ]
        settings = conn.execute(
            "SELECT id_stride, shard_role FROM orderdb_cluster.settings"
        ).fetchone()
    if settings is None or not shards:
        raise ClusterError("the proxy records no cluster: run orderdb cluster init")
    return init(
        proxy_dsn,
        shards,
        shard_role=str(settings[1]),
        id_stride=int(str(settings[0])),
        progress=progress,
    )


def status(proxy_dsn: str) -> ClusterStatus:
    """The cluster as the proxy sees it; each shard is asked through PL/Proxy (so a shard the
    proxy cannot reach shows as unreachable, with the error)."""
    if not is_proxy(proxy_dsn):
        raise ClusterError(
            "this database is not the proxy of an orderdb cluster: give the proxy's DSN, or run "
            "orderdb cluster init"
        )
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        settings = conn.execute(
            "SELECT id_stride, shard_role, schema_revision FROM orderdb_cluster.settings"
        ).fetchone()
        if settings is None:
            raise ClusterError("the proxy records no cluster: run orderdb cluster init")
        shards = conn.execute("SELECT shard, dsn FROM orderdb_cluster.shards ORDER BY shard")
        shard_rows = shards.fetchall()
        mapped = conn.execute("SELECT warehouse_id, shard FROM orderdb_cluster.warehouses")
        warehouses = {int(str(w)): int(str(s)) for w, s in mapped.fetchall()}
        out: list[ShardStatus] = []
        for shard, dsn in shard_rows:
            n = int(str(shard))
            count = sum(1 for s in warehouses.values() if s == n)
            try:
                info = conn.execute(
                    "SELECT shard, schema_revision, id_space_ok, orders"
                    " FROM orderdb_cluster.shard_info(%s)",
                    (n,),
                ).fetchone()
            except psycopg.Error as exc:
                out.append(ShardStatus(n, str(dsn), False, None, None, count, None, str(exc)))
                continue
            ok = info is not None and int(str(info[0])) == n
            out.append(
                ShardStatus(
                    n,
                    str(dsn),
                    True,
                    None if info is None else str(info[1]),
                    None if info is None else bool(info[2]),
                    count,
                    None if info is None else int(str(info[3])),
                    None if ok else f"the database answers as shard {info and info[0]}",
                )
            )
        out = _with_reference_drift(conn, out)
    return ClusterStatus(
        proxy_schema_revision=None if settings[2] is None else str(settings[2]),
        id_stride=int(str(settings[0])),
        shard_role=str(settings[1]),
        shards=out,
        warehouses=warehouses,
    )


def _with_reference_drift(
    conn: psycopg.Connection[Any], shards: list[ShardStatus]
) -> list[ShardStatus]:
    """``shards`` with the reference tables of each reachable shard whose digest differs from
    the first reachable shard's (a table missing on one side counts as differing)."""
    digests: dict[int, dict[str, tuple[int, str]]] = {}
    for s in shards:
        if not s.reachable:
            continue
        rows = conn.execute(
            "SELECT table_name, row_count, digest FROM orderdb_cluster.reference_digests(%s)",
            (s.shard,),
        ).fetchall()
        digests[s.shard] = {str(t): (int(str(n)), str(d)) for t, n, d in rows}
    if not digests:
        return shards
    base = digests[min(digests)]
    out = []
    for s in shards:
        mine = digests.get(s.shard)
        drift = None
        if mine is not None:
            drift = sorted(t for t in set(base) | set(mine) if base.get(t) != mine.get(t))
        out.append(replace(s, reference_drift=drift))
    return out


def map_warehouse(proxy_dsn: str, warehouse_id: int, shard: int) -> bool:
    """Pin a warehouse to a shard; returns whether the map changed. A warehouse that already
    has stock or orders on another shard is not moved (ClusterError)."""
    if warehouse_id <= 0:
        raise ClusterError("warehouse must be a positive warehouse id")
    if not is_proxy(proxy_dsn):
        raise ClusterError(
            "this database is not the proxy of an orderdb cluster: give the proxy's DSN"
        )
    with psycopg.connect(proxy_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('orderdb_cluster.placement'))")
        known = conn.execute("SELECT 1 FROM orderdb_cluster.shards WHERE shard = %s", (shard,))
        if known.fetchone() is None:
            count = conn.execute("SELECT count(*) FROM orderdb_cluster.shards").fetchone()
            last = int(str(count[0])) - 1 if count else -1
            raise ClusterError(f"no shard {shard}: the cluster has shards 0..{last}")
        current = conn.execute(
            "SELECT shard FROM orderdb_cluster.warehouses WHERE warehouse_id = %s",
            (warehouse_id,),
        ).fetchone()
        if current is not None and int(str(current[0])) == shard:
            conn.execute(
                "UPDATE orderdb_cluster.warehouses SET pinned = true WHERE warehouse_id = %s",
                (warehouse_id,),
            )
            return False
        if current is not None:
            used = conn.execute(
                "SELECT orderdb_cluster.warehouse_in_use(%s, %s)", (current[0], warehouse_id)
            ).fetchone()
            if used is not None and used[0]:
                raise ClusterError(
                    f"warehouse {warehouse_id} has stock or orders on shard {current[0]}: "
                    "moving a warehouse's data is not available yet (docs/scaling.md)"
                )
        conn.execute(
            "INSERT INTO orderdb_cluster.warehouses (warehouse_id, shard, pinned)"
            " VALUES (%s, %s, true) ON CONFLICT (warehouse_id) DO UPDATE"
            " SET shard = EXCLUDED.shard, pinned = true, placed_at = now()",
            (warehouse_id, shard),
        )
    return True


@dataclass(frozen=True)
class TableSync:
    """What ``sync_reference`` did (or, with ``dry_run``, would do) to one table of one shard."""

    shard: int
    table: str
    inserted: int
    updated: int
    deleted: int


@dataclass(frozen=True)
class ShardSync:
    """One drifted shard: its tables' changes, or why it was not repaired (``error``)."""

    shard: int
    tables: list[TableSync]
    error: str | None = None
    #: the shard's reference tables that still differ from the source's afterwards
    still_differs: list[str] | None = None


#: the key columns, the other columns and the foreign keys between reference tables, from a
#: shard's catalog
_TABLE_SHAPE = """
SELECT c.relname,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attgenerated = '' ORDER BY a.attnum),
       ARRAY(SELECT a.attname::text
               FROM pg_catalog.pg_constraint k
               JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid
                                             AND a.attnum = ANY (k.conkey)
              WHERE k.conrelid = c.oid AND k.contype = 'p' ORDER BY a.attnum),
       ARRAY(SELECT DISTINCT r.relname::text
               FROM pg_catalog.pg_constraint k
               JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
              WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid <> c.oid)
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'orderdb'::regnamespace AND c.relname = ANY(%s)
"""


def _digests(conn: psycopg.Connection[Any], shard: int) -> dict[str, tuple[int, str]]:
    rows = conn.execute(
        "SELECT table_name, row_count, digest FROM orderdb_cluster.reference_digests(%s)",
        (shard,),
    ).fetchall()
    return {str(t): (int(str(n)), str(d)) for t, n, d in rows}


def _sync_order(shapes: dict[str, tuple[list[str], list[str], list[str]]]) -> list[str]:
    """The tables with each table after the tables its foreign keys reference."""
    done: list[str] = []
    pending = sorted(shapes)
    while pending:
        ready = [t for t in pending if all(r in done or r not in shapes for r in shapes[t][2])]
        if not ready:  # a cycle: keep the name order (the transaction then says what fails)
            ready = pending[:1]
        done += ready
        pending = [t for t in pending if t not in ready]
    return done


def _sync_table(
    conn: psycopg.Connection[Any],
    table: str,
    columns: list[str],
    key: list[str],
    rows: str,
) -> tuple[int, int]:
    """Insert and update ``table``'s rows to the source's (``rows``: a JSON array of them);
    returns (inserted, updated). Rows differing only in their *_at columns are left alone."""
    ident = sql.Identifier("orderdb", table)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    others = [c for c in columns if c not in key]
    compared = [c for c in others if not c.endswith("_at")]
    action: sql.Composable
    if others:
        action = sql.SQL("DO UPDATE SET {} WHERE {} IS DISTINCT FROM {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} = excluded.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in others
            ),
            sql.SQL("ROW({})").format(
                sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in compared)
            )
            if compared
            else sql.SQL("ROW(NULL)"),
            sql.SQL("ROW({})").format(
                sql.SQL(", ").join(
                    sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in compared
                )
            )
            if compared
            else sql.SQL("ROW(NULL)"),
        )
    else:
        action = sql.SQL("DO NOTHING")
    query = sql.SQL(
        "WITH w AS (INSERT INTO {t} AS t ({cols}) OVERRIDING SYSTEM VALUE"
        " SELECT {cols} FROM jsonb_populate_recordset(NULL::{t}, %s::jsonb)"
        " ON CONFLICT ({key}) {action} RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w"
    ).format(
        t=ident,
        cols=cols,
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        action=action,
    )
    row = conn.execute(query, (rows,)).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def _delete_extra(conn: psycopg.Connection[Any], table: str, key: list[str], rows: str) -> int:
    """Delete the rows of ``table`` whose key the source's rows (``rows``) do not have."""
    query = sql.SQL(
        "DELETE FROM {t} AS t WHERE NOT EXISTS (SELECT 1 FROM"
        " jsonb_populate_recordset(NULL::{t}, %s::jsonb) AS s WHERE {match})"
    ).format(
        t=sql.Identifier("orderdb", table),
        match=sql.SQL(" AND ").join(
            sql.SQL("s.{c} = t.{c}").format(c=sql.Identifier(c)) for c in key
        ),
    )
    return conn.execute(query, (rows,)).rowcount


def sync_reference(
    proxy_dsn: str,
    *,
    from_shard: int = 0,
    tables: list[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[ShardSync]:
    """`orderdb cluster sync-reference`: make the reference tables of every shard whose digest
    differs from shard ``from_shard``'s equal to that shard's, one transaction per shard
    (rows inserted, updated to the source's values, rows the source has not deleted), then
    check the digests in that transaction (a shard still differing is rolled back). The shards
    are reached with the DSNs the proxy records (libpq's password file or environment supplies
    credentials), the digests through the proxy. ``dry_run``: the same, rolled back.
    Raises ClusterError for a bad request (no such shard or table, schema revisions that
    differ) and psycopg.OperationalError when the source cannot be reached."""
    if not is_proxy(proxy_dsn):
        raise ClusterError(
            "this database is not the proxy of an orderdb cluster: give the proxy's DSN"
        )
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        shards = {
            int(str(n)): str(d)
            for n, d in conn.execute("SELECT shard, dsn FROM orderdb_cluster.shards").fetchall()
        }
        if from_shard not in shards:
            raise ClusterError(
                f"no shard {from_shard}: the cluster has shards 0..{max(shards, default=-1)}"
            )
        try:
            source_digests = _digests(conn, from_shard)
        except psycopg.Error as exc:
            return [ShardSync(from_shard, [], error=f"not reachable: {str(exc).strip()}")]
        unknown = sorted(set(tables or []) - set(source_digests))
        if unknown:
            raise ClusterError(
                f"not a reference table: {', '.join(unknown)} (the tables are: "
                + ", ".join(sorted(source_digests))
                + ")"
            )
        wanted = sorted(tables or source_digests)
        revisions: dict[int, str] = {}
        drifted: dict[int, list[str]] = {}
        unreachable: dict[int, str] = {}
        for n in sorted(shards):
            if n == from_shard:
                continue
            try:
                info = conn.execute(
                    "SELECT schema_revision FROM orderdb_cluster.shard_info(%s)", (n,)
                ).fetchone()
                mine = _digests(conn, n)
            except psycopg.Error as exc:
                unreachable[n] = str(exc).strip()
                continue
            revisions[n] = "" if info is None else str(info[0])
            diff = [t for t in wanted if mine.get(t) != source_digests.get(t)]
            if diff:
                drifted[n] = diff
        info = conn.execute(
            "SELECT schema_revision FROM orderdb_cluster.shard_info(%s)", (from_shard,)
        ).fetchone()
        source_revision = "" if info is None else str(info[0])
    other = sorted(n for n in drifted if revisions[n] != source_revision)
    if other:
        raise ClusterError(
            f"shard {', '.join(map(str, other))} has another schema revision than shard "
            f"{from_shard}: run orderdb migrate --dsn PROXY first"
        )
    out: list[ShardSync] = [
        ShardSync(n, [], error=f"not reachable: {why}") for n, why in sorted(unreachable.items())
    ]
    if not drifted:
        _say(
            progress,
            f"every reachable shard's reference data are shard {from_shard}'s: nothing to do",
        )
        return out
    needed = sorted({t for ts in drifted.values() for t in ts})
    try:
        source = psycopg.connect(shards[from_shard], autocommit=True)
    except psycopg.OperationalError as exc:
        return [*out, ShardSync(from_shard, [], error=f"not reachable: {str(exc).strip()}")]
    with source as src, src.transaction():
        src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        source_rows = {
            t: str(
                src.execute(
                    sql.SQL("SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]')::text FROM {} t").format(
                        sql.Identifier("orderdb", t)
                    )
                ).fetchone()[0]  # type: ignore[index]
            )
            for t in needed
        }
        source_digests = {
            str(t): (int(str(c)), str(d))
            for t, c, d in src.execute(
                "SELECT table_name, row_count, digest FROM orderdb_shard.reference_digests()"
            ).fetchall()
        }
    for n in sorted(drifted):
        out.append(
            _sync_shard(n, shards[n], drifted[n], source_rows, source_digests, dry_run, progress)
        )
    return sorted(out, key=lambda s: s.shard)


class _RollBack(Exception):
    pass


def _sync_shard(
    shard: int,
    dsn: str,
    tables: list[str],
    source_rows: dict[str, str],
    source_digests: dict[str, tuple[int, str]],
    dry_run: bool,
    progress: Progress | None,
) -> ShardSync:
    """One drifted shard in one transaction (rolled back for a dry run or when its digests
    still differ afterwards)."""
    done: list[TableSync] = []
    still: list[str] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            shapes = {
                str(name): (list(cols), list(key), list(refs))
                for name, cols, key, refs in conn.execute(_TABLE_SHAPE, (tables,)).fetchall()
            }
            order = _sync_order(shapes)
            deleted: dict[str, int] = {}
            for t in reversed(order):
                deleted[t] = _delete_extra(conn, t, shapes[t][1], source_rows[t])
            for t in order:
                inserted, updated = _sync_table(conn, t, shapes[t][0], shapes[t][1], source_rows[t])
                change = TableSync(shard, t, inserted, updated, deleted[t])
                done.append(change)
                _say(
                    progress,
                    f"shard {shard}: {t}: {inserted} inserted, {updated} updated, "
                    f"{deleted[t]} deleted" + (" (dry run)" if dry_run else ""),
                )
            after = {
                str(t): (int(str(c)), str(d))
                for t, c, d in conn.execute(
                    "SELECT table_name, row_count, digest FROM orderdb_shard.reference_digests()"
                ).fetchall()
            }
            still = [t for t in tables if after.get(t) != source_digests.get(t)]
            if still or dry_run:
                raise _RollBack
    except _RollBack:
        if still:
            _say(progress, f"shard {shard}: still differs ({', '.join(still)}): rolled back")
            return ShardSync(shard, done, "still differs after the copy: rolled back", still)
        return ShardSync(shard, done, None, [])
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _say(progress, f"shard {shard}: failed, nothing changed: {message}")
        return ShardSync(shard, done, message, None)
    _say(progress, f"shard {shard}: committed")
    return ShardSync(shard, done, None, [])
