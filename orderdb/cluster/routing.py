"""How each public function is routed through the proxy, and the SQL that does it.

The SQL is generated from a shard's catalog (names, arguments with their defaults, result
columns, which orderdb role may execute it), so that the proxy's functions have exactly the
signatures of the shards'. Per routed function three functions are generated:

``orderdb_shard.<name>(args)`` on every shard
    calls ``orderdb.<name>`` and returns its rows with four trailing columns ``err_sqlstate,
    err_message, err_detail, err_hint``; an error is caught and returned as one row of data
    (nothing of the call is kept: the exception block rolls it back, and the commit of the
    shard's transaction is not waited for: synchronous_commit off, as nothing durable changed).
    A remote error would make PL/Proxy drop its connection to the shard (a reconnect per
    failing call).
``orderdb_cluster.<name>(p_shard, args)`` on the proxy
    the PL/Proxy function: ``CLUSTER 'orderdb'; RUN ON p_shard;`` calls the shard's wrapper.
``orderdb.<name>(args)`` on the proxy
    the public function (same signature as on one database, SECURITY DEFINER): computes the
    shard (the *route* below), calls the PL/Proxy function, raises a returned error with the same
    SQLSTATE, MESSAGE, DETAIL and HINT (``orderdb_cluster._raise``), else returns the rows.

A public function without a route gets a proxy function of the same signature that raises
0A000 (not available through the proxy yet), so that nothing answers wrongly.
"""

# This module writes DDL from a shard's catalog (function, argument and column names of pg_proc,
# never a caller's input): the string-built SQL that S608 flags is that.
# ruff: noqa: S608
from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

#: the PL/Proxy cluster (the SQL/MED server) of the proxy database
CLUSTER_NAME = "orderdb_cluster"
#: the error columns every shard wrapper adds to its result
ERROR_COLUMNS = ("err_sqlstate", "err_message", "err_detail", "err_hint")
#: the error columns of a call that succeeded
NO_ERROR = "NULL::text, NULL::text, NULL::text, NULL::text"
#: the orderdb roles whose EXECUTE grants the proxy copies from the shards
API_ROLES = ("orderdb_app", "orderdb_ingest", "orderdb_ops")


@dataclass(frozen=True)
class Route:
    """Where a public function runs: ``shard`` is a SQL expression over the function's
    arguments giving the shard number; ``guard`` is PL/pgSQL run before the call (it may
    raise); ``kind`` names the rule for docs/scaling.md."""

    kind: str
    shard: str
    guard: str = ""
    #: False: the public function is written by hand in sql/cluster/proxy_*.sql (it does more
    #: than route one call); the shard wrapper and the PL/Proxy function are still generated
    generated: bool = True
    #: a call that runs on every shard (RUN ON ALL, no shard argument); ``merge`` says how the
    #: shards' rows are merged (ORDER BY ... LIMIT ... over alias ``x``) when generated
    all_shards: bool = False
    merge: str = ""
    #: cluster-wide configuration: the call runs on every shard in turn, shard 0 first (it
    #: validates: its error is raised and nothing is written anywhere), and returns shard 0's
    #: result; a later shard's error is raised with a hint naming the shards written (running
    #: the call again converges: these functions are upserts). Such calls are serial on the
    #: proxy (a transaction advisory lock), so that every shard applies them in the same order
    every_shard: bool = False


WAREHOUSE = "warehouse"
ORDER = "order"
ORDER_NO = "order number"
ANY = "any shard (reference data)"
ALL = "every shard, rows merged"
TRACKING = "tracking number (its home, then its shipment's shard)"
EVERY = "every shard in turn, shard 0 first (cluster-wide configuration)"


def _by_warehouse(arg: str, place: bool) -> Route:
    return Route(
        WAREHOUSE,
        f"coalesce(orderdb_cluster.warehouse_shard({arg}, {'true' if place else 'false'}), 0)",
    )


def _by_order(arg: str = "p_order_id", guard: str = "") -> Route:
    return Route(ORDER, f"orderdb_cluster.order_shard({arg})", guard)


