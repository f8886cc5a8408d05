-- order_timeline_by_no: bad arguments are 22023 naming the field.
BEGIN;
SELECT plan(6);

SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no(NULL, 1) $$, '22023',
                 'order_no is required', 'NULL order_no');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('', 1) $$, '22023',
                 'order_no must be 1 to 255 characters', 'empty order_no');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no(repeat('9', 256), 1) $$, '22023',
                 'order_no must be 1 to 255 characters', '256-character order_no');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD1', 0) $$, '22023',
                 'customer_id must be a positive integer', 'customer_id 0');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD1', -5) $$, '22023',
                 'customer_id must be a positive integer', 'negative customer_id');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD1', NULL) $$, '22023',
                 'customer_id must be a positive integer', 'NULL customer_id');

SELECT * FROM finish();
ROLLBACK;
