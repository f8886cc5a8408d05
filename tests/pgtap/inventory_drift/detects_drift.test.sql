-- inventory_drift is empty while counters agree with the ledgers, and lists every
-- (warehouse, sku) whose reserved counter or on_hand counter disagrees.
BEGIN;
SELECT plan(5);

SELECT FROM orderdb.receive_stock(404, 'ID-A', 10);
SELECT FROM orderdb.receive_stock(404, 'ID-B', 10);
SELECT FROM orderdb.receive_stock(405, 'ID-A', 10);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 404, '[{"sku": "ID-A", "quantity": 3}, {"sku": "ID-B", "quantity": 1}]');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id IN (404, 405) $$,
                'consistent: empty');

UPDATE orderdb.inventory SET reserved = reserved + 2 WHERE warehouse_id = 404 AND sku = 'ID-A';
SELECT results_eq(
    $$ SELECT warehouse_id, sku COLLATE "default", counter_reserved, ledger_reserved
         FROM orderdb_ops.inventory_drift WHERE warehouse_id IN (404, 405) $$,
    $$ VALUES (404, 'ID-A'::text, 5, 3) $$,
    'a reserved counter off the ledger is listed');

UPDATE orderdb.inventory SET reserved = reserved - 2 WHERE warehouse_id = 404 AND sku = 'ID-A';
UPDATE orderdb.inventory SET on_hand = on_hand - 1 WHERE warehouse_id = 405 AND sku = 'ID-A';
SELECT results_eq(
    $$ SELECT warehouse_id, sku COLLATE "default", counter_on_hand, ledger_on_hand
         FROM orderdb_ops.inventory_drift WHERE warehouse_id IN (404, 405) $$,
    $$ VALUES (405, 'ID-A'::text, 9, 10::bigint) $$,
    'an on_hand counter off the receipts and shipments is listed');
UPDATE orderdb.inventory SET on_hand = on_hand + 1 WHERE warehouse_id = 405 AND sku = 'ID-A';

UPDATE orderdb.order_lines SET qty_held = qty_held - 1, qty_released = qty_released + 1
 WHERE order_id = (SELECT order_id FROM o) AND sku = 'ID-B';
SELECT results_eq(
    $$ SELECT warehouse_id, sku COLLATE "default", counter_reserved, ledger_reserved
         FROM orderdb_ops.inventory_drift WHERE warehouse_id IN (404, 405) $$,
    $$ VALUES (404, 'ID-B'::text, 1, 0) $$,
    'a ledger row changed without its counter is listed');
UPDATE orderdb.order_lines SET qty_held = qty_held + 1, qty_released = qty_released - 1
 WHERE order_id = (SELECT order_id FROM o) AND sku = 'ID-B';

SELECT has_column('orderdb_ops', 'inventory_drift', 'counter_reserved', 'contract column counter_reserved');

SELECT * FROM finish();
ROLLBACK;
