-- depends: 0007_ops_history_partitions
--
-- orderdb.outbox becomes range-partitioned by month on created_at (when the event was written:
-- the writing transaction's now()). Writers (orderdb._emit_event) and readers (read_events,
-- ack_events, purge_events, the relay, relay_lag) keep using the same name and columns;
-- `orderdb maintain` (orderdb.maintain_partitions, orderdb.partition_policy) makes the monthly
-- partitions ahead and drops months past their retention once every consumer has acknowledged
-- every event in them (the rule of purge_events).
--
--   * the existing table becomes the partition outbox_legacy for everything written before the
--     start of next month (UTC; later if a row is newer); from then on rows go to monthly
--     partitions outbox_pYYYYMM (or DEFAULT until `orderdb maintain` has made them);
--   * primary key (event_id) -> (event_id, created_at): a partitioned table's key must contain
--     the partition key. event_id stays unique: one identity sequence hands the ids out, and it
--     continues where the old one stopped;
--   * the read-order index (tx_id, event_id) becomes a partitioned index; the legacy partition
--     keeps its own in place.
-- Locks: ACCESS EXCLUSIVE on the outbox for the duration (one unique index build and one scan
-- for the CHECK that spares ATTACH a second scan). On a large live database, build the new key
-- beforehand and this migration finds it:
--   CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS outbox_part_key
--       ON orderdb.outbox (event_id, created_at);

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS outbox_part_key ON orderdb.outbox (event_id, created_at);

DO $convert$
DECLARE
    v_boundary timestamptz;
    v_next_id  bigint;
    v_con      record;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c
         WHERE c.oid = 'orderdb.outbox'::regclass) = 'p' THEN
        RETURN;  -- converted already
    END IF;

    -- the legacy partition ends at the start of next month, or after the newest row's month
    SELECT greatest(
               (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC',
               (date_trunc('month', max(o.created_at) AT TIME ZONE 'UTC') + interval '1 month')
                   AT TIME ZONE 'UTC')
      INTO v_boundary
      FROM orderdb.outbox o;
    -- where the identity numbering goes on
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
      INTO v_next_id
      FROM orderdb.outbox_event_id_seq s;

    ALTER TABLE orderdb.outbox RENAME TO outbox_legacy;
    ALTER TABLE orderdb.outbox_legacy DROP CONSTRAINT outbox_pkey;
    ALTER INDEX orderdb.outbox_part_key RENAME TO outbox_legacy_pkey;
    ALTER TABLE orderdb.outbox_legacy
        ADD CONSTRAINT outbox_legacy_pkey PRIMARY KEY USING INDEX outbox_legacy_pkey;
    ALTER INDEX orderdb.outbox_read_order RENAME TO outbox_legacy_read_order;
    -- PostgreSQL 18 names NOT NULL constraints (<table>_<column>_not_null): the legacy table's
    -- get names of their own, so the new table's are the usual ones whatever this table's
    -- history (a rollback and re-apply included); before 18 there are none to rename
    FOR v_con IN
        SELECT c.conname, a.attname
          FROM pg_catalog.pg_constraint c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.conrelid = 'orderdb.outbox_legacy'::regclass AND c.contype = 'n'
    LOOP
        EXECUTE format('ALTER TABLE orderdb.outbox_legacy RENAME CONSTRAINT %I TO %I',
                       v_con.conname, 'outbox_legacy_' || v_con.attname || '_not_null');
    END LOOP;
    ALTER TABLE orderdb.outbox_legacy ALTER COLUMN event_id DROP IDENTITY;
    EXECUTE format('ALTER TABLE orderdb.outbox_legacy '
                   'ADD CONSTRAINT outbox_legacy_range CHECK (created_at < %L)', v_boundary);

    CREATE TABLE orderdb.outbox (
        event_id     bigint GENERATED ALWAYS AS IDENTITY,
        tx_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
        event_type   text NOT NULL,
        order_id     bigint,
        warehouse_id integer,
        payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT outbox_pkey PRIMARY KEY (event_id, created_at)
    ) PARTITION BY RANGE (created_at);
    EXECUTE format('ALTER TABLE orderdb.outbox ALTER COLUMN event_id RESTART WITH %s', v_next_id);
    -- read order: (tx_id, event_id); everything below the snapshot xmin is final
    CREATE INDEX outbox_read_order ON orderdb.outbox (tx_id, event_id);

    EXECUTE format('ALTER TABLE orderdb.outbox ATTACH PARTITION orderdb.outbox_legacy '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', v_boundary);
    ALTER TABLE orderdb.outbox_legacy DROP CONSTRAINT outbox_legacy_range;

    CREATE TABLE orderdb.outbox_default PARTITION OF orderdb.outbox DEFAULT
        WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
END;
$convert$;

COMMENT ON TABLE orderdb.outbox_legacy IS
    'Partition of orderdb.outbox: the events written before the table was partitioned (and until '
    'the end of that month).';

COMMENT ON TABLE orderdb.outbox IS
    'Transactional outbox: events written by business functions in their own transaction, read '
    'in (tx_id, event_id) order. Partitioned by month on created_at (orderdb maintain).';

-- the outbox is a transport, not a record: months every consumer has acknowledged go after
-- 3 months (dropped; the order history and tracking events are the record)
INSERT INTO orderdb.partition_policy (table_name, premake, retention, archive)
VALUES ('orderdb.outbox', 1, interval '3 months', false)
ON CONFLICT (table_name) DO NOTHING;
