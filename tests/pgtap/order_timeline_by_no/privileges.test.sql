-- order_timeline_by_no: orderdb_app may call it (the tracking page's role); it is SECURITY
-- DEFINER with a pinned search_path; orderdb_ingest and orderdb_ops may not call it.
BEGIN;
SELECT plan(5);

SELECT ok(has_function_privilege('orderdb_app', 'orderdb.order_timeline_by_no(text, bigint, text)',
                                 'EXECUTE'), 'orderdb_app may execute it');
SELECT ok(NOT has_function_privilege('orderdb_ingest',
                                     'orderdb.order_timeline_by_no(text, bigint, text)', 'EXECUTE'),
          'orderdb_ingest may not');
SELECT ok(NOT has_function_privilege('orderdb_ops', 'orderdb.order_timeline_by_no(text, bigint, text)',
                                     'EXECUTE'), 'orderdb_ops may not');
SELECT is((SELECT prosecdef FROM pg_proc
            WHERE oid = 'orderdb.order_timeline_by_no(text, bigint, text)'::regprocedure), true,
          'SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc
            WHERE oid = 'orderdb.order_timeline_by_no(text, bigint, text)'::regprocedure),
          ARRAY['search_path=pg_catalog, pg_temp'], 'search_path pinned');

SELECT * FROM finish();
ROLLBACK;
