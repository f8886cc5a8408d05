-- order_timeline_by_no: the owner gets exactly orderdb.order_timeline of the order so numbered.
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.receive_stock(701, 'WEB-TL', 10);
SELECT order_id AS o, order_no AS n
  FROM orderdb.create_order(71, 701, '[{"sku": "WEB-TL", "quantity": 1}]') \gset
SELECT version AS v FROM orderdb.transition_order(:o, 'confirmed', 1) \gset

SELECT is(orderdb.order_timeline_by_no(:'n', 71), orderdb.order_timeline(:o, 71),
          'the document of order_timeline for the owner');
SELECT is(orderdb.order_timeline_by_no(:'n', 71) ->> 'status', 'confirmed', 'current status');
SELECT is(jsonb_array_length(orderdb.order_timeline_by_no(:'n', 71) -> 'timeline'), 2,
          'placed and confirmed');

SELECT * FROM finish();
ROLLBACK;
