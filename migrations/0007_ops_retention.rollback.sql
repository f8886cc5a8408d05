-- Rollback of 0007_ops_retention. Archived partitions (orderdb_archive) are kept: they are data.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.partition_policy;
