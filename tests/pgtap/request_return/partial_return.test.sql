-- request_return / receive_return: a customer returns part of a delivered order; only what came
-- back is restocked (ledger: consumed -> returned per line).
BEGIN;
SELECT plan(9);

SELECT FROM orderdb.receive_stock(415, 'R-A', 10);
SELECT FROM orderdb.receive_stock(415, 'R-B', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 415, '[{"sku": "R-A", "quantity": 2}, {"sku": "R-B", "quantity": 3}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('rr-1', :o, 'SHIPPED', '{"carrier": "GENERIC", "tracking_number": "RR1"}');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'RR1', now() - interval '1 hour', 'delivered');
SELECT version AS v FROM orderdb.orders WHERE order_id = :o \gset

SELECT throws_ok(format($$ SELECT * FROM orderdb.request_return(%s, '[{"sku": "R-A", "quantity": 3}]', %s) $$, :o, :v),
                 '22023', 'lines: quantity 3 of sku "R-A" exceeds the consumed quantity 2', 'more than was shipped');
SELECT throws_ok(format($$ SELECT * FROM orderdb.request_return(%s, '[{"sku": "R-A"}]', %s) $$, :o, :v - 1),
                 'OD002', NULL, 'stale version');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.request_return(%s, '[{"sku": "R-B", "quantity": 1}]', %s, 'customer', 'too big') $$, :o, :v),
                  format($$ VALUES ('return_requested'::text, %s) $$, :v + 1), 'return requested');
SELECT throws_ok(format($$ SELECT * FROM orderdb.request_return(%s, NULL, %s) $$, :o, :v + 1), 'OD003', NULL,
                 'only a delivered order can be returned');
SELECT results_eq(format($$ SELECT status, version, restocked FROM orderdb.receive_return(%s) $$, :o),
                  format($$ VALUES ('returned'::text, %s, 1) $$, :v + 3), 'received: returning -> returned, one unit restocked');
SELECT results_eq(format($$ SELECT to_status FROM orderdb.order_status_history WHERE order_id = %s AND version > %s ORDER BY version $$, :o, :v),
                  $$ VALUES ('return_requested'::text), ('returning'), ('returned') $$, 'the whole return path is in the history');
SELECT results_eq(format($$ SELECT sku::text COLLATE "default", qty_consumed, qty_returned FROM orderdb.order_lines WHERE order_id = %s ORDER BY sku $$, :o),
                  $$ VALUES ('R-A', 2, 0), ('R-B', 2, 1) $$, 'ledger: only R-B x1 returned');
SELECT results_eq($$ SELECT sku::text COLLATE "default", on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = 415 ORDER BY sku $$,
                  $$ VALUES ('R-A', 8, 0), ('R-B', 8, 0) $$, 'stock: R-B got one unit back');
SELECT is((SELECT status FROM orderdb.order_returns WHERE order_id = :o), 'received', 'the return request is received');

SELECT * FROM finish();
ROLLBACK;
