-- order_no: 'ORD' || UTC date YYYYMMDD || the order number padded to at least 8 digits, never
-- truncated; the date is the UTC date whatever the session time zone.
BEGIN;
SELECT plan(5);

SELECT is(orderdb._order_no(1, '2026-03-04 12:00+00'), 'ORD2026030400000001', 'padded to 8 digits');
SELECT is(orderdb._order_no(12345678, '2026-03-04 12:00+00'), 'ORD2026030412345678', 'exactly 8 digits');
SELECT is(orderdb._order_no(123456789012, '2026-03-04 12:00+00'), 'ORD20260304123456789012',
          'longer numbers are never truncated');
SET LOCAL timezone = 'Asia/Shanghai';
SELECT is(orderdb._order_no(5, '2026-03-05 01:30+08'), 'ORD2026030400000005',
          'the date is the UTC date (01:30 in Shanghai is still the 4th in UTC)');

SELECT FROM orderdb.receive_stock(208, 'ON-A', 5);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 208, '[{"sku": "ON-A", "quantity": 1}]');
SELECT is((SELECT order_no FROM o), (SELECT orderdb._order_no(order_id, now()) FROM o),
          'create_order numbers its order with the global sequence, in UTC');

SELECT * FROM finish();
ROLLBACK;
