-- The same idempotency key with a different request (customer, warehouse, items, options) is OD006,
-- and writes nothing.
BEGIN;
SELECT plan(8);

SELECT FROM orderdb.receive_stock(205, 'IC-A', 10);
SELECT FROM orderdb.receive_stock(206, 'IC-A', 10);
SELECT FROM orderdb.create_order(5, 205, '[{"sku": "IC-A", "quantity": 2}]', 'key-205', NULL, '{"a": 1}');

SELECT throws_ok($$ SELECT orderdb.create_order(6, 205, '[{"sku": "IC-A", "quantity": 2}]', 'key-205', NULL, '{"a": 1}') $$,
                 'OD006', 'idempotency key reused with a different request', 'another customer');
SELECT throws_ok($$ SELECT orderdb.create_order(5, 206, '[{"sku": "IC-A", "quantity": 2}]', 'key-205', NULL, '{"a": 1}') $$,
                 'OD006', NULL, 'another warehouse');
SELECT throws_ok($$ SELECT orderdb.create_order(5, 205, '[{"sku": "IC-A", "quantity": 3}]', 'key-205', NULL, '{"a": 1}') $$,
                 'OD006', NULL, 'another quantity');
SELECT throws_ok($$ SELECT orderdb.create_order(5, 205, '[{"sku": "IC-A", "quantity": 2, "unit_price": 1}]', 'key-205', NULL, '{"a": 1}') $$,
                 'OD006', NULL, 'another price');
SELECT throws_ok($$ SELECT orderdb.create_order(5, 205, '[{"sku": "IC-A", "quantity": 2}]', 'key-205', NULL, '{"a": 2}') $$,
                 'OD006', NULL, 'other options');
SELECT throws_ok($$ SELECT orderdb.create_order(5, 205, '[{"sku": "IC-A", "quantity": 1}, {"sku": "IC-B", "quantity": 1}]', 'key-205', NULL, '{"a": 1}') $$,
                 'OD006', NULL, 'other items');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(205, 'IC-A') $$, $$ VALUES (10, 2, 10 - 2) $$,
                  'nothing more reserved');
SELECT is((SELECT count(*)::integer FROM orderdb.order_directory WHERE idempotency_key = 'key-205'), 1,
          'one order holds the key');

SELECT * FROM finish();
ROLLBACK;
