-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions
--
-- orderdb.order_status_history gains effective_at: the time a status change counts as having
-- happened for timelines, the board, SLA rules and KPIs. occurred_at stays as reported (a
-- warehouse's or carrier's clock, possibly behind, possibly late); effective_at is never earlier
-- than the order's previous status change (its effective_at, or orders.created_at for the first
-- change):
--     effective_at(v) = greatest(least(occurred_at(v), changed_at(v)), effective_at(v - 1)),
--     effective_at(1) = created_at
-- i.e. the running maximum of the order's reported times (each capped at the time it was
-- recorded: a clock ahead), starting at its creation. From now on
-- orderdb._record_status_change (sql/30_orders.sql) computes it when the row is written; this
-- migration fills it in for the rows already there.
--   * ADD COLUMN without a default changes no row; the default now() (set afterwards, so no
--     rewrite) only serves writers that do not name the column (none of sql/ after `orderdb
--     migrate`; now() is the time the row is recorded, which is never before the order existed);
--   * the backfill rewrites every history row once (one scan, one update per row; the table is
--     append-only and narrow) under the lock ADD COLUMN takes;
--   * NOT NULL once filled (one more scan, under the same lock).
-- Locks: ACCESS EXCLUSIVE on the history table (all partitions) for the duration.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

-- squawk-ignore adding-field-with-default
ALTER TABLE orderdb.order_status_history ADD COLUMN IF NOT EXISTS effective_at timestamptz;
ALTER TABLE orderdb.order_status_history ALTER COLUMN effective_at SET DEFAULT now();

UPDATE orderdb.order_status_history AS h
   SET effective_at = x.effective_at
  FROM (SELECT r.warehouse_id, r.order_id, r.version, r.changed_at,
               greatest(o.created_at,
                        max(least(r.occurred_at, r.changed_at))
                            OVER (PARTITION BY r.warehouse_id, r.order_id
                                  ORDER BY r.version)) AS effective_at
          FROM orderdb.order_status_history r
          LEFT JOIN orderdb.orders o
            ON o.warehouse_id = r.warehouse_id AND o.order_id = r.order_id) x
 WHERE h.warehouse_id = x.warehouse_id AND h.order_id = x.order_id AND h.version = x.version
   AND h.changed_at = x.changed_at
   AND h.effective_at IS NULL;

-- squawk-ignore adding-not-nullable-field
ALTER TABLE orderdb.order_status_history ALTER COLUMN effective_at SET NOT NULL;

COMMENT ON COLUMN orderdb.order_status_history.effective_at IS
    'When the change counts as having happened: greatest(least(occurred_at, changed_at), the '
    'previous change''s effective_at, or the order''s created_at for the first change). '
    'Timelines, the board, SLA rules and KPIs use it; occurred_at stays as reported.';
