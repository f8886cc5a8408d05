-- order_history: 22023 for a non-positive order_id.
BEGIN;
SELECT plan(2);

SELECT throws_ok($$ SELECT * FROM orderdb.order_history(0) $$, '22023', 'order_id must be a positive integer', 'order_id 0');
SELECT throws_ok($$ SELECT * FROM orderdb.order_history(NULL) $$, '22023', 'order_id must be a positive integer', 'NULL order_id');

SELECT * FROM finish();
ROLLBACK;
