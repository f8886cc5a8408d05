-- ack_events refuses what read_events never returned to this consumer with 22023 (whether the
-- event exists or not), an unknown consumer with OD004, and bad arguments with 22023; a refused
-- acknowledgement changes no position.
BEGIN;
SELECT plan(8);

DELETE FROM orderdb.outbox;
DELETE FROM orderdb.event_consumers;
INSERT INTO orderdb.outbox (event_id, tx_id, event_type, order_id)
OVERRIDING SYSTEM VALUE
VALUES (10, '3', 'order.created', 1),
       (11, '4', 'order.created', 2),
       (12, '5', 'order.created', 3);

SELECT is((SELECT count(*) FROM orderdb.read_events('c', 2)), 2::bigint, 'two events read');

SELECT throws_ok($$ SELECT orderdb.ack_events('nobody', 10) $$, 'OD004', NULL,
                 'an unknown consumer is OD004');
SELECT throws_ok($$ SELECT orderdb.ack_events('c', 12) $$, '22023', NULL,
                 'an existing event that was never returned to the consumer is 22023');
SELECT throws_ok($$ SELECT orderdb.ack_events('c', 999) $$, '22023', NULL,
                 'an event that does not exist is 22023');
SELECT is((SELECT count(*) FROM orderdb.read_events('other', 100)), 3::bigint,
          'another consumer reads all three');
SELECT throws_ok($$ SELECT orderdb.ack_events('c', NULL) $$, '22023', NULL,
                 'a NULL event id is 22023');
SELECT throws_ok($$ SELECT orderdb.ack_events('c', 0) $$, '22023', NULL,
                 'a non-positive event id is 22023');
SELECT is((SELECT acked_event_id FROM orderdb.event_consumers WHERE consumer = 'c'), 0::bigint,
          'refused acknowledgements moved nothing');

SELECT * FROM finish();
ROLLBACK;
