-- read_events walks the outbox in (tx_id, event_id) order, not event_id order, honours the limit,
-- returns the same batch again until it is acknowledged, and never returns an event of a
-- transaction that has not finished (here: our own, still open).
BEGIN;
SELECT plan(7);

DELETE FROM orderdb.outbox;
DELETE FROM orderdb.event_consumers;
-- finished transactions 3, 4, 5 (old xids); event ids taken out of commit order
INSERT INTO orderdb.outbox (event_id, tx_id, event_type, order_id, payload)
OVERRIDING SYSTEM VALUE
VALUES (10, '4', 'order.created', 1, '{"n": 1}'),
       (11, '3', 'order.created', 2, '{"n": 2}'),
       (12, '4', 'order.status_changed', 1, '{"n": 3}'),
       (9,  '5', 'order.created', 3, '{"n": 4}');
-- an event of this (open) transaction: above the horizon
SELECT orderdb._emit_event('order.created', 99, 1, '{}');

SELECT results_eq(
    $$ SELECT event_id FROM orderdb.read_events('c1', 100) $$,
    ARRAY[11, 10, 12, 9]::bigint[],
    'events come in (tx_id, event_id) order; the open transaction''s event is held back');

SELECT results_eq(
    $$ SELECT event_id, event_type, order_id, payload FROM orderdb.read_events('c1', 1) $$,
    $$ VALUES (11::bigint, 'order.created'::text, 2::bigint, '{"n": 2}'::jsonb) $$,
    'columns: event_id, event_type, order_id, payload; the limit is honoured');

SELECT results_eq(
    $$ SELECT event_id FROM orderdb.read_events('c2', 2) $$,
    ARRAY[11, 10]::bigint[],
    'a new consumer starts at the oldest retained event');

SELECT results_eq(
    $$ SELECT event_id FROM orderdb.read_events('c2', 2) $$,
    ARRAY[11, 10]::bigint[],
    'reading again without acknowledging returns the same batch (at-least-once)');

SELECT orderdb.ack_events('c2', 10);
SELECT results_eq(
    $$ SELECT event_id FROM orderdb.read_events('c2', 100) $$,
    ARRAY[12, 9]::bigint[],
    'after ack_events the next read continues behind the acknowledged event');

SELECT results_eq(
    $$ SELECT event_id FROM orderdb.read_events('c1', 100) $$,
    ARRAY[11, 10, 12, 9]::bigint[],
    'consumers are independent');

SELECT is(
    (SELECT read_event_id FROM orderdb.event_consumers WHERE consumer = 'c2'),
    9::bigint,
    'the furthest position returned is recorded');

SELECT * FROM finish();
ROLLBACK;
