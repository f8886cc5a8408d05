-- customer_orders: a customer's orders newest first with totals and currency; keyset pages
-- (p_before_order_id); p_limit 1..100 (22023 outside); only that customer's orders; backed by
-- the index orders_customer (customer_id, order_id DESC).
BEGIN;
SELECT plan(11);

SELECT FROM orderdb.receive_stock(7716006, 'ODC-A', 100);
SELECT FROM orderdb.receive_stock(7716007, 'ODC-A', 100);
SELECT order_id AS o1 FROM orderdb.create_order(99716006, 7716006, '[{"sku": "ODC-A", "quantity": 1, "unit_price": "9.90"}]') \gset
SELECT order_id AS o2 FROM orderdb.create_order(99716006, 7716007, '[{"sku": "ODC-A", "quantity": 2, "unit_price": "9.90"}]',
                                                NULL, NULL, '{"currency": "HKD", "shipping_fee": 5}') \gset
SELECT FROM orderdb.create_order(99716099, 7716006, '[{"sku": "ODC-A", "quantity": 1}]');
SELECT order_id AS o3 FROM orderdb.create_order(99716006, 7716006, '[{"sku": "ODC-A", "quantity": 3, "unit_price": "0.5"}]') \gset
SELECT FROM orderdb.transition_order(:o3, 'confirmed', 1);

SELECT results_eq(format($$ SELECT order_id, status, total, currency FROM orderdb.customer_orders(99716006) $$),
                  format($$ VALUES (%s::bigint, 'confirmed'::text, 1.5::numeric, 'CNY'::text),
                                   (%s, 'pending', 24.80, 'HKD'), (%s, 'pending', 9.90, 'CNY') $$, :o3, :o2, :o1),
                  'newest first, across warehouses, with totals and currency; not another customer''s');
SELECT results_eq($$ SELECT order_id FROM orderdb.customer_orders(99716006, 2) $$,
                  format($$ VALUES (%s::bigint), (%s) $$, :o3, :o2), 'page 1 of 2');
SELECT results_eq(format($$ SELECT order_id FROM orderdb.customer_orders(99716006, 2, %s) $$, :o2),
                  format($$ VALUES (%s::bigint) $$, :o1), 'page 2: the orders before the last one seen');
SELECT is_empty(format($$ SELECT * FROM orderdb.customer_orders(99716006, 2, %s) $$, :o1), 'past the last page: nothing');
SELECT is((SELECT order_no FROM orderdb.customer_orders(99716006, 1)),
          (SELECT order_no FROM orderdb.order_directory WHERE order_id = :o3), 'order_no');
SELECT is_empty($$ SELECT * FROM orderdb.customer_orders(99716098) $$, 'a customer without orders: nothing');
SELECT throws_ok($$ SELECT * FROM orderdb.customer_orders(99716006, 0) $$, '22023', 'limit must be between 1 and 100', 'limit 0');
SELECT throws_ok($$ SELECT * FROM orderdb.customer_orders(99716006, 101) $$, '22023', 'limit must be between 1 and 100', 'limit 101');
SELECT throws_ok($$ SELECT * FROM orderdb.customer_orders(0) $$, '22023', 'customer_id must be a positive integer', 'customer 0');
SELECT throws_ok($$ SELECT * FROM orderdb.customer_orders(1, 10, -1) $$, '22023', 'before_order_id must be a positive integer',
                 'a negative before_order_id');
SELECT has_index('orderdb', 'orders', 'orders_customer', ARRAY['customer_id', 'order_id'],
                 'the index behind it: (customer_id, order_id DESC)');

SELECT * FROM finish();
ROLLBACK;
