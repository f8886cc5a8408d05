-- Bad arguments of claim_events, ack_claimed and release_claimed are 22023 naming the field,
-- and change nothing.
BEGIN;
SELECT plan(11);

SELECT throws_ok($$ SELECT * FROM orderdb.claim_events(NULL, 'm') $$, '22023', NULL,
                 'group NULL');
SELECT throws_like($$ SELECT * FROM orderdb.claim_events('', 'm') $$, '%group%', 'group empty');
SELECT throws_like($$ SELECT * FROM orderdb.claim_events(repeat('g', 256), 'm') $$, '%group%',
                   'group over 255 characters');
SELECT throws_like($$ SELECT * FROM orderdb.claim_events('g-invalid', NULL) $$, '%member%',
                   'member NULL');
SELECT throws_like($$ SELECT * FROM orderdb.claim_events('g-invalid', 'm', 0) $$, '%limit%',
                   'limit 0');
SELECT throws_like($$ SELECT * FROM orderdb.claim_events('g-invalid', 'm', 1001) $$, '%limit%',
                   'limit over 1000');
SELECT throws_like($$ SELECT * FROM orderdb.claim_events('g-invalid', 'm', 10, 0) $$,
                   '%lease_seconds%', 'lease 0 seconds');
SELECT throws_ok($$ SELECT orderdb.ack_claimed('g-invalid', 'm', NULL) $$, '22023', NULL,
                 'ack_claimed: event_ids NULL');
SELECT throws_like($$ SELECT orderdb.ack_claimed('g-invalid', '', ARRAY[1]::bigint[]) $$,
                   '%member%', 'ack_claimed: member empty');
SELECT throws_like($$ SELECT orderdb.release_claimed(NULL, 'm', ARRAY[1]::bigint[]) $$,
                   '%group%', 'release_claimed: group NULL');
SELECT ok(NOT EXISTS (SELECT 1 FROM orderdb.event_groups WHERE group_name = 'g-invalid'),
          'nothing was created');

SELECT * FROM finish();
ROLLBACK;