#: the routed public functions (docs/scaling.md lists the same)
ROUTES: dict[str, Route] = {
    # warehouse-keyed: the shard that owns the warehouse (placed on first use by the calls that
    # create its data)
    "receive_stock": _by_warehouse("p_warehouse_id", place=True),
    "stock_level": _by_warehouse("p_warehouse_id", place=False),
    "plan_routes": _by_warehouse("p_warehouse_id", place=False),
    # the key's home first (global idempotency keys): sql/cluster/proxy_20_create_order.sql
    "create_order": Route(
        WAREHOUSE + ", after its idempotency key's home",
        "coalesce(orderdb_cluster.warehouse_shard(p_warehouse_id, true), 0)",
        generated=False,
    ),
    # order-keyed: the shard encoded in the order id
    "transition_order": _by_order(),
    "get_order": _by_order(),
    "amend_order": _by_order(),
    "order_history": _by_order(),
    "order_timeline": _by_order(),
    "cancel_order_lines": _by_order(),
    "request_return": _by_order(),
    "receive_return": _by_order(),
    # hand-written in sql/cluster/proxy_30_tracking.sql: a SHIPPED callback also moves the
    # carrier events parked at its tracking number's home
    "wms_callback": Route(ORDER, "orderdb_cluster.order_shard(p_order_id)", generated=False),
    # the shard of the shipment, found through the tracking number's home (parked there until
    # the shipment appears): sql/cluster/proxy_30_tracking.sql
    "record_tracking_event": Route(TRACKING, "", generated=False),
    # checked whole on every shard (undone there), then element by element as
    # record_tracking_event: sql/cluster/proxy_80_tracking_batches.sql
    "record_tracking_events": Route(TRACKING + ", element by element", "", generated=False),
    # within the order's shard: routed; to another shard: the saga of
    # sql/cluster/proxy_60_reallocation.sql
    "reallocate_order": Route(ORDER, "orderdb_cluster.order_shard(p_order_id)", generated=False),
    "order_timeline_by_no": Route(ORDER_NO, "orderdb_cluster.order_no_shard(p_order_no)"),
    # the same on every shard
    "allowed_transitions": Route(ANY, "0"),
    # per-warehouse configuration (owner functions): the warehouse's shard; an unmapped
    # warehouse is not placed (the call then answers OD004 from shard 0, as one database
    # answers for a warehouse that never received stock)
    "set_warehouse_location": _by_warehouse("p_warehouse_id", place=False),
    "add_courier": _by_warehouse("p_warehouse_id", place=False),
    "set_courier_available": _by_warehouse("p_warehouse_id", place=False),
    "set_warehouse_wms": _by_warehouse("p_warehouse_id", place=False),
    "set_stock_buckets": _by_warehouse("p_warehouse_id", place=False),
    "rebalance_stock_buckets": _by_warehouse("p_warehouse_id", place=False),
    # cluster-wide configuration (owner functions, upserts): written on every shard
    "set_integration": Route(EVERY, "", every_shard=True),
    "set_carrier_polling": Route(EVERY, "", every_shard=True),
    # created on shard 0 (its id and secret), then copied with that id and secret to every
    # other shard: sql/cluster/proxy_90_configuration.sql
    "create_webhook_subscription": Route(
        "shard 0, then copied to every shard (same id and secret)", "0", generated=False
    ),
    # a customer's orders live on the shards of their warehouses: every shard's first page,
    # merged by order id (the keyset of one database)
    "customer_orders": Route(
        ALL, "", all_shards=True, merge="ORDER BY x.order_id DESC LIMIT greatest(p_limit, 1)"
    ),
    # each shard escalates its own breaches (rows and sla.escalated events of its outbox): every
    # shard's new escalations, in one database's order (`orderdb sla-check --dsn PROXY`)
    "sla_check": Route(ALL, "", all_shards=True, merge="ORDER BY x.order_id, x.rule"),
}

#: public functions that the proxy does not route yet (they raise 0A000 there); the reason is
#: the HINT and docs/scaling.md says what is planned
NOT_YET: dict[str, str] = {}

