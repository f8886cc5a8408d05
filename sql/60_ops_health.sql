-- Operator views: the order funnel, low stock and PostgreSQL health (tables, lock waits, long
-- transactions, server-wide figures), and the helpers the ops views share.
--
-- Cost (docs/operations.md "Cost"): none of these views scans orders. order_funnel reads the
-- planner statistics (pg_class.reltuples x pg_stats most-common-value frequencies) once the orders
-- table is large, low_stock reads one row per (warehouse, sku), the health views read the
-- pg_stat_* views (in memory). Thresholds live in orderdb.kpi_thresholds / stock_thresholds.
-- Every function a view calls is STABLE or IMMUTABLE (sql/90_grants.sql grants those to
-- orderdb_ops); functions that read tables are SECURITY DEFINER, since orderdb_ops has no table
-- privileges.

-- _ops_level: 'ok', 'warning' or 'critical' for a value against a threshold pair. direction
-- 'max': above warning is a warning, above critical critical; 'min': below. NULL value: 'ok'
-- (nothing to judge). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._ops_level(p_value numeric, p_direction text,
                                              p_warning numeric, p_critical numeric)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE
               WHEN p_value IS NULL THEN 'ok'
               WHEN p_direction = 'max' AND p_value > p_critical THEN 'critical'
               WHEN p_direction = 'max' AND p_value > p_warning THEN 'warning'
               WHEN p_direction = 'min' AND p_value < p_critical THEN 'critical'
               WHEN p_direction = 'min' AND p_value < p_warning THEN 'warning'
               ELSE 'ok'
           END;
$$;
COMMENT ON FUNCTION orderdb._ops_level(numeric, text, numeric, numeric) IS
    'Alert level (ok, warning, critical) of a value against warning/critical bounds (max or min).';

