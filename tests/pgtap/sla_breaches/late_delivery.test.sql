-- sla_breaches late_delivery: shipped and not delivered by options.promised_delivery_at, else
-- the rule's threshold (4 days) after shipping, whatever the carrier says meanwhile; a delivered
-- order never breaches it. Scoped to this file's own warehouse.
\set QUIET on
BEGIN;
SELECT plan(9);

-- moves an order's past into the past: created, status changes, shipments and WMS events p_by
-- earlier (as if it had all happened p_by ago; the API stamps the confirmation with now())
CREATE FUNCTION pg_temp.shift_back(p_order_id bigint, p_by interval) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE orderdb.orders SET created_at = created_at - p_by
     WHERE warehouse_id = 73842 AND order_id = p_order_id;
    UPDATE orderdb.order_status_history SET occurred_at = occurred_at - p_by
     WHERE warehouse_id = 73842 AND order_id = p_order_id;
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = 'orderdb.order_status_history'::regclass
                  AND attname = 'effective_at' AND NOT attisdropped) THEN
        EXECUTE 'UPDATE orderdb.order_status_history SET effective_at = effective_at - $2
                  WHERE warehouse_id = 73842 AND order_id = $1' USING p_order_id, p_by;
    END IF;
    UPDATE orderdb.shipments SET shipped_at = shipped_at - p_by
     WHERE warehouse_id = 73842 AND order_id = p_order_id;
    UPDATE orderdb.wms_events SET occurred_at = occurred_at - p_by
     WHERE warehouse_id = 73842 AND order_id = p_order_id;
END;
$fn$;
-- an order confirmed and shipped now (then moved back by shift_back)
CREATE FUNCTION pg_temp.shipped(p_tracking text, p_options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    v_order bigint;
BEGIN
    SELECT c.order_id INTO v_order
      FROM orderdb.create_order(1, 73842, '[{"sku": "LD-A", "quantity": 1}]',
                                p_options => p_options) c;
    PERFORM orderdb.transition_order(v_order, 'confirmed', 1);
    PERFORM orderdb.wms_callback('ld-73842-' || p_tracking, v_order, 'SHIPPED',
                                 jsonb_build_object('carrier', 'GENERIC',
                                                    'tracking_number', p_tracking));
    RETURN v_order;
END;
$fn$;
SELECT orderdb.receive_stock(73842, 'LD-A', 50) \gset

-- in transit for five days, never out for delivery
SELECT pg_temp.shipped('LD73842-SLOW') AS slow \gset
SELECT pg_temp.shift_back(:slow, interval '5 days') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'LD73842-SLOW', now() - interval '4 days 12 hours', 'in_transit') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'LD73842-SLOW', now() - interval '1 hour', 'in_transit',
       p_event_id => 'ld-73842-slow-2') \gset
-- shipped just now, promised two hours ago
SELECT pg_temp.shipped('LD73842-PROM', jsonb_build_object('promised_delivery_at', now() - interval '2 hours')) AS promised \gset
-- shipped five days ago, promised for tomorrow: the promise is the deadline
SELECT pg_temp.shipped('LD73842-KEPT', jsonb_build_object('promised_delivery_at', now() + interval '1 day')) AS kept \gset
SELECT pg_temp.shift_back(:kept, interval '5 days') \gset
-- shipped three days ago: not late yet
SELECT pg_temp.shipped('LD73842-FRESH') AS fresh \gset
SELECT pg_temp.shift_back(:fresh, interval '3 days') \gset
-- shipped five days ago, promised two days ago, delivered yesterday
SELECT pg_temp.shipped('LD73842-DONE', jsonb_build_object('promised_delivery_at', now() - interval '2 days')) AS done \gset
SELECT pg_temp.shift_back(:done, interval '5 days') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'LD73842-DONE', now() - interval '1 day', 'delivered') \gset

SELECT results_eq(
    $$ SELECT order_id, breached_since, level, action FROM orderdb_ops.sla_breaches
        WHERE warehouse_id = 73842 AND rule = 'late_delivery' ORDER BY order_id $$,
    format($$ VALUES (%s::bigint, now() - interval '1 day', 'warning'::text, 'delay_compensation'::text),
                     (%s, now() - interval '2 hours', 'warning', 'delay_compensation') $$,
           :slow, :promised),
    'late: 4 days after shipping without a promise (whatever the carrier says), or past the promise');
SELECT is((SELECT detail FROM orderdb_ops.sla_breaches WHERE order_id = :slow AND rule = 'late_delivery'),
          jsonb_build_object('shipped_at', now() - interval '5 days', 'promised_delivery_at', NULL),
          'detail: the times the deadline comes from');
SELECT is((SELECT detail -> 'promised_delivery_at' FROM orderdb_ops.sla_breaches
            WHERE order_id = :promised AND rule = 'late_delivery'),
          to_jsonb(now() - interval '2 hours'), 'detail: the promise');
SELECT is((SELECT threshold FROM orderdb.sla_rules WHERE rule = 'late_delivery'), interval '96 hours',
          'the threshold is 4 days (96 h), in the rules table');

-- two days more: critical
UPDATE orderdb.orders SET options = jsonb_build_object('promised_delivery_at', now() - interval '3 days')
 WHERE order_id = :promised;
SELECT is((SELECT level FROM orderdb_ops.sla_breaches WHERE order_id = :promised AND rule = 'late_delivery'),
          'critical', '3 days late: critical');

UPDATE orderdb.sla_rules SET threshold = interval '6 days' WHERE rule = 'late_delivery';
SELECT results_eq(
    $$ SELECT order_id FROM orderdb_ops.sla_breaches WHERE warehouse_id = 73842 AND rule = 'late_delivery' $$,
    format($$ VALUES (%s::bigint) $$, :promised),
    'the threshold is data: 6 days after shipping is not yet');
UPDATE orderdb.sla_rules SET threshold = interval '96 hours' WHERE rule = 'late_delivery';

UPDATE orderdb.sla_rules SET enabled = false WHERE rule = 'late_delivery';
SELECT is_empty($$ SELECT 1 FROM orderdb_ops.sla_breaches WHERE rule = 'late_delivery' $$,
                'disabled: nothing');
UPDATE orderdb.sla_rules SET enabled = true WHERE rule = 'late_delivery';

SELECT results_eq(
    $$ SELECT order_id, rule, action FROM orderdb.sla_check()
        WHERE warehouse_id = 73842 AND rule = 'late_delivery' $$,
    format($$ VALUES (%s::bigint, 'late_delivery'::text, 'delay_compensation'::text),
                     (%s, 'late_delivery', 'delay_compensation') $$, LEAST(:slow, :promised),
           GREATEST(:slow, :promised)),
    'sla_check escalates late deliveries');

SELECT orderdb.record_tracking_event('GENERIC', 'LD73842-SLOW', now() - interval '10 minutes', 'delivered') \gset
SELECT is_empty(format($$ SELECT 1 FROM orderdb_ops.sla_breaches WHERE order_id = %s AND rule = 'late_delivery' $$,
                       :slow),
                'delivered: no longer late');

SELECT * FROM finish();
ROLLBACK;
