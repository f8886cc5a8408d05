-- single_line_random: a 1-line order (quantity 1) on a random SKU with an idempotency key; the
-- reference of the hot-SKU runs (hot_sku.sql): the same work without contention on one row.
-- Data: orderdb_bench as loaded by `orderdb bench` (warehouse 1, SKU-100001..SKU-(100000+skus)).
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D skus=10000 -D run=h1 -D k=0 \
--           -l --log-prefix=single_line_random -f bench/single_line_random.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
\set s 100000 + random(1, :skus)
\set cust random(1, 1000000)
SELECT order_id FROM orderdb.create_order(:cust, 1, jsonb_build_array(
    jsonb_build_object('sku', 'SKU-' || :s, 'quantity', 1, 'unit_price', 9.90)),
    'bench-' || :run || '-' || :client_id || '-' || :k, 'bench');
\set k :k + 1
