-- board_snapshot: bad arguments are 22023 naming the field; orderdb_ops reads it through the
-- view orderdb_ops.board.
BEGIN;
SELECT plan(7);

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
SET LOCAL ROLE orderdb_ops;
SELECT lives_ok($$ SELECT snapshot FROM orderdb_ops.board $$, 'orderdb_ops reads the board view');
SELECT lives_ok($$ SELECT orderdb_ops.board_snapshot(1, 'SF', 5, 5) $$,
                'orderdb_ops calls the filtered snapshot');

SELECT * FROM finish();
ROLLBACK;
