-- wms_callback: bad input is 22023 naming the field, unknown order OD004, a pending order OD003;
-- nothing is written.
BEGIN;
SELECT plan(15);

SELECT FROM orderdb.receive_stock(403, 'WC', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 403, '[{"sku": "WC", "quantity": 1}]') \gset

SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'PICKED') $$, :o), 'OD003', NULL,
                 'a pending order is not released to the warehouse');
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);

SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'LOADED') $$, :o), '22023',
                 'unknown event_type ''LOADED''', 'unknown event type');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'picked') $$, :o), '22023', NULL,
                 'event types are upper case');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, NULL) $$, :o), '22023', NULL, 'NULL event type');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('', %s, 'PICKED') $$, :o), '22023',
                 'event_id must be 1 to 255 characters', 'empty event id');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback(repeat('e', 256), %s, 'PICKED') $$, :o), '22023',
                 'event_id must be 1 to 255 characters', '256-character event id');
SELECT throws_ok($$ SELECT * FROM orderdb.wms_callback('x1', 0, 'PICKED') $$, '22023',
                 'order_id must be a positive integer', 'order id 0');
SELECT throws_ok($$ SELECT * FROM orderdb.wms_callback('x1', 999999999, 'PICKED') $$, 'OD004', NULL, 'unknown order');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'PICKED', '[]') $$, :o), '22023',
                 'payload must be a JSON object', 'payload an array');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'PICKED', '{"occurred_at": "infinity"}') $$, :o),
                 '22023', 'payload.occurred_at must be finite, not before 2000-01-01 and at most one day in the future', 'infinite occurred_at');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'PICKED',
                          jsonb_build_object('occurred_at', (now() + interval '25 hours')::text)) $$, :o),
                 '22023', 'payload.occurred_at must be finite, not before 2000-01-01 and at most one day in the future', 'occurred_at over a day ahead');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'PICKED', '{"occurred_at": "yesterday-ish"}') $$, :o),
                 '22023', 'payload.occurred_at must be a timestamp string (ISO 8601)', 'unparsable occurred_at');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'SHIPPED', '{"tracking_number": "T1"}') $$, :o),
                 '22023', 'payload.carrier is required (a string)', 'SHIPPED without carrier');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('x1', %s, 'EXCEPTION', '{}') $$, :o),
                 '22023', 'payload.exception_type is required (a string)', 'EXCEPTION without exception_type');
SELECT results_eq(format($$ SELECT (SELECT count(*)::int FROM orderdb.wms_events WHERE order_id = %1$s),
                                   (SELECT version FROM orderdb.orders WHERE order_id = %1$s) $$, :o),
                  $$ VALUES (0, 2) $$, 'nothing was written');

SELECT * FROM finish();
ROLLBACK;
