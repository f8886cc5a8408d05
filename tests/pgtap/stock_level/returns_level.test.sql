-- stock_level returns on_hand, reserved and available of (warehouse, sku).
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.receive_stock(111, 'SL-1', 20);
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(111, 'SL-1') $$,
                  $$ VALUES (20, 0, 20) $$, 'fresh stock: nothing reserved');
SELECT FROM orderdb.create_order(1, 111, '[{"sku": "SL-1", "quantity": 6}]');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(111, 'SL-1') $$,
                  $$ VALUES (20, 6, 14) $$, 'reservations count in reserved, not in available');
SELECT results_eq($$ SELECT on_hand, reserved, available FROM orderdb.stock_level(111, 'SL-1') $$,
                  $$ SELECT on_hand, reserved, on_hand - reserved FROM orderdb.inventory
                      WHERE warehouse_id = 111 AND sku = 'SL-1' $$,
                  'stock_level reads the counters');

SELECT * FROM finish();
ROLLBACK;
