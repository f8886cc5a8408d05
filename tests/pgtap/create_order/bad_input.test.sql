-- create_order rejects bad input with 22023 and a message naming the field (items[i].field,
-- 0-based like a JSON path), before anything is written. Bounds: 1..500 lines, sku 1..255
-- characters and once per order, quantity a positive integer, unit_price 0..1e12, idempotency key
-- 1..255 characters, actor <= 1000 characters, options a JSON object, JSON arguments <= 64 kB.
BEGIN;
SELECT plan(36);

SELECT FROM generate_series(1, 500) g, LATERAL orderdb.receive_stock(207, 'BI-' || g, 10);
CREATE TEMP TABLE before AS
    SELECT (SELECT count(*) FROM orderdb.orders) AS orders,
           (SELECT count(*) FROM orderdb.order_lines) AS lines,
           (SELECT count(*) FROM orderdb.order_directory) AS dir,
           (SELECT count(*) FROM orderdb.outbox) AS events,
           (SELECT sum(reserved) FROM orderdb.inventory) AS reserved;

CREATE FUNCTION pg_temp.co(p_items text, p_key text DEFAULT NULL, p_actor text DEFAULT NULL,
                           p_options jsonb DEFAULT '{}', p_customer bigint DEFAULT 1,
                           p_warehouse integer DEFAULT 207)
RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT * FROM orderdb.create_order(%s, %s, %L::jsonb, %L, %L, %L::jsonb)',
                  p_customer, coalesce(p_warehouse::text, 'NULL'), p_items, p_key, p_actor, p_options);
$f$;

-- ids
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_customer => 0), '22023',
                 'customer_id must be a positive integer', 'customer_id 0');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_customer => -5), '22023',
                 'customer_id must be a positive integer', 'negative customer_id');
SELECT throws_ok($$ SELECT orderdb.create_order(NULL, 207, '[{"sku": "BI-1", "quantity": 1}]') $$, '22023',
                 'customer_id must be a positive integer', 'NULL customer_id');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_warehouse => 0), '22023',
                 'warehouse_id must be a positive integer', 'warehouse_id 0');
-- items: shape and line count
SELECT throws_ok($$ SELECT orderdb.create_order(1, 207, NULL) $$, '22023', 'items is required', 'NULL items');
SELECT throws_ok(pg_temp.co('{"sku": "BI-1", "quantity": 1}'), '22023', 'items must be a JSON array',
                 'items an object');
SELECT throws_ok(pg_temp.co('[]'), '22023', 'items must have 1 to 500 lines', 'no lines');
SELECT throws_ok(
    format('SELECT orderdb.create_order(1, 207, %L::jsonb)',
           (SELECT jsonb_agg(jsonb_build_object('sku', 'BI-' || g, 'quantity', 1)) FROM generate_series(1, 501) g)),
    '22023', 'items must have 1 to 500 lines', '501 lines');
SELECT throws_ok(pg_temp.co('[1]'), '22023', 'items[0] must be a JSON object', 'line not an object');
-- sku
SELECT throws_ok(pg_temp.co('[{"quantity": 1}]'), '22023', 'items[0].sku must be a string', 'sku missing');
SELECT throws_ok(pg_temp.co('[{"sku": 7, "quantity": 1}]'), '22023', 'items[0].sku must be a string', 'sku a number');
SELECT throws_ok(pg_temp.co('[{"sku": "", "quantity": 1}]'), '22023', 'items[0].sku must be 1 to 255 characters', 'empty sku');
SELECT throws_ok(pg_temp.co(format('[{"sku": "BI-1", "quantity": 1}, {"sku": "%s", "quantity": 1}]', repeat('x', 256))),
                 '22023', 'items[1].sku must be 1 to 255 characters', '256-character sku');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}, {"sku": "BI-2", "quantity": 1}, {"sku": "BI-1", "quantity": 2}]'),
                 '22023', 'items[2].sku "BI-1" appears more than once', 'duplicate sku');
