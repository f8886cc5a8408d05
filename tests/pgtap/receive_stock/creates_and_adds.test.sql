-- receive_stock creates the warehouse and the inventory row on first receipt, adds on later
-- receipts, records every receipt, and returns the new level.
BEGIN;
SELECT plan(7);

SELECT results_eq(
    $$ SELECT * FROM orderdb.receive_stock(101, 'RS-1', 10, 'dock-3') $$,
    $$ VALUES (101, 'RS-1'::text, 10, 0, 10) $$,
    'first receipt creates the row and returns warehouse_id, sku, on_hand, reserved, available');
SELECT ok(EXISTS (SELECT 1 FROM orderdb.warehouses WHERE warehouse_id = 101),
          'first receipt creates the warehouse');
SELECT results_eq(
    $$ SELECT * FROM orderdb.receive_stock(101, 'RS-1', 5) $$,
    $$ VALUES (101, 'RS-1'::text, 15, 0, 15) $$,
    'a second receipt adds to on_hand');
SELECT results_eq(
    $$ SELECT sku, quantity, actor FROM orderdb.stock_receipts WHERE warehouse_id = 101
       ORDER BY receipt_id $$,
    $$ VALUES ('RS-1'::text COLLATE "C", 10, 'dock-3'::text), ('RS-1', 5, NULL) $$,
    'every receipt is recorded with its actor');

SELECT FROM orderdb.create_order(1, 101, '[{"sku": "RS-1", "quantity": 4}]');
SELECT results_eq(
    $$ SELECT on_hand, reserved, available FROM orderdb.receive_stock(101, 'RS-1', 1) $$,
    $$ VALUES (16, 4, 12) $$,
    'receipt keeps reservations: available = on_hand - reserved');
SELECT results_eq(
    $$ SELECT on_hand FROM orderdb.receive_stock(101, repeat('s', 255), 2147483647) $$,
    $$ VALUES (2147483647) $$,
    'a 255-character sku and the largest quantity are accepted');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 101 $$,
                'counters agree with the ledgers');

SELECT * FROM finish();
ROLLBACK;
