-- depends: 0016_auto_buckets 0016_carrier_kuaidi100 0016_perf_indexes 0016_wms_commands
--
-- order_timeline's read-through cache (docs/tracking.md "The timeline cache", docs/benchmarks.md).
--
-- orderdb.order_timeline_cache keeps the document order_timeline built, per order, locale and
-- session time zone (the document's timestamps are written in the session's zone). A row is
-- served only while its two generations equal the current ones:
--   order_directory.timeline_generation  bumped by the writers of everything one order's document
--                                        reads (row triggers, sql/47_timeline_cache.sql: orders,
--                                        order_status_history, shipments, tracking_events), in the
--                                        writer's transaction;
--   order_timeline_generation.generation bumped by any change of orderdb.customer_texts, a
--                                        TRUNCATE of a source table and a retention that detaches
--                                        a partition (every document at once).
-- A document is stored with the generations read in the same snapshot it was built from, so a
-- writer committing meanwhile leaves it unservable; nothing is ever served stale, and no reader
-- waits for a writer or the other way round. Never stored, computed by the reader: the estimated
-- delivery from the carrier's median transit time (it moves with other orders' deliveries and
-- with now(); the row keeps its inputs) and the courier of the order's route (plan_routes).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- a constant default: no table rewrite (PostgreSQL 11+)
ALTER TABLE orderdb.order_directory
    ADD COLUMN IF NOT EXISTS timeline_generation bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN orderdb.order_directory.timeline_generation IS
    'Bumped by every write to what the order''s timeline document reads (orderdb.order_timeline_cache).';

CREATE TABLE IF NOT EXISTS orderdb.order_timeline_generation (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation bigint NOT NULL DEFAULT 0
);

COMMENT ON TABLE orderdb.order_timeline_generation IS
    'One row: the generation of every cached timeline document (customer texts, TRUNCATE, retention).';

INSERT INTO orderdb.order_timeline_generation (id, generation) VALUES (true, 0)
ON CONFLICT (id) DO NOTHING;

-- Rows are rewritten when a document is rebuilt after a change: room for HOT updates and an eager
-- autovacuum keep the table at about one live row per (order, locale, time zone) read since its
-- last change. toast_tuple_target: a document up to ~8 kB (an order with ~10 entries is ~3 kB)
-- stays in the row uncompressed, so a read neither decompresses nor visits the TOAST table.
CREATE TABLE IF NOT EXISTS orderdb.order_timeline_cache (
    order_id            bigint NOT NULL,
    locale              text NOT NULL,
    time_zone           text NOT NULL,
    generation          bigint NOT NULL,
    texts_generation    bigint NOT NULL,
    customer_id         bigint NOT NULL,
    document            jsonb NOT NULL,
    estimate_carrier    text,
    estimate_shipped_at timestamptz,
    built_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, locale, time_zone)
) WITH (
    fillfactor = 70,
    toast_tuple_target = 8160,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.1
);

COMMENT ON TABLE orderdb.order_timeline_cache IS
    'order_timeline''s documents (read-through, valid while generation = order_directory.'
    'timeline_generation and texts_generation = order_timeline_generation.generation); '
    'estimate_carrier/estimate_shipped_at: the inputs of an estimated delivery computed at read.';
