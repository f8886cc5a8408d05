-- wms_callback SHIPPED with lines: a partial shipment consumes only what it carries; the order
-- reaches shipped when every line is shipped; counters equal the ledger throughout.
BEGIN;
SELECT plan(11);

SELECT FROM orderdb.receive_stock(405, 'P-A', 10);
SELECT FROM orderdb.receive_stock(405, 'P-B', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 405, '[{"sku": "P-A", "quantity": 2}, {"sku": "P-B", "quantity": 3}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);

SELECT results_eq(format($$ SELECT status, duplicate FROM orderdb.wms_callback('ps-1', %s, 'SHIPPED',
                             '{"carrier": "SF", "tracking_number": "SFP1", "lines": [{"sku": "P-A", "quantity": 2}, {"sku": "P-B", "quantity": 1}]}') $$, :o),
                  $$ VALUES ('packed'::text, false) $$, 'a partial SHIPPED leaves the order packed');
SELECT results_eq($$ SELECT sku::text COLLATE "default", on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = 405 ORDER BY sku $$,
                  $$ VALUES ('P-A', 8, 0), ('P-B', 9, 2) $$, 'only the shipped units left the warehouse');
SELECT results_eq(format($$ SELECT sku::text COLLATE "default", qty_held, qty_consumed FROM orderdb.order_lines WHERE order_id = %s ORDER BY sku $$, :o),
                  $$ VALUES ('P-A', 0, 2), ('P-B', 2, 1) $$, 'ledger: held and consumed per line');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 405 $$, 'counters == ledger after a partial shipment');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('ps-x', %s, 'SHIPPED',
                          '{"carrier": "SF", "tracking_number": "SFP2", "lines": [{"sku": "P-A", "quantity": 1}]}') $$, :o),
                 '22023', 'lines: sku "P-A" has no held quantity', 'a line already shipped cannot ship again');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('ps-y', %s, 'SHIPPED',
                          '{"carrier": "SF", "tracking_number": "SFP2", "lines": [{"sku": "P-B", "quantity": 5}]}') $$, :o),
                 '22023', 'lines: quantity 5 of sku "P-B" exceeds the held quantity 2', 'more than held');
SELECT results_eq(format($$ SELECT status, duplicate FROM orderdb.wms_callback('ps-2', %s, 'SHIPPED',
                             '{"carrier": "SF", "tracking_number": "SFP2"}') $$, :o),
                  $$ VALUES ('shipped'::text, false) $$, 'shipping the rest makes the order shipped');
SELECT results_eq($$ SELECT sku::text COLLATE "default", on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = 405 ORDER BY sku $$,
                  $$ VALUES ('P-A', 8, 0), ('P-B', 7, 0) $$, 'every unit consumed once');
SELECT is(jsonb_array_length(orderdb.get_order(:o) -> 'shipments'), 2, 'get_order lists both shipments');
SELECT is(orderdb.get_order(:o) -> 'shipments' -> 0 -> 'lines',
          '[{"sku": "P-A", "quantity": 2}, {"sku": "P-B", "quantity": 1}]'::jsonb, 'with their lines');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 405 $$, 'counters == ledger at the end');

SELECT * FROM finish();
ROLLBACK;
