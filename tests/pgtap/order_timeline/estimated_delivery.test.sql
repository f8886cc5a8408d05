-- order_timeline estimated_delivery: options.promised_delivery_at when present; else shipped time
-- + the median transit time of the carrier's deliveries of the last 30 days; else null.
BEGIN;
SELECT plan(4);

SELECT FROM orderdb.receive_stock(422, 'ED', 100);
CREATE FUNCTION pg_temp.shipped_order(p_tn text, p_shipped_ago interval, p_options jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE v bigint;
BEGIN
    SELECT order_id INTO v FROM orderdb.create_order(9, 422, '[{"sku": "ED", "quantity": 1}]', NULL, NULL, p_options);
    PERFORM orderdb.transition_order(v, 'confirmed', 1);
    PERFORM orderdb.wms_callback('ed-' || p_tn, v, 'SHIPPED', jsonb_build_object('carrier', 'EDX', 'tracking_number', p_tn,
                                 'occurred_at', (now() - p_shipped_ago)::text));
    RETURN v;
END $f$;
INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status) VALUES ('EDX', 'DLV', 'delivered');

-- three past deliveries: 20 h, 30 h, 40 h in transit (median 30 h)
SELECT FROM pg_temp.shipped_order('E1', '5 days');
SELECT FROM orderdb.record_tracking_event('EDX', 'E1', now() - interval '5 days' + interval '20 hours', 'DLV');
SELECT FROM pg_temp.shipped_order('E2', '6 days');
SELECT FROM orderdb.record_tracking_event('EDX', 'E2', now() - interval '6 days' + interval '30 hours', 'DLV');
SELECT FROM pg_temp.shipped_order('E3', '7 days');
SELECT FROM orderdb.record_tracking_event('EDX', 'E3', now() - interval '7 days' + interval '40 hours', 'DLV');

SELECT pg_temp.shipped_order('E4', '2 hours') AS o \gset
SELECT is(((orderdb.order_timeline(:o)) ->> 'estimated_delivery')::timestamptz, now() - interval '2 hours' + interval '30 hours',
          'shipped time + median transit time of the carrier');

SELECT pg_temp.shipped_order('E5', '2 hours', jsonb_build_object('promised_delivery_at', '2030-01-02T10:00:00Z')) AS p \gset
SELECT is(((orderdb.order_timeline(:p)) ->> 'estimated_delivery')::timestamptz, '2030-01-02T10:00:00Z'::timestamptz,
          'the promised date wins');

SELECT order_id AS n FROM orderdb.create_order(9, 422, '[{"sku": "ED", "quantity": 1}]') \gset
SELECT is((orderdb.order_timeline(:n)) -> 'estimated_delivery', 'null'::jsonb, 'not shipped, nothing promised: null');

DELETE FROM orderdb.tracking_events WHERE carrier = 'EDX';
UPDATE orderdb.shipments SET delivered_at = NULL WHERE carrier = 'EDX';
SELECT is((orderdb.order_timeline(:o)) -> 'estimated_delivery', 'null'::jsonb, 'no recent deliveries of the carrier: null');

SELECT * FROM finish();
ROLLBACK;
