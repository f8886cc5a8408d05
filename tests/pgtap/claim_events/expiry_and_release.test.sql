-- An expired lease goes to the next member that claims (deliveries counts the hand-outs), and the
-- member that let it expire can no longer acknowledge it; release_claimed gives a lease back at
-- once; until acknowledged, the order's later events keep waiting.
BEGIN;
SELECT plan(8);

DELETE FROM orderdb.outbox;
DELETE FROM orderdb.event_group_leases;
DELETE FROM orderdb.event_groups;
INSERT INTO orderdb.outbox (event_id, tx_id, event_type, order_id)
OVERRIDING SYSTEM VALUE
VALUES (21, '3', 'order.created', 7), (22, '3', 'order.confirmed', 7),
       (23, '3', 'order.created', 8), (24, '3', 'order.confirmed', 8);

SELECT results_eq($$ SELECT event_id FROM orderdb.claim_events('g', 'dead', 10, 30) $$,
                  ARRAY[21, 23]::bigint[], 'member "dead" takes the heads of orders 7 and 8');

-- time passes: the lease of 21 runs out (now() is fixed inside this transaction)
UPDATE orderdb.event_group_leases SET leased_until = now() - interval '1 second'
 WHERE group_name = 'g' AND event_id = 21;

SELECT results_eq($$ SELECT event_id FROM orderdb.claim_events('g', 'alive', 10, 30) $$,
                  ARRAY[21]::bigint[],
                  'the expired lease goes to another member; the order''s next event still waits');
SELECT is((SELECT deliveries FROM orderdb.event_group_leases WHERE group_name = 'g' AND event_id = 21),
          2, 'deliveries counts the second hand-out');
SELECT is(orderdb.ack_claimed('g', 'dead', ARRAY[21]::bigint[]), 0,
          'the member whose lease expired and was taken over cannot acknowledge it');

SELECT is(orderdb.release_claimed('g', 'dead', ARRAY[23, 21]::bigint[]), 1,
          'release_claimed gives back this member''s unacknowledged leases only');
SELECT results_eq($$ SELECT event_id FROM orderdb.claim_events('g', 'alive', 10, 30) $$,
                  ARRAY[23]::bigint[], 'a released event is taken by the next claim');

SELECT is(orderdb.ack_claimed('g', 'alive', ARRAY[21, 23]::bigint[]), 2, 'both acknowledged');
SELECT results_eq($$ SELECT event_id FROM orderdb.claim_events('g', 'dead', 10, 30) $$,
                  ARRAY[22, 24]::bigint[], 'then the orders'' next events come');

SELECT * FROM finish();
ROLLBACK;
