-- order_timeline: customer-scoped: another customer's order is OD005, a missing order OD004.
BEGIN;
SELECT plan(5);

SELECT FROM orderdb.receive_stock(420, 'TS', 10);
SELECT order_id AS o FROM orderdb.create_order(77, 420, '[{"sku": "TS", "quantity": 1}]') \gset

SELECT throws_ok(format($$ SELECT orderdb.order_timeline(%s, 78) $$, :o), 'OD005', NULL, 'another customer: forbidden');
SELECT is((orderdb.order_timeline(:o, 77)) ->> 'order_id', :o::text, 'the owner sees it');
SELECT is((orderdb.order_timeline(:o)) ->> 'status', 'pending', 'no customer given: an internal caller sees it');
SELECT throws_ok($$ SELECT orderdb.order_timeline(999999999, 77) $$, 'OD004', NULL, 'missing order: not found');
SELECT throws_ok(format($$ SELECT orderdb.order_timeline(%s, 0) $$, :o), '22023', 'customer_id must be a positive integer', 'customer id 0');

SELECT * FROM finish();
ROLLBACK;
