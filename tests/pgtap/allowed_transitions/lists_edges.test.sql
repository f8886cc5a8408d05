-- allowed_transitions lists the state machine's edges (the table orderdb.order_transitions), in
-- lifecycle order, and transition_order follows exactly that table.
BEGIN;
SELECT plan(7);

SELECT set_eq($$ SELECT from_status, to_status FROM orderdb.allowed_transitions() $$,
              $$ SELECT from_status, to_status FROM orderdb.order_transitions $$,
              'every edge of the table, nothing else');
SELECT set_has($$ SELECT from_status, to_status FROM orderdb.allowed_transitions() $$,
               $$ VALUES ('pending', 'confirmed'), ('confirmed', 'dispatched'), ('dispatched', 'picked'),
                         ('picked', 'packed'), ('packed', 'shipped'), ('shipped', 'delivering'),
                         ('delivering', 'delivered'), ('delivered', 'completed'),
                         ('pending', 'cancelled'), ('packed', 'cancelled'), ('confirmed', 'on_hold'),
                         ('on_hold', 'cancelled'), ('delivery_failed', 'delivering'),
                         ('delivery_failed', 'returning'), ('delivered', 'return_requested'),
                         ('return_requested', 'returning'), ('returning', 'returned') $$,
               'the lifecycle of docs/design.md');
SELECT is_empty($$ SELECT 1 FROM orderdb.allowed_transitions()
                    WHERE from_status IN ('completed', 'cancelled', 'returned') $$,
                'nothing leaves a terminal status');
SELECT is_empty($$ SELECT 1 FROM orderdb.allowed_transitions()
                    WHERE to_status = 'cancelled'
                      AND from_status IN ('shipped', 'delivering', 'delivered') $$,
                'shipped goods cannot be cancelled');
SELECT is((SELECT array_agg(from_status ORDER BY ord) FROM
             (SELECT from_status, row_number() OVER () AS ord FROM orderdb.allowed_transitions() LIMIT 1) x),
          ARRAY['pending'], 'listed in lifecycle order, pending first');
SELECT is_empty(
    $$ SELECT 1 FROM orderdb.order_statuses s WHERE s.status <> 'pending' AND NOT s.is_terminal
         AND NOT EXISTS (SELECT 1 FROM orderdb.allowed_transitions() t WHERE t.to_status = s.status) $$,
    'every non-initial status can be reached');

-- an edge added to the table is followed at once (data, not code)
SELECT FROM orderdb.receive_stock(403, 'AT-A', 5);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 403, '[{"sku": "AT-A", "quantity": 1}]');
INSERT INTO orderdb.order_transitions VALUES ('pending', 'on_hold');
SELECT results_eq(
    $$ SELECT status FROM orderdb.transition_order((SELECT order_id FROM o), 'on_hold', 1) $$,
    $$ VALUES ('on_hold'::text) $$, 'transition_order follows the table');

SELECT * FROM finish();
ROLLBACK;
