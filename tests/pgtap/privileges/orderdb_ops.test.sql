-- orderdb_ops (operators): USAGE on schema orderdb_ops and SELECT (only) on its views; no
-- privilege on schema orderdb, its tables or sequences; EXECUTE only on the functions that a
-- view of orderdb_ops calls (a view checks its functions against the reader) and that give it no
-- new power: not SECURITY DEFINER (they run as the reader), or unable to write (not VOLATILE).
-- Member of pg_monitor (the health views show every session). Counts follow the catalog.
BEGIN;
SELECT plan(
    4
    + (SELECT count(*)::integer FROM pg_catalog.pg_proc p
        WHERE p.pronamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace))
    + (SELECT count(*)::integer FROM pg_catalog.pg_class c
        WHERE c.relnamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace)
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))
    + (SELECT count(*)::integer FROM pg_catalog.pg_class c
        WHERE c.relnamespace IN ('orderdb'::regnamespace, 'orderdb_ops'::regnamespace)
          AND c.relkind = 'S'));

SELECT schema_privs_are('orderdb_ops', 'orderdb_ops', ARRAY['USAGE'],
                        'orderdb_ops may use schema orderdb_ops (not create in it)');
SELECT schema_privs_are('orderdb', 'orderdb_ops', ARRAY[]::name[],
                        'orderdb_ops has no privilege on schema orderdb');
SELECT ok(pg_has_role('orderdb_ops', 'pg_monitor', 'USAGE'),
          'orderdb_ops has the privileges of pg_monitor');
SELECT cmp_ok((SELECT count(*)::integer FROM pg_catalog.pg_class c
                WHERE c.relnamespace = 'orderdb_ops'::regnamespace AND c.relkind IN ('v', 'm')),
              '>=', 2, 'orderdb_ops has views (inventory_drift, relay_lag, ...)');

WITH view_funcs AS (
    SELECT DISTINCT d.refobjid AS fn
      FROM pg_catalog.pg_class v
      JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid
      JOIN pg_catalog.pg_depend d
        ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
       AND d.refclassid = 'pg_catalog.pg_proc'::regclass
     WHERE v.relnamespace = 'orderdb_ops'::regnamespace AND v.relkind IN ('v', 'm')
)
SELECT function_privs_are(
           n.nspname, p.proname,
           ARRAY(SELECT format_type(a.t, NULL)
                   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)
                  ORDER BY a.i)::name[],
           'orderdb_ops',
           CASE WHEN p.oid IN (SELECT fn FROM view_funcs)
                     AND (NOT p.prosecdef OR p.provolatile IN ('s', 'i'))
                THEN ARRAY['EXECUTE'] ELSE ARRAY[]::name[] END::name[],
           format('orderdb_ops: EXECUTE on %s only if an ops view calls it and it adds no power',
                  p.oid::regprocedure))
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops');

SELECT table_privs_are(n.nspname, c.relname, 'orderdb_ops',
                       CASE WHEN n.nspname = 'orderdb_ops' AND c.relkind IN ('v', 'm')
                            THEN ARRAY['SELECT'] ELSE ARRAY[]::name[] END::name[],
                       format('orderdb_ops: SELECT on %I.%I only if it is an ops view',
                              n.nspname, c.relname))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND c.relkind IN ('r', 'p', 'v', 'm', 'f');

SELECT sequence_privs_are(n.nspname, c.relname, 'orderdb_ops', ARRAY[]::name[],
                          format('orderdb_ops has no privilege on sequence %I.%I',
                                 n.nspname, c.relname))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND c.relkind = 'S';

SELECT * FROM finish();
ROLLBACK;
