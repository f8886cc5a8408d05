-- Grants (DESIGN principle 8, least privilege). Applied last, on every `orderdb migrate`, in the
-- same transaction as every other sql/ file: whatever the earlier files created, no committed
-- state ever lets PUBLIC execute a new function.
--
--   owner           (the role that runs migrate) owns and alone writes every table; functions that
--                   touch tables are SECURITY DEFINER with search_path pinned, so callers need no
--                   table privilege at all
--   orderdb_app     USAGE on schema orderdb, EXECUTE on the application API listed below
--   orderdb_ingest  USAGE on schema orderdb, EXECUTE on the WMS/carrier entry points listed below
--   orderdb_ops     USAGE on schema orderdb_ops, SELECT on its views (and EXECUTE on the
--                   functions those views call, see step 4)
--   PUBLIC          nothing: no table, sequence or function of orderdb / orderdb_ops
--
-- Everything else (admin functions such as create_webhook_subscription, purge_events,
-- drop_consumer, retry_webhook_delivery; the relay's internal orderdb._webhook_* functions, which
-- hand out webhook secrets) is the owner's alone.
--
-- To expose a new public function, add its name to the lists in step 3. A name whose function
-- does not exist (yet) is skipped; every overload of a listed name is granted.
-- The roles themselves are created by migrations/0006_roles.sql. Locks: the catalog rows of the
-- objects whose ACL changes.

DO $grants$
DECLARE
    v_grant record;
BEGIN
    -- 1. Tables and sequences: the owner only. Nothing is granted on them, so revoke whatever an
    --    earlier file (or a hand-made GRANT) gave, from PUBLIC and from the orderdb roles.
    REVOKE ALL ON ALL TABLES IN SCHEMA orderdb
        FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA orderdb
        FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;
    REVOKE ALL ON ALL TABLES IN SCHEMA orderdb_ops
        FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA orderdb_ops
        FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;

    -- 2. Functions: PostgreSQL grants EXECUTE to PUBLIC on every new function. ALL ROUTINES IN
    --    SCHEMA is evaluated now (every function, procedure and aggregate that exists in this
    --    transaction, including those added by files applied before this one). Also resets the
    --    roles' grants, which step 3 gives back from its lists (so a name taken off a list loses
    --    its grant).
    REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb
        FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;
    REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb_ops
        FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;

    -- 3. Schemas and the public API per role.
    REVOKE ALL ON SCHEMA orderdb FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;
    REVOKE ALL ON SCHEMA orderdb_ops FROM PUBLIC, orderdb_app, orderdb_ingest, orderdb_ops;
    GRANT USAGE ON SCHEMA orderdb TO orderdb_app, orderdb_ingest;
    GRANT USAGE ON SCHEMA orderdb_ops TO orderdb_ops;

    FOR v_grant IN
        SELECT g.role_name, n.nspname, p.proname,
               pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
          FROM (VALUES
                -- orderdb_app: the application API (docs/contract.md)
                ('orderdb_app', 'receive_stock'),
                ('orderdb_app', 'stock_level'),
                ('orderdb_app', 'create_order'),
                ('orderdb_app', 'transition_order'),
                ('orderdb_app', 'get_order'),
                ('orderdb_app', 'amend_order'),           -- order data (30_orders.sql)
                ('orderdb_app', 'customer_orders'),
                ('orderdb_app', 'order_history'),
                ('orderdb_app', 'allowed_transitions'),
                ('orderdb_app', 'order_timeline'),
                ('orderdb_app', 'order_timeline_by_no'),  -- the web tracking page (70_web.sql)
                ('orderdb_app', 'reallocate_order'),
                ('orderdb_app', 'cancel_order_lines'),    -- partial shipments (40_fulfillment.sql)
                ('orderdb_app', 'request_return'),        -- customer returns
                ('orderdb_app', 'receive_return'),
                ('orderdb_app', 'plan_routes'),           -- courier routes (40_routes.sql)
                ('orderdb_app', 'read_events'),
                ('orderdb_app', 'ack_events'),
                ('orderdb_app', 'claim_events'),          -- consumer groups (52_consumer_groups.sql)
                ('orderdb_app', 'ack_claimed'),
                ('orderdb_app', 'release_claimed'),
                ('orderdb_app', 'schema_revision'),       -- the clients' check on connect
                -- orderdb_ingest: the WMS and carrier entry points only
                ('orderdb_ingest', 'wms_callback'),
                ('orderdb_ingest', 'record_tracking_event'),
                ('orderdb_ingest', 'record_tracking_events'),  -- batches (46_tracking_batches.sql)
                ('orderdb_ingest', 'receive_return'),     -- the warehouse dock receives parcels
                ('orderdb_ingest', 'schema_revision')
               ) AS g(role_name, function_name)
          JOIN pg_catalog.pg_proc p ON p.proname = g.function_name
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'orderdb'
         ORDER BY g.role_name, p.proname, args
    LOOP
        EXECUTE format('GRANT EXECUTE ON ROUTINE %I.%I(%s) TO %I',
                       v_grant.nspname, v_grant.proname, v_grant.args, v_grant.role_name);
    END LOOP;

    -- 4. orderdb_ops reads the views of orderdb_ops. A view reads tables with its owner's rights,
    --    but the functions it calls are checked against (and, unless SECURITY DEFINER, run as)
    --    the reader: grant EXECUTE on the functions of orderdb/orderdb_ops that a view of
    --    orderdb_ops calls directly, when that gives orderdb_ops no new power: the function runs
    --    with the reader's rights (not SECURITY DEFINER), or it cannot write (STABLE/IMMUTABLE).
    --    A view that needs a VOLATILE SECURITY DEFINER function fails for orderdb_ops
    --    (tests/test_security_privileges.py reads every view as orderdb_ops).
    --    pg_stat_activity & co. show other sessions' queries to members of pg_monitor (granted
    --    by 0006_roles).
    GRANT SELECT ON ALL TABLES IN SCHEMA orderdb_ops TO orderdb_ops;
    FOR v_grant IN
        SELECT DISTINCT n.nspname, p.proname,
               pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
          FROM pg_catalog.pg_class v
          JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace AND vn.nspname = 'orderdb_ops'
          JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid
          JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
           AND d.refclassid = 'pg_catalog.pg_proc'::regclass
          JOIN pg_catalog.pg_proc p
            ON p.oid = d.refobjid AND (NOT p.prosecdef OR p.provolatile IN ('s', 'i'))
          JOIN pg_catalog.pg_namespace n
            ON n.oid = p.pronamespace AND n.nspname IN ('orderdb', 'orderdb_ops')
         WHERE v.relkind IN ('v', 'm')
         ORDER BY 1, 2, 3
    LOOP
        EXECUTE format('GRANT EXECUTE ON ROUTINE %I.%I(%s) TO orderdb_ops',
                       v_grant.nspname, v_grant.proname, v_grant.args);
    END LOOP;
END;
$grants$;
