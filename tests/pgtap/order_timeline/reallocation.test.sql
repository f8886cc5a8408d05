-- A reallocated order's timeline tells the customer the order moved to another warehouse, instead
-- of repeating the unchanged status.
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.receive_stock(3601, 'TLR-A', 5);
SELECT FROM orderdb.receive_stock(3602, 'TLR-A', 5);
SELECT order_id AS oid FROM orderdb.create_order(41, 3601, '[{"sku": "TLR-A", "quantity": 2}]') \gset
SELECT FROM orderdb.transition_order(:oid, 'confirmed', 1);
SELECT FROM orderdb.reallocate_order(:oid, 3602, 2, 'ops', 'warehouse 3601 closed');

SELECT is((SELECT count(*)::integer FROM jsonb_array_elements(orderdb.order_timeline(:oid) -> 'timeline') e
            WHERE e ->> 'description' = 'Order moved to another warehouse'), 1,
          'the move is one timeline entry');
SELECT is((SELECT count(*)::integer FROM jsonb_array_elements(orderdb.order_timeline(:oid) -> 'timeline') e
            WHERE e ->> 'status' = 'confirmed' AND e ->> 'description' <> 'Order moved to another warehouse'), 1,
          'the confirmation is shown once');
SELECT is(orderdb.order_timeline(:oid, 41) ->> 'status', 'confirmed', 'status unchanged by the move');

SELECT * FROM finish();
ROLLBACK;
