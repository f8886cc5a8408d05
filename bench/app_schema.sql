-- bench_app: the application-layer baseline's tables (bench/app_create_order.sql,
-- bench/app_hot_sku.sql): copies of orderdb's own tables (CREATE TABLE ... (LIKE ... INCLUDING
-- ALL): the same columns, defaults, CHECK constraints and indexes; the same fillfactors), written
-- by statements the client sends one by one instead of one orderdb.create_order call. No
-- functions, no triggers (orderdb's tables have none either).
-- `orderdb bench` runs this file after `orderdb migrate` in the orderdb_bench database; by hand:
--   psql postgresql://postgres@127.0.0.1:<port>/orderdb_bench -c "SET bench.skus = 10000" \
--        -f bench/app_schema.sql
DROP SCHEMA IF EXISTS bench_app CASCADE;
CREATE SCHEMA bench_app;

CREATE TABLE bench_app.inventory (LIKE orderdb.inventory INCLUDING ALL)
    WITH (fillfactor = 80);
CREATE TABLE bench_app.order_directory (LIKE orderdb.order_directory INCLUDING ALL)
    WITH (fillfactor = 90);
CREATE TABLE bench_app.orders (LIKE orderdb.orders INCLUDING ALL) WITH (fillfactor = 85);
CREATE TABLE bench_app.order_lines (LIKE orderdb.order_lines INCLUDING ALL)
    WITH (fillfactor = 90);
-- orderdb.outbox is partitioned by month; the copy is one plain table with its two indexes
CREATE TABLE bench_app.outbox (LIKE orderdb.outbox INCLUDING ALL) WITH (fillfactor = 100);
CREATE SEQUENCE bench_app.order_id_seq;

-- the benchmark's bookkeeping: where each pool of prepared orders starts (see the scripts' headers)
CREATE TABLE bench_app.pools (
    pool  text PRIMARY KEY,
    first bigint NOT NULL,
    count bigint NOT NULL,
    note  text
);

INSERT INTO bench_app.inventory (warehouse_id, sku, on_hand)
SELECT 1, 'SKU-' || (100000 + g), 1000000000
  FROM generate_series(1, current_setting('bench.skus')::integer) AS g;
INSERT INTO bench_app.inventory (warehouse_id, sku, on_hand) VALUES (1, 'HOT-PLAIN', 1000000000);
