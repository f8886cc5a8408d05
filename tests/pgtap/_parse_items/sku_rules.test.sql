-- SKUs: control characters and blank (whitespace-only) skus are 22023 naming the sku, wherever
-- a sku enters (order lines, receive_stock, stock_level, set_stock_buckets); messages quote the
-- sku (sku "SKU-1 "); a sku is normalised to Unicode NFC, so the two spellings of "é" are one
-- sku (one stock row, a duplicate line in one order).
BEGIN;
SELECT plan(17);

SELECT FROM orderdb.receive_stock(915501, 'SR-A', 1);
SELECT FROM orderdb.receive_stock(915501, 'SR-B ', 5);

SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, jsonb_build_array(jsonb_build_object('sku', 'SR' || chr(9) || 'A', 'quantity', 1))) $$,
                 '22023', 'items[0].sku must not contain control characters', 'a tab in a sku');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, jsonb_build_array(jsonb_build_object('sku', 'SR-A', 'quantity', 1),
                                                                                       jsonb_build_object('sku', 'SR-' || chr(133), 'quantity', 1))) $$,
                 '22023', 'items[1].sku must not contain control characters', 'a C1 control character (NEL) in a sku');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, '[{"sku": "   ", "quantity": 1}]') $$,
                 '22023', 'items[0].sku must not be blank', 'a sku of spaces');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, jsonb_build_array(jsonb_build_object('sku', U&'\3000\00A0\200B', 'quantity', 1))) $$,
                 '22023', 'items[0].sku must not be blank', 'a sku of ideographic, no-break and zero-width spaces');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, '[{"sku": "SR-B ", "quantity": 1}, {"sku": "SR-B ", "quantity": 2}]') $$,
                 '22023', 'items[1].sku "SR-B " appears more than once', 'a duplicate sku is quoted: its trailing space shows');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, '[{"sku": "SR-A", "quantity": 2}]') $$,
                 'OD001', 'insufficient stock for sku "SR-A"', 'OD001 quotes the sku');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(915501, 'SR-B') $$,
                 'OD004', 'no stock row for sku "SR-B" in warehouse 915501', 'OD004 quotes the sku');

SELECT throws_ok($$ SELECT * FROM orderdb.receive_stock(915501, 'SR' || chr(10) || 'C', 1) $$,
                 '22023', 'sku must not contain control characters', 'receive_stock: a newline in a sku');
SELECT throws_ok($$ SELECT * FROM orderdb.receive_stock(915501, ' ', 1) $$,
                 '22023', 'sku must not be blank', 'receive_stock: a blank sku');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(915501, chr(27) || '[31mSR-A') $$,
                 '22023', 'sku must not contain control characters', 'stock_level: an escape sequence');
SELECT throws_ok($$ SELECT * FROM orderdb.set_stock_buckets(915501, U&'\3000', 4) $$,
                 '22023', 'sku must not be blank', 'set_stock_buckets: a blank sku');
SELECT is((SELECT count(*)::int FROM orderdb.inventory WHERE warehouse_id = 915501), 2, 'no stock row made by a bad sku');

-- NFC: e + U+0301 (decomposed) and U+00E9 (composed) are one sku, stored composed
SELECT is((SELECT sku FROM orderdb.receive_stock(915501, U&'CAF\0045\0301', 3)), U&'CAF\00C9', 'receive_stock stores the sku in NFC');
SELECT is((SELECT on_hand FROM orderdb.receive_stock(915501, U&'CAF\00C9', 2)), 5, 'the composed spelling adds to the same row');
SELECT is((SELECT available FROM orderdb.stock_level(915501, U&'CAF\0045\0301')), 5, 'stock_level finds it by either spelling');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915501, 915501, jsonb_build_array(jsonb_build_object('sku', U&'CAF\00C9', 'quantity', 1),
                                                                                       jsonb_build_object('sku', U&'CAF\0045\0301', 'quantity', 1))) $$,
                 '22023', U&'items[1].sku "CAF\00C9" appears more than once', 'the two spellings in one order are one sku');
SELECT order_id AS o FROM orderdb.create_order(915501, 915501, jsonb_build_array(jsonb_build_object('sku', U&'CAF\0045\0301', 'quantity', 2))) \gset
SELECT results_eq(format($$ SELECT ol.sku COLLATE "default", i.reserved FROM orderdb.order_lines ol
                              JOIN orderdb.inventory i ON i.warehouse_id = ol.warehouse_id AND i.sku = ol.sku
                             WHERE ol.order_id = %s $$, :o),
                  $$ VALUES (U&'CAF\00C9'::text, 2) $$, 'an order line of the decomposed spelling reserves the composed row');

SELECT * FROM finish();
ROLLBACK;
