-- sla_check records each breach's action once per order and rule (sla_escalations + an
-- sla.escalated outbox event), waits escalate_after (late_shipment: 24 h late), and never
-- escalates an order and rule twice.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(622, 'SC-A', 50);
SELECT order_id AS very_late FROM orderdb.create_order(1, 622, '[{"sku": "SC-A", "quantity": 1}]',
       p_options => jsonb_build_object('promised_ship_at', now() - interval '25 hours')) \gset
SELECT FROM orderdb.transition_order(:very_late, 'confirmed', 1);
SELECT order_id AS late FROM orderdb.create_order(1, 622, '[{"sku": "SC-A", "quantity": 1}]',
       p_options => jsonb_build_object('promised_ship_at', now() - interval '1 hour')) \gset
SELECT FROM orderdb.transition_order(:late, 'confirmed', 1);
SELECT order_id AS unpaid FROM orderdb.create_order(1, 622, '[{"sku": "SC-A", "quantity": 1}]',
       p_options => jsonb_build_object('payment_due_by', now() - interval '1 minute')) \gset

SELECT results_eq(
    $$ SELECT order_id, rule, action FROM orderdb.sla_check() $$,
    format($$ VALUES (%s::bigint, 'late_shipment'::text, 'delay_compensation'::text),
                     (%s, 'unpaid', 'payment_reminder') $$, :very_late, :unpaid),
    'escalates the breaches due: more than 24 h late, unpaid');
SELECT is_empty($$ SELECT * FROM orderdb.sla_check() $$, 'a second run escalates nothing');
SELECT results_eq(
    $$ SELECT order_id, payload ->> 'rule', payload ->> 'action' FROM orderdb.outbox
        WHERE event_type = 'sla.escalated' ORDER BY order_id $$,
    format($$ VALUES (%s::bigint, 'late_shipment'::text, 'delay_compensation'::text),
                     (%s, 'unpaid', 'payment_reminder') $$, :very_late, :unpaid),
    'one sla.escalated event per escalation');
SELECT is((SELECT count(*)::integer FROM orderdb.sla_escalations), 2, 'one row per order and rule');

UPDATE orderdb.sla_rules SET escalate_after = interval '0' WHERE rule = 'late_shipment';
SELECT results_eq(
    $$ SELECT order_id, rule FROM orderdb.sla_check() $$,
    format($$ VALUES (%s::bigint, 'late_shipment'::text) $$, :late),
    'escalate_after is data: the 1-hour-late order now escalates, the others not again');
SELECT throws_ok(
    format($$ INSERT INTO orderdb.sla_escalations (order_id, rule, warehouse_id, action, breached_since)
              VALUES (%s, 'unpaid', 622, 'payment_reminder', now()) $$, :unpaid),
    '23505', NULL, 'the primary key guards (order, rule)');

SELECT * FROM finish();
ROLLBACK;
