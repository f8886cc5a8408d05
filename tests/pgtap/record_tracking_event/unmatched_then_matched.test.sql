-- record_tracking_event: an event for a tracking number no shipment has yet is stored unmatched
-- (order NULL); the WMS SHIPPED callback matches it and the order follows the newest event.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(410, 'UM', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 410, '[{"sku": "UM", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);

SELECT results_eq($$ SELECT duplicate, normalized_status, order_id, order_status FROM
                     orderdb.record_tracking_event('SF', 'SFUM1', now() - interval '2 hours', '54', 'Shenzhen', 'picked up') $$,
                  $$ VALUES (false, 'in_transit'::text, NULL::bigint, NULL::text) $$, 'stored unmatched');
SELECT results_eq($$ SELECT order_id FROM orderdb.record_tracking_event('SF', 'SFUM1', now() - interval '1 hour', '44', 'Futian', 'out for delivery') $$,
                  $$ VALUES (NULL::bigint) $$, 'still unmatched');
SELECT results_eq(format($$ SELECT status FROM orderdb.wms_callback('um-1', %s, 'SHIPPED', jsonb_build_object(
                             'carrier', 'SF', 'tracking_number', 'SFUM1', 'occurred_at', (now() - interval '3 hours')::text)) $$, :o),
                  $$ VALUES ('delivering'::text) $$, 'SHIPPED matches the earlier events: the order is already delivering');
SELECT is((SELECT count(*)::int FROM orderdb.tracking_events WHERE tracking_number = 'SFUM1' AND order_id = :o), 2, 'both events matched');
SELECT is((SELECT status FROM orderdb.shipments WHERE tracking_number = 'SFUM1'), 'out_for_delivery', 'the shipment has the newest status');
SELECT results_eq($$ SELECT order_id IS NOT NULL, order_status FROM orderdb.record_tracking_event('SF', 'SFUM1', now() - interval '30 minutes', '80', 'Futian', 'signed') $$,
                  $$ VALUES (true, 'delivered'::text) $$, 'a later event applies directly');

SELECT * FROM finish();
ROLLBACK;
