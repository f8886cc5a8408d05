-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions 0011_customer_texts 0011_effective_times 0011_sla_late_delivery 0011_wms_event_source 0012_webhook_attempt_details 0013_order_data
--
-- Consumer groups: several members share one stream of the outbox (orderdb.claim_events,
-- orderdb.ack_claimed in sql/52_consumer_groups.sql).
--
--   * event_groups: one row per group; low_tx_id/low_event_id is its low-water mark, the read
--     position (tx_id, event_id) at or before which every event is acknowledged. Claims only read
--     it; it is advanced now and then (by whichever claim finds the acknowledged head long
--     enough and the row not locked by another member), so members never queue on it.
--   * event_group_leases: one row per group and event once the event has been claimed: who holds
--     it (member) until when (leased_until), how often it was handed out (deliveries) and when it
--     was acknowledged (acked_at). Rows at or before the low-water mark are deleted some minutes
--     after their acknowledgement.
-- New tables, no lock on existing ones.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE IF NOT EXISTS orderdb.event_groups (
    group_name   text PRIMARY KEY CHECK (length(group_name) BETWEEN 1 AND 255),
    low_tx_id    xid8 NOT NULL DEFAULT '0'::xid8,
    low_event_id bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    advanced_at  timestamptz
) WITH (fillfactor = 50);

COMMENT ON TABLE orderdb.event_groups IS
    'One row per consumer group: (low_tx_id, low_event_id) is the read position at or before '
    'which the group has acknowledged every event (advanced lazily).';

CREATE TABLE IF NOT EXISTS orderdb.event_group_leases (
    group_name   text NOT NULL,
    event_id     bigint NOT NULL,
    tx_id        xid8 NOT NULL,
    order_id     bigint,
    member       text NOT NULL CHECK (length(member) BETWEEN 1 AND 255),
    leased_at    timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz NOT NULL,
    deliveries   integer NOT NULL DEFAULT 1 CHECK (deliveries >= 1),
    acked_at     timestamptz,
    PRIMARY KEY (group_name, event_id)
) WITH (fillfactor = 70);

-- the group's claimed events in read order (relay_lag, the low-water mark, clean-up)
CREATE INDEX IF NOT EXISTS event_group_leases_read_order
    ON orderdb.event_group_leases (group_name, tx_id, event_id);

COMMENT ON TABLE orderdb.event_group_leases IS
    'Events claimed by a consumer group: the member holding each until leased_until, how often '
    'it was handed out, and when it was acknowledged.';
