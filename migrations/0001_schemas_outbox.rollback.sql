DROP TABLE IF EXISTS orderdb.event_consumers;
DROP TABLE IF EXISTS orderdb.outbox;
DROP SCHEMA IF EXISTS orderdb_ops;
DROP SCHEMA IF EXISTS orderdb;
