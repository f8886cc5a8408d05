-- load: the orderdb_bench data set, through the API: warehouse 1 receives 1,000,000,000 units of
-- SKU-100001 .. SKU-(100000 + bench.skus) and of the hot SKU HOT-PLAIN (nothing configured).
-- `orderdb bench` runs it after `orderdb migrate`; by hand:
--   psql <orderdb_bench dsn> -c "SET bench.skus = 10000" -f bench/load.sql
SELECT count(*) AS skus_received
  FROM (SELECT orderdb.receive_stock(1, 'SKU-' || (100000 + g), 1000000000, 'bench')
          FROM generate_series(1, current_setting('bench.skus')::integer) AS g) AS r;
SELECT * FROM orderdb.receive_stock(1, 'HOT-PLAIN', 1000000000, 'bench');
