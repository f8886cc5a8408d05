-- receive_stock rejects bad arguments with 22023 naming the field, and writes nothing.
BEGIN;
SELECT plan(13);

SELECT FROM orderdb.receive_stock(102, 'RS-BAD', 7);
CREATE TEMP TABLE before AS
    SELECT (SELECT count(*) FROM orderdb.stock_receipts) AS receipts,
           (SELECT count(*) FROM orderdb.inventory) AS rows,
           (SELECT count(*) FROM orderdb.warehouses) AS warehouses,
           (SELECT on_hand FROM orderdb.inventory WHERE warehouse_id = 102 AND sku = 'RS-BAD') AS on_hand;

SELECT throws_ok($$ SELECT orderdb.receive_stock(0, 'X', 1) $$, '22023',
                 'warehouse_id must be a positive integer', 'warehouse_id 0');
SELECT throws_ok($$ SELECT orderdb.receive_stock(-3, 'X', 1) $$, '22023',
                 'warehouse_id must be a positive integer', 'negative warehouse_id');
SELECT throws_ok($$ SELECT orderdb.receive_stock(NULL, 'X', 1) $$, '22023',
                 'warehouse_id must be a positive integer', 'NULL warehouse_id');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, NULL, 1) $$, '22023',
                 'sku is required', 'NULL sku');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, '', 1) $$, '22023',
                 'sku must be 1 to 255 characters', 'empty sku');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, repeat('x', 256), 1) $$, '22023',
                 'sku must be 1 to 255 characters', '256-character sku');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, 'X', 0) $$, '22023',
                 'quantity must be a positive integer', 'quantity 0');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, 'X', -1) $$, '22023',
                 'quantity must be a positive integer', 'negative quantity');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, 'X', NULL) $$, '22023',
                 'quantity must be a positive integer', 'NULL quantity');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, 'X', 1, repeat('a', 1001)) $$, '22023',
                 'actor must be at most 1000 characters', '1001-character actor');
SELECT throws_ok($$ SELECT orderdb.receive_stock(102, 'RS-BAD', 2147483647) $$, '22023',
                 'quantity would raise on_hand above 2147483647', 'on_hand overflow');
SELECT lives_ok($$ SELECT orderdb.receive_stock(103, 'X', 1, repeat('a', 1000)) $$,
                '1000-character actor is accepted');
SELECT results_eq(
    $$ SELECT (SELECT count(*) FROM orderdb.stock_receipts) - 1,
              (SELECT count(*) FROM orderdb.inventory) - 1,
              (SELECT count(*) FROM orderdb.warehouses) - 1,
              (SELECT on_hand FROM orderdb.inventory WHERE warehouse_id = 102 AND sku = 'RS-BAD') $$,
    $$ SELECT receipts, rows, warehouses, on_hand FROM before $$,
    'the refused calls wrote nothing');

SELECT * FROM finish();
ROLLBACK;
