-- record_tracking_event: out-of-order and late events are stored but never move the order back
-- (a late in_transit never moves a delivered order back).
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(411, 'NB', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 411, '[{"sku": "NB", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('nb-1', :o, 'SHIPPED', jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'NB1',
                                 'occurred_at', (now() - interval '1 day')::text));

SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'NB1', now() - interval '1 hour', 'delivered', 'Door') $$,
                  $$ VALUES ('delivered'::text) $$, 'delivered straight from shipped');
SELECT version AS v FROM orderdb.orders WHERE order_id = :o \gset
SELECT results_eq($$ SELECT duplicate, order_status FROM orderdb.record_tracking_event('GENERIC', 'NB1', now() - interval '5 hours', 'in_transit', 'Hub') $$,
                  $$ VALUES (false, 'delivered'::text) $$, 'a late in_transit is stored, the order stays delivered');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'NB1', now() - interval '3 hours', 'failed_attempt', 'Door') $$,
                  $$ VALUES ('delivered'::text) $$, 'a late failed attempt changes nothing');
SELECT results_eq($$ SELECT order_status FROM orderdb.record_tracking_event('GENERIC', 'NB1', now() - interval '10 minutes', 'in_transit', 'Hub') $$,
                  $$ VALUES ('delivered'::text) $$, 'even a newer in_transit never moves delivered back');
SELECT is((SELECT version FROM orderdb.orders WHERE order_id = :o), :v, 'no status change at all');
SELECT is((SELECT status FROM orderdb.shipments WHERE tracking_number = 'NB1'), 'in_transit', 'the shipment shows the newest event');

SELECT * FROM finish();
ROLLBACK;
