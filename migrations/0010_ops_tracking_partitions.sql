-- depends: 0010_ops_outbox_partitions 0004_fulfilment
--
-- orderdb.tracking_events becomes range-partitioned by month on event_time — the carrier's time
-- of the event, the only time in its natural key (carrier, tracking_number, event_time,
-- carrier_status), so that key stays one table-wide unique constraint (a partitioned table's
-- unique keys must contain the partition key) and a carrier's resent event is still refused
-- whichever month it comes back in. Writers and readers keep using the same name and columns;
-- `orderdb maintain` makes the monthly partitions ahead (record_tracking_event accepts event
-- times at most a day ahead, so one month ahead is enough) and archives months past their
-- retention (none by default: the carrier events are the customer's timeline).
--
--   * the existing table becomes the partition tracking_events_legacy for every event time before
--     the start of next month (UTC; later if a row is newer); from then on rows go to monthly
--     partitions tracking_events_pYYYYMM (or DEFAULT: months without a partition, and events
--     older than a partition already archived);
--   * primary key (tracking_event_id) -> (tracking_event_id, event_time); the ids stay unique
--     (one identity sequence, continuing where the old one stopped);
--   * the event-id key (carrier, event_id) -> (carrier, event_id, event_time); the same event id
--     with another event time is refused by record_tracking_event, which looks it up under the
--     tracking-number advisory lock it already holds;
--   * the natural key and the two partial indexes (unmatched, unknown) become partitioned
--     indexes; the legacy partition keeps its own in place.
-- Locks: ACCESS EXCLUSIVE on tracking_events for the duration (two unique index builds and one
-- scan for the CHECK that spares ATTACH a second scan). On a large live database, build the two
-- new keys beforehand and this migration finds them:
--   CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tracking_events_part_key
--       ON orderdb.tracking_events (tracking_event_id, event_time);
--   CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tracking_events_event_id_part_key
--       ON orderdb.tracking_events (carrier, event_id, event_time) WHERE event_id IS NOT NULL;

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS tracking_events_part_key
    ON orderdb.tracking_events (tracking_event_id, event_time);
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS tracking_events_event_id_part_key
    ON orderdb.tracking_events (carrier, event_id, event_time) WHERE event_id IS NOT NULL;

DO $convert$
DECLARE
    v_boundary timestamptz;
    v_next_id  bigint;
    v_con      record;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c
         WHERE c.oid = 'orderdb.tracking_events'::regclass) = 'p' THEN
        RETURN;  -- converted already
    END IF;

    -- the legacy partition ends at the start of next month, or after the newest event's month
    SELECT greatest(
               (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC',
               (date_trunc('month', max(te.event_time) AT TIME ZONE 'UTC') + interval '1 month')
                   AT TIME ZONE 'UTC')
      INTO v_boundary
      FROM orderdb.tracking_events te;
    -- where the identity numbering goes on
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
      INTO v_next_id
      FROM orderdb.tracking_events_tracking_event_id_seq s;

    ALTER TABLE orderdb.tracking_events RENAME TO tracking_events_legacy;
    ALTER TABLE orderdb.tracking_events_legacy DROP CONSTRAINT tracking_events_pkey;
    ALTER INDEX orderdb.tracking_events_part_key RENAME TO tracking_events_legacy_pkey;
    ALTER TABLE orderdb.tracking_events_legacy
        ADD CONSTRAINT tracking_events_legacy_pkey PRIMARY KEY USING INDEX tracking_events_legacy_pkey;
    DROP INDEX orderdb.tracking_events_event_id;
    ALTER INDEX orderdb.tracking_events_event_id_part_key RENAME TO tracking_events_legacy_event_id;
    ALTER TABLE orderdb.tracking_events_legacy
        RENAME CONSTRAINT tracking_events_natural_key TO tracking_events_legacy_natural_key;
    ALTER INDEX orderdb.tracking_events_unmatched RENAME TO tracking_events_legacy_unmatched;
    ALTER INDEX orderdb.tracking_events_unknown RENAME TO tracking_events_legacy_unknown;
    -- PostgreSQL 18 names NOT NULL constraints (<table>_<column>_not_null): the legacy table's
    -- get names of their own, so the new table's are the usual ones whatever this table's
    -- history (a rollback and re-apply included); before 18 there are none to rename
    FOR v_con IN
        SELECT c.conname, a.attname
          FROM pg_catalog.pg_constraint c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.conrelid = 'orderdb.tracking_events_legacy'::regclass AND c.contype = 'n'
    LOOP
        EXECUTE format('ALTER TABLE orderdb.tracking_events_legacy RENAME CONSTRAINT %I TO %I',
                       v_con.conname, 'tracking_events_legacy_' || v_con.attname || '_not_null');
    END LOOP;
    ALTER TABLE orderdb.tracking_events_legacy ALTER COLUMN tracking_event_id DROP IDENTITY;
    EXECUTE format('ALTER TABLE orderdb.tracking_events_legacy '
                   'ADD CONSTRAINT tracking_events_legacy_range CHECK (event_time < %L)',
                   v_boundary);

    CREATE TABLE orderdb.tracking_events (
        tracking_event_id bigint GENERATED ALWAYS AS IDENTITY,
        carrier           text NOT NULL,
        tracking_number   text NOT NULL,
        event_time        timestamptz NOT NULL,
        carrier_status    text NOT NULL,
        normalized_status text NOT NULL,
        location          text,
        description       text,
        event_id          text,
        payload           jsonb,
        -- NULL while unmatched (no shipment with this tracking number yet)
        warehouse_id      integer,
        order_id          bigint,
        shipment_id       bigint,
        received_at       timestamptz NOT NULL DEFAULT now(),
        matched_at        timestamptz,
        CONSTRAINT tracking_events_pkey PRIMARY KEY (tracking_event_id, event_time),
        CONSTRAINT tracking_events_natural_key
            UNIQUE (carrier, tracking_number, event_time, carrier_status)
    ) PARTITION BY RANGE (event_time);
    EXECUTE format('ALTER TABLE orderdb.tracking_events ALTER COLUMN tracking_event_id '
                   'RESTART WITH %s', v_next_id);
    CREATE UNIQUE INDEX tracking_events_event_id
        ON orderdb.tracking_events (carrier, event_id, event_time)
        WHERE event_id IS NOT NULL;
    -- unmatched events waiting for their shipment
    CREATE INDEX tracking_events_unmatched
        ON orderdb.tracking_events (carrier, tracking_number)
        WHERE order_id IS NULL;
    -- orderdb_ops.unknown_carrier_codes
    CREATE INDEX tracking_events_unknown
        ON orderdb.tracking_events (carrier, carrier_status)
        WHERE normalized_status = 'unknown';

    EXECUTE format('ALTER TABLE orderdb.tracking_events ATTACH PARTITION '
                   'orderdb.tracking_events_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   v_boundary);
    ALTER TABLE orderdb.tracking_events_legacy DROP CONSTRAINT tracking_events_legacy_range;

    CREATE TABLE orderdb.tracking_events_default PARTITION OF orderdb.tracking_events DEFAULT
        WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
END;
$convert$;

COMMENT ON TABLE orderdb.tracking_events_legacy IS
    'Partition of orderdb.tracking_events: the events of the months before the table was '
    'partitioned (and of that month).';

COMMENT ON TABLE orderdb.tracking_events IS
    'Every carrier event once (deduplicated by (carrier, event_id) or by (carrier, tracking_number, '
    'event_time, carrier_status)); order_id NULL until a shipment with the tracking number exists. '
    'Partitioned by month on event_time (orderdb maintain).';

INSERT INTO orderdb.partition_policy (table_name, premake, retention, archive)
VALUES ('orderdb.tracking_events', 1, NULL, true)
ON CONFLICT (table_name) DO NOTHING;
