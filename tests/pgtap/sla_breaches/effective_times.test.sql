-- sla_breaches: rules measure from effective times: a parcel reported shipped, and out for
-- delivery, days before its order existed (a clock behind) starts no rule's clock before the
-- order's own steps — no late_delivery, no_tracking_update or unsigned breach for an order
-- created and shipped just now.
BEGIN;
SELECT plan(2);

SELECT FROM orderdb.receive_stock(940315, 'SLA-EFF', 10);
SELECT order_id AS o FROM orderdb.create_order(940315, 940315, '[{"sku": "SLA-EFF", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('sla-eff-1', :o, 'SHIPPED',
                                 jsonb_build_object('carrier', 'SF', 'tracking_number', 'SLA-EFF-940315',
                                                    'occurred_at', (now() - interval '5 days')::text));
SELECT FROM orderdb.record_tracking_event('SF', 'SLA-EFF-940315', now() - interval '4 days', '44', 'Tianhe', 'out for delivery');

SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o), 'delivering', 'out for delivery');
SELECT is_empty(format($$ SELECT rule FROM orderdb_ops.sla_breaches WHERE order_id = %s $$, :o),
                'no rule breached by times reported before the order existed');

SELECT * FROM finish();
ROLLBACK;
