-- Rollback of 0010_ops_outbox_partitions: orderdb.outbox back to one plain table with its
-- original key (every partition's rows copied, ids kept, the identity continuing after them;
-- partitions already dropped by retention stay gone). The view orderdb_ops.relay_lag reads the
-- outbox and is dropped with it; `orderdb migrate` defines it again.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DELETE FROM orderdb.partition_policy WHERE table_name = 'orderdb.outbox';

CREATE TABLE orderdb.outbox_flat (
    event_id     bigint GENERATED ALWAYS AS IDENTITY,
    tx_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_type   text NOT NULL,
    order_id     bigint,
    warehouse_id integer,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
INSERT INTO orderdb.outbox_flat (event_id, tx_id, event_type, order_id, warehouse_id, payload,
                                 created_at)
OVERRIDING SYSTEM VALUE
SELECT event_id, tx_id, event_type, order_id, warehouse_id, payload, created_at
  FROM orderdb.outbox;
DO $$
BEGIN
    PERFORM setval('orderdb.outbox_flat_event_id_seq', s.last_value, s.is_called)
       FROM orderdb.outbox_event_id_seq s;
END;
$$;

-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.relay_lag;
-- squawk-ignore ban-drop-table
DROP TABLE orderdb.outbox;
-- squawk-ignore renaming-table
ALTER TABLE orderdb.outbox_flat RENAME TO outbox;
-- squawk-ignore renaming-object
ALTER SEQUENCE orderdb.outbox_flat_event_id_seq RENAME TO outbox_event_id_seq;
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE orderdb.outbox ADD CONSTRAINT outbox_pkey PRIMARY KEY (event_id);
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX outbox_read_order ON orderdb.outbox (tx_id, event_id);
-- PostgreSQL 18 names NOT NULL constraints: back to the names of the original table
DO $$
DECLARE
    v_con record;
BEGIN
    FOR v_con IN
        SELECT c.conname, a.attname
          FROM pg_catalog.pg_constraint c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.conrelid = 'orderdb.outbox'::regclass AND c.contype = 'n'
    LOOP
        EXECUTE format('ALTER TABLE orderdb.outbox RENAME CONSTRAINT %I TO %I',
                       v_con.conname, 'outbox_' || v_con.attname || '_not_null');
    END LOOP;
END;
$$;
