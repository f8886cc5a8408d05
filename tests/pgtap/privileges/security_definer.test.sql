-- Every public (non-underscore) function of schema orderdb runs as its owner (SECURITY DEFINER)
-- with a pinned search_path; no function of orderdb or orderdb_ops is executable by PUBLIC (in
-- particular no internal orderdb._x helper). Counts follow the catalog, so functions added by
-- later files are covered without editing this file.
BEGIN;
SELECT plan(
    2 * (SELECT count(*)::integer FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = 'orderdb'::regnamespace AND p.proname !~ '^_')
    + (SELECT count(*)::integer FROM pg_catalog.pg_proc p
        WHERE p.pronamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace))
    + 2);

SELECT ok(p.prosecdef, format('%s is SECURITY DEFINER', p.oid::regprocedure))
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'orderdb'::regnamespace AND p.proname !~ '^_';

SELECT ok(coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false),
          format('%s pins search_path = pg_catalog, pg_temp', p.oid::regprocedure))
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'orderdb'::regnamespace AND p.proname !~ '^_';

SELECT ok(NOT EXISTS (SELECT 1
                        FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
          format('PUBLIC may not execute %s', p.oid::regprocedure))
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace);

SELECT cmp_ok((SELECT count(*)::integer FROM pg_catalog.pg_proc p
                WHERE p.pronamespace = 'orderdb'::regnamespace AND p.proname ~ '^_'),
              '>', 0, 'there are internal orderdb._ helpers (the PUBLIC checks above cover them)');

SELECT is((SELECT count(*)::integer FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'orderdb'::regnamespace
              AND p.proname IN ('receive_stock', 'stock_level', 'create_order',
                                'transition_order', 'get_order', 'order_history',
                                'allowed_transitions', 'read_events', 'ack_events',
                                'amend_order', 'customer_orders')),
          11, 'the core API functions exist (the checks above cover them)');

SELECT * FROM finish();
ROLLBACK;
