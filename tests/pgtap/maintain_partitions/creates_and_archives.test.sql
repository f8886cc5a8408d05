-- maintain_partitions creates monthly partitions ahead (moving rows out of DEFAULT), skips months
-- another partition covers, archives partitions past retention into orderdb_archive, and is
-- idempotent; a policy table that is not range-partitioned on timestamptz is 22023.
BEGIN;
SELECT plan(7);

CREATE TABLE orderdb.tap_log (id bigint, at timestamptz NOT NULL, PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE orderdb.tap_log_old PARTITION OF orderdb.tap_log
    FOR VALUES FROM (MINVALUE) TO ('2026-10-01Z');
CREATE TABLE orderdb.tap_log_default PARTITION OF orderdb.tap_log DEFAULT;
INSERT INTO orderdb.tap_log VALUES (1, '2026-09-30Z'), (2, '2026-10-15Z'), (3, '2026-11-20Z');
INSERT INTO orderdb.partition_policy (table_name, premake, retention) VALUES ('orderdb.tap_log', 1, '2 months');

SELECT results_eq(
    $$ SELECT action, partition_name, rows_moved FROM orderdb.maintain_partitions('2026-10-20Z') WHERE parent_table = 'orderdb.tap_log' $$,
    $$ VALUES ('created'::text, 'orderdb.tap_log_p202610'::text, 1::bigint), ('created', 'orderdb.tap_log_p202611', 1) $$,
    'this month and one ahead, with the rows DEFAULT held');
SELECT is_empty($$ SELECT * FROM orderdb.maintain_partitions('2026-10-20Z') WHERE parent_table = 'orderdb.tap_log' $$, 'idempotent');
SELECT is((SELECT tableoid::regclass::text FROM orderdb.tap_log WHERE id = 3), 'orderdb.tap_log_p202611',
          'a moved row is in its month');

SELECT results_eq(
    $$ SELECT action, partition_name FROM orderdb.maintain_partitions('2026-12-05Z') WHERE parent_table = 'orderdb.tap_log' $$,
    $$ VALUES ('created'::text, 'orderdb.tap_log_p202612'::text), ('created', 'orderdb.tap_log_p202701'),
              ('archived', 'orderdb_archive.tap_log_old') $$,
    'two months of retention on 2026-12-05: partitions ending by 2026-10-01 are archived');
SELECT is((SELECT count(*)::integer FROM orderdb_archive.tap_log_old), 1, 'the archived rows are kept');
SELECT is((SELECT count(*)::integer FROM orderdb.tap_log), 2, 'and gone from the table');

CREATE TABLE orderdb.tap_plain (at timestamptz);
INSERT INTO orderdb.partition_policy (table_name) VALUES ('orderdb.tap_plain');
SELECT throws_ok($$ SELECT * FROM orderdb.maintain_partitions() $$, '22023', NULL,
                 'a table that is not range-partitioned is refused');

SELECT * FROM finish();
ROLLBACK;