-- quantity
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1"}]'), '22023', 'items[0].quantity must be a positive integer', 'quantity missing');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": null}]'), '22023', 'items[0].quantity must be a positive integer', 'quantity null');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 0}]'), '22023', 'items[0].quantity must be a positive integer', 'quantity 0');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}, {"sku": "BI-2", "quantity": -1}]'), '22023',
                 'items[1].quantity must be a positive integer', 'negative quantity');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1.5}]'), '22023', 'items[0].quantity must be a positive integer', 'fractional quantity');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": "2"}]'), '22023', 'items[0].quantity must be a positive integer', 'quantity a string');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 2147483648}]'), '22023', 'items[0].quantity must be a positive integer', 'quantity over integer range');
-- unit_price
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1, "unit_price": -0.01}]'), '22023',
                 'items[0].unit_price must be a number from 0 to 1e12', 'negative price');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1, "unit_price": "abc"}]'), '22023',
                 'items[0].unit_price must be a number from 0 to 1e12', 'price not a number');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1, "unit_price": true}]'), '22023',
                 'items[0].unit_price must be a number from 0 to 1e12', 'price a boolean');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1, "unit_price": 1e13}]'), '22023',
                 'items[0].unit_price must be a number from 0 to 1e12', 'price too large');
-- idempotency key, actor, options
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_key => ''), '22023',
                 'idempotency_key must be 1 to 255 characters', 'empty idempotency key');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_key => repeat('k', 256)), '22023',
                 'idempotency_key must be 1 to 255 characters', '256-character idempotency key');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_actor => repeat('a', 1001)), '22023',
                 'actor must be at most 1000 characters', '1001-character actor');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_options => '[]'), '22023',
                 'options must be a JSON object', 'options an array');
SELECT throws_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1}]', p_options => jsonb_build_object('note', repeat('n', 65536))),
                 '22023', 'options must be at most 65536 bytes', 'options over 64 kB');
SELECT throws_ok(
    format('SELECT orderdb.create_order(1, 207, %L::jsonb)',
           (SELECT jsonb_agg(jsonb_build_object('sku', 'BI-' || g, 'quantity', 1, 'note', repeat('n', 200)))
              FROM generate_series(1, 400) g)),
    '22023', 'items must be at most 65536 bytes', 'items over 64 kB');

SELECT results_eq(
    $$ SELECT (SELECT count(*) FROM orderdb.orders), (SELECT count(*) FROM orderdb.order_lines),
              (SELECT count(*) FROM orderdb.order_directory), (SELECT count(*) FROM orderdb.outbox),
              (SELECT sum(reserved) FROM orderdb.inventory) $$,
    $$ SELECT orders, lines, dir, events, reserved FROM before $$,
    'the refused calls wrote and reserved nothing');

-- the bounds themselves are accepted
SELECT lives_ok(
    format('SELECT orderdb.create_order(1, 207, %L::jsonb)',
           (SELECT jsonb_agg(jsonb_build_object('sku', 'BI-' || g, 'quantity', 1)) FROM generate_series(1, 500) g)),
    '500 lines are accepted');
SELECT is((SELECT count(*)::integer FROM orderdb.order_lines WHERE warehouse_id = 207), 500,
          '500 held lines were written');
SELECT lives_ok(pg_temp.co('[{"sku": "BI-1", "quantity": 1, "unit_price": 1e12}]', p_key => repeat('k', 255),
                           p_actor => repeat('a', 1000)),
                'largest price, 255-character key and 1000-character actor are accepted');
SELECT lives_ok(format('SELECT orderdb.receive_stock(207, %L, 1)', repeat('L', 255))
                || format('; SELECT orderdb.create_order(1, 207, %L::jsonb)',
                          jsonb_build_array(jsonb_build_object('sku', repeat('L', 255), 'quantity', 1))),
                'a 255-character sku is accepted');

SELECT * FROM finish();
ROLLBACK;