#: public functions whose proxy side is written by hand in sql/cluster/proxy_*.sql without a
#: generated shard wrapper (the events: sql/cluster/shard_30_events.sql and proxy_30_events.sql)
HAND_WRITTEN = frozenset(
    {"read_events", "ack_events", "claim_events", "ack_claimed", "release_claimed"}
)

#: served by the proxy itself (sql/cluster/proxy_*.sql)
PROXY_LOCAL = frozenset({"schema_revision"})


@dataclass(frozen=True)
class Signature:
    """One public function as a shard's catalog describes it."""

    name: str
    arguments: str  # with defaults (pg_get_function_arguments)
    identity: str  # argument types only (pg_get_function_identity_arguments)
    input_names: tuple[str, ...]
    input_types: tuple[str, ...]
    result: str  # pg_get_function_result: "TABLE(...)", "jsonb", "void", ...
    returns_set: bool
    columns: tuple[tuple[str, str], ...]  # RETURNS TABLE columns, else ()
    return_type: str
    roles: tuple[str, ...] = field(default=())

    @property
    def out_columns(self) -> tuple[tuple[str, str], ...]:
        """The result as columns (a scalar result is one column named ``result``; void: a
        text column that is always NULL)."""
        if self.return_type == "void":
            return (("result", "text"),)
        return self.columns or (("result", self.return_type),)


_CATALOG_QUERY = """
SELECT p.proname,
       pg_catalog.pg_get_function_arguments(p.oid),
       pg_catalog.pg_get_function_identity_arguments(p.oid),
       coalesce((SELECT array_agg(a.name ORDER BY a.n)
                   FROM unnest(p.proargnames, coalesce(p.proargmodes,
                               array_fill('i'::"char", ARRAY[p.pronargs])))
                        WITH ORDINALITY a(name, mode, n)
                  WHERE a.mode IN ('i', 'b', 'v')), '{}'),
       coalesce((SELECT array_agg(pg_catalog.format_type(t.typ, NULL) ORDER BY t.n)
                   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY t(typ, n)), '{}'),
       pg_catalog.pg_get_function_result(p.oid),
       p.proretset,
       coalesce((SELECT array_agg(a.name ORDER BY a.n)
                   FROM unnest(p.proargnames, p.proargmodes) WITH ORDINALITY a(name, mode, n)
                  WHERE a.mode = 't'), '{}'),
       coalesce((SELECT array_agg(pg_catalog.format_type(a.typ, NULL) ORDER BY a.n)
                   FROM unnest(p.proallargtypes, p.proargmodes) WITH ORDINALITY a(typ, mode, n)
                  WHERE a.mode = 't'), '{}'),
       pg_catalog.format_type(p.prorettype, NULL),
       ARRAY(SELECT r.rolname FROM pg_catalog.pg_roles r
              WHERE r.rolname = ANY(%(roles)s)
                AND pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE')
              ORDER BY r.rolname)
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'orderdb'::regnamespace
   AND p.proname = ANY(%(names)s)
 ORDER BY p.proname, 3
"""


def read_signatures(conn: psycopg.Connection[tuple[object, ...]]) -> list[Signature]:
    """The public functions of a shard (routed, not yet routed), from its catalog."""
    names = sorted(set(ROUTES) | set(NOT_YET))
    rows = conn.execute(_CATALOG_QUERY, {"names": names, "roles": list(API_ROLES)}).fetchall()
    out: list[Signature] = []
    for row in rows:
        (name, args, ident, in_names, in_types, result, retset, cols, col_types, rettype, roles) = (
            row
        )
        out.append(
            Signature(
                name=str(name),
                arguments=str(args),
                identity=str(ident),
                input_names=tuple(str(n) for n in in_names),  # type: ignore[attr-defined]
                input_types=tuple(str(t) for t in in_types),  # type: ignore[attr-defined]
                result=str(result),
                returns_set=bool(retset),
                columns=tuple(zip(map(str, cols), map(str, col_types), strict=True)),  # type: ignore[call-overload]
                return_type=str(rettype),
                roles=tuple(str(r) for r in roles),  # type: ignore[attr-defined]
            )
        )
    return out


