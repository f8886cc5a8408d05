-- depends: 0007_ops_indexes
--
-- Partitions and retention: which range-partitioned tables `orderdb maintain`
-- (orderdb.maintain_partitions) looks after, and the schema old partitions are moved to.
-- Monthly partitions, named <table>_pYYYYMM, bounds at UTC month starts; the partition key is the
-- table's single timestamptz range key (the time a row was recorded: see docs/operations.md).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE SCHEMA IF NOT EXISTS orderdb_archive;

COMMENT ON SCHEMA orderdb_archive IS
    'Partitions detached by orderdb maintain after their retention (read-only history; drop or '
    'export them when no longer needed).';

CREATE TABLE IF NOT EXISTS orderdb.partition_policy (
    table_name  text PRIMARY KEY CHECK (table_name ~ '^orderdb\.[a-z_][a-z0-9_]{0,50}$'),
    premake     integer NOT NULL DEFAULT 3 CHECK (premake BETWEEN 0 AND 24),
    -- NULL: keep every partition
    retention   interval CHECK (retention >= interval '1 month'),
    -- true: detach into orderdb_archive; false: drop
    archive     boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE orderdb.partition_policy IS
    'Range-partitioned tables kept by orderdb maintain: months made ahead (premake), how long '
    'partitions stay (retention, NULL = forever), archive (detach to orderdb_archive) or drop.';
