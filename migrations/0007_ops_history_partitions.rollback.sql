-- Rollback of 0007_ops_history_partitions: order_status_history back to one plain table with
-- its original primary key (every partition's rows copied; archived partitions in
-- orderdb_archive stay where they are).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DELETE FROM orderdb.partition_policy WHERE table_name = 'orderdb.order_status_history';

CREATE TABLE orderdb.order_status_history_flat (
    LIKE orderdb.order_status_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS
        INCLUDING STORAGE INCLUDING COMMENTS,
    CONSTRAINT order_status_history_flat_pkey PRIMARY KEY (warehouse_id, order_id, version)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);
INSERT INTO orderdb.order_status_history_flat SELECT * FROM orderdb.order_status_history;
-- squawk-ignore ban-drop-table
DROP TABLE orderdb.order_status_history;
-- squawk-ignore renaming-table
ALTER TABLE orderdb.order_status_history_flat RENAME TO order_status_history;
-- squawk-ignore renaming-object
ALTER INDEX orderdb.order_status_history_flat_pkey RENAME TO order_status_history_pkey;
COMMENT ON TABLE orderdb.order_status_history IS
    'Append-only status changes (version >= 2; creation is the orders row). occurred_at: when it '
    'happened (caller-supplied, e.g. WMS occurred_at); changed_at: when it was recorded.';
-- the index of 0007_ops_history_key, so that its rollback finds what it expects
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS order_status_history_part_key
    ON orderdb.order_status_history (warehouse_id, order_id, version, changed_at);
