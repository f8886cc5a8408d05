-- depends: 0007_ops_history_key
--
-- Step 2: orderdb.order_status_history becomes range-partitioned by month on changed_at (when the
-- row was recorded; never occurred_at, which comes from other clocks and arrives late, and would
-- send a late event into an old, possibly archived month). Writers and readers keep using the
-- same name; `orderdb maintain` (orderdb.maintain_partitions, orderdb.partition_policy) creates
-- the monthly partitions ahead and archives months past their retention (none by default:
-- dropping order history is a business decision).
--
--   * the existing table becomes the partition order_status_history_legacy for everything
--     recorded before the start of next month (UTC); from then on rows go to monthly partitions
--     order_status_history_pYYYYMM (or DEFAULT until `orderdb maintain` has made them);
--   * primary key (warehouse_id, order_id, version) -> (warehouse_id, order_id, version,
--     changed_at): uniqueness of a version per order now holds per partition; the guard that
--     matters is unchanged (_apply_transition's conditional UPDATE of orders.version under the
--     row lock hands out each version once);
--   * the legacy table keeps its data in place: its new key is the index built concurrently by
--     step 1, and a CHECK on changed_at (validated here: one scan of the table, under the lock
--     the rename takes) spares ATTACH a second scan.
-- Locks: ACCESS EXCLUSIVE on the history table for the duration (rename, key swap, one scan).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $convert$
DECLARE
    v_boundary timestamptz :=
        (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c
         WHERE c.oid = 'orderdb.order_status_history'::regclass) = 'p' THEN
        RETURN;  -- converted already
    END IF;

    ALTER TABLE orderdb.order_status_history RENAME TO order_status_history_legacy;
    ALTER TABLE orderdb.order_status_history_legacy
        DROP CONSTRAINT order_status_history_pkey;
    ALTER INDEX orderdb.order_status_history_part_key RENAME TO order_status_history_legacy_pkey;
    ALTER TABLE orderdb.order_status_history_legacy
        ADD CONSTRAINT order_status_history_legacy_pkey
        PRIMARY KEY USING INDEX order_status_history_legacy_pkey;
    EXECUTE format('ALTER TABLE orderdb.order_status_history_legacy '
                   'ADD CONSTRAINT order_status_history_legacy_range CHECK (changed_at < %L)',
                   v_boundary);

    CREATE TABLE orderdb.order_status_history (
        LIKE orderdb.order_status_history_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS
            INCLUDING STORAGE INCLUDING COMMENTS,
        CONSTRAINT order_status_history_pkey PRIMARY KEY (warehouse_id, order_id, version, changed_at)
    ) PARTITION BY RANGE (changed_at);
    ALTER TABLE orderdb.order_status_history DROP CONSTRAINT order_status_history_legacy_range;

    EXECUTE format('ALTER TABLE orderdb.order_status_history ATTACH PARTITION '
                   'orderdb.order_status_history_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   v_boundary);
    ALTER TABLE orderdb.order_status_history_legacy
        DROP CONSTRAINT order_status_history_legacy_range;

    CREATE TABLE orderdb.order_status_history_default
        PARTITION OF orderdb.order_status_history DEFAULT
        WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
END;
$convert$;

COMMENT ON TABLE orderdb.order_status_history_legacy IS
    'Partition of orderdb.order_status_history: the rows recorded before the table was '
    'partitioned (and until the end of that month).';

COMMENT ON TABLE orderdb.order_status_history IS
    'Append-only status changes (version >= 2; creation is the orders row). occurred_at: when it '
    'happened (caller-supplied, e.g. WMS occurred_at); changed_at: when it was recorded. '
    'Partitioned by month on changed_at (orderdb maintain).';

INSERT INTO orderdb.partition_policy (table_name, premake, retention, archive)
VALUES ('orderdb.order_status_history', 3, NULL, true)
ON CONFLICT (table_name) DO NOTHING;