-- _ops_timestamptz: a caller-supplied timestamp (order options such as promised_ship_at) as
-- timestamptz, or NULL when it is missing or not a valid timestamp, so that one malformed order
-- cannot break a view. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._ops_timestamptz(p_value text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    -- the common case (no such option) must not pay for the subtransaction of the block below
    IF p_value IS NULL OR length(p_value) > 64 OR p_value !~ '^\s*\d{4}-\d{2}-\d{2}' THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN p_value::timestamptz;
    EXCEPTION
        WHEN data_exception THEN
            RETURN NULL;
    END;
END;
$$;
COMMENT ON FUNCTION orderdb._ops_timestamptz(text) IS
    'Parses an ISO timestamp from order options; NULL when missing or malformed (never raises).';

-- _order_status_counts: orders per status. Exact (count(*) ... GROUP BY status) while the orders
-- table is small (planner estimate below p_exact_max_rows, or never analyzed); beyond that an
-- estimate from the planner statistics (reltuples x most-common-value frequency; a status outside
-- the MCV list shares the rest evenly), so the funnel never scans a large orders table and needs
-- no index on status (which would stop every status change from being a HOT update).
-- SECURITY DEFINER: pg_stats shows a column's statistics only to roles that may read it.
-- Locks nothing (AccessShareLock on orders for the exact count).
CREATE OR REPLACE FUNCTION orderdb._order_status_counts(p_exact_max_rows bigint DEFAULT 100000)
RETURNS TABLE (status text, orders bigint, estimated boolean)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows     real;
    v_vals     text[];
    v_freqs    real[];
    v_distinct real;
    v_nulls    real;
BEGIN
    SELECT c.reltuples INTO v_rows
      FROM pg_catalog.pg_class c
     WHERE c.oid = 'orderdb.orders'::regclass;
    SELECT s.most_common_vals::text::text[], s.most_common_freqs, s.n_distinct, s.null_frac
      INTO v_vals, v_freqs, v_distinct, v_nulls
      FROM pg_catalog.pg_stats s
     WHERE s.schemaname = 'orderdb' AND s.tablename = 'orders' AND s.attname = 'status'
     LIMIT 1;
    IF v_rows < p_exact_max_rows OR v_vals IS NULL THEN
        -- small, never analyzed (reltuples -1), or no statistics yet: count
        RETURN QUERY
        SELECT o.status, count(*), false
          FROM orderdb.orders o
         GROUP BY o.status;
        RETURN;
    END IF;
    IF v_distinct < 0 THEN
        v_distinct := -v_distinct * v_rows;
    END IF;
    RETURN QUERY
    WITH mcv AS (
        SELECT m.val, m.freq
          FROM unnest(v_vals, v_freqs) AS m(val, freq)
    ), rest AS (
        SELECT greatest(1 - coalesce(sum(m.freq), 0) - coalesce(v_nulls, 0), 0) AS freq,
               greatest(v_distinct - count(*), 1) AS others
          FROM mcv m
    )
    SELECT s.status,
           round(v_rows * coalesce(m.freq, r.freq / r.others))::bigint,
           true
      FROM orderdb.order_statuses s
     CROSS JOIN rest r
      LEFT JOIN mcv m ON m.val = s.status
     WHERE m.val IS NOT NULL OR r.freq > 0;
END;
$$;
COMMENT ON FUNCTION orderdb._order_status_counts(bigint) IS
    'Orders per status: exact on a small orders table, else estimated from planner statistics.';

-- order_funnel: orders per status along the lifecycle (position order), every status listed.
-- orders is exact while the table is small (estimated = false) and a planner-statistics estimate
-- once it holds 100,000 rows or more (estimated = true; as fresh as the last ANALYZE, which
-- autovacuum runs after 5 % of the rows changed). A row: how many orders sit in that status now.
CREATE OR REPLACE VIEW orderdb_ops.order_funnel AS
SELECT s.status,
       coalesce(c.orders, 0) AS orders,
       s.position,
       s.is_terminal,
       coalesce(c.estimated, false) AS estimated
  FROM orderdb.order_statuses s
  LEFT JOIN orderdb._order_status_counts() c ON c.status = s.status
 ORDER BY s.position;
COMMENT ON VIEW orderdb_ops.order_funnel IS
    'Orders per status (exact on a small table, planner estimate beyond 100,000 orders).';

-- low_stock: every (warehouse, sku) whose available quantity (on_hand - reserved) is below its
-- threshold (orderdb.stock_thresholds, else kpi_thresholds stock_available: 10). level critical
-- when nothing is available (below the stock_available critical bound, 1), else warning.
-- Reads one row per stocked sku (no index: available changes with every reservation).
CREATE OR REPLACE VIEW orderdb_ops.low_stock AS
SELECT i.warehouse_id,
       i.sku,
       (i.on_hand - i.reserved) AS available,
       coalesce(st.threshold, d.warning::integer) AS threshold,
       i.on_hand,
       i.reserved,
       CASE WHEN (i.on_hand - i.reserved) < d.critical THEN 'critical' ELSE 'warning' END AS level,
       i.updated_at
  FROM orderdb.inventory_levels i  -- inventory row + stock buckets (sql/25_stock_buckets.sql)
  CROSS JOIN (SELECT k.warning, k.critical
                FROM orderdb.kpi_thresholds k
               WHERE k.metric = 'stock_available') d
  LEFT JOIN orderdb.stock_thresholds st
    ON st.warehouse_id = i.warehouse_id AND st.sku = i.sku
 WHERE (i.on_hand - i.reserved) < coalesce(st.threshold, d.warning::integer);
COMMENT ON VIEW orderdb_ops.low_stock IS
    'SKUs whose available quantity is below their threshold (stock_thresholds, default 10).';

-- table_health: per table of the orderdb schemas (partitions listed one by one), live and dead
-- tuples, the HOT share of updates (NULL before the first update), vacuum and analyze times,
-- size. From pg_stat_user_tables: counters since the last statistics reset.
CREATE OR REPLACE VIEW orderdb_ops.table_health AS
SELECT (t.schemaname || '.' || t.relname) AS table_name,
       t.n_live_tup AS live_tuples,
       t.n_dead_tup AS dead_tuples,
       round(t.n_tup_hot_upd::numeric / nullif(t.n_tup_upd, 0), 4) AS hot_update_ratio,
       t.last_autovacuum,
       round(t.n_dead_tup::numeric / nullif(t.n_live_tup + t.n_dead_tup, 0), 4)
           AS dead_tuple_ratio,
       t.n_tup_upd AS updates,
       t.n_tup_hot_upd AS hot_updates,
       t.n_tup_ins AS inserts,
       t.last_vacuum,
       t.last_autoanalyze,
       t.autovacuum_count,
       pg_catalog.pg_total_relation_size(t.relid) AS total_bytes,
       coalesce((SELECT o.option_value
                   FROM pg_catalog.pg_options_to_table(c.reloptions) o
                  WHERE o.option_name = 'fillfactor'), '100')::integer AS fillfactor
  FROM pg_catalog.pg_stat_user_tables t
  JOIN pg_catalog.pg_class c ON c.oid = t.relid
 WHERE t.schemaname IN ('orderdb', 'orderdb_archive');
COMMENT ON VIEW orderdb_ops.table_health IS
    'Per orderdb table: live/dead tuples, HOT update ratio, autovacuum/analyze times, size.';

-- lock_waits: every session of this database waiting for a heavyweight lock: who blocks it
-- (pg_blocking_pids), since when (pg_locks.waitstart), its query. A row for a second or two is
-- normal contention; minutes mean a stuck or forgotten transaction (see long_transactions).
CREATE OR REPLACE VIEW orderdb_ops.lock_waits AS
SELECT a.pid,
       pg_catalog.pg_blocking_pids(a.pid) AS blocked_by,
       round(extract(epoch FROM now() - w.waitstart)::numeric, 3) AS wait_seconds,
       a.query,
       w.locktype,
       w.mode,
       w.relation::regclass::text AS relation,
       a.datname,
       a.usename,
       a.application_name,
       w.waitstart
  FROM pg_catalog.pg_stat_activity a
  JOIN LATERAL (SELECT l.locktype, l.mode, l.relation, l.waitstart
                  FROM pg_catalog.pg_locks l
                 WHERE l.pid = a.pid AND NOT l.granted
                 ORDER BY l.waitstart NULLS LAST
                 LIMIT 1) w ON true
 WHERE a.wait_event_type = 'Lock'
   AND a.datname = pg_catalog.current_database();
COMMENT ON VIEW orderdb_ops.lock_waits IS
    'Sessions waiting for a lock: blocking pids, seconds waited, query.';

-- long_transactions: sessions (of the whole cluster: a long transaction anywhere holds back
-- vacuum and the outbox horizon) whose transaction is older than the long_transaction_seconds
-- warning bound, or which sit idle in a transaction longer than the idle_in_transaction_seconds
-- warning bound. xact_age: age of the transaction; state_age: time in the current state.
CREATE OR REPLACE VIEW orderdb_ops.long_transactions AS
SELECT a.pid,
       a.state,
       now() - a.xact_start AS xact_age,
       a.query,
       now() - a.state_change AS state_age,
       a.datname,
       a.usename,
       a.application_name,
       a.backend_xid IS NOT NULL AS holds_xid,
       a.xact_start
  FROM pg_catalog.pg_stat_activity a
 CROSS JOIN (SELECT max(k.warning) FILTER (WHERE k.metric = 'long_transaction_seconds') AS long_s,
                    max(k.warning) FILTER (WHERE k.metric = 'idle_in_transaction_seconds') AS idle_s
               FROM orderdb.kpi_thresholds k) th
 WHERE a.xact_start IS NOT NULL
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND a.backend_type = 'client backend'
   AND (now() - a.xact_start > make_interval(secs => th.long_s)
        OR (a.state IN ('idle in transaction', 'idle in transaction (aborted)')
            AND now() - a.state_change > make_interval(secs => th.idle_s)));
COMMENT ON VIEW orderdb_ops.long_transactions IS
    'Transactions open longer than the long_transaction threshold, or idle in transaction too long.';

-- server_health: server-wide figures, one row each (metric, value): the NOTIFY queue in use
-- (pg_notification_queue_usage, 0..1), connections in use and allowed, the age in transactions
-- of this database's oldest unfrozen xid (wraparound: autovacuum forces a freeze at 200 million
-- by default), the database size, this database's sessions waiting for locks, and the oldest
-- open transaction of the whole server (it holds back vacuum and the outbox horizon everywhere).
CREATE OR REPLACE VIEW orderdb_ops.server_health AS
SELECT 'notification_queue_usage'::text AS metric,
       pg_catalog.pg_notification_queue_usage()::numeric AS value
UNION ALL
SELECT 'connections', count(*)::numeric
  FROM pg_catalog.pg_stat_activity a WHERE a.backend_type = 'client backend'
UNION ALL
SELECT 'max_connections', pg_catalog.current_setting('max_connections')::numeric
UNION ALL
SELECT 'xid_age', pg_catalog.age(d.datfrozenxid)::numeric
  FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()
UNION ALL
SELECT 'database_bytes', pg_catalog.pg_database_size(pg_catalog.current_database())::numeric
UNION ALL
SELECT 'lock_waiting_sessions', count(*)::numeric
  FROM pg_catalog.pg_stat_activity a
 WHERE a.wait_event_type = 'Lock' AND a.datname = pg_catalog.current_database()
UNION ALL
SELECT 'oldest_transaction_seconds',
       coalesce(round(extract(epoch FROM now() - min(a.xact_start))::numeric, 3), 0)
  FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_type = 'client backend' AND a.pid <> pg_catalog.pg_backend_pid();
COMMENT ON VIEW orderdb_ops.server_health IS
    'Server-wide health figures: NOTIFY queue usage, connections, xid age, size, lock waits.';
