-- _parse_items on valid input: skus sorted COLLATE "C" with their quantities, prices and 1-based
-- input positions; items in input order; items_canonical sorted by sku with trim_scale prices.
-- Quantity 1.0 is the integer 1; a price string keeps its scale ('19.900' -> 19.900) in items
-- and loses it in items_canonical; other keys are ignored; null/absent price is null; with
-- p_quantity_required false an absent or null quantity is null ("all").
BEGIN;
SELECT plan(22);

CREATE TEMP TABLE p AS
    SELECT * FROM orderdb._parse_items(
        '[{"sku": "b", "quantity": 2, "unit_price": "19.900", "note": "x"},
          {"sku": "B", "quantity": 1.0, "unit_price": 5.00},
          {"sku": "é", "quantity": 3},
          {"sku": "a", "quantity": 2147483647, "unit_price": null},
          {"sku": "Z", "quantity": 1, "unit_price": "19.90"},
          {"sku": "A ", "quantity": 4, "unit_price": 0}]');

SELECT is((SELECT skus FROM p), ARRAY['A ', 'B', 'Z', 'a', 'b', 'é'], 'skus sorted in byte order');
SELECT is((SELECT quantities FROM p), ARRAY[4, 1, 1, 2147483647, 2, 3], 'quantities follow the skus');
SELECT is((SELECT unit_prices::text FROM p), '{0,5.00,19.90,NULL,19.900,NULL}',
          'prices follow the skus, scale kept');
SELECT is((SELECT line_nos FROM p), ARRAY[6, 2, 5, 4, 1, 3], 'line_nos are 1-based input positions');
SELECT is((SELECT items::text FROM p),
          '[{"sku": "b", "quantity": 2, "unit_price": 19.900}, '
          '{"sku": "B", "quantity": 1, "unit_price": 5.00}, '
          '{"sku": "é", "quantity": 3, "unit_price": null}, '
          '{"sku": "a", "quantity": 2147483647, "unit_price": null}, '
          '{"sku": "Z", "quantity": 1, "unit_price": 19.90}, '
          '{"sku": "A ", "quantity": 4, "unit_price": 0}]',
          'items: input order, normalised, other keys dropped');
SELECT is((SELECT items_canonical::text FROM p),
          '[{"sku": "A ", "quantity": 4, "unit_price": 0}, '
          '{"sku": "B", "quantity": 1, "unit_price": 5}, '
          '{"sku": "Z", "quantity": 1, "unit_price": 19.9}, '
          '{"sku": "a", "quantity": 2147483647, "unit_price": null}, '
          '{"sku": "b", "quantity": 2, "unit_price": 19.9}, '
          '{"sku": "é", "quantity": 3, "unit_price": null}]',
          'items_canonical: sorted by sku, trim_scale prices');

-- '19.90' and '19.900' and 19.9 give the same canonical form
SELECT is((SELECT items_canonical FROM orderdb._parse_items('[{"sku": "X", "quantity": 1, "unit_price": "19.90"}]')),
          (SELECT items_canonical FROM orderdb._parse_items('[{"sku": "X", "quantity": 1, "unit_price": 19.9}]')),
          'price "19.90" and 19.9 hash alike');
SELECT is((SELECT items_canonical FROM orderdb._parse_items('[{"sku": "X", "quantity": 1, "unit_price": "19.900"}]')),
          (SELECT items_canonical FROM orderdb._parse_items('[{"sku": "X", "quantity": 1.0, "unit_price": 19.90}]')),
          'price "19.900" and 19.90, quantity 1.0 and 1 hash alike');

