-- transition: one status change per transaction (orderdb.transition_order with the expected
-- version), alternating confirmed -> on_hold and on_hold -> confirmed.
-- Each client owns the orders :base + :client_id + :nclients * j (j = 0 .. :m - 1), loaded
-- 'confirmed' at version 2 by `orderdb bench`; it walks them round-robin, so the version it
-- expects is known (2 + round) and no two clients touch the same order. :k counts the client's
-- transactions (pgbench keeps variables per client across transactions; start it with -D k=0).
-- Run by hand (only on a freshly loaded orderdb_bench: the versions are positional; base, m and
-- nclients are printed by `orderdb bench --keep` and kept in bench_app.pools):
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D k=0 -D base=<base> -D m=<m> -D nclients=16 \
--           -l --log-prefix=transition -f bench/transition.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
-- Compared with: pgbench -M prepared -c 16 -j 2 -T 30 -b simple-update <pgbench database>
\set j :k % :m
\set round :k / :m
\set oid :base + :client_id + :nclients * :j
\set ver 2 + :round
\set hold :round % 2
\if :hold = 0
SELECT version FROM orderdb.transition_order(:oid, 'on_hold', :ver, 'bench', 'benchmark hold');
\else
SELECT version FROM orderdb.transition_order(:oid, 'confirmed', :ver, 'bench', 'benchmark release');
\endif
\set k :k + 1
