-- The same idempotency key with the same request returns the original order (replayed = true,
-- its current status and version) and reserves nothing twice; the actor is not part of the request;
-- item order and price spelling ("19.90" vs 19.9) do not make another request.
BEGIN;
SELECT plan(9);

SELECT FROM orderdb.receive_stock(204, 'IR-A', 10);
SELECT FROM orderdb.receive_stock(204, 'IR-B', 10);
CREATE TEMP TABLE first AS
    SELECT * FROM orderdb.create_order(5, 204, '[{"sku": "IR-A", "quantity": 2, "unit_price": "19.90"},
                                                {"sku": "IR-B", "quantity": 1}]',
                                       'cart-204', 'web', '{"gift": true}');
CREATE TEMP TABLE again AS
    SELECT * FROM orderdb.create_order(5, 204, '[{"sku": "IR-A", "quantity": 2, "unit_price": "19.90"},
                                                {"sku": "IR-B", "quantity": 1}]',
                                       'cart-204', 'web', '{"gift": true}');

SELECT is((SELECT replayed FROM first), false, 'the first call creates');
SELECT results_eq($$ SELECT order_id, order_no, status, version, replayed FROM again $$,
                  $$ SELECT order_id, order_no, status, version, true FROM first $$,
                  'the replay returns the original order with replayed = true');
SELECT results_eq($$ SELECT reserved FROM orderdb.stock_level(204, 'IR-A') $$, $$ VALUES (2) $$,
                  'the replay reserved nothing');
SELECT is((SELECT count(*)::integer FROM orderdb.orders WHERE warehouse_id = 204), 1,
          'one order exists');
SELECT results_eq(
    $$ SELECT order_id, replayed FROM orderdb.create_order(5, 204,
           '[{"sku": "IR-B", "quantity": 1, "unit_price": null}, {"sku": "IR-A", "quantity": 2, "unit_price": 19.9}]',
           'cart-204', 'another-actor', '{"gift": true}') $$,
    $$ SELECT order_id, true FROM first $$,
    'another actor, item order and price spelling: still the same request');

SELECT FROM orderdb.transition_order((SELECT order_id FROM first), 'confirmed', 1);
SELECT results_eq(
    $$ SELECT order_id, status, version, replayed FROM orderdb.create_order(5, 204,
           '[{"sku": "IR-A", "quantity": 2, "unit_price": "19.90"}, {"sku": "IR-B", "quantity": 1}]',
           'cart-204', 'web', '{"gift": true}') $$,
    $$ SELECT order_id, 'confirmed'::text, 2, true FROM first $$,
    'a replay returns the current status and version');
SELECT is((SELECT count(*)::integer FROM orderdb.outbox
            WHERE order_id = (SELECT order_id FROM first) AND event_type = 'order.created'), 1,
          'one order.created event');
SELECT results_eq($$ SELECT reserved FROM orderdb.stock_level(204, 'IR-B') $$, $$ VALUES (1) $$,
                  'IR-B reserved once');
SELECT is((SELECT replayed FROM orderdb.create_order(5, 204, '[{"sku": "IR-A", "quantity": 2}]', 'cart-204-b')),
          false, 'another key creates another order');

SELECT * FROM finish();
ROLLBACK;
