-- order_timeline: times reported by other clocks (a warehouse behind, a carrier before the order
-- existed) never put a step before the one it follows: each entry's "time" is its effective
-- time (never before the previous status change, never before creation), "reported_time" is
-- beside it where the two differ; the creation comes first and times never decrease.
BEGIN;
SELECT plan(10);

SELECT FROM orderdb.receive_stock(940311, 'SKEW-1', 10);
SELECT order_id AS o FROM orderdb.create_order(940311, 940311, '[{"sku": "SKEW-1", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
-- the warehouse's clock is 10 minutes behind
SELECT FROM orderdb.wms_callback('skew-1', :o, 'PICKED',
                                 jsonb_build_object('occurred_at', (now() - interval '10 minutes')::text));
SELECT FROM orderdb.wms_callback('skew-2', :o, 'SHIPPED',
                                 jsonb_build_object('carrier', 'SF', 'tracking_number', 'SKEW-SF-940311',
                                                    'occurred_at', (now() - interval '9 minutes')::text));
-- the carrier's clock is two days behind; one scan changes no status, one does
SELECT FROM orderdb.record_tracking_event('SF', 'SKEW-SF-940311', now() - interval '2 days', '54', 'Shenzhen', 'picked up');
SELECT FROM orderdb.record_tracking_event('SF', 'SKEW-SF-940311', now() - interval '47 hours', '44', 'Tianhe', 'out for delivery');

CREATE TEMP TABLE tl AS
    SELECT e, i FROM jsonb_array_elements(orderdb.order_timeline(:o, 940311) -> 'timeline') WITH ORDINALITY a(e, i);

SELECT is((SELECT e ->> 'status' FROM tl WHERE i = 1), 'pending', 'the creation comes first');
SELECT ok((SELECT bool_and((a.e ->> 'time')::timestamptz <= (b.e ->> 'time')::timestamptz)
             FROM tl a JOIN tl b ON b.i = a.i + 1),
          'times never decrease');
SELECT ok((SELECT bool_and((e ->> 'time')::timestamptz >= now()) FROM tl),
          'nothing shown before the order was created');
SELECT results_eq($$ SELECT e ->> 'status', e ->> 'kind' FROM tl ORDER BY i $$,
                  $$ VALUES ('pending'::text, 'order'::text), ('confirmed', 'order'), ('dispatched', 'order'),
                            ('picked', 'order'), ('packed', 'order'), ('shipped', 'order'),
                            ('in_transit', 'carrier'), ('out_for_delivery', 'carrier') $$,
                  'the steps in the order they happened to the order');
SELECT is((SELECT (e ->> 'reported_time')::timestamptz FROM tl WHERE e ->> 'status' = 'picked'),
          now() - interval '10 minutes', 'the reported time is kept beside the effective one');
SELECT is((SELECT (e ->> 'time')::timestamptz FROM tl WHERE e ->> 'status' = 'picked'),
          now(), 'picked: effective time is the confirmation it follows');
SELECT is((SELECT (e ->> 'reported_time')::timestamptz FROM tl WHERE e ->> 'status' = 'in_transit'),
          now() - interval '2 days', 'a carrier event keeps its reported time too');
SELECT ok((SELECT NOT (e ? 'reported_time') FROM tl WHERE e ->> 'status' = 'confirmed'),
          'no reported_time where it equals the time');

-- the history keeps both
SELECT is((SELECT occurred_at FROM orderdb.order_status_history
            WHERE order_id = :o AND to_status = 'picked'),
          now() - interval '10 minutes', 'history: reported time as reported');
SELECT is((SELECT effective_at FROM orderdb.order_status_history
            WHERE order_id = :o AND to_status = 'picked'),
          now(), 'history: effective time never before the previous change');

SELECT * FROM finish();
ROLLBACK;
