-- stock_level: OD004 when the warehouse has no row for the sku; 22023 for bad arguments.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(112, 'SL-2', 1);
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(112, 'NEVER') $$, 'OD004', NULL,
                 'a sku never stocked in the warehouse is OD004');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(999112, 'SL-2') $$, 'OD004', NULL,
                 'an unknown warehouse is OD004');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(0, 'SL-2') $$, '22023',
                 'warehouse_id must be a positive integer', 'warehouse_id 0');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(112, NULL) $$, '22023',
                 'sku is required', 'NULL sku');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(112, '') $$, '22023',
                 'sku must be 1 to 255 characters', 'empty sku');
SELECT throws_ok($$ SELECT * FROM orderdb.stock_level(112, repeat('x', 256)) $$, '22023',
                 'sku must be 1 to 255 characters', '256-character sku');

SELECT * FROM finish();
ROLLBACK;
