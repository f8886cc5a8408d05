-- Schemas, the transactional outbox and its consumers.
--
-- Outbox rows are written by business functions (orderdb._emit_event) inside their own
-- transaction. tx_id records the writing transaction so that readers can stay behind the oldest
-- transaction still running (pg_snapshot_xmin): identity values are assigned at insert, not at
-- commit, so event_id alone is not a safe cursor.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE SCHEMA IF NOT EXISTS orderdb;
CREATE SCHEMA IF NOT EXISTS orderdb_ops;

CREATE TABLE IF NOT EXISTS orderdb.outbox (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_type   text NOT NULL,
    order_id     bigint,
    warehouse_id integer,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

-- read order: (tx_id, event_id); everything below the snapshot xmin is final
CREATE INDEX IF NOT EXISTS outbox_read_order ON orderdb.outbox (tx_id, event_id);

CREATE TABLE IF NOT EXISTS orderdb.event_consumers (
    consumer      text PRIMARY KEY CHECK (length(consumer) BETWEEN 1 AND 255),
    acked_tx_id   xid8 NOT NULL DEFAULT '0'::xid8,
    acked_event_id bigint NOT NULL DEFAULT 0,
    read_tx_id    xid8 NOT NULL DEFAULT '0'::xid8,
    read_event_id bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
