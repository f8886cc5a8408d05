-- cancel_order_lines: ship what is there and cancel the rest (also out of on_hold); releasing
-- only the cancelled lines' reservations; cancelling everything cancels the order.
BEGIN;
SELECT plan(10);

SELECT FROM orderdb.receive_stock(407, 'C-A', 10);
SELECT FROM orderdb.receive_stock(407, 'C-B', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 407, '[{"sku": "C-A", "quantity": 2}, {"sku": "C-B", "quantity": 3}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('cl-1', :o, 'PACKED');
SELECT FROM orderdb.wms_callback('cl-2', :o, 'EXCEPTION', '{"exception_type": "OUT_OF_STOCK", "sku": "C-B"}');

SELECT throws_ok(format($$ SELECT * FROM orderdb.cancel_order_lines(%s, '[{"sku": "C-B"}]', 1) $$, :o), 'OD002', NULL,
                 'stale version');
SELECT throws_ok(format($$ SELECT * FROM orderdb.cancel_order_lines(%s, '[{"sku": "C-X"}]', 6) $$, :o), '22023',
                 'lines: sku "C-X" is not a line of order ' || :o, 'unknown line');
SELECT results_eq(format($$ SELECT status, version, released FROM orderdb.cancel_order_lines(%s, '[{"sku": "C-B"}]', 6, 'ops', 'C-B out of stock') $$, :o),
                  $$ VALUES ('on_hold'::text, 6, 3) $$, 'C-B released, the order stays on hold');
SELECT results_eq($$ SELECT sku::text COLLATE "default", on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = 407 ORDER BY sku $$,
                  $$ VALUES ('C-A', 10, 2), ('C-B', 10, 0) $$, 'only C-B''s reservation was released');
SELECT results_eq(format($$ SELECT status FROM orderdb.wms_callback('cl-3', %s, 'SHIPPED', '{"carrier": "SF", "tracking_number": "SFC1"}') $$, :o),
                  $$ VALUES ('shipped'::text) $$, 'shipping what is there lifts the hold and ships');
SELECT results_eq(format($$ SELECT to_status FROM orderdb.order_status_history WHERE order_id = %s AND version > 6 ORDER BY version $$, :o),
                  $$ VALUES ('packed'::text), ('shipped') $$, 'history: back to packed, then shipped');
SELECT results_eq(format($$ SELECT sku::text COLLATE "default", qty_held, qty_consumed, qty_released FROM orderdb.order_lines WHERE order_id = %s ORDER BY sku $$, :o),
                  $$ VALUES ('C-A', 0, 2, 0), ('C-B', 0, 0, 3) $$, 'ledger: C-A shipped, C-B released');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 407 $$, 'counters == ledger');

SELECT order_id AS o2 FROM orderdb.create_order(1, 407, '[{"sku": "C-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o2, 'confirmed', 1);
SELECT results_eq(format($$ SELECT status, released FROM orderdb.cancel_order_lines(%s, NULL, 2) $$, :o2),
                  $$ VALUES ('cancelled'::text, 1) $$, 'cancelling every line cancels the order');
SELECT throws_ok(format($$ SELECT * FROM orderdb.cancel_order_lines(%s, NULL, 3) $$, :o2), 'OD003', NULL,
                 'a cancelled order has no lines to cancel');

SELECT * FROM finish();
ROLLBACK;
