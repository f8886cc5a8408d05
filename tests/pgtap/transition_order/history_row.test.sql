-- transition_order bumps the version by 1, returns (order_id, status, version), writes one history
-- row (from, to, version, actor, reason, context, source, time) and an order.status_changed event.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(301, 'TH-A', 10);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 301, '[{"sku": "TH-A", "quantity": 1}]');

SELECT results_eq(
    $$ SELECT * FROM orderdb.transition_order((SELECT order_id FROM o), 'confirmed', 1, 'payment-svc',
                                              'paid', '{"ip": "10.0.0.7", "request_id": "r-1"}') $$,
    $$ SELECT order_id, 'confirmed'::text, 2 FROM o $$,
    'returns the order with its new status and version');
SELECT results_eq(
    $$ SELECT version, from_status, to_status, actor, reason, context, source
         FROM orderdb.order_status_history WHERE order_id = (SELECT order_id FROM o) $$,
    $$ VALUES (2, 'pending'::text, 'confirmed'::text, 'payment-svc'::text, 'paid'::text,
               '{"ip": "10.0.0.7", "request_id": "r-1"}'::jsonb, 'api'::text) $$,
    'one history row with from, to, version, actor, reason, context and source');
SELECT ok((SELECT changed_at = now() AND occurred_at = now() FROM orderdb.order_status_history
            WHERE order_id = (SELECT order_id FROM o)), 'the history row is timed');
SELECT results_eq(
    $$ SELECT status, version, previous_status FROM orderdb.orders WHERE order_id = (SELECT order_id FROM o) $$,
    $$ VALUES ('confirmed'::text, 2, 'pending'::text) $$,
    'the order row has the new status and version');
SELECT results_eq(
    $$ SELECT payload FROM orderdb.outbox
        WHERE order_id = (SELECT order_id FROM o) AND event_type = 'order.status_changed' $$,
    $$ VALUES ('{"from": "pending", "to": "confirmed", "version": 2}'::jsonb) $$,
    'one order.status_changed event (from, to, version)');
SELECT results_eq(
    $$ SELECT version FROM orderdb.transition_order((SELECT order_id FROM o), 'dispatched', 2, NULL, NULL, NULL) $$,
    $$ VALUES (3) $$, 'a NULL context is stored as {}');

SELECT * FROM finish();
ROLLBACK;
