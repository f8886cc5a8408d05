-- order_timeline: status changes and carrier events, oldest first by when they happened (also
-- when they arrived out of order; steps reported before the order was confirmed are shown at
-- their effective time, with their reported time beside it), each carrier event once;
-- current_location is the location of the newest event that has one.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(421, 'TL', 10);
SELECT order_id AS o FROM orderdb.create_order(5, 421, '[{"sku": "TL", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('tl-1', :o, 'PACKED', jsonb_build_object('occurred_at', (now() - interval '10 hours')::text));
SELECT FROM orderdb.wms_callback('tl-2', :o, 'SHIPPED', jsonb_build_object('carrier', 'SF', 'tracking_number', 'SFTL',
                                 'occurred_at', (now() - interval '9 hours')::text));
-- arrive out of order; one duplicate; the newest has no location
SELECT FROM orderdb.record_tracking_event('SF', 'SFTL', now() - interval '6 hours', '31', 'Guangzhou hub', 'arrived at hub');
SELECT FROM orderdb.record_tracking_event('SF', 'SFTL', now() - interval '8 hours', '54', 'Shenzhen', 'picked up');
SELECT FROM orderdb.record_tracking_event('SF', 'SFTL', now() - interval '6 hours', '31', 'Guangzhou hub', 'arrived at hub');
SELECT FROM orderdb.record_tracking_event('SF', 'SFTL', now() - interval '2 hours', '44', 'Tianhe', 'out for delivery');
SELECT FROM orderdb.record_tracking_event('SF', 'SFTL', now() - interval '1 hour', '80', NULL, 'signed by recipient');

CREATE TEMP TABLE tl AS SELECT orderdb.order_timeline(:o, 5) AS t;

SELECT is((SELECT t FROM tl) ->> 'status', 'delivered', 'delivered');
SELECT is((SELECT t FROM tl) ->> 'current_location', 'Tianhe', 'location of the newest event that has one');
SELECT results_eq($$ SELECT e ->> 'status', e ->> 'kind' FROM jsonb_array_elements((SELECT t FROM tl) -> 'timeline') WITH ORDINALITY a(e, i)
                     WHERE coalesce(e ->> 'reported_time', e ->> 'time')::timestamptz < now() - interval '1 minute' ORDER BY i $$,
                  $$ VALUES ('dispatched'::text, 'order'::text), ('picked', 'order'), ('packed', 'order'),
                            ('shipped', 'order'), ('in_transit', 'carrier'), ('in_transit', 'carrier'),
                            ('out_for_delivery', 'carrier'), ('delivered', 'carrier') $$,
                  'oldest first by event time, carrier events once each');
SELECT ok((SELECT bool_and((a.e ->> 'time')::timestamptz <= (b.e ->> 'time')::timestamptz)
             FROM jsonb_array_elements((SELECT t FROM tl) -> 'timeline') WITH ORDINALITY a(e, i)
             JOIN jsonb_array_elements((SELECT t FROM tl) -> 'timeline') WITH ORDINALITY b(e, i) ON b.i = a.i + 1),
          'times never decrease');
SELECT is((SELECT count(*)::int FROM jsonb_array_elements((SELECT t FROM tl) -> 'timeline') e WHERE e ->> 'kind' = 'carrier'), 4,
          'four distinct carrier events');
SELECT is(((SELECT t FROM tl) -> 'shipments' -> 0) - 'shipped_at' - 'delivered_at',
          '{"carrier": "SF", "tracking_number": "SFTL", "status": "delivered"}'::jsonb, 'shipments: carrier, tracking number, status');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements((SELECT t FROM tl) -> 'timeline') e
            WHERE e ->> 'status' = 'delivered' AND e ->> 'kind' = 'carrier'), 'signed by recipient', 'carrier description kept');

SELECT * FROM finish();
ROLLBACK;
