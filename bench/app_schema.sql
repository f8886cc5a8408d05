-- bench_app: plain tables equivalent to orderdb's order tables (same columns, keys, fillfactors),
-- used by app_create_order.sql, the application-layer baseline (statements sent one by one by the
-- client instead of one orderdb.create_order call). No functions, no triggers, no foreign keys.
-- `orderdb bench` runs this file (and load.sql) in the orderdb_bench database; by hand:
--   psql postgresql://postgres@127.0.0.1:<port>/orderdb_bench -c "SET bench.skus = 10000" \
--        -f bench/app_schema.sql
DROP SCHEMA IF EXISTS bench_app CASCADE;
CREATE SCHEMA bench_app;

CREATE TABLE bench_app.inventory (
    warehouse_id integer NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    on_hand      integer NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved     integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, sku),
    CHECK (reserved <= on_hand)
) WITH (fillfactor = 80);

CREATE TABLE bench_app.orders (
    warehouse_id    integer NOT NULL,
    order_id        bigint GENERATED ALWAYS AS IDENTITY,
    customer_id     bigint NOT NULL CHECK (customer_id > 0),
    status          text NOT NULL,
    previous_status text,
    version         integer NOT NULL DEFAULT 1,
    options         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, order_id)
) WITH (fillfactor = 85);

CREATE TABLE bench_app.order_lines (
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    line_no      integer NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    unit_price   numeric,
    qty_held     integer NOT NULL,
    qty_consumed integer NOT NULL DEFAULT 0,
    qty_released integer NOT NULL DEFAULT 0,
    qty_returned integer NOT NULL DEFAULT 0,
    PRIMARY KEY (warehouse_id, order_id, sku)
) WITH (fillfactor = 90);

CREATE TABLE bench_app.order_status_history (
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    version      integer NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    actor        text,
    reason       text,
    context      jsonb NOT NULL DEFAULT '{}'::jsonb,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, order_id, version)
) WITH (fillfactor = 100);

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
