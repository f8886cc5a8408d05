-- Flash-sale skus keep their stock in buckets (sql/25_stock_buckets.sql): the automatic choice
-- sees their stock, and reallocate_order moves their reservations bucket to bucket (in both
-- directions: the lower warehouse's buckets are taken first), counters agreeing with the ledger.
BEGIN;
SELECT plan(8);

INSERT INTO orderdb.warehouse_priority (warehouse_id, auto_allocate)
SELECT w.warehouse_id, false FROM orderdb.warehouses w
ON CONFLICT (warehouse_id) DO UPDATE SET auto_allocate = false;

SELECT FROM orderdb.receive_stock(3551, 'RB-A', 20);
SELECT FROM orderdb.receive_stock(3551, 'RB-P', 20);
SELECT FROM orderdb.receive_stock(3552, 'RB-A', 15);
SELECT FROM orderdb.receive_stock(3552, 'RB-P', 20);
SELECT FROM orderdb.set_stock_buckets(3551, 'RB-A', 4);
SELECT FROM orderdb.set_stock_buckets(3552, 'RB-A', 4);

CREATE TEMP TABLE o AS
    SELECT * FROM orderdb.create_order(1, NULL, '[{"sku": "RB-A", "quantity": 5}, {"sku": "RB-P", "quantity": 2}]');
SELECT is((SELECT warehouse_id FROM orderdb.order_directory WHERE order_id = (SELECT order_id FROM o)),
          3551, 'the automatic choice counts bucketed stock (3551 has the most)');

SELECT results_eq($$ SELECT warehouse_id, status FROM orderdb.reallocate_order((SELECT order_id FROM o), 3552, 1) $$,
                  $$ VALUES (3552, 'pending'::text) $$, 'moves up, from buckets to buckets');
SELECT results_eq($$ SELECT warehouse_id, sku COLLATE "default", reserved FROM orderdb.inventory_levels
                      WHERE warehouse_id IN (3551, 3552) ORDER BY 1, 2 $$,
                  $$ VALUES (3551, 'RB-A'::text, 0), (3551, 'RB-P', 0), (3552, 'RB-A', 5), (3552, 'RB-P', 2) $$,
                  'reservations moved, bucketed and plain');
SELECT is((SELECT sum(reserved)::integer FROM orderdb.stock_buckets WHERE warehouse_id = 3552 AND sku = 'RB-A'),
          5, 'the target''s buckets hold the bucketed units');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id IN (3551, 3552) $$,
                'counters agree with the ledger');

SELECT lives_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3551, 2) $$, 'and moves down again');
SELECT results_eq($$ SELECT warehouse_id, sku COLLATE "default", reserved FROM orderdb.inventory_levels
                      WHERE warehouse_id IN (3551, 3552) ORDER BY 1, 2 $$,
                  $$ VALUES (3551, 'RB-A'::text, 5), (3551, 'RB-P', 2), (3552, 'RB-A', 0), (3552, 'RB-P', 0) $$,
                  'reservations back in 3551');
SELECT throws_ok($$ SELECT orderdb.create_order(1, NULL, '[{"sku": "RB-A", "quantity": 16}]') $$,
                 'OD001', NULL, 'no warehouse has 16 available (15 + 15 in buckets)');

SELECT * FROM finish();
ROLLBACK;
