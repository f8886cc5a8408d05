-- orderdb_app (the application API): USAGE on schema orderdb and EXECUTE on the API functions
-- only; no privilege on any table, view or sequence, none on orderdb_ops, none on the internal
-- orderdb._x helpers or the owner's admin functions. Counts follow the catalog.
BEGIN;
SELECT plan(
    3
    + (SELECT count(*)::integer FROM pg_catalog.pg_proc p
        WHERE p.pronamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace))
    + (SELECT count(*)::integer FROM pg_catalog.pg_class c
        WHERE c.relnamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace)
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))
    + (SELECT count(*)::integer FROM pg_catalog.pg_class c
        WHERE c.relnamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace)
          AND c.relkind = 'S'));

SELECT schema_privs_are('orderdb', 'orderdb_app', ARRAY['USAGE'],
                        'orderdb_app may use schema orderdb (not create in it)');
SELECT schema_privs_are('orderdb_ops', 'orderdb_app', ARRAY[]::name[],
                        'orderdb_app has no privilege on schema orderdb_ops');

SELECT function_privs_are(
           n.nspname, p.proname,
           ARRAY(SELECT format_type(a.t, NULL)
                   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)
                  ORDER BY a.i)::name[],
           'orderdb_app',
           CASE WHEN n.nspname = 'orderdb'
                     AND p.proname IN ('receive_stock', 'stock_level', 'create_order',
                                       'transition_order', 'get_order', 'order_history',
                                       'amend_order', 'customer_orders',
                                       'allowed_transitions', 'order_timeline',
                                       'order_timeline_by_no', 'reallocate_order',
                                       'cancel_order_lines', 'request_return',
                                       'receive_return', 'plan_routes',
                                       'read_events', 'ack_events', 'claim_events',
                                       'ack_claimed', 'release_claimed', 'schema_revision')
                THEN ARRAY['EXECUTE'] ELSE ARRAY[]::name[] END::name[],
           format('orderdb_app: EXECUTE on %s only if it is application API',
                  p.oid::regprocedure))
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops');

SELECT table_privs_are(n.nspname, c.relname, 'orderdb_app', ARRAY[]::name[],
                       format('orderdb_app has no privilege on %I.%I', n.nspname, c.relname))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND c.relkind IN ('r', 'p', 'v', 'm', 'f');

SELECT sequence_privs_are(n.nspname, c.relname, 'orderdb_app', ARRAY[]::name[],
                          format('orderdb_app has no privilege on sequence %I.%I',
                                 n.nspname, c.relname))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND c.relkind = 'S';

SELECT function_privs_are('orderdb', 'create_order',
                          ARRAY['bigint', 'integer', 'jsonb', 'text', 'text', 'jsonb'],
                          'orderdb_app', ARRAY['EXECUTE'],
                          'orderdb_app may execute create_order (contract signature)');

SELECT * FROM finish();
ROLLBACK;
