-- order_timeline estimated_delivery with other clocks: a delivery the carrier reported before the
-- warehouse reported its shipment (a late SHIPPED upload, a carrier clock behind) says nothing
-- about transit times; it is left out of the median, so the estimate never precedes the shipment.
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.receive_stock(940377, 'EDSKEW-1', 100);
CREATE FUNCTION pg_temp.shipped_order(p_tn text, p_shipped_ago interval)
RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE v bigint;
BEGIN
    SELECT order_id INTO v FROM orderdb.create_order(940377, 940377, '[{"sku": "EDSKEW-1", "quantity": 1}]');
    PERFORM orderdb.transition_order(v, 'confirmed', 1);
    PERFORM orderdb.wms_callback('edskew-' || p_tn, v, 'SHIPPED',
                                 jsonb_build_object('carrier', 'EDSKEW', 'tracking_number', p_tn,
                                                    'occurred_at', (now() - p_shipped_ago)::text));
    RETURN v;
END $f$;
INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status)
VALUES ('EDSKEW', 'DLV', 'delivered');

-- one delivery 30 h after its shipment; two reported 10 h and 5 h before theirs
SELECT FROM pg_temp.shipped_order('EDSKEW-T1', '5 days');
SELECT FROM orderdb.record_tracking_event('EDSKEW', 'EDSKEW-T1', now() - interval '5 days' + interval '30 hours', 'DLV');
SELECT FROM pg_temp.shipped_order('EDSKEW-T2', '2 hours');
SELECT FROM orderdb.record_tracking_event('EDSKEW', 'EDSKEW-T2', now() - interval '12 hours', 'DLV');
SELECT FROM pg_temp.shipped_order('EDSKEW-T3', '3 hours');
SELECT FROM orderdb.record_tracking_event('EDSKEW', 'EDSKEW-T3', now() - interval '8 hours', 'DLV');

SELECT pg_temp.shipped_order('EDSKEW-T4', '1 hour') AS o \gset
SELECT ok(((orderdb.order_timeline(:o)) ->> 'estimated_delivery')::timestamptz >= now() - interval '1 hour',
          'the estimate never precedes the shipment');
SELECT is(((orderdb.order_timeline(:o)) ->> 'estimated_delivery')::timestamptz,
          now() - interval '1 hour' + interval '30 hours',
          'deliveries reported before their shipment are left out of the median transit time');

-- only such deliveries: no estimate
UPDATE orderdb.shipments SET delivered_at = NULL WHERE carrier = 'EDSKEW' AND tracking_number = 'EDSKEW-T1';
SELECT is((orderdb.order_timeline(:o)) -> 'estimated_delivery', 'null'::jsonb,
          'no delivery with a usable transit time: null');

SELECT * FROM finish();
ROLLBACK;
