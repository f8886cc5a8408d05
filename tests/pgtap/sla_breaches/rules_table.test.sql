-- orderdb.sla_rules accepts only the rules sla_breaches evaluates, and every rule it holds is
-- evaluated: a crafted order breaches each one. Scoped to this file's own warehouse.
\set QUIET on
BEGIN;
SELECT plan(6);

SELECT throws_ok(
    $$ INSERT INTO orderdb.sla_rules (rule, threshold, action, description)
       VALUES ('lost_parcel', interval '1 day', 'contact_carrier', 'never evaluated') $$,
    '23514', 'new row for relation "sla_rules" violates check constraint "sla_rules_known_rule"',
    'an unknown rule is refused, naming the constraint');
SELECT throws_ok(
    $$ UPDATE orderdb.sla_rules SET rule = 'late_shipments' WHERE rule = 'late_shipment' $$,
    '23514', NULL, 'renaming a rule to an unknown name is refused');
SELECT ok((SELECT obj_description(c.oid, 'pg_constraint') LIKE '%sla_breaches%'
             FROM pg_constraint c WHERE c.conname = 'sla_rules_known_rule'),
          'the constraint says why');
SELECT results_eq(
    $$ SELECT rule::text FROM orderdb.sla_rules ORDER BY rule $$,
    $$ VALUES ('late_delivery'::text), ('late_shipment'), ('no_tracking_update'), ('unpaid'), ('unsigned') $$,
    'the rules shipped: late_delivery seeded beside the first four');

-- moves an order's past into the past (see sla_breaches/late_delivery.test.sql)
CREATE FUNCTION pg_temp.shift_back(p_order_id bigint, p_by interval) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE orderdb.orders SET created_at = created_at - p_by
     WHERE warehouse_id = 73843 AND order_id = p_order_id;
    UPDATE orderdb.order_status_history SET occurred_at = occurred_at - p_by
     WHERE warehouse_id = 73843 AND order_id = p_order_id;
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = 'orderdb.order_status_history'::regclass
                  AND attname = 'effective_at' AND NOT attisdropped) THEN
        EXECUTE 'UPDATE orderdb.order_status_history SET effective_at = effective_at - $2
                  WHERE warehouse_id = 73843 AND order_id = $1' USING p_order_id, p_by;
    END IF;
    UPDATE orderdb.shipments SET shipped_at = shipped_at - p_by
     WHERE warehouse_id = 73843 AND order_id = p_order_id;
    UPDATE orderdb.wms_events SET occurred_at = occurred_at - p_by
     WHERE warehouse_id = 73843 AND order_id = p_order_id;
END;
$fn$;
CREATE FUNCTION pg_temp.shipped_days_ago(p_tracking text, p_days integer) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    v_order bigint;
BEGIN
    SELECT c.order_id INTO v_order
      FROM orderdb.create_order(1, 73843, '[{"sku": "RT-A", "quantity": 1}]') c;
    PERFORM orderdb.transition_order(v_order, 'confirmed', 1);
    PERFORM orderdb.wms_callback('rt-73843-' || p_tracking, v_order, 'SHIPPED',
                                 jsonb_build_object('carrier', 'GENERIC',
                                                    'tracking_number', p_tracking));
    PERFORM pg_temp.shift_back(v_order, make_interval(days => p_days));
    RETURN v_order;
END;
$fn$;
SELECT orderdb.receive_stock(73843, 'RT-A', 50) \gset
-- unpaid: due ten minutes ago
SELECT order_id AS unpaid FROM orderdb.create_order(1, 73843, '[{"sku": "RT-A", "quantity": 1}]',
       p_options => jsonb_build_object('payment_due_by', now() - interval '10 minutes')) \gset
-- late_shipment: promised to ship an hour ago
SELECT order_id AS late FROM orderdb.create_order(1, 73843, '[{"sku": "RT-A", "quantity": 1}]',
       p_options => jsonb_build_object('promised_ship_at', now() - interval '1 hour')) \gset
SELECT orderdb.transition_order(:late, 'confirmed', 1) \gset
-- no_tracking_update (and late_delivery): shipped 5 days ago, quiet for 4
SELECT pg_temp.shipped_days_ago('RT73843-QUIET', 5) AS quiet \gset
SELECT orderdb.record_tracking_event('GENERIC', 'RT73843-QUIET', now() - interval '4 days', 'in_transit') \gset
-- unsigned (and late_delivery): out for delivery 4 days ago
SELECT pg_temp.shipped_days_ago('RT73843-OFD', 5) AS ofd \gset
SELECT orderdb.record_tracking_event('GENERIC', 'RT73843-OFD', now() - interval '4 days', 'out_for_delivery') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'RT73843-OFD', now() - interval '1 hour', 'info_received') \gset

SELECT results_eq(
    $$ SELECT r.rule::text,
              EXISTS (SELECT 1 FROM orderdb_ops.sla_breaches b
                       WHERE b.warehouse_id = 73843 AND b.rule = r.rule)
         FROM orderdb.sla_rules r ORDER BY r.rule $$,
    $$ SELECT r.rule::text, true FROM orderdb.sla_rules r ORDER BY r.rule $$,
    'every rule of the table is evaluated: each one breached by a crafted order');
SELECT results_eq(
    $$ SELECT order_id, rule FROM orderdb_ops.sla_breaches WHERE warehouse_id = 73843 ORDER BY order_id, rule $$,
    format($$ VALUES (%s::bigint, 'unpaid'::text), (%s, 'late_shipment'),
                     (%s, 'late_delivery'), (%s, 'no_tracking_update'),
                     (%s, 'late_delivery'), (%s, 'unsigned') $$,
           :unpaid, :late, :quiet, :quiet, :ofd, :ofd),
    'the crafted breaches, and nothing else');

SELECT * FROM finish();
ROLLBACK;
