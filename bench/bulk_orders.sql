-- bulk_orders: appends bench.count orders in one go (INSERT ... SELECT generate_series), written
-- straight into orderdb's tables the way create_order + transition_order would leave them, with
-- consistent ledgers (orderdb_ops.inventory_drift stays empty):
--   bench.status = 'cancelled': historical orders (pending -> confirmed -> cancelled, 2 lines
--                  released), the volume for the scale runs (orderdb bench --orders N);
--   bench.status = 'confirmed': the transition pool (pending -> confirmed, version 2, 2 lines
--                  held: inventory.reserved grows by what they hold).
-- Order ids come from orderdb.order_id_seq (a contiguous range is claimed with setval: run it
-- while nothing else creates orders). Returns the first order id and the count.
-- By hand:
--   psql <dsn> -c "SET bench.skus = 10000" -c "SET bench.count = 1000000" \
--        -c "SET bench.status = 'cancelled'" -f bench/bulk_orders.sql
CREATE TEMP TABLE IF NOT EXISTS bench_range (first bigint, last bigint);
TRUNCATE bench_range;
INSERT INTO bench_range
SELECT f, f + current_setting('bench.count')::bigint - 1
  FROM (SELECT nextval('orderdb.order_id_seq') AS f) s;
SELECT setval('orderdb.order_id_seq', (SELECT last FROM bench_range));

INSERT INTO orderdb.order_directory (order_id, warehouse_id, order_no)
SELECT g, 1, orderdb._order_no(g)
  FROM bench_range r, generate_series(r.first, r.last) AS g;

INSERT INTO orderdb.orders (warehouse_id, order_id, order_no, customer_id, status,
                            previous_status, version, created_by, created_at, updated_at)
SELECT 1, g, orderdb._order_no(g), 1 + g % 1000000, current_setting('bench.status'),
       CASE current_setting('bench.status') WHEN 'cancelled' THEN 'confirmed' ELSE 'pending' END,
       CASE current_setting('bench.status') WHEN 'cancelled' THEN 3 ELSE 2 END,
       'bench-bulk', now() - (g % 365) * interval '1 day', now()
  FROM bench_range r, generate_series(r.first, r.last) AS g;

-- two lines from the two halves of the SKU range (distinct by construction)
INSERT INTO orderdb.order_lines (warehouse_id, order_id, sku, line_no, quantity, unit_price,
                                 qty_held, qty_released)
SELECT 1, g, 'SKU-' || (100000 + l.half * (s.skus / 2) + 1 + (g * l.mult) % (s.skus / 2)),
       l.half + 1, 1, 9.90,
       CASE current_setting('bench.status') WHEN 'confirmed' THEN 1 ELSE 0 END,
       CASE current_setting('bench.status') WHEN 'confirmed' THEN 0 ELSE 1 END
  FROM bench_range r, generate_series(r.first, r.last) AS g,
       (SELECT current_setting('bench.skus')::bigint AS skus) s,
       (VALUES (0, 7919), (1, 104729)) AS l(half, mult);

INSERT INTO orderdb.order_status_history (warehouse_id, order_id, version, from_status,
                                          to_status, actor, source)
SELECT 1, g, 2, 'pending', 'confirmed', 'bench-bulk', 'api'
  FROM bench_range r, generate_series(r.first, r.last) AS g;
INSERT INTO orderdb.order_status_history (warehouse_id, order_id, version, from_status,
                                          to_status, actor, source)
SELECT 1, g, 3, 'confirmed', 'cancelled', 'bench-bulk', 'api'
  FROM bench_range r, generate_series(r.first, r.last) AS g
 WHERE current_setting('bench.status') = 'cancelled';

-- held lines are reservations: the counters follow the ledger
UPDATE orderdb.inventory AS i
   SET reserved = i.reserved + h.held, updated_at = now()
  FROM (SELECT ol.sku, sum(ol.qty_held)::integer AS held
          FROM bench_range r
          JOIN orderdb.order_lines ol
            ON ol.warehouse_id = 1 AND ol.order_id BETWEEN r.first AND r.last
         GROUP BY ol.sku) h
 WHERE current_setting('bench.status') = 'confirmed'
   AND i.warehouse_id = 1 AND i.sku = h.sku AND h.held > 0;

SELECT first, last - first + 1 AS count FROM bench_range;
