-- get_order: OD004 for an unknown order, 22023 for a non-positive order_id.
BEGIN;
SELECT plan(3);

SELECT throws_ok($$ SELECT orderdb.get_order(999999999) $$, 'OD004', 'order 999999999 not found', 'unknown order');
SELECT throws_ok($$ SELECT orderdb.get_order(0) $$, '22023', 'order_id must be a positive integer', 'order_id 0');
SELECT throws_ok($$ SELECT orderdb.get_order(NULL) $$, '22023', 'order_id must be a positive integer', 'NULL order_id');

SELECT * FROM finish();
ROLLBACK;
