-- order_timeline_by_no finds an order by the id its number carries (no index on order_no): only
-- the exact number is served; the same id under another date, a number with letters, spaces,
-- fewer than 8 digits, 19 digits past bigint or too short is unknown (OD004), never an error of
-- its own. The table keeps order_no unique through the CHECK that ties it to the order id.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(703, 'WEB-NO', 10);
SELECT order_id AS id, order_no AS n
  FROM orderdb.create_order(74, 703, '[{"sku": "WEB-NO", "quantity": 1}]') \gset

SELECT lives_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 74) $$, :'n'),
                'the exact number is served');
SELECT is(orderdb.order_timeline_by_no(:'n', 74) ->> 'order_no', :'n', 'the order it names');
SELECT throws_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 74) $$,
                        'ORD19990101' || substr(:'n', 12)),
                 'OD004', 'order not found', 'the same id under another date: unknown');
SELECT throws_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 74) $$,
                        'ORD' || substr(:'n', 4, 8) || '0' || substr(:'n', 12)),
                 'OD004', 'order not found', 'the id padded once more: unknown');
SELECT throws_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 74) $$, :'n' || 'x'),
                 'OD004', 'order not found', 'a letter after the number: unknown');
SELECT throws_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 74) $$, ' ' || :'n'),
                 'OD004', 'order not found', 'a space before the number: unknown');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD202612011234567', 74) $$,
                 'OD004', 'order not found', '7 digits after the date: unknown');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD202612019999999999999999999', 74) $$,
                 'OD004', 'order not found', '19 digits past bigint: unknown');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD', 74) $$,
                 'OD004', 'order not found', 'no digits at all: unknown');

SELECT throws_ok(format($$ INSERT INTO orderdb.order_directory (order_id, warehouse_id, order_no)
                           VALUES (%s, 703, %L) $$, :id + 1000000, :'n'),
                 '23514', NULL, 'another id cannot take the number (CHECK order_directory_order_no_id)');
SELECT throws_ok(format($$ INSERT INTO orderdb.order_directory (order_id, warehouse_id, order_no)
                           VALUES (%s, 703, %L) $$, :id, 'ORD19990101' || substr(:'n', 12)),
                 '23505', NULL, 'the id cannot get a second number (primary key)');
SELECT hasnt_index('orderdb', 'order_directory', 'order_directory_order_no_key',
                   'no B-tree on order_no: the number is unique through the order id');

SELECT * FROM finish();
ROLLBACK;
