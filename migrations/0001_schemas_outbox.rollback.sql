-- Rollback of 0001_schemas_outbox: the last step back removes orderdb entirely, including the
-- repeatable definitions of sql/ that live in these schemas.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-schema
DROP SCHEMA IF EXISTS orderdb_ops CASCADE;
-- squawk-ignore ban-drop-schema
DROP SCHEMA IF EXISTS orderdb CASCADE;
