-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions
--
-- WMS event ids are scoped per source: two WMS integrations may use the same ids without losing
-- each other's events. orderdb.wms_events gets `source` (the integration's name; 'wms' for
-- every callback stored so far, and the default of orderdb.wms_callback's p_source) and its
-- primary key becomes (source, event_id). The key's index is built before the old key is
-- dropped, so the table is never without a unique key on its callbacks.
--
-- Not CONCURRENTLY, for the reason given in 0007_ops_indexes (concurrent `orderdb migrate` runs
-- hold snapshots CREATE INDEX CONCURRENTLY would wait for). On a large live database build it
-- beforehand and this migration finds it:
--   CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS wms_events_source_key
--       ON orderdb.wms_events (source, event_id);
-- (after adding the column with its default, which PostgreSQL 11+ does without a rewrite).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE orderdb.wms_events
    ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'wms';

-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS wms_events_source_key
    ON orderdb.wms_events (source, event_id);

-- the new key's unique index is built above; the next statement makes it the primary key
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.wms_events DROP CONSTRAINT IF EXISTS wms_events_pkey;
ALTER TABLE orderdb.wms_events
    ADD CONSTRAINT wms_events_pkey PRIMARY KEY USING INDEX wms_events_source_key;

COMMENT ON COLUMN orderdb.wms_events.source IS
    'Who sent the callback (the ingestion integration''s name; ''wms'' by default): event ids are '
    'unique per source.';
COMMENT ON TABLE orderdb.wms_events IS
    'Every WMS callback, late ones included, deduplicated by (source, event_id); outcome tells '
    'what it did.';
