-- order_timeline: the customer's tracking page (orderdb.order_timeline) of a random shipped
-- order; each of these orders has 6 status rows (pending .. shipped) and 5 carrier events.
-- The orders are :first .. :first + :count - 1 (loaded by `orderdb bench`, see bench_app.pools).
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D first=<first> -D count=<count> \
--           -l --log-prefix=order_timeline -f bench/order_timeline.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
-- Compared with: pgbench -M prepared -c 16 -j 2 -T 30 -b select-only <pgbench database>
\set oid random(:first, :first + :count - 1)
SELECT orderdb.order_timeline(:oid);