def _table(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{n} {t}" for n, t in columns)


def _wrapper_columns(sig: Signature) -> str:
    return _table((*sig.out_columns, *((c, "text") for c in ERROR_COLUMNS)))


def _args_list(sig: Signature) -> str:
    return ", ".join(sig.input_names)


def shard_wrapper_sql(sig: Signature, shard_role: str) -> str:
    """``orderdb_shard.<name>``: the call with its error returned as data."""
    args = _args_list(sig)
    if sig.columns:
        call = f"SELECT r.*, {NO_ERROR} FROM orderdb.{sig.name}({args}) AS r"
    elif sig.return_type == "void":
        call = f"SELECT NULL::text, {NO_ERROR} FROM orderdb.{sig.name}({args}) AS r"
    else:
        call = f"SELECT orderdb.{sig.name}({args}), {NO_ERROR}"
    nulls = ", ".join(f"NULL::{t}" for _, t in sig.out_columns)
    params = ", ".join(f"{n} {t}" for n, t in zip(sig.input_names, sig.input_types, strict=True))
    role = _ident(shard_role)
    # a function no orderdb role may execute (the owner's alone: sla_check, configuration) runs
    # with the wrapper owner's rights, or the proxy's shard role could not call it; only that
    # role may execute the wrapper, and on the proxy only the owner may call the function
    definer = "" if sig.roles else " SECURITY DEFINER"
    return f"""
-- {sig.name}: orderdb.{sig.name} for the proxy; an error comes back as data (err_* columns)
CREATE OR REPLACE FUNCTION orderdb_shard.{sig.name}({params})
RETURNS TABLE ({_wrapper_columns(sig)})
    LANGUAGE plpgsql{definer}
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    RETURN QUERY {call};
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    -- the call was rolled back, but a write before the error gave this transaction an xid:
    -- its commit needs no WAL flush (nothing of it is kept)
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT {nulls}, v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.{sig.name}({sig.identity}) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.{sig.name}({sig.identity}) TO {role};
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def proxy_sql(sig: Signature) -> str:
    """The proxy's PL/Proxy function and public function for ``sig``."""
    route = ROUTES.get(sig.name)
    if route is None:
        return _not_yet_sql(sig)
    params = ", ".join(f"{n} {t}" for n, t in zip(sig.input_names, sig.input_types, strict=True))
    args = _args_list(sig)
    everywhere = route.all_shards
    sep = ", " if params else ""
    shard_param, shard_type, run_on = (
        ("", "", "ALL") if everywhere else (f"p_shard integer{sep}", f"integer{sep}", "p_shard")
    )
    remote = f"""
CREATE OR REPLACE FUNCTION orderdb_cluster.{sig.name}({shard_param}{params})
RETURNS TABLE ({_wrapper_columns(sig)})
    LANGUAGE plproxy
AS $fn$
    CLUSTER '{CLUSTER_NAME}';
    RUN ON {run_on};
    SELECT * FROM orderdb_shard.{sig.name}({args});
$fn$;
REVOKE ALL ON FUNCTION orderdb_cluster.{sig.name}({shard_type}{sig.identity}) FROM PUBLIC;
"""
    raise_error = (
        "        IF r.err_sqlstate IS NOT NULL THEN\n"
        "            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,\n"
        "                                           r.err_hint);\n"
        "        END IF;\n"
    )
    grants = f"REVOKE ALL ON FUNCTION orderdb.{sig.name}({sig.identity}) FROM PUBLIC;\n" + "".join(
        f"GRANT EXECUTE ON FUNCTION orderdb.{sig.name}({sig.identity}) TO {role};\n"
        for role in sig.roles
    )
    if not route.generated:
        return remote + grants
    if route.every_shard:
        return remote + _every_shard_sql(sig, route, grants)
    if everywhere:
        # errors first (every shard refuses bad arguments alike), then the merged rows
        call = (
            f"orderdb_cluster.{sig.name}({args}) AS x"
            f" ORDER BY (x.err_sqlstate IS NULL), {route.merge.removeprefix('ORDER BY ')}"
        )
    else:
        call = f"orderdb_cluster.{sig.name}({route.shard}{', ' if args else ''}{args})"
    if sig.columns:
        assign = "".join(f"        {n} := r.{n};\n" for n, _ in sig.columns)
        body = (
            f"    FOR r IN SELECT * FROM {call} LOOP\n{raise_error}{assign}"
            "        RETURN NEXT;\n    END LOOP;\n"
        )
    elif sig.return_type == "void":
        body = f"    FOR r IN SELECT * FROM {call} LOOP\n{raise_error}    END LOOP;\n"
    else:
        body = (
            f"    FOR r IN SELECT * FROM {call} LOOP\n{raise_error}"
            "        RETURN r.result;\n    END LOOP;\n    RETURN NULL;\n"
        )
    public = f"""
-- {sig.name}: routed by {route.kind} (orderdb.cluster.routing; docs/scaling.md)
CREATE OR REPLACE FUNCTION orderdb.{sig.name}({sig.arguments})
RETURNS {sig.result}
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
BEGIN{route.guard}
{body}END;
$fn$;
{grants}"""
    return remote + public


def _every_shard_sql(sig: Signature, route: Route, grants: str) -> str:
    """The public function of cluster-wide configuration: the call on every shard in turn
    (shard 0 first), shard 0's result returned; a later shard's error raised with a hint naming
    the shards already written."""
    args = _args_list(sig)
    call = f"orderdb_cluster.{sig.name}(v_shard{', ' if args else ''}{args})"
    if sig.columns:
        keep = "".join(f"                    {n} := r.{n};\n" for n, _ in sig.columns)
        keep += "                    RETURN NEXT;\n"
        finish = "    RETURN;\n"
    else:
        keep = "                    v_result := r.result;\n"
        finish = "    RETURN v_result;\n" if sig.return_type != "void" else "    RETURN;\n"
    result_var = (
        ""
        if sig.columns
        else f"    v_result {'text' if sig.return_type == 'void' else sig.return_type};\n"
    )
    return f"""
-- {sig.name}: routed to {route.kind} (orderdb.cluster.routing; docs/scaling.md)
CREATE OR REPLACE FUNCTION orderdb.{sig.name}({sig.arguments})
RETURNS {sig.result}
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
    v_shard integer;
    v_done integer[] := '{{}}';
{result_var}    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    -- cluster-wide configuration writes through the proxy are serial, so that two of them
    -- reach every shard in the same order
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('orderdb_cluster.configuration'));
    FOR v_shard IN SELECT s.shard FROM orderdb_cluster.shards s ORDER BY s.shard LOOP
        BEGIN
            FOR r IN SELECT * FROM {call} LOOP
                IF r.err_sqlstate IS NOT NULL THEN
                    PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                                   r.err_hint);
                END IF;
                IF cardinality(v_done) = 0 THEN
{keep}                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            IF cardinality(v_done) = 0 THEN
                RAISE;  -- the first shard refused: nothing is written anywhere
            END IF;
            GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            PERFORM orderdb_cluster._raise(
                v_sqlstate, v_message, nullif(v_detail, ''),
                concat_ws(' ', nullif(v_hint, ''),
                          format('Written on shard %s, not on shard %s nor the shards after '
                                 'it (no two-phase commit): run the same call again when '
                                 'shard %s answers; orderdb cluster status shows the drift '
                                 '(docs/scaling.md, Reference data).',
                                 array_to_string(v_done, ', '), v_shard, v_shard)));
        END;
        v_done := v_done || v_shard;
    END LOOP;
{finish}END;
$fn$;
{grants}"""


def _not_yet_sql(sig: Signature) -> str:
    reason = NOT_YET[sig.name].replace("'", "''")
    grants = "".join(
        f"GRANT EXECUTE ON FUNCTION orderdb.{sig.name}({sig.identity}) TO {role};\n"
        for role in sig.roles
    )
    returns = "RETURN NULL;" if not sig.returns_set and sig.return_type != "void" else "RETURN;"
    return f"""
-- {sig.name}: not available through the proxy yet (docs/scaling.md)
CREATE OR REPLACE FUNCTION orderdb.{sig.name}({sig.arguments})
RETURNS {sig.result}
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = '0A000',
        MESSAGE = 'orderdb.{sig.name} is not available through the cluster proxy yet',
        HINT = '{reason} (docs/scaling.md).';
    {returns}
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb.{sig.name}({sig.identity}) FROM PUBLIC;
{grants}"""


def shard_functions_sql(signatures: list[Signature], shard_role: str) -> str:
    """Every shard wrapper (applied to each shard)."""
    return "".join(shard_wrapper_sql(s, shard_role) for s in signatures if s.name in ROUTES)


def proxy_functions_sql(signatures: list[Signature]) -> str:
    """Every proxy function (applied to the proxy)."""
    return "".join(proxy_sql(s) for s in signatures if s.name not in PROXY_LOCAL)


@dataclass(frozen=True)
class OpsView:
    """A view of schema orderdb_ops as a shard's catalog describes it."""

    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def table(self) -> str:
        """The RETURNS TABLE list: the view's columns (quoted: some are keywords) and shard."""
        return _table((*((_ident(n), t) for n, t in self.columns), ("shard", "integer")))


def read_ops_views(conn: psycopg.Connection[tuple[object, ...]]) -> list[OpsView]:
    """The views of orderdb_ops of a shard, with their columns in order."""
    rows = conn.execute(
        "SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum),"
        " array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)"
        " FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
        " AND NOT a.attisdropped"
        " WHERE c.relnamespace = 'orderdb_ops'::regnamespace AND c.relkind IN ('v', 'm')"
        " GROUP BY c.relname ORDER BY c.relname"
    ).fetchall()
    return [
        OpsView(
            str(name),
            tuple(zip(map(str, cols), map(str, types), strict=True)),  # type: ignore[call-overload]
        )
        for name, cols, types in rows
    ]


def shard_ops_sql(views: list[OpsView], shard_role: str) -> str:
    """``orderdb_shard.ops_<view>()`` on a shard: the view's rows and this shard's number."""
    role = _ident(shard_role)
    return "".join(
        f"""
CREATE OR REPLACE FUNCTION orderdb_shard.ops_{v.name}()
RETURNS TABLE ({v.table})
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT v.*, i.shard FROM orderdb_ops.{v.name} v CROSS JOIN orderdb_shard.shard_identity i
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.ops_{v.name}() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.ops_{v.name}() TO {role};
"""
        for v in views
    )


def proxy_ops_sql(views: list[OpsView]) -> str:
    """The proxy's orderdb_ops views: every shard's rows, with a trailing ``shard`` column."""
    out = [
        "CREATE SCHEMA IF NOT EXISTS orderdb_ops;\n",
        "REVOKE ALL ON SCHEMA orderdb_ops FROM PUBLIC;\n",
        "GRANT USAGE ON SCHEMA orderdb_ops TO orderdb_ops;\n",
        "GRANT USAGE ON SCHEMA orderdb_cluster TO orderdb_ops;\n",
    ]
    for v in views:
        out.append(
            f"""
DROP VIEW IF EXISTS orderdb_ops.{v.name};
CREATE OR REPLACE FUNCTION orderdb_cluster.ops_{v.name}()
RETURNS TABLE ({v.table})
    LANGUAGE plproxy SECURITY DEFINER
AS $fn$
    CLUSTER '{CLUSTER_NAME}';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.ops_{v.name}();
$fn$;
REVOKE ALL ON FUNCTION orderdb_cluster.ops_{v.name}() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_cluster.ops_{v.name}() TO orderdb_ops;
CREATE VIEW orderdb_ops.{v.name} AS SELECT * FROM orderdb_cluster.ops_{v.name}();
COMMENT ON VIEW orderdb_ops.{v.name} IS
    'orderdb_ops.{v.name} of every shard (docs/operations.md), with the shard of each row.';
REVOKE ALL ON orderdb_ops.{v.name} FROM PUBLIC;
GRANT SELECT ON orderdb_ops.{v.name} TO orderdb_ops;
"""
        )
    return "".join(out)
