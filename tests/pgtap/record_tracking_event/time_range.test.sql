-- Externally supplied times (a carrier's event_time, a WMS payload.occurred_at) must be finite,
-- not before 2000-01-01 and at most one day in the future: else 22023 naming the field, and
-- nothing is stored. 2000-01-01 itself is accepted.
BEGIN;
SELECT plan(10);

SELECT FROM orderdb.receive_stock(915301, 'TR-A', 10);
SELECT order_id AS o FROM orderdb.create_order(915301, 915301, '[{"sku": "TR-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);

SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('GENERIC', 'TR915301', '1999-12-31 23:59:59+00', 'in_transit') $$,
                 '22023', 'event_time must be finite, not before 2000-01-01 and at most one day in the future', 'carrier event in 1999');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('GENERIC', 'TR915301', '1900-01-01 00:00:00+00', 'delivered') $$,
                 '22023', 'event_time must be finite, not before 2000-01-01 and at most one day in the future', 'carrier event in 1900');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('GENERIC', 'TR915301', '-infinity', 'delivered') $$,
                 '22023', 'event_time must be finite, not before 2000-01-01 and at most one day in the future', 'carrier event at -infinity');
SELECT is((SELECT count(*)::int FROM orderdb.tracking_events WHERE tracking_number = 'TR915301'), 0, 'no carrier event stored');
SELECT lives_ok($$ SELECT * FROM orderdb.record_tracking_event('GENERIC', 'TR915301', '2000-01-01 00:00:00+00', 'info_received') $$,
                'a carrier event at 2000-01-01 is accepted');

SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('tr-915301-1', %s, 'PICKED', '{"occurred_at": "1999-06-01T10:00:00Z"}') $$, :o),
                 '22023', 'payload.occurred_at must be finite, not before 2000-01-01 and at most one day in the future', 'WMS callback in 1999');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('tr-915301-1', %s, 'SHIPPED',
                          '{"carrier": "GENERIC", "tracking_number": "TR915301", "occurred_at": "0001-01-01T00:00:00Z"}') $$, :o),
                 '22023', 'payload.occurred_at must be finite, not before 2000-01-01 and at most one day in the future', 'WMS callback in year 1');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('tr-915301-1', %s, 'PICKED', '{"occurred_at": "-infinity"}') $$, :o),
                 '22023', 'payload.occurred_at must be finite, not before 2000-01-01 and at most one day in the future', 'WMS callback at -infinity');
SELECT results_eq(format($$ SELECT (SELECT count(*)::int FROM orderdb.wms_events WHERE order_id = %1$s),
                                   (SELECT version FROM orderdb.orders WHERE order_id = %1$s) $$, :o),
                  $$ VALUES (0, 2) $$, 'no WMS callback stored, the order unchanged');
SELECT results_eq(format($$ SELECT status FROM orderdb.wms_callback('tr-915301-2', %s, 'PICKED', '{"occurred_at": "2000-01-01T00:00:00Z"}') $$, :o),
                  $$ VALUES ('picked'::text) $$, 'a WMS callback at 2000-01-01 is accepted');

SELECT * FROM finish();
ROLLBACK;
