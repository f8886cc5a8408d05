-- get_order returns the order as one JSON document: order_id, order_no, customer_id, warehouse_id,
-- status, version, items [{sku, quantity, unit_price, reservation}] in input order, shipments.
BEGIN;
SELECT plan(9);

SELECT FROM orderdb.receive_stock(401, 'GO-A', 10);
SELECT FROM orderdb.receive_stock(401, 'GO-B', 10);
CREATE TEMP TABLE o AS
    SELECT * FROM orderdb.create_order(9, 401, '[{"sku": "GO-B", "quantity": 2, "unit_price": "19.90"},
                                                {"sku": "GO-A", "quantity": 1}]', NULL, 'shop', '{"note": "x"}');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'confirmed', 1);
CREATE TEMP TABLE d AS SELECT orderdb.get_order((SELECT order_id FROM o)) AS doc;

SELECT is((SELECT (doc ->> 'order_id')::bigint FROM d), (SELECT order_id FROM o), 'order_id');
SELECT is((SELECT doc ->> 'order_no' FROM d), (SELECT order_no FROM o), 'order_no');
SELECT is((SELECT (doc ->> 'customer_id')::bigint FROM d), 9::bigint, 'customer_id');
SELECT is((SELECT (doc ->> 'warehouse_id')::integer FROM d), 401, 'warehouse_id');
SELECT is((SELECT doc ->> 'status' FROM d), 'confirmed', 'current status');
SELECT is((SELECT (doc ->> 'version')::integer FROM d), 2, 'current version');
SELECT is((SELECT doc -> 'items' FROM d),
          '[{"sku": "GO-B", "quantity": 2, "unit_price": 19.90,
             "reservation": {"held": 2, "consumed": 0, "released": 0, "returned": 0}},
            {"sku": "GO-A", "quantity": 1, "unit_price": null,
             "reservation": {"held": 1, "consumed": 0, "released": 0, "returned": 0}}]'::jsonb,
          'items in input order with their reservation state');
SELECT is((SELECT jsonb_typeof(doc -> 'shipments') FROM d), 'array', 'shipments is an array');
SELECT ok((SELECT doc ?& ARRAY['options', 'created_by', 'created_at', 'updated_at', 'previous_status'] FROM d),
          'options, created_by, created_at, updated_at and previous_status are included');

SELECT * FROM finish();
ROLLBACK;
