-- claim_wms_commands / complete_wms_command / fail_wms_command / retry_wms_command: per order,
-- a command is due only after every earlier one left (a cancel never overtakes its create, a
-- dead letter holds the later ones); a claim leases the command (attempt + 1) and a lease that
-- ran out is claimed again; the outcome of a worker that lost its lease is ignored; failures
-- back off with jitter, and die after max_attempts (or at once when permanent); a dead command
-- shows in orderdb_ops.alerts and orderdb_ops.wms_backlog until it is retried.
BEGIN;
SELECT plan(24);

SELECT FROM orderdb.receive_stock(7742101, 'WC-A', 100);
SELECT FROM orderdb.set_warehouse_wms(7742101, 'http', 'https://wms.example/api', 's3cret', NULL, '{"timeout": 5}');
-- commands of demo data must not be due here
CREATE TEMP TABLE held AS
    SELECT command_id, next_attempt_at FROM orderdb.wms_commands WHERE status IN ('pending', 'sending');
UPDATE orderdb.wms_commands SET next_attempt_at = now() + interval '1 day'
 WHERE command_id IN (SELECT command_id FROM held);

SELECT order_id AS a, order_no AS a_no FROM orderdb.create_order(99742101, 7742101, '[{"sku": "WC-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:a, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:a, 'dispatched', 2);
SELECT FROM orderdb.amend_order(:a, 3, '{"priority": "express"}');
SELECT command_id AS create_id FROM orderdb.wms_commands WHERE order_id = :a AND kind = 'create' \gset

CREATE TEMP TABLE c1 AS SELECT * FROM orderdb.claim_wms_commands('w1', 10, 60);
SELECT is((SELECT string_agg(kind || '#' || attempt, ' ') FROM c1), 'create#1', 'one command claimed: the create, attempt 1');
SELECT is((SELECT row(connector, config, order_no, wms_order_id)::text FROM c1),
          row('http', '{"timeout": 5, "url": "https://wms.example/api", "secret": "s3cret"}'::jsonb, :'a_no', NULL::text)::text,
          'with the warehouse''s connector and its config (url and secret included)');
SELECT is((SELECT row(status, leased_by, attempts, next_attempt_at = now() + interval '60 seconds')::text
             FROM orderdb.wms_commands WHERE command_id = :create_id),
          row('sending', 'w1', 1, true)::text, 'sending, leased to w1 for 60 s');

SELECT FROM orderdb.transition_order(:a, 'cancelled', 4);
SELECT is((SELECT string_agg(kind || ':' || status, ' ' ORDER BY command_id) FROM orderdb.wms_commands WHERE order_id = :a),
          'create:sending cancel:pending', 'cancelled while the create is being sent: a cancel is queued');
SELECT is((SELECT count(*)::integer FROM orderdb.claim_wms_commands('w2', 10, 60)), 0,
          'the cancel is not due while its create is sending');

-- w1 dies: its lease runs out, w2 takes the create over
UPDATE orderdb.wms_commands SET next_attempt_at = now() - interval '1 second' WHERE command_id = :create_id;
CREATE TEMP TABLE c2 AS SELECT * FROM orderdb.claim_wms_commands('w2', 10, 60);
SELECT is((SELECT string_agg(kind || '#' || attempt, ' ') FROM c2), 'create#2', 'an expired lease is claimed again (attempt 2)');
SELECT is(orderdb.complete_wms_command(:create_id, 'w1', 1, 'LATE-1'), NULL, 'the worker that lost its lease: ignored');
SELECT is(orderdb.fail_wms_command(:create_id, 'w1', 1, 'late failure'), NULL, 'its failure too');
SELECT is(orderdb.complete_wms_command(:create_id, 'w2', 2, 'WMS-7', NULL, '{"accepted": true}'), 'done', 'w2 completes it');
SELECT is((SELECT row(status, wms_order_id, response, leased_by)::text FROM orderdb.wms_commands WHERE command_id = :create_id),
          row('done', 'WMS-7', '{"accepted": true}'::jsonb, NULL::text)::text, 'done with the WMS''s id and answer');

-- now the cancel is due, carrying the WMS's order id
CREATE TEMP TABLE c3 AS SELECT * FROM orderdb.claim_wms_commands('w2', 10, 60);
SELECT is((SELECT kind || ' ' || wms_order_id FROM c3), 'cancel WMS-7', 'then the cancel, with the WMS''s order id');
SELECT command_id AS cancel_id FROM c3 \gset

-- failures back off with jitter, then die
SELECT is(orderdb.fail_wms_command(:cancel_id, 'w2', 1, 'HTTP 503', false, NULL, 10, 100, 3), 'pending', 'a failure: pending again');
SELECT ok((SELECT next_attempt_at - now() >= interval '5 seconds' AND next_attempt_at - now() < interval '15 seconds'
             FROM orderdb.wms_commands WHERE command_id = :cancel_id), 'after 10 s x 0.5..1.5');
SELECT is((SELECT last_error FROM orderdb.wms_commands WHERE command_id = :cancel_id), 'HTTP 503', 'the error is kept');
SELECT is((SELECT count(*)::integer FROM orderdb.claim_wms_commands('w2', 10, 60)), 0, 'not due during the back-off');
UPDATE orderdb.wms_commands SET next_attempt_at = now() WHERE command_id = :cancel_id;
SELECT FROM orderdb.claim_wms_commands('w2', 10, 60);
SELECT is(orderdb.fail_wms_command(:cancel_id, 'w2', 2, 'HTTP 503', false, NULL, 10, 100, 3), 'pending', 'attempt 2 fails');
SELECT ok((SELECT next_attempt_at - now() >= interval '10 seconds' AND next_attempt_at - now() < interval '30 seconds'
             FROM orderdb.wms_commands WHERE command_id = :cancel_id), 'the back-off doubles (20 s x 0.5..1.5)');
UPDATE orderdb.wms_commands SET next_attempt_at = now() WHERE command_id = :cancel_id;
SELECT FROM orderdb.claim_wms_commands('w2', 10, 60);
SELECT is(orderdb.fail_wms_command(:cancel_id, 'w2', 3, 'HTTP 503', false, NULL, 10, 100, 3), 'dead', 'attempt 3 of 3: dead');

SELECT is((SELECT row(pending, dead)::text FROM orderdb_ops.wms_backlog WHERE warehouse_id = 7742101),
          row(0, 1)::text, 'wms_backlog counts the dead letter');
SELECT is((SELECT row(level, message LIKE format('1 dead WMS command(s); oldest: command %s (cancel of order %s): HTTP 503%%', :cancel_id, :'a_no'))::text
             FROM orderdb_ops.alerts WHERE source = 'wms' AND subject = 'warehouse 7742101'),
          row('critical', true)::text, 'an alert names the dead command');

SELECT is((SELECT row(kind, order_id, status)::text FROM orderdb.retry_wms_command(:cancel_id)),
          row('cancel', :a, 'pending')::text, 'retry: pending again');
SELECT is((SELECT row(attempts, finished_at, next_attempt_at <= now())::text FROM orderdb.wms_commands WHERE command_id = :cancel_id),
          row(0, NULL::timestamptz, true)::text, 'due now, attempts from 0');
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts WHERE source = 'wms' AND subject = 'warehouse 7742101'), 0,
          'the alert is gone');
SELECT is((SELECT kind || '#' || attempt FROM orderdb.claim_wms_commands('w3', 10, 60)), 'cancel#1', 'and it is sent again');

UPDATE orderdb.wms_commands w SET next_attempt_at = h.next_attempt_at FROM held h WHERE w.command_id = h.command_id;
SELECT * FROM finish();
ROLLBACK;
