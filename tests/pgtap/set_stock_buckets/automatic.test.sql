-- Automatic stock buckets: lock conflicts noted past the policy's threshold split a SKU nobody
-- configured (mode automatic, the reason in orderdb_ops.stock_buckets), keeping every unit;
-- maintain_partitions merges it back once cool (a dry run only reports); a SKU set by hand stays;
-- a disabled policy notes and splits nothing.
BEGIN;
SELECT plan(16);

SELECT FROM orderdb.receive_stock(123, 'AB-1', 100);
SELECT FROM orderdb.receive_stock(123, 'AB-MAN', 40);
SELECT FROM orderdb.set_stock_buckets(123, 'AB-MAN', 4, 'ops');
UPDATE orderdb.stock_bucket_policy SET split_conflicts = 3;

SELECT results_eq($$ SELECT orderdb._note_stock_conflict(123, 'AB-1')
                       FROM generate_series(1, 2) $$,
                  $$ VALUES (false), (false) $$, 'below the threshold nothing is split');
SELECT is_empty($$ SELECT 1 FROM orderdb_ops.stock_buckets WHERE warehouse_id = 123
                      AND sku = 'AB-1' $$, 'not bucketed yet');
SELECT is(orderdb._note_stock_conflict(123, 'AB-1'), true, 'the third conflict splits the SKU');
SELECT results_eq($$ SELECT buckets, mode, on_hand, reserved, available
                       FROM orderdb_ops.stock_buckets WHERE warehouse_id = 123 AND sku = 'AB-1' $$,
                  $$ VALUES (25, 'automatic', 100, 0, 100) $$,
                  'automatic, 25 buckets (4 units each at least), every unit');
SELECT matches((SELECT reason FROM orderdb_ops.stock_buckets
                 WHERE warehouse_id = 123 AND sku = 'AB-1'),
               '^3 lock conflicts in [0-9.]+ s$', 'the reason says why');
SELECT is_empty($$ SELECT 1 FROM orderdb.stock_lock_conflicts WHERE warehouse_id = 123
                      AND sku = 'AB-1' $$, 'the split forgets the SKU''s conflicts');
SELECT results_eq($$ SELECT on_hand, reserved FROM orderdb.inventory
                      WHERE warehouse_id = 123 AND sku = 'AB-1' $$,
                  $$ VALUES (0, 0) $$, 'the inventory row of the split SKU holds nothing');

SELECT FROM orderdb.create_order(1, 123, '[{"sku": "AB-1", "quantity": 7}]');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(123, 'AB-1') $$,
                  $$ VALUES (100, 7, 93) $$, 'orders are served from the buckets');

-- cool: any rate is below this one, and no minimum time
UPDATE orderdb.stock_bucket_policy SET merge_after = interval '0', merge_below_rate = 1e12;
SELECT results_eq($$ SELECT action, partition_name, rows_moved
                       FROM orderdb.maintain_partitions(p_dry_run => true)
                      WHERE parent_table = 'orderdb.stock_buckets'
                        AND partition_name LIKE 'warehouse 123 %' $$,
                  $$ VALUES ('merged', 'warehouse 123 sku AB-1', 1::bigint) $$,
                  'a dry run reports the merge of the automatic SKU only');
SELECT results_eq($$ SELECT action, partition_name
                       FROM orderdb.maintain_partitions()
                      WHERE parent_table = 'orderdb.stock_buckets'
                        AND partition_name LIKE 'warehouse 123 %' $$,
                  $$ VALUES ('merged', 'warehouse 123 sku AB-1') $$, 'maintain merges it');
SELECT results_eq($$ SELECT on_hand, reserved FROM orderdb.inventory
                      WHERE warehouse_id = 123 AND sku = 'AB-1' $$,
                  $$ VALUES (100, 7) $$, 'the inventory row holds it all again');
SELECT results_eq($$ SELECT sku, mode FROM orderdb_ops.stock_buckets WHERE warehouse_id = 123 $$,
                  $$ VALUES ('AB-MAN' COLLATE "C", 'manual') $$, 'the manual SKU stays bucketed');

SELECT FROM orderdb.receive_stock(123, 'AB-LOW', 7);
UPDATE orderdb.stock_bucket_policy SET split_conflicts = 1;
SELECT is(orderdb._note_stock_conflict(123, 'AB-LOW'), false,
          'fewer than 8 units available: not split (no bucket would hold 4)');
SELECT results_eq($$ SELECT on_hand, reserved FROM orderdb.inventory
                      WHERE warehouse_id = 123 AND sku = 'AB-LOW' $$,
                  $$ VALUES (7, 0) $$, 'the row keeps them');

UPDATE orderdb.stock_bucket_policy SET enabled = false;
DELETE FROM orderdb.stock_lock_conflicts;
SELECT is(orderdb._note_stock_conflict(123, 'AB-1'), false, 'disabled: no split');
SELECT is_empty($$ SELECT 1 FROM orderdb.stock_lock_conflicts WHERE warehouse_id = 123 $$,
                'disabled: nothing is noted either');

SELECT * FROM finish();
ROLLBACK;
