-- The group's low-water mark moves over its acknowledged head (never past an unacknowledged
-- event), holds back purge_events like a consumer's position, and relay_lag shows the group:
-- pending (leased included), leased, members, expired leases.
BEGIN;
SELECT plan(8);

DELETE FROM orderdb.outbox;
DELETE FROM orderdb.event_group_leases;
DELETE FROM orderdb.event_groups;
DELETE FROM orderdb.event_consumers;
INSERT INTO orderdb.outbox (event_id, tx_id, event_type, order_id, created_at)
OVERRIDING SYSTEM VALUE
SELECT 30 + g, '3', 'order.created', 1000 + g, now() - interval '30 days'
  FROM generate_series(1, 6) g;

SELECT results_eq($$ SELECT event_id FROM orderdb.claim_events('g', 'a', 2, 30) $$,
                  ARRAY[31, 32]::bigint[], 'a takes 31 and 32');
SELECT results_eq($$ SELECT event_id FROM orderdb.claim_events('g', 'b', 2, 30) $$,
                  ARRAY[33, 34]::bigint[], 'b takes 33 and 34');
SELECT is(orderdb.ack_claimed('g', 'b', ARRAY[33, 34]::bigint[]), 2, 'b acknowledges');

SELECT results_eq(
    $$ SELECT pending_events, leased_events, members, expired_leases, acked_event_id
         FROM orderdb_ops.relay_lag WHERE kind = 'group' AND consumer = 'g' $$,
    $$ VALUES (4::bigint, 2::bigint, 1::bigint, 0::bigint, 0::bigint) $$,
    'relay_lag: 4 pending (31, 32 leased; 35, 36 never claimed), one member holds leases');

SELECT is(orderdb.purge_events(interval '1 day', 100), 0::bigint,
          'nothing is purged before the group''s low-water mark');

SELECT is(orderdb.ack_claimed('g', 'a', ARRAY[31]::bigint[]), 1, 'a acknowledges 31, not 32');
SELECT FROM orderdb._event_group_advance('g', orderdb._event_horizon());
SELECT is((SELECT low_event_id FROM orderdb.event_groups WHERE group_name = 'g'), 31::bigint,
          'the mark moves over the acknowledged head and stops before 32');
SELECT is(orderdb.purge_events(interval '1 day', 100), 1::bigint,
          'purge_events removes what the group acknowledged below its mark');

SELECT * FROM finish();
ROLLBACK;
