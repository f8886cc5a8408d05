-- release_wms_commands gives back what a worker claimed and did not send: pending, due now, the
-- claim's attempt not counted; commands another worker holds are left alone. fail_wms_command
-- waits at least what the WMS asked for (Retry-After) when that is longer than the back-off.
BEGIN;
SELECT plan(5);

SELECT FROM orderdb.receive_stock(7742401, 'WR-A', 100);
SELECT FROM orderdb.set_warehouse_wms(7742401, 'sim');
CREATE TEMP TABLE held AS
    SELECT command_id, next_attempt_at FROM orderdb.wms_commands WHERE status IN ('pending', 'sending');
UPDATE orderdb.wms_commands SET next_attempt_at = now() + interval '1 day'
 WHERE command_id IN (SELECT command_id FROM held);

SELECT order_id AS a FROM orderdb.create_order(99742401, 7742401, '[{"sku": "WR-A", "quantity": 1}]') \gset
SELECT order_id AS b FROM orderdb.create_order(99742401, 7742401, '[{"sku": "WR-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:a, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:b, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:a, 'dispatched', 2);
SELECT FROM orderdb.transition_order(:b, 'dispatched', 2);
SELECT command_id AS ca FROM orderdb.wms_commands WHERE order_id = :a \gset
SELECT command_id AS cb FROM orderdb.wms_commands WHERE order_id = :b \gset
SELECT FROM orderdb.claim_wms_commands('w1', 1000, 60) WHERE command_id = :ca;
UPDATE orderdb.wms_commands SET leased_by = 'w2' WHERE command_id = :cb;

SELECT is(orderdb.release_wms_commands('w1', ARRAY[:ca, :cb]::bigint[]), 1, 'one released: the other is w2''s');
SELECT is((SELECT row(status, attempts, leased_by, next_attempt_at <= now())::text FROM orderdb.wms_commands WHERE command_id = :ca),
          row('pending', 0, NULL::text, true)::text, 'pending, due now, the attempt not counted');
SELECT is((SELECT leased_by FROM orderdb.wms_commands WHERE command_id = :cb), 'w2', 'w2''s command untouched');
SELECT throws_ok($$SELECT orderdb.release_wms_commands('w1', NULL)$$, '22023',
                 'command_ids must be an array of at most 1000 ids', 'no ids: 22023');

SELECT FROM orderdb.claim_wms_commands('w1', 1000, 60) WHERE command_id = :ca;
SELECT FROM orderdb.fail_wms_command(:ca, 'w1', 1, 'HTTP 429', false, NULL, 1, 10, 10, 120);
SELECT ok((SELECT next_attempt_at - now() >= interval '120 seconds' FROM orderdb.wms_commands WHERE command_id = :ca),
          'Retry-After 120 s beats a 1 s back-off');

UPDATE orderdb.wms_commands w SET next_attempt_at = h.next_attempt_at FROM held h WHERE w.command_id = h.command_id;
SELECT * FROM finish();
ROLLBACK;
