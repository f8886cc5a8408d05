-- maintain_partitions refuses a p_now more than a day ahead (22023 naming now) and then changes
-- nothing: a future p_now would drop this month's outbox partition. A dry run reports the
-- actions (rows that would move included) and changes nothing; run for real it does the same.
BEGIN;
SELECT plan(10);

CREATE TABLE orderdb.tap_future (id bigint, at timestamptz NOT NULL, PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE orderdb.tap_future_old PARTITION OF orderdb.tap_future
    FOR VALUES FROM (MINVALUE) TO ('2020-01-01Z');
CREATE TABLE orderdb.tap_future_default PARTITION OF orderdb.tap_future DEFAULT;
INSERT INTO orderdb.tap_future VALUES (1, '2019-06-01Z'), (2, now());
INSERT INTO orderdb.partition_policy (table_name, premake, retention) VALUES ('orderdb.tap_future', 0, '1 year');
SELECT count(*) AS outbox_parts FROM pg_inherits WHERE inhparent = 'orderdb.outbox'::regclass \gset

SELECT throws_ok($$ SELECT * FROM orderdb.maintain_partitions(now() + interval '5 months') $$,
                 '22023', 'now must be a finite timestamp at most one day in the future', 'five months ahead is refused');
SELECT throws_ok($$ SELECT * FROM orderdb.maintain_partitions(now() + interval '25 hours', true) $$,
                 '22023', 'now must be a finite timestamp at most one day in the future', 'also for a dry run');
SELECT throws_ok($$ SELECT * FROM orderdb.maintain_partitions(NULL) $$,
                 '22023', 'now must be a finite timestamp at most one day in the future', 'NULL is refused');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'orderdb.outbox'::regclass), :outbox_parts::bigint,
          'the outbox keeps every partition');
SELECT lives_ok($$ SELECT * FROM orderdb.maintain_partitions(now() + interval '23 hours', true) $$, 'less than a day ahead is accepted');

SELECT results_eq(
    $$ SELECT action, partition_name, rows_moved FROM orderdb.maintain_partitions(now(), true) WHERE parent_table = 'orderdb.tap_future' $$,
    format($$ VALUES ('created'::text, 'orderdb.tap_future_p%s'::text, 1::bigint), ('archived', 'orderdb_archive.tap_future_old', 0) $$,
           to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')),
    'the dry run reports this month (one row to move) and the partition past retention');
SELECT is((SELECT string_agg(i.inhrelid::regclass::text, ', ' ORDER BY i.inhrelid::regclass::text)
             FROM pg_inherits i WHERE i.inhparent = 'orderdb.tap_future'::regclass),
          'orderdb.tap_future_default, orderdb.tap_future_old', 'and changed nothing');
SELECT is((SELECT tableoid::regclass::text FROM orderdb.tap_future WHERE id = 2), 'orderdb.tap_future_default', 'no row moved');

SELECT results_eq(
    $$ SELECT action, partition_name, rows_moved FROM orderdb.maintain_partitions() WHERE parent_table = 'orderdb.tap_future' $$,
    format($$ VALUES ('created'::text, 'orderdb.tap_future_p%s'::text, 1::bigint), ('archived', 'orderdb_archive.tap_future_old', 0) $$,
           to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')),
    'run for real: the same actions');
SELECT is((SELECT tableoid::regclass::text FROM orderdb.tap_future WHERE id = 2),
          format('orderdb.tap_future_p%s', to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')), 'the row moved');

SELECT * FROM finish();
ROLLBACK;
