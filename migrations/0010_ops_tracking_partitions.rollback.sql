-- Rollback of 0010_ops_tracking_partitions: orderdb.tracking_events back to one plain table with
-- its original keys (every partition's rows copied, ids kept, the identity continuing after
-- them; partitions archived into orderdb_archive stay there). Fails with a unique violation if
-- the same (carrier, event_id) was stored with two event times (possible only while partitioned,
-- through a direct INSERT). The view orderdb_ops.unknown_carrier_codes reads the table and is
-- dropped with it; `orderdb migrate` defines it again.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DELETE FROM orderdb.partition_policy WHERE table_name = 'orderdb.tracking_events';

CREATE TABLE orderdb.tracking_events_flat (
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
    matched_at        timestamptz
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
INSERT INTO orderdb.tracking_events_flat
OVERRIDING SYSTEM VALUE
SELECT tracking_event_id, carrier, tracking_number, event_time, carrier_status, normalized_status,
       location, description, event_id, payload, warehouse_id, order_id, shipment_id,
       received_at, matched_at
  FROM orderdb.tracking_events;
DO $$
BEGIN
    PERFORM setval('orderdb.tracking_events_flat_tracking_event_id_seq', s.last_value,
                   s.is_called)
       FROM orderdb.tracking_events_tracking_event_id_seq s;
END;
$$;

-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.unknown_carrier_codes;
-- squawk-ignore ban-drop-table
DROP TABLE orderdb.tracking_events;
-- squawk-ignore renaming-table
ALTER TABLE orderdb.tracking_events_flat RENAME TO tracking_events;
-- squawk-ignore renaming-object
ALTER SEQUENCE orderdb.tracking_events_flat_tracking_event_id_seq RENAME TO tracking_events_tracking_event_id_seq;
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE orderdb.tracking_events ADD CONSTRAINT tracking_events_pkey
    PRIMARY KEY (tracking_event_id);
-- squawk-ignore constraint-missing-not-valid, disallowed-unique-constraint
ALTER TABLE orderdb.tracking_events ADD CONSTRAINT tracking_events_natural_key
    UNIQUE (carrier, tracking_number, event_time, carrier_status);
COMMENT ON TABLE orderdb.tracking_events IS
    'Every carrier event once (deduplicated by (carrier, event_id) or by (carrier, tracking_number, '
    'event_time, carrier_status)); order_id NULL until a shipment with the tracking number exists.';
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX tracking_events_event_id
    ON orderdb.tracking_events (carrier, event_id)
    WHERE event_id IS NOT NULL;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX tracking_events_unmatched
    ON orderdb.tracking_events (carrier, tracking_number)
    WHERE order_id IS NULL;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX tracking_events_unknown
    ON orderdb.tracking_events (carrier, carrier_status)
    WHERE normalized_status = 'unknown';
-- PostgreSQL 18 names NOT NULL constraints: back to the names of the original table
DO $$
DECLARE
    v_con record;
BEGIN
    FOR v_con IN
        SELECT c.conname, a.attname
          FROM pg_catalog.pg_constraint c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.conrelid = 'orderdb.tracking_events'::regclass AND c.contype = 'n'
    LOOP
        EXECUTE format('ALTER TABLE orderdb.tracking_events RENAME CONSTRAINT %I TO %I',
                       v_con.conname, 'tracking_events_' || v_con.attname || '_not_null');
    END LOOP;
END;
$$;
