-- _parse_items on bad input: 22023 naming the first bad field — the first bad line by input
-- index (0-based), and within a line: object, sku type, sku length, duplicate sku, quantity,
-- unit_price. p_name and p_quantity_required (false: absent/null quantity allowed, a present one
-- is still checked) as the other callers pass them.
BEGIN;
SELECT plan(45);

CREATE FUNCTION pg_temp.pi(p_items text, p_name text DEFAULT 'items', p_required boolean DEFAULT true,
                           p_max integer DEFAULT 500)
RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT * FROM orderdb._parse_items(%L::jsonb, %L, %L, %s)', p_items, p_name, p_required, p_max);
$f$;

-- the array itself
SELECT throws_ok($$ SELECT * FROM orderdb._parse_items(NULL) $$, '22023', 'items is required', 'NULL');
SELECT throws_ok(pg_temp.pi('{"sku": "A", "quantity": 1}'), '22023', 'items must be a JSON array', 'an object');
SELECT throws_ok(pg_temp.pi('"A"'), '22023', 'items must be a JSON array', 'a string');
SELECT throws_ok(pg_temp.pi('[]'), '22023', 'items must have 1 to 500 lines', 'empty array');
SELECT throws_ok(
    format('SELECT * FROM orderdb._parse_items(%L::jsonb)',
           (SELECT jsonb_agg(jsonb_build_object('sku', 'L-' || g, 'quantity', 1)) FROM generate_series(1, 501) g)),
    '22023', 'items must have 1 to 500 lines', '501 lines');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}, {"sku": "C", "quantity": 1}]',
                            'lines', false, 2),
                 '22023', 'lines must have 1 to 2 lines', 'more than p_max_lines');
SELECT throws_ok(
    format('SELECT * FROM orderdb._parse_items(%L::jsonb)',
           (SELECT jsonb_agg(jsonb_build_object('sku', 'L-' || g, 'quantity', 1, 'note', repeat('n', 200)))
              FROM generate_series(1, 400) g)),
    '22023', 'items must be at most 65536 bytes', 'over 64 kB');

-- elements that are not objects
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1}, 5]'), '22023', 'items[1] must be a JSON object', 'a number');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1}, "A"]'), '22023', 'items[1] must be a JSON object', 'a string');
SELECT throws_ok(pg_temp.pi('[[{"sku": "A", "quantity": 1}]]'), '22023', 'items[0] must be a JSON object', 'an array');
SELECT throws_ok(pg_temp.pi('[null]'), '22023', 'items[0] must be a JSON object', 'null');

-- duplicate skus: the second occurrence is named
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}]'), '22023',
                 'items[1].sku "A" appears more than once', 'duplicate sku');
SELECT throws_ok(pg_temp.pi('[{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 1}, {"sku": "C", "quantity": 1}, {"sku": "A", "quantity": 5}]'),
                 '22023', 'items[3].sku "A" appears more than once', 'duplicate sku, not adjacent in input');
SELECT throws_ok(pg_temp.pi('[{"sku": "A"}, {"sku": "A"}]', 'lines', false), '22023',
                 'lines[1].sku "A" appears more than once', 'duplicate sku, quantity optional');
SELECT throws_ok(
    format('SELECT * FROM orderdb._parse_items(%L::jsonb)',
           (SELECT jsonb_agg(jsonb_build_object('sku', 'L-' || least(g, 499), 'quantity', 1) ORDER BY g)
              FROM generate_series(1, 500) g)),
    '22023', 'items[499].sku "L-499" appears more than once', 'duplicate in a 500-line order');

-- quantity
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1.5}]'), '22023', 'items[0].quantity must be a positive integer', '1.5');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1.0000000001}]'), '22023', 'items[0].quantity must be a positive integer', '1.0000000001');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": "2"}]'), '22023', 'items[0].quantity must be a positive integer', 'a string');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": true}]'), '22023', 'items[0].quantity must be a positive integer', 'a boolean');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": [1]}]'), '22023', 'items[0].quantity must be a positive integer', 'an array');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 2147483648}]'), '22023', 'items[0].quantity must be a positive integer', '2^31');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1e400}]'), '22023', 'items[0].quantity must be a positive integer', 'huge');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 0.5}]'), '22023', 'items[0].quantity must be a positive integer', '0.5');
SELECT throws_ok(pg_temp.pi('[{"sku": "A"}]'), '22023', 'items[0].quantity must be a positive integer', 'absent when required');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": null}]'), '22023', 'items[0].quantity must be a positive integer', 'null when required');
SELECT throws_ok(pg_temp.pi('[{"sku": "A"}, {"sku": "B", "quantity": "2"}]', 'lines', false), '22023',
                 'lines[1].quantity must be a positive integer', 'optional quantity still checked: string');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 0}]', 'payload.lines', false), '22023',
                 'payload.lines[0].quantity must be a positive integer', 'optional quantity still checked: 0');

-- unit_price
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": -0.01}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'negative');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": 1000000000000.01}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'just over 1e12');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": "1000000000000.1"}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'string just over 1e12');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": "abc"}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'not a number');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": "1e5"}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'exponent string');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": " 1"}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'string with a space');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": "-1"}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'negative string');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": ""}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'empty string');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": "0.000000000000000000001"}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', '21 decimals');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": false}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'a boolean');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": {}}]'), '22023', 'items[0].unit_price must be a number from 0 to 1e12', 'an object');

-- several faults: the first bad line by index, and within a line the first bad field
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1, "unit_price": "x"}, {"quantity": 1}]'), '22023',
                 'items[0].unit_price must be a number from 0 to 1e12', 'line 0 before line 1');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 0, "unit_price": "x"}]'), '22023',
                 'items[0].quantity must be a positive integer', 'quantity before unit_price');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 0}]'), '22023',
                 'items[1].sku "A" appears more than once', 'duplicate before quantity');
SELECT throws_ok(pg_temp.pi('[{"sku": "A", "quantity": 1}, {"sku": 1, "quantity": 1}, {"sku": "A", "quantity": 1}]'), '22023',
                 'items[1].sku must be a string', 'a bad sku before a later duplicate');
SELECT throws_ok(pg_temp.pi('[{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 1}]'),
                 '22023', 'items[2].sku "B" appears more than once', 'the first duplicate by index');
SELECT throws_ok(format('SELECT * FROM orderdb._parse_items(%L::jsonb)',
                        jsonb_build_array(jsonb_build_object('sku', 'A', 'quantity', 1),
                                          jsonb_build_object('sku', repeat('x', 256), 'quantity', 0))),
                 '22023', 'items[1].sku must be 1 to 255 characters', 'sku length before quantity');
SELECT throws_ok(pg_temp.pi('[{"sku": "", "quantity": 1}, [1]]'), '22023',
                 'items[0].sku must be 1 to 255 characters', 'empty sku before a non-object line');

SELECT * FROM finish();
ROLLBACK;
