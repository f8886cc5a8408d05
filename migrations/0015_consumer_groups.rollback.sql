-- Rolls back 0015_consumer_groups: drops the consumer group functions, then their tables
-- (orderdb_ops.relay_lag and orderdb._outbox_acked_position read them: they are dropped too and
-- come back, without the groups, when the SQL files of the older release are applied).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.claim_events(text, text, integer, integer);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.ack_claimed(text, text, bigint[]);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.release_claimed(text, text, bigint[]);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._event_group_advance(text, xid8);
-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.relay_lag;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.event_group_leases;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.event_groups;
