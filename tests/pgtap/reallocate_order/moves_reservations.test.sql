-- reallocate_order moves a not-yet-shipped order to another warehouse: held reservations leave
-- the old warehouse and are taken in the new one, the order's rows (directory, orders, lines,
-- history) move, the version rises by 1, a history row and an order.reallocated event record it,
-- and the counters still agree with the ledger.
BEGIN;
SELECT plan(14);

SELECT FROM orderdb.receive_stock(3501, 'RM-A', 10);
SELECT FROM orderdb.receive_stock(3501, 'RM-B', 10);
SELECT FROM orderdb.receive_stock(3502, 'RM-A', 10);
SELECT FROM orderdb.receive_stock(3502, 'RM-B', 10);
CREATE TEMP TABLE o AS
    SELECT * FROM orderdb.create_order(1, 3501, '[{"sku": "RM-B", "quantity": 2}, {"sku": "RM-A", "quantity": 3}]');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'confirmed', 1);

SELECT results_eq(
    $$ SELECT order_id, warehouse_id, status, version
         FROM orderdb.reallocate_order((SELECT order_id FROM o), 3502, 2, 'ops-anna', 'closer to customer') $$,
    $$ SELECT (SELECT order_id FROM o), 3502, 'confirmed'::text, 3 $$,
    'returns the order in its new warehouse, status unchanged, version + 1');

SELECT results_eq($$ SELECT warehouse_id, sku COLLATE "default", reserved FROM orderdb.inventory
                      WHERE warehouse_id IN (3501, 3502) ORDER BY 1, 2 $$,
                  $$ VALUES (3501, 'RM-A'::text, 0), (3501, 'RM-B', 0), (3502, 'RM-A', 3), (3502, 'RM-B', 2) $$,
                  'reservations left the old warehouse and are held in the new one');
SELECT is((SELECT warehouse_id FROM orderdb.order_directory WHERE order_id = (SELECT order_id FROM o)),
          3502, 'order_directory points at the new warehouse');
SELECT is((SELECT count(*)::integer FROM orderdb.orders WHERE order_id = (SELECT order_id FROM o)),
          1, 'one orders row');
SELECT is((SELECT warehouse_id FROM orderdb.orders WHERE order_id = (SELECT order_id FROM o)),
          3502, 'the orders row moved');
SELECT results_eq($$ SELECT warehouse_id, sku COLLATE "default", line_no, quantity, qty_held FROM orderdb.order_lines
                      WHERE order_id = (SELECT order_id FROM o) ORDER BY sku $$,
                  $$ VALUES (3502, 'RM-A'::text, 2, 3, 3), (3502, 'RM-B', 1, 2, 2) $$,
                  'the lines moved with their line numbers and held quantities');
SELECT is((SELECT (orderdb.get_order((SELECT order_id FROM o)) ->> 'warehouse_id')::integer),
          3502, 'get_order shows the new warehouse');
SELECT results_eq($$ SELECT version, from_status, to_status, actor, reason
                       FROM orderdb.order_history((SELECT order_id FROM o)) $$,
                  $$ VALUES (1, NULL::text, 'pending'::text, NULL::text, NULL::text),
                            (2, 'pending', 'confirmed', NULL, NULL),
                            (3, 'confirmed', 'confirmed', 'ops-anna', 'closer to customer') $$,
                  'the history moved and records the reallocation');
SELECT is((SELECT context FROM orderdb.order_status_history
            WHERE order_id = (SELECT order_id FROM o) AND version = 3 AND source = 'reallocation'),
          '{"from_warehouse_id": 3501, "to_warehouse_id": 3502}'::jsonb,
          'the history row names both warehouses (source reallocation)');
SELECT is((SELECT payload FROM orderdb.outbox
            WHERE order_id = (SELECT order_id FROM o) AND event_type = 'order.reallocated'),
          '{"from_warehouse_id": 3501, "to_warehouse_id": 3502, "status": "confirmed", "version": 3,
            "lines": [{"sku": "RM-A", "quantity": 3}, {"sku": "RM-B", "quantity": 2}]}'::jsonb,
          'an order.reallocated event with the moved lines');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id IN (3501, 3502) $$,
                'counters agree with the ledger');

-- the order lives on normally in its new warehouse
SELECT results_eq($$ SELECT status, version FROM orderdb.transition_order((SELECT order_id FROM o), 'dispatched', 3) $$,
                  $$ VALUES ('dispatched'::text, 4) $$, 'transition_order works on the moved order');
SELECT lives_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3501, 4) $$,
                'and it can move back');
SELECT results_eq($$ SELECT warehouse_id, sku COLLATE "default", reserved FROM orderdb.inventory
                      WHERE warehouse_id IN (3501, 3502) ORDER BY 1, 2 $$,
                  $$ VALUES (3501, 'RM-A'::text, 3), (3501, 'RM-B', 2), (3502, 'RM-A', 0), (3502, 'RM-B', 0) $$,
                  'reservations followed it back');

SELECT * FROM finish();
ROLLBACK;
