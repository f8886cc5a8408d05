-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions 0011_customer_texts 0011_effective_times 0011_sla_late_delivery 0011_wms_event_source 0012_webhook_attempt_details 0013_order_data
--
-- Counters the exporter reads (orderdb_ops.activity_totals): the number of events each consumer
-- has acknowledged since it was created, kept by ack_events (purge_events deletes acknowledged
-- events, so they cannot be counted from the outbox). Existing consumers start at 0.
-- A column with a constant default: no table rewrite.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE orderdb.event_consumers
    ADD COLUMN acked_events bigint NOT NULL DEFAULT 0 CHECK (acked_events >= 0);

COMMENT ON COLUMN orderdb.event_consumers.acked_events IS
    'Events this consumer has acknowledged since it was created (only grows; counted by '
    'ack_events; 0 for consumers created before the counter existed).';
