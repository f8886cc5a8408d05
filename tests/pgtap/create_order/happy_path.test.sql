-- create_order: a pending order at version 1, every line reserved (held ledger rows and counters),
-- an order_no of the contract format, an order.created event.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(201, 'CO-A', 10);
SELECT FROM orderdb.receive_stock(201, 'CO-B', 5);
CREATE TEMP TABLE o AS
    SELECT * FROM orderdb.create_order(
        42, 201, '[{"sku": "CO-B", "quantity": 2, "unit_price": "19.90"},
                   {"sku": "CO-A", "quantity": 3, "unit_price": 5}]',
        NULL, 'shop', '{"channel": "web"}');

SELECT is((SELECT status FROM o), 'pending', 'status is pending');
SELECT is((SELECT version FROM o), 1, 'version is 1');
SELECT is((SELECT replayed FROM o), false, 'replayed is false');
SELECT matches((SELECT order_no FROM o),
               '^ORD' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || '[0-9]{8,}$',
               'order_no is ORD + UTC date + at least 8 digits');
SELECT is((SELECT order_no FROM o),
          'ORD' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')
                || lpad((SELECT order_id FROM o)::text, 8, '0'),
          'order_no carries the order number');
SELECT results_eq(
    $$ SELECT sku COLLATE "default", line_no, quantity, unit_price, qty_held, qty_consumed, qty_released, qty_returned
         FROM orderdb.order_lines WHERE order_id = (SELECT order_id FROM o) ORDER BY line_no $$,
    $$ VALUES ('CO-B'::text, 1, 2, 19.90::numeric, 2, 0, 0, 0), ('CO-A', 2, 3, 5, 3, 0, 0, 0) $$,
    'one held ledger row per line, in input order');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(201, 'CO-A') $$, $$ VALUES (10, 3, 7) $$,
                  'CO-A reserved');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(201, 'CO-B') $$, $$ VALUES (5, 2, 3) $$,
                  'CO-B reserved');
SELECT results_eq(
    $$ SELECT customer_id, warehouse_id, options, created_by FROM orderdb.orders
        WHERE order_id = (SELECT order_id FROM o) $$,
    $$ VALUES (42::bigint, 201, '{"channel": "web"}'::jsonb, 'shop'::text) $$,
    'the order row keeps customer, warehouse, options and the creating actor');
SELECT results_eq(
    $$ SELECT event_type, payload ->> 'order_no', payload -> 'items' FROM orderdb.outbox
        WHERE order_id = (SELECT order_id FROM o) $$,
    $$ SELECT 'order.created'::text, (SELECT order_no FROM o),
              '[{"sku": "CO-B", "quantity": 2, "unit_price": 19.90},
                {"sku": "CO-A", "quantity": 3, "unit_price": 5}]'::jsonb $$,
    'one order.created event with the normalised items');
SELECT lives_ok(
    $$ SELECT orderdb.create_order(43, 201, '[{"sku": "CO-A", "quantity": 7}]') $$,
    'an order may take the last available units');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 201 $$,
                'counters agree with the ledger');

SELECT * FROM finish();
ROLLBACK;
