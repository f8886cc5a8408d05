-- set_stock_buckets: a bucketed SKU keeps every unit and reservation; orders, receipts and
-- cancellations work on its buckets; stock_level and inventory_drift see the sum; 1 switches back.
BEGIN;
SELECT plan(10);

SELECT FROM orderdb.receive_stock(121, 'SB-1', 100);
SELECT FROM orderdb.create_order(1, 121, '[{"sku": "SB-1", "quantity": 4}]');
SELECT results_eq($$ SELECT buckets, on_hand, reserved, available
                       FROM orderdb.set_stock_buckets(121, 'SB-1', 8) $$,
                  $$ VALUES (8, 100, 4, 96) $$, 'switching keeps the stock and the reservation');
SELECT results_eq($$ SELECT count(*)::integer, sum(on_hand)::integer, sum(reserved)::integer
                       FROM orderdb.stock_buckets WHERE warehouse_id = 121 AND sku = 'SB-1' $$,
                  $$ VALUES (8, 100, 4) $$, 'eight buckets hold it');
SELECT results_eq($$ SELECT on_hand, reserved FROM orderdb.inventory
                      WHERE warehouse_id = 121 AND sku = 'SB-1' $$,
                  $$ VALUES (0, 0) $$, 'the inventory row of a bucketed SKU holds nothing');

SELECT lives_ok($$ SELECT orderdb.create_order(2, 121, '[{"sku": "SB-1", "quantity": 50}]') $$,
                'a line larger than any bucket is served from all of them');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(121, 'SB-1') $$,
                  $$ VALUES (100, 54, 46) $$, 'stock_level reports the sum of the buckets');
SELECT throws_ok($$ SELECT orderdb.create_order(3, 121, '[{"sku": "SB-1", "quantity": 47}]') $$,
                 'OD001', NULL, 'more than the buckets hold together is OD001');

SELECT FROM orderdb.receive_stock(121, 'SB-1', 10);
SELECT FROM orderdb.orders o, LATERAL orderdb.transition_order(o.order_id, 'cancelled', 1) t
 WHERE o.warehouse_id = 121 AND o.customer_id = 2;
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(121, 'SB-1') $$,
                  $$ VALUES (110, 4, 106) $$, 'receipts and cancellations reach the buckets');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 121 $$,
                'counters equal the ledger');

SELECT results_eq($$ SELECT buckets, on_hand, reserved, available
                       FROM orderdb.set_stock_buckets(121, 'SB-1', 1) $$,
                  $$ VALUES (1, 110, 4, 106) $$, 'buckets 1 switches back');
SELECT results_eq($$ SELECT on_hand, reserved FROM orderdb.inventory
                      WHERE warehouse_id = 121 AND sku = 'SB-1' $$,
                  $$ VALUES (110, 4) $$, 'the inventory row holds it all again');

SELECT * FROM finish();
ROLLBACK;
