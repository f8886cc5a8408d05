-- transition_order rejects bad arguments with 22023 naming the field; nothing is written.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(303, 'TB-A', 10);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 303, '[{"sku": "TB-A", "quantity": 1}]');
CREATE FUNCTION pg_temp.tr(p_status text, p_version integer DEFAULT 1, p_actor text DEFAULT NULL,
                           p_reason text DEFAULT NULL, p_context jsonb DEFAULT '{}', p_order bigint DEFAULT NULL)
RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT * FROM orderdb.transition_order(%s, %L, %s, %L, %L, %L::jsonb)',
                  coalesce(p_order, (SELECT order_id FROM o)), p_status,
                  coalesce(p_version::text, 'NULL'), p_actor, p_reason, p_context);
$f$;

SELECT throws_ok(pg_temp.tr('confirmed', p_order => 0), '22023', 'order_id must be a positive integer', 'order_id 0');
SELECT throws_ok($$ SELECT orderdb.transition_order(NULL, 'confirmed', 1) $$, '22023',
                 'order_id must be a positive integer', 'NULL order_id');
SELECT throws_ok(pg_temp.tr('confirmd'), '22023', 'unknown to_status ''confirmd''', 'unknown status name');
SELECT throws_ok(pg_temp.tr(NULL), '22023', 'to_status is required', 'NULL status');
SELECT throws_ok(pg_temp.tr('confirmed', 0), '22023', 'expected_version must be a positive integer', 'expected_version 0');
SELECT throws_ok(pg_temp.tr('confirmed', NULL), '22023', 'expected_version must be a positive integer', 'NULL expected_version');
SELECT throws_ok(pg_temp.tr('confirmed', p_actor => repeat('a', 1001)), '22023',
                 'actor must be at most 1000 characters', '1001-character actor');
SELECT throws_ok(pg_temp.tr('confirmed', p_reason => repeat('r', 1001)), '22023',
                 'reason must be at most 1000 characters', '1001-character reason');
SELECT throws_ok(pg_temp.tr('confirmed', p_context => '["ip"]'), '22023', 'context must be a JSON object', 'context an array');
SELECT throws_ok(pg_temp.tr('confirmed', p_context => jsonb_build_object('x', repeat('x', 65536))), '22023',
                 'context must be at most 65536 bytes', 'context over 64 kB');
SELECT results_eq($$ SELECT status, version FROM orderdb.orders WHERE order_id = (SELECT order_id FROM o) $$,
                  $$ VALUES ('pending'::text, 1) $$, 'nothing changed');
SELECT lives_ok(pg_temp.tr('confirmed', p_actor => repeat('a', 1000), p_reason => repeat('r', 1000)),
                '1000-character actor and reason are accepted');

SELECT * FROM finish();
ROLLBACK;
