-- fulfillment_kpis: times reported by other clocks never make a duration negative: a parcel
-- reported shipped two days and delivered one day before the order was created counts as
-- fulfilled in 0 hours (effective times never precede the previous step), not -24.
BEGIN;
SELECT plan(3);

-- only this transaction's orders are in the window (created_at = now() here)
UPDATE orderdb.kpi_thresholds SET window_size = interval '1 microsecond' WHERE category = 'fulfillment';

SELECT FROM orderdb.receive_stock(940313, 'NEG-1', 10);
SELECT order_id AS o FROM orderdb.create_order(940313, 940313, '[{"sku": "NEG-1", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('neg-1', :o, 'SHIPPED',
                                 jsonb_build_object('carrier', 'SF', 'tracking_number', 'NEG-SF-940313',
                                                    'occurred_at', (now() - interval '2 days')::text));
SELECT FROM orderdb.record_tracking_event('SF', 'NEG-SF-940313', now() - interval '1 day', '80', NULL, 'signed');

SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o), 'delivered', 'delivered');
SELECT results_eq($$ SELECT value, sample FROM orderdb_ops.fulfillment_kpis WHERE metric = 'avg_fulfillment_hours' $$,
                  $$ VALUES (0.0000::numeric, 1::bigint) $$,
                  'avg_fulfillment_hours: 0, not negative');
SELECT ok((SELECT bool_and(value IS NULL OR value >= 0) FROM orderdb_ops.fulfillment_kpis), 'no KPI is negative');

SELECT * FROM finish();
ROLLBACK;
