-- The PostgreSQL health views have the contract's leading columns and answer on an idle database.
BEGIN;
SELECT plan(8);

SELECT results_eq(
    $$ SELECT attname::text COLLATE "default" FROM pg_attribute WHERE attrelid = 'orderdb_ops.table_health'::regclass AND attnum BETWEEN 1 AND 5 ORDER BY attnum $$,
    $$ VALUES ('table_name'::text), ('live_tuples'), ('dead_tuples'), ('hot_update_ratio'), ('last_autovacuum') $$,
    'table_health leading columns');
SELECT results_eq(
    $$ SELECT attname::text COLLATE "default" FROM pg_attribute WHERE attrelid = 'orderdb_ops.lock_waits'::regclass AND attnum BETWEEN 1 AND 4 ORDER BY attnum $$,
    $$ VALUES ('pid'::text), ('blocked_by'), ('wait_seconds'), ('query') $$,
    'lock_waits leading columns');
SELECT results_eq(
    $$ SELECT attname::text COLLATE "default" FROM pg_attribute WHERE attrelid = 'orderdb_ops.long_transactions'::regclass AND attnum BETWEEN 1 AND 4 ORDER BY attnum $$,
    $$ VALUES ('pid'::text), ('state'), ('xact_age'), ('query') $$,
    'long_transactions leading columns');
SELECT results_eq(
    $$ SELECT attname::text COLLATE "default" FROM pg_attribute WHERE attrelid = 'orderdb_ops.alerts'::regclass AND attnum BETWEEN 1 AND 5 ORDER BY attnum $$,
    $$ VALUES ('source'::text), ('subject'), ('level'), ('message'), ('since') $$,
    'alerts leading columns');
SELECT ok((SELECT count(*) > 0 FROM orderdb_ops.table_health WHERE table_name = 'orderdb.orders'),
          'table_health lists orderdb.orders');
SELECT is((SELECT fillfactor FROM orderdb_ops.table_health WHERE table_name = 'orderdb.orders'), 85,
          'table_health shows the fillfactor');
SELECT is((SELECT value FROM orderdb_ops.server_health WHERE metric = 'notification_queue_usage'), 0::numeric,
          'the NOTIFY queue is empty');
SELECT is_empty($$ SELECT * FROM orderdb_ops.lock_waits $$, 'nobody waits for a lock in this database');

SELECT * FROM finish();
ROLLBACK;
