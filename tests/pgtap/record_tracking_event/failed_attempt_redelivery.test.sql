-- record_tracking_event: in_transit -> delivering, failed_attempt -> delivery_failed, a later
-- out_for_delivery is a redelivery (-> delivering), delivered -> delivered; each change in the
-- history with source carrier and the event time.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(412, 'FA', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 412, '[{"sku": "FA", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('fa-1', :o, 'SHIPPED', jsonb_build_object('carrier', 'AFTERSHIP', 'tracking_number', 'FA1',
                                 'occurred_at', (now() - interval '2 days')::text));

SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('AFTERSHIP', 'FA1', now() - interval '40 hours', 'InTransit', 'Hub') $$,
                  $$ VALUES ('delivering'::text) $$, 'InTransit: delivering');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('AFTERSHIP', 'FA1', now() - interval '30 hours', 'AttemptFail', 'Door') $$,
                  $$ VALUES ('delivery_failed'::text) $$, 'AttemptFail: delivery_failed');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('AFTERSHIP', 'FA1', now() - interval '20 hours', 'OutForDelivery', 'Van') $$,
                  $$ VALUES ('delivering'::text) $$, 'a later OutForDelivery is a redelivery');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('AFTERSHIP', 'FA1', now() - interval '19 hours', 'Delivered', 'Door') $$,
                  $$ VALUES ('delivered'::text) $$, 'Delivered');
SELECT results_eq(format($$ SELECT to_status, source, occurred_at FROM orderdb.order_status_history
                             WHERE order_id = %s AND source = 'carrier' ORDER BY version $$, :o),
                  $$ VALUES ('delivering'::text, 'carrier'::text, now() - interval '40 hours'),
                            ('delivery_failed', 'carrier', now() - interval '30 hours'),
                            ('delivering', 'carrier', now() - interval '20 hours'),
                            ('delivered', 'carrier', now() - interval '19 hours') $$,
                  'history: each change at the carrier''s event time');
SELECT is((SELECT delivered_at FROM orderdb.shipments WHERE tracking_number = 'FA1'), now() - interval '19 hours', 'delivered_at set');

SELECT * FROM finish();
ROLLBACK;