-- price bounds and forms
SELECT is((SELECT unit_prices::text FROM orderdb._parse_items(
              '[{"sku": "A", "quantity": 1, "unit_price": 1e12},
                {"sku": "B", "quantity": 1, "unit_price": "1000000000000"},
                {"sku": "C", "quantity": 1, "unit_price": "0.00000000000000000001"},
                {"sku": "D", "quantity": 1, "unit_price": "007.50"}]')),
          '{1000000000000,1000000000000,0.00000000000000000001,7.50}',
          'largest prices, 20 decimals, leading zeros accepted');

-- one line; the largest line count; a smaller p_max_lines
SELECT is((SELECT row(skus, quantities, unit_prices, line_nos)::text
             FROM orderdb._parse_items('[{"sku": "ONE", "quantity": 7}]')),
          '({ONE},{7},{NULL},{1})', 'one line');
SELECT is((SELECT cardinality(skus) FROM orderdb._parse_items(
              (SELECT jsonb_agg(jsonb_build_object('sku', 'L-' || g, 'quantity', 1)) FROM generate_series(1, 500) g))),
          500, '500 lines are accepted');
SELECT is((SELECT skus[1] || ' ' || skus[500] || ' ' || line_nos[1] || ' ' || line_nos[500]
             FROM orderdb._parse_items(
              (SELECT jsonb_agg(jsonb_build_object('sku', 'L-' || g, 'quantity', 1) ORDER BY g DESC)
                 FROM generate_series(1, 500) g))),
          'L-1 L-99 500 402', '500 lines sorted by sku with their input positions');
SELECT is((SELECT cardinality(skus) FROM orderdb._parse_items(
              '[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]', 'lines', true, 2)),
          2, 'p_max_lines lines are accepted');
SELECT is((SELECT skus FROM orderdb._parse_items(
              (SELECT jsonb_agg(jsonb_build_object('sku', repeat('s', 255 - g), 'quantity', 1)) FROM generate_series(0, 1) g))),
          ARRAY[repeat('s', 254), repeat('s', 255)], '255-character sku accepted');
-- skus differing by case or by trailing space are different skus
SELECT is((SELECT skus FROM orderdb._parse_items(
              '[{"sku": "a", "quantity": 1}, {"sku": "A", "quantity": 1}, {"sku": "A ", "quantity": 1}]')),
          ARRAY['A', 'A ', 'a'], 'case and spaces make skus distinct');

-- p_quantity_required false: absent or null quantity means "all"
CREATE TEMP TABLE q AS
    SELECT * FROM orderdb._parse_items(
        '[{"sku": "B"}, {"sku": "A", "quantity": null, "unit_price": "1.50"}, {"sku": "C", "quantity": 2}]',
        'lines', false);
SELECT is((SELECT skus FROM q), ARRAY['A', 'B', 'C'], 'optional quantity: skus');
SELECT is((SELECT quantities FROM q), ARRAY[NULL, NULL, 2]::integer[], 'optional quantity: absent/null is NULL');
SELECT is((SELECT line_nos FROM q), ARRAY[2, 1, 3], 'optional quantity: line_nos');
SELECT is((SELECT items::text FROM q),
          '[{"sku": "B", "quantity": null, "unit_price": null}, '
          '{"sku": "A", "quantity": null, "unit_price": 1.50}, '
          '{"sku": "C", "quantity": 2, "unit_price": null}]',
          'optional quantity: items');
SELECT is((SELECT items_canonical::text FROM q),
          '[{"sku": "A", "quantity": null, "unit_price": 1.5}, '
          '{"sku": "B", "quantity": null, "unit_price": null}, '
          '{"sku": "C", "quantity": 2, "unit_price": null}]',
          'optional quantity: items_canonical');
SELECT is((SELECT quantities FROM orderdb._parse_items('[{"sku": "A", "quantity": 1.0}]', 'lines', false)),
          ARRAY[1], 'optional quantity: 1.0 is 1');

-- the same call twice gives the same result (no state carried between calls)
SELECT is((SELECT row(p.*)::text FROM orderdb._parse_items('[{"sku": "R", "quantity": 2, "unit_price": "3.10"}]') p),
          (SELECT row(p.*)::text FROM orderdb._parse_items('[{"sku": "R", "quantity": 2, "unit_price": "3.10"}]') p),
          'repeatable');

SELECT * FROM finish();
ROLLBACK;
