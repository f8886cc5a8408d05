-- create_order with several bad arguments reports the first in this order: customer_id,
-- warehouse_id, items, idempotency_key, actor, options (22023, the message names the field).
-- Optional arguments at their bounds or NULL pass.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(208, 'EO-1', 10);

CREATE FUNCTION pg_temp.co(p_items text, p_key text DEFAULT NULL, p_actor text DEFAULT NULL,
                           p_options text DEFAULT '{}', p_customer bigint DEFAULT 1,
                           p_warehouse integer DEFAULT 208)
RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT * FROM orderdb.create_order(%s, %s, %L::jsonb, %L, %L, %L::jsonb)',
                  coalesce(p_customer::text, 'NULL'), coalesce(p_warehouse::text, 'NULL'),
                  p_items, p_key, p_actor, p_options);
$f$;

SELECT throws_ok(pg_temp.co('[]', '', repeat('a', 1001), '[]', 0, 0), '22023',
                 'customer_id must be a positive integer', 'customer_id first');
SELECT throws_ok(pg_temp.co('[]', '', repeat('a', 1001), '[]', NULL, NULL), '22023',
                 'customer_id must be a positive integer', 'NULL customer_id, NULL warehouse');
SELECT throws_ok(pg_temp.co('[]', '', repeat('a', 1001), '[]', 1, -1), '22023',
                 'warehouse_id must be a positive integer', 'then warehouse_id');
SELECT throws_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 0}]', '', repeat('a', 1001), '[]'), '22023',
                 'items[0].quantity must be a positive integer', 'then items');
SELECT throws_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 1}, {"sku": "EO-1", "quantity": 1}]', '', NULL, '[]', 1, NULL),
                 '22023', 'items[1].sku "EO-1" appears more than once', 'items before the rest, no warehouse given');
SELECT throws_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 1}]', repeat('k', 256), repeat('a', 1001), '[]'), '22023',
                 'idempotency_key must be 1 to 255 characters', 'then idempotency_key');
SELECT throws_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 1}]', NULL, repeat('a', 1001), '[]'), '22023',
                 'actor must be at most 1000 characters', 'then actor');
SELECT throws_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 1}]', 'k', NULL, '"x"'), '22023',
                 'options must be a JSON object', 'then options');
SELECT throws_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 1}]', NULL, NULL, 'null'), '22023',
                 'options must be a JSON object', 'options JSON null');

SELECT lives_ok($$ SELECT * FROM orderdb.create_order(1, 208, '[{"sku": "EO-1", "quantity": 1}]', NULL, NULL, NULL) $$,
                'NULL key, actor and options are accepted');
SELECT lives_ok(pg_temp.co('[{"sku": "EO-1", "quantity": 1}]', 'k', '', '{}'), 'an empty actor is accepted');
SELECT is((SELECT count(*)::integer FROM orderdb.orders WHERE warehouse_id = 208), 2, 'two orders written');

SELECT * FROM finish();
ROLLBACK;
