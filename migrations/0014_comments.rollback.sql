-- Rolls back 0014_comments: the comments it added on the schemas, orderdb.stock_receipts and the
-- DEFAULT partitions. Monthly partitions keep theirs (orderdb maintain comments the ones it
-- makes, whichever migrations are applied).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

COMMENT ON SCHEMA orderdb IS NULL;
COMMENT ON SCHEMA orderdb_ops IS NULL;
COMMENT ON TABLE orderdb.stock_receipts IS NULL;
COMMENT ON TABLE orderdb.outbox_default IS NULL;
COMMENT ON TABLE orderdb.order_status_history_default IS NULL;
COMMENT ON TABLE orderdb.tracking_events_default IS NULL;
