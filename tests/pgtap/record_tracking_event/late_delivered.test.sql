-- record_tracking_event: a carrier delivered event is applied whenever it arrives, even after
-- newer non-terminal events (an out-for-delivery scan, an exception): the order is delivered,
-- the shipment is done (delivered_at), polling stops and no SLA breach remains. With two parcels
-- the order waits for both; events matched later (unmatched before SHIPPED) behave the same.
BEGIN;
SELECT plan(16);

SELECT FROM orderdb.receive_stock(915101, 'LD-A', 10);
SELECT FROM orderdb.receive_stock(915101, 'LD-B', 10);

-- one parcel: out_for_delivery 6 days ago, exception 5 days ago, then delivered 5.5 days ago
SELECT order_id AS o FROM orderdb.create_order(915101, 915101, '[{"sku": "LD-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('ld-915101-1', :o, 'SHIPPED', jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'LD915101-1',
                                 'occurred_at', (now() - interval '10 days')::text));
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'LD915101-1', now() - interval '6 days', 'out_for_delivery', 'Van') $$,
                  $$ VALUES ('delivering'::text) $$, 'out_for_delivery: delivering');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'LD915101-1', now() - interval '5 days', 'exception', 'Depot') $$,
                  $$ VALUES ('delivering'::text) $$, 'exception: no change');
SELECT results_eq($$ SELECT duplicate, order_status FROM orderdb.record_tracking_event('GENERIC', 'LD915101-1', now() - interval '132 hours', 'delivered', 'Door') $$,
                  $$ VALUES (false, 'delivered'::text) $$, 'the late delivered answers delivered');
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o), 'delivered', 'the order is delivered');
SELECT results_eq($$ SELECT status, delivered_at FROM orderdb.shipments WHERE carrier = 'GENERIC' AND tracking_number = 'LD915101-1' $$,
                  $$ VALUES ('delivered'::text, now() - interval '132 hours') $$, 'the shipment is done at the delivered event''s time');
SELECT is((SELECT count(*)::int FROM orderdb.claim_shipments_for_polling(1000, 'ld-915101-poller') c
            WHERE c.carrier = 'GENERIC' AND c.tracking_number = 'LD915101-1'), 0, 'the delivered parcel is not polled');
SELECT is((SELECT count(*)::int FROM orderdb.shipment_polls p
            WHERE p.carrier = 'GENERIC' AND p.tracking_number = 'LD915101-1' AND NOT p.done), 0, 'no open polling row');
SELECT is((SELECT count(*)::int FROM orderdb_ops.sla_breaches b
            WHERE b.order_id = :o AND b.rule IN ('no_tracking_update', 'unsigned')), 0, 'no no_tracking_update/unsigned breach');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'LD915101-1', now() - interval '1 hour', 'in_transit', 'Hub') $$,
                  $$ VALUES ('delivered'::text) $$, 'other late events still never move the order back');

-- two parcels: the late delivered of the first leaves the order delivering until the second
SELECT order_id AS o2 FROM orderdb.create_order(915101, 915101, '[{"sku": "LD-A", "quantity": 1}, {"sku": "LD-B", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o2, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('ld-915101-2', :o2, 'SHIPPED', jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'LD915101-2A',
                                 'lines', '[{"sku": "LD-A"}]'::jsonb, 'occurred_at', (now() - interval '4 days')::text));
SELECT FROM orderdb.wms_callback('ld-915101-3', :o2, 'SHIPPED', jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'LD915101-2B',
                                 'lines', '[{"sku": "LD-B"}]'::jsonb, 'occurred_at', (now() - interval '4 days')::text));
SELECT FROM orderdb.record_tracking_event('GENERIC', 'LD915101-2A', now() - interval '3 hours', 'out_for_delivery');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'LD915101-2A', now() - interval '1 hour', 'exception');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'LD915101-2A', now() - interval '2 hours', 'delivered') $$,
                  $$ VALUES ('delivering'::text) $$, 'first parcel delivered late: the order waits for the second');
SELECT isnt((SELECT delivered_at FROM orderdb.shipments WHERE tracking_number = 'LD915101-2A'), NULL, 'the first parcel is done');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'LD915101-2B', now() - interval '30 minutes', 'delivered') $$,
                  $$ VALUES ('delivered'::text) $$, 'second parcel delivered: the order is delivered');

-- events that arrive before the shipment exists, the delivered one older than an exception
SELECT order_id AS o3 FROM orderdb.create_order(915101, 915101, '[{"sku": "LD-B", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o3, 'confirmed', 1);
SELECT FROM orderdb.record_tracking_event('GENERIC', 'LD915101-3', now() - interval '3 hours', 'out_for_delivery');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'LD915101-3', now() - interval '1 hour', 'exception');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'LD915101-3', now() - interval '2 hours', 'delivered');
SELECT results_eq(format($$ SELECT status FROM orderdb.wms_callback('ld-915101-4', %s, 'SHIPPED',
                                   jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'LD915101-3',
                                                      'occurred_at', (now() - interval '1 day')::text)) $$, :o3),
                  $$ VALUES ('delivered'::text) $$, 'matched later: the order is delivered');
SELECT results_eq($$ SELECT status, delivered_at FROM orderdb.shipments WHERE tracking_number = 'LD915101-3' $$,
                  $$ VALUES ('delivered'::text, now() - interval '2 hours') $$, 'matched later: the shipment is done');
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o3), 'delivered', 'matched later: order row delivered');
SELECT is((SELECT count(*)::int FROM orderdb.order_status_history WHERE order_id = :o3 AND to_status = 'delivered'), 1, 'delivered once in the history');

SELECT * FROM finish();
ROLLBACK;
