-- board_snapshot: bad arguments are 22023 naming the field; orderdb_ops reads it through the
-- view orderdb_ops.board. orderdb_ops's privileges are read from the catalog (SELECT on the view,
-- EXECUTE on the function it calls: a view checks its functions against the reader), so that the
-- file runs as the owner too, who is no member of orderdb_ops; tests/test_security_privileges.py
-- reads every ops view as orderdb_ops for real.
BEGIN;
SELECT plan(9);

SELECT throws_ok($$ SELECT orderdb_ops.board_snapshot(0) $$, '22023',
                 'warehouse_id must be a positive integer', 'warehouse_id 0');
SELECT throws_ok($$ SELECT orderdb_ops.board_snapshot(NULL, repeat('c', 256)) $$, '22023',
                 'carrier must be at most 255 characters', '256-character carrier');
SELECT throws_ok($$ SELECT orderdb_ops.board_snapshot(NULL, NULL, 0) $$, '22023',
                 'per_lane must be between 1 and 100', 'per_lane 0');
SELECT throws_ok($$ SELECT orderdb_ops.board_snapshot(NULL, NULL, 101) $$, '22023',
                 'per_lane must be between 1 and 100', 'per_lane 101');
SELECT throws_ok($$ SELECT orderdb_ops.board_snapshot(NULL, NULL, 20, 0) $$, '22023',
                 'limit must be between 1 and 500', 'limit 0');
SELECT table_privs_are('orderdb_ops', 'board', 'orderdb_ops', ARRAY['SELECT'],
                       'orderdb_ops may read the board view');
SELECT function_privs_are('orderdb_ops', 'board_snapshot', ARRAY['integer', 'text', 'integer', 'integer'],
                          'orderdb_ops', ARRAY['EXECUTE'], 'orderdb_ops may call the filtered snapshot');
SELECT lives_ok($$ SELECT snapshot FROM orderdb_ops.board $$, 'the board view reads');
SELECT lives_ok($$ SELECT orderdb_ops.board_snapshot(1, 'SF', 5, 5) $$, 'the filtered snapshot reads');

SELECT * FROM finish();
ROLLBACK;
