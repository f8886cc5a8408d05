-- read_events rejects a bad consumer name or limit with 22023 and creates nothing.
BEGIN;
SELECT plan(6);

SELECT throws_ok($$ SELECT * FROM orderdb.read_events(NULL, 10) $$, '22023', NULL,
                 'a NULL consumer is refused');
SELECT throws_ok($$ SELECT * FROM orderdb.read_events('', 10) $$, '22023', NULL,
                 'an empty consumer is refused');
SELECT throws_ok($$ SELECT * FROM orderdb.read_events(repeat('x', 256), 10) $$, '22023', NULL,
                 'a consumer name over 255 characters is refused');
SELECT throws_ok($$ SELECT * FROM orderdb.read_events('c', 0) $$, '22023', NULL,
                 'a limit of 0 is refused');
SELECT throws_ok($$ SELECT * FROM orderdb.read_events('c', 10001) $$, '22023', NULL,
                 'a limit over 10000 is refused');
SELECT is((SELECT count(*) FROM orderdb.event_consumers WHERE consumer = 'c'), 0::bigint,
          'a refused call creates no consumer');

SELECT * FROM finish();
ROLLBACK;
