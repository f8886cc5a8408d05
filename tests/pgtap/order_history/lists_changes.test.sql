-- order_history lists every status change oldest first, starting with the creation (version 1,
-- from NULL to pending, the creating actor): version, from, to, actor, reason, context, time.
BEGIN;
SELECT plan(4);

SELECT FROM orderdb.receive_stock(402, 'OH-A', 10);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 402, '[{"sku": "OH-A", "quantity": 1}]', NULL, 'shop');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'confirmed', 1, 'payment-svc', 'paid', '{"ip": "10.1.2.3"}');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'on_hold', 2, 'fraud-check', 'score 0.93', '{"request_id": "r-9"}');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'cancelled', 3, 'ops', NULL);

SELECT results_eq(
    $$ SELECT version, from_status, to_status, actor, reason, context
         FROM orderdb.order_history((SELECT order_id FROM o)) $$,
    $$ VALUES (1, NULL::text, 'pending'::text, 'shop'::text, NULL::text, '{}'::jsonb),
              (2, 'pending', 'confirmed', 'payment-svc', 'paid', '{"ip": "10.1.2.3"}'),
              (3, 'confirmed', 'on_hold', 'fraud-check', 'score 0.93', '{"request_id": "r-9"}'),
              (4, 'on_hold', 'cancelled', 'ops', NULL, '{}') $$,
    'creation then every change, oldest first');
SELECT is((SELECT count(*)::integer FROM orderdb.order_history((SELECT order_id FROM o)) WHERE changed_at IS NULL),
          0, 'every entry is timed');
SELECT is((SELECT max(version) FROM orderdb.order_history((SELECT order_id FROM o))),
          (SELECT version FROM orderdb.orders WHERE order_id = (SELECT order_id FROM o)),
          'the last entry carries the current version');
SELECT throws_ok($$ SELECT * FROM orderdb.order_history(999999999) $$, 'OD004', 'order 999999999 not found',
                 'unknown order: OD004');

SELECT * FROM finish();
ROLLBACK;
