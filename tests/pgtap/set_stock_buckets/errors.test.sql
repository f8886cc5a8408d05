-- set_stock_buckets / rebalance_stock_buckets: 22023 for bad arguments, OD004 for an unknown
-- (warehouse, sku) or a SKU that is not bucketed; nothing changes.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(122, 'SB-2', 10);
SELECT throws_ok($$ SELECT * FROM orderdb.set_stock_buckets(122, 'SB-2', 0) $$, '22023',
                 'buckets must be from 1 to 1024', 'buckets 0');
SELECT throws_ok($$ SELECT * FROM orderdb.set_stock_buckets(122, 'SB-2', 1025) $$, '22023',
                 'buckets must be from 1 to 1024', 'buckets 1025');
SELECT throws_ok($$ SELECT * FROM orderdb.set_stock_buckets(0, 'SB-2', 4) $$, '22023',
                 'warehouse_id must be a positive integer', 'warehouse_id 0');
SELECT throws_ok($$ SELECT * FROM orderdb.set_stock_buckets(122, '', 4) $$, '22023',
                 'sku must be 1 to 255 characters', 'empty sku');
SELECT throws_ok($$ SELECT * FROM orderdb.set_stock_buckets(122, 'NEVER', 4) $$, 'OD004', NULL,
                 'a sku the warehouse never stocked is OD004');
SELECT throws_ok($$ SELECT * FROM orderdb.rebalance_stock_buckets(122, 'SB-2') $$, 'OD004', NULL,
                 'rebalancing a SKU that is not bucketed is OD004');
SELECT is_empty($$ SELECT 1 FROM orderdb.stock_buckets WHERE warehouse_id = 122 $$,
                'nothing was bucketed');

SELECT * FROM finish();
ROLLBACK;
