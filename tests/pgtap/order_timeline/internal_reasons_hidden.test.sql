-- order_timeline: the reason given to transition_order and a warehouse's exception type are
-- internal (audit, operators); the customer's timeline shows the customer-safe text of
-- orderdb.customer_texts for the status or exception type (a generic one for an unknown type).
-- Operators' order_history keeps the reasons.
BEGIN;
SELECT plan(9);

SELECT FROM orderdb.receive_stock(940312, 'HIDE-1', 10);
SELECT order_id AS a, order_no AS a_no
  FROM orderdb.create_order(940312, 940312, '[{"sku": "HIDE-1", "quantity": 1}]') \gset
SELECT order_id AS b FROM orderdb.create_order(940312, 940312, '[{"sku": "HIDE-1", "quantity": 1}]') \gset
SELECT order_id AS c FROM orderdb.create_order(940312, 940312, '[{"sku": "HIDE-1", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:a, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:a, 'on_hold', 2, 'risk-team', 'suspected fraud: card flagged');
SELECT FROM orderdb.transition_order(:b, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('hide-1', :b, 'EXCEPTION', '{"exception_type": "OUT_OF_STOCK"}');
SELECT FROM orderdb.transition_order(:c, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('hide-2', :c, 'EXCEPTION', '{"exception_type": "SHELF 4 LEAKING, ask Bob"}');

SELECT ok(position('fraud' IN orderdb.order_timeline(:a, 940312)::text) = 0,
          'transition reason: not in the customer''s timeline');
SELECT ok(position('fraud' IN orderdb.order_timeline_by_no(:'a_no', 940312)::text) = 0,
          'transition reason: not in the tracking page''s document');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:a) -> 'timeline') e
            WHERE e ->> 'status' = 'on_hold'),
          (SELECT text FROM orderdb.customer_texts WHERE locale = 'en' AND kind = 'status' AND code = 'on_hold'),
          'on hold: the status''s customer text');
SELECT ok(position('OUT_OF_STOCK' IN orderdb.order_timeline(:b)::text) = 0,
          'exception type: not shown as such');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:b) -> 'timeline') e
            WHERE e ->> 'status' = 'on_hold'),
          (SELECT text FROM orderdb.customer_texts WHERE locale = 'en' AND kind = 'exception' AND code = 'OUT_OF_STOCK'),
          'exception type: its customer text');
SELECT ok(position('Bob' IN orderdb.order_timeline(:c)::text) = 0, 'unknown exception type: not shown');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:c) -> 'timeline') e
            WHERE e ->> 'status' = 'on_hold'),
          (SELECT text FROM orderdb.customer_texts WHERE locale = 'en' AND kind = 'exception' AND code = '*'),
          'unknown exception type: the generic exception text');
SELECT is((SELECT reason FROM orderdb.order_history(:a) WHERE to_status = 'on_hold'),
          'suspected fraud: card flagged', 'operators still see the reason');
SELECT is((SELECT reason FROM orderdb.order_history(:b) WHERE to_status = 'on_hold'),
          'OUT_OF_STOCK', 'operators still see the exception type');

SELECT * FROM finish();
ROLLBACK;
