-- ack_events acknowledges an event and everything returned before it in read order (which is
-- not id order); an older acknowledgement, or the current one again (even once purged), is a
-- no-op: positions never move back.
BEGIN;
SELECT plan(6);

DELETE FROM orderdb.outbox;
DELETE FROM orderdb.event_consumers;
INSERT INTO orderdb.outbox (event_id, tx_id, event_type, order_id)
OVERRIDING SYSTEM VALUE
VALUES (10, '4', 'order.created', 1),
       (11, '3', 'order.created', 2),
       (12, '4', 'order.status_changed', 1),
       (9,  '5', 'order.created', 3);

SELECT is((SELECT count(*) FROM orderdb.read_events('c', 100)), 4::bigint, 'four events read');

SELECT lives_ok($$ SELECT orderdb.ack_events('c', 10) $$, 'acknowledging event 10');
SELECT results_eq(
    $$ SELECT event_id FROM orderdb.read_events('c', 100) $$,
    ARRAY[12, 9]::bigint[],
    'event 11 (lower id, earlier in read order) is acknowledged with 10');

SELECT orderdb.ack_events('c', 11);
SELECT is((SELECT acked_event_id FROM orderdb.event_consumers WHERE consumer = 'c'), 10::bigint,
          'acknowledging an older event does not move the position back');

SELECT orderdb.ack_events('c', 9);
DELETE FROM orderdb.outbox WHERE event_id = 9;  -- as purge_events would
SELECT lives_ok($$ SELECT orderdb.ack_events('c', 9) $$,
                'a retried acknowledgement of the current position is a no-op, even once purged');
SELECT is((SELECT acked_event_id FROM orderdb.event_consumers WHERE consumer = 'c'), 9::bigint,
          'the position is the last acknowledged event');

SELECT * FROM finish();
ROLLBACK;
