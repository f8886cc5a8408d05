-- claim_events hands a group's events out in read order ((tx_id, event_id)), one event of an order
-- at a time: a later event of an order waits until the earlier ones are acknowledged, and an
-- event leased to one member is never handed to another while its lease runs. ack_claimed
-- acknowledges only this member's leases. Events of a transaction still running are held back.
BEGIN;
SELECT plan(10);

DELETE FROM orderdb.outbox;
DELETE FROM orderdb.event_group_leases;
DELETE FROM orderdb.event_groups;
-- finished transactions 3, 4, 5 (old xids); event ids out of commit order
INSERT INTO orderdb.outbox (event_id, tx_id, event_type, order_id, payload)
OVERRIDING SYSTEM VALUE
VALUES (10, '4', 'order.created', 1, '{"n": 1}'),
       (11, '3', 'order.created', 2, '{"n": 2}'),
       (12, '4', 'order.status_changed', 1, '{"n": 3}'),
       (9,  '5', 'order.created', 3, '{"n": 4}'),
       (13, '5', 'order.status_changed', 2, '{"n": 5}'),
       (14, '5', 'stock.received', NULL, '{"n": 6}');
-- an event of this (open) transaction: above the horizon
SELECT FROM orderdb._emit_event('order.created', 99, 1, '{}');

SELECT results_eq(
    $$ SELECT event_id, event_type, order_id, payload FROM orderdb.claim_events('g', 'm1', 100, 30) $$,
    $$ VALUES (11::bigint, 'order.created'::text, 2::bigint, '{"n": 2}'::jsonb),
              (10, 'order.created', 1, '{"n": 1}'),
              (9, 'order.created', 3, '{"n": 4}'),
              (14, 'stock.received', NULL, '{"n": 6}') $$,
    'read order, the first event of each order only; the open transaction''s event is held back');

SELECT is_empty(
    $$ SELECT * FROM orderdb.claim_events('g', 'm2', 100, 30) $$,
    'a second member gets nothing: leased events and later events of leased orders wait');

SELECT is(orderdb.ack_claimed('g', 'm2', ARRAY[10, 11]::bigint[]), 0,
          'ack_claimed by another member acknowledges nothing');

SELECT is(orderdb.ack_claimed('g', 'm1', ARRAY[10, 11, 12, 424242]::bigint[]), 2,
          'ack_claimed counts the ids leased to this member (12 was never claimed, 424242 does not exist)');

SELECT results_eq(
    $$ SELECT event_id FROM orderdb.claim_events('g', 'm2', 100, 30) $$,
    ARRAY[12, 13]::bigint[],
    'after the acknowledgement the orders'' next events come, in read order, to any member');

SELECT is(orderdb.ack_claimed('g', 'm1', ARRAY[10, 11]::bigint[]), 0,
          'acknowledging again changes nothing');

SELECT is_empty(
    $$ SELECT * FROM orderdb.claim_events('g', 'm1', 100, 30) $$,
    'nothing is handed out twice while its lease runs');

SELECT results_eq(
    $$ SELECT event_id FROM orderdb.claim_events('other', 'm1', 2, 30) $$,
    ARRAY[11, 10]::bigint[],
    'groups are independent; the limit is honoured');

SELECT is((SELECT count(*)::integer FROM orderdb.event_group_leases
            WHERE group_name = 'g' AND acked_at IS NULL),
          4, 'one lease row per leased event (9, 12, 13, 14)');

SELECT is((SELECT member FROM orderdb.event_group_leases WHERE group_name = 'g' AND event_id = 12),
          'm2', 'the lease names its member');

SELECT * FROM finish();
ROLLBACK;
