-- sla_breaches: one row per order and breached rule, breached_since = when the deadline passed,
-- measured from when things happened (WMS occurred_at, carrier event time), thresholds from
-- orderdb.sla_rules.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(1621621, 'SB-A', 50);
-- quiet parcel: shipped 5 days ago, last carrier event 4 days ago
SELECT order_id AS stale FROM orderdb.create_order(1, 1621621, '[{"sku": "SB-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:stale, 'confirmed', 1);
-- out for delivery 4 days ago, a carrier note 1 hour ago
SELECT order_id AS unsigned FROM orderdb.create_order(1, 1621621, '[{"sku": "SB-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:unsigned, 'confirmed', 1);
-- both parcels' orders were created and confirmed 6 days ago (a step is never shown, or
-- measured, before the one it follows: effective times)
UPDATE orderdb.orders SET created_at = created_at - interval '6 days' WHERE order_id IN (:stale, :unsigned);
UPDATE orderdb.order_status_history
   SET occurred_at = occurred_at - interval '6 days', effective_at = effective_at - interval '6 days'
 WHERE order_id IN (:stale, :unsigned);
SELECT FROM orderdb.wms_callback('sb-ship-2', :unsigned, 'SHIPPED',
       jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'SB-TN-2',
                          'occurred_at', now() - interval '5 days'));
SELECT FROM orderdb.wms_callback('sb-ship-1', :stale, 'SHIPPED',
       jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'SB-TN-1',
                          'occurred_at', now() - interval '5 days'));
SELECT FROM orderdb.record_tracking_event('GENERIC', 'SB-TN-1', now() - interval '4 days', 'in_transit');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'SB-TN-2', now() - interval '4 days', 'out_for_delivery');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'SB-TN-2', now() - interval '1 hour', 'exception');
-- promised to ship 30 hours ago; to pay 10 minutes ago
SELECT order_id AS late FROM orderdb.create_order(1, 1621621, '[{"sku": "SB-A", "quantity": 1}]',
       p_options => jsonb_build_object('promised_ship_at', now() - interval '30 hours')) \gset
SELECT FROM orderdb.transition_order(:late, 'confirmed', 1);
SELECT order_id AS unpaid FROM orderdb.create_order(1, 1621621, '[{"sku": "SB-A", "quantity": 1}]',
       p_options => jsonb_build_object('payment_due_by', now() - interval '10 minutes')) \gset
-- a fresh pending order and a malformed promise (create_order refuses one now; an order stored
-- before promised times were validated may hold one): no breach, no error
SELECT order_id AS malformed FROM orderdb.create_order(1, 1621621, '[{"sku": "SB-A", "quantity": 1}]') \gset
UPDATE orderdb.orders
   SET options = '{"promised_ship_at": "next tuesday", "payment_due_by": "2024-13-45"}'
 WHERE order_id = :malformed;

SELECT results_eq(
    $$ SELECT order_id, rule, breached_since, level FROM orderdb_ops.sla_breaches WHERE warehouse_id = 1621621 ORDER BY order_id, rule $$,
    format($$ VALUES (%s::bigint, 'late_delivery'::text, now() - interval '1 day', 'warning'::text),
                     (%s, 'no_tracking_update', now() - interval '2 days', 'critical'),
                     (%s, 'late_delivery', now() - interval '1 day', 'warning'),
                     (%s, 'unsigned', now() - interval '1 day', 'warning'),
                     (%s, 'late_shipment', now() - interval '30 hours', 'critical'),
                     (%s, 'unpaid', now() - interval '10 minutes', 'warning') $$,
           :stale, :stale, :unsigned, :unsigned, :late, :unpaid),
    'each crafted breach, since its deadline, with its level');

SELECT is((SELECT action FROM orderdb_ops.sla_breaches WHERE warehouse_id = 1621621 AND rule = 'unsigned'), 'satisfaction_survey',
          'the rule''s action is shown');

UPDATE orderdb.sla_rules SET threshold = interval '5 days' WHERE rule = 'no_tracking_update';
SELECT is_empty($$ SELECT 1 FROM orderdb_ops.sla_breaches WHERE warehouse_id = 1621621 AND rule = 'no_tracking_update' $$,
                'a longer threshold: no longer breached');
UPDATE orderdb.sla_rules SET threshold = interval '48 hours' WHERE rule = 'no_tracking_update';

UPDATE orderdb.sla_rules SET enabled = false WHERE rule = 'unpaid';
SELECT is_empty($$ SELECT 1 FROM orderdb_ops.sla_breaches WHERE warehouse_id = 1621621 AND rule = 'unpaid' $$, 'a disabled rule reports nothing');
UPDATE orderdb.sla_rules SET enabled = true WHERE rule = 'unpaid';

SELECT FROM orderdb.record_tracking_event('GENERIC', 'SB-TN-2', now() - interval '30 minutes', 'delivered');
SELECT is_empty($$ SELECT 1 FROM orderdb_ops.sla_breaches WHERE warehouse_id = 1621621 AND rule = 'unsigned' $$, 'delivered: signed');

-- a late carrier event with an old event time does not refresh the parcel
SELECT FROM orderdb.record_tracking_event('GENERIC', 'SB-TN-1', now() - interval '4 days 1 hour', 'in_transit', p_event_id => 'late-one');
SELECT is((SELECT breached_since FROM orderdb_ops.sla_breaches WHERE warehouse_id = 1621621 AND rule = 'no_tracking_update'),
          now() - interval '2 days', 'measured from the newest event time, not the receive time');

SELECT results_eq(
    $$ SELECT attname::text COLLATE "default" FROM pg_attribute WHERE attrelid = 'orderdb_ops.sla_breaches'::regclass AND attnum BETWEEN 1 AND 3 ORDER BY attnum $$,
    $$ VALUES ('order_id'::text), ('rule'), ('breached_since') $$,
    'contract columns first');

SELECT * FROM finish();
ROLLBACK;
