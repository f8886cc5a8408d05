-- orderdb_ingest (WMS and carriers): USAGE on schema orderdb and EXECUTE on the entry
-- points only (wms_callback, record_tracking_event(s), and receive_return for the warehouse dock); no privilege on any table,
-- view or sequence, none on orderdb_ops, none on the application API, none on the internal
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

SELECT schema_privs_are('orderdb', 'orderdb_ingest', ARRAY['USAGE'],
                        'orderdb_ingest may use schema orderdb (not create in it)');
SELECT schema_privs_are('orderdb_ops', 'orderdb_ingest', ARRAY[]::name[],
                        'orderdb_ingest has no privilege on schema orderdb_ops');

SELECT function_privs_are(
           n.nspname, p.proname,
           ARRAY(SELECT format_type(a.t, NULL)
                   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)
                  ORDER BY a.i)::name[],
           'orderdb_ingest',
           CASE WHEN n.nspname = 'orderdb'
                     AND p.proname IN ('wms_callback', 'record_tracking_event',
                                       'record_tracking_events', 'receive_return',
                                       'schema_revision')
                THEN ARRAY['EXECUTE'] ELSE ARRAY[]::name[] END::name[],
           format('orderdb_ingest: EXECUTE on %s only if it is a WMS/carrier entry point',
                  p.oid::regprocedure))
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops');

SELECT table_privs_are(n.nspname, c.relname, 'orderdb_ingest', ARRAY[]::name[],
                       format('orderdb_ingest has no privilege on %I.%I', n.nspname, c.relname))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND c.relkind IN ('r', 'p', 'v', 'm', 'f');

SELECT sequence_privs_are(n.nspname, c.relname, 'orderdb_ingest', ARRAY[]::name[],
                          format('orderdb_ingest has no privilege on sequence %I.%I',
                                 n.nspname, c.relname))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND c.relkind = 'S';

SELECT function_privs_are('orderdb', 'create_order',
                          ARRAY['bigint', 'integer', 'jsonb', 'text', 'text', 'jsonb'],
                          'orderdb_ingest', ARRAY[]::name[],
                          'orderdb_ingest may not create orders');

SELECT * FROM finish();
ROLLBACK;
