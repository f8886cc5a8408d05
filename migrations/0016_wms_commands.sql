-- depends: 0014_comments 0014_ops_counters 0015_consumer_groups
--
-- The outbound WMS command queue (sql/42_wms_commands.sql has its functions and triggers).
--
--   * warehouse_wms: one row per warehouse connected to a WMS: the connector (an entry point of
--     the group orderdb.wms: http, sim, ...), its url, its secret (owner only: sql/90_grants.sql
--     grants no table to any role; `orderdb warehouses list` never shows it), the carrier whose
--     plugin makes waybills for packed orders that have no tracking number, and the connector's
--     other settings. A warehouse without a row queues nothing.
--   * wms_commands: one row per command for a warehouse's WMS (create, update, cancel) or for a
--     carrier (waybill, cancel_waybill), written in the same transaction as the change that
--     causes it (triggers on order_status_history and order_amendments). status: pending (due at
--     next_attempt_at), sending (claimed by leased_by until next_attempt_at, the lease's end),
--     done, dead (failed for good: an alert until `orderdb wms-dispatch retry ID`), skipped
--     (never sent: its order was cancelled before it left, or it was no longer needed).
--     command_id is the idempotency key sent with it and orders the commands of an order.
--
-- Write patterns: wms_commands rows are updated a few times each (claim, outcome): fillfactor
-- 70; the partial indexes cover only the open rows (pending, sending, dead), so they stay small
-- however long the queue's history grows. warehouse_wms is tiny.
-- New tables, no lock on existing ones.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE IF NOT EXISTS orderdb.warehouse_wms (
    warehouse_id integer PRIMARY KEY CHECK (warehouse_id > 0),
    connector    text NOT NULL CHECK (connector ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    url          text CHECK (length(url) BETWEEN 1 AND 2000),
    secret       text CHECK (length(secret) BETWEEN 1 AND 1000),
    carrier      text CHECK (length(carrier) BETWEEN 1 AND 255),
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);

COMMENT ON TABLE orderdb.warehouse_wms IS
    'Warehouses connected to a WMS: connector (entry point of orderdb.wms), url, secret (owner '
    'only, never listed), waybill carrier and connector settings. No row: nothing is queued.';

CREATE TABLE IF NOT EXISTS orderdb.wms_commands (
    command_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    warehouse_id    integer NOT NULL,
    order_id        bigint NOT NULL,
    kind            text NOT NULL
                    CHECK (kind IN ('create', 'update', 'cancel', 'waybill', 'cancel_waybill')),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'done', 'dead', 'skipped')),
    payload         jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    order_version   integer NOT NULL CHECK (order_version >= 1),
    carrier         text CHECK (length(carrier) BETWEEN 1 AND 255),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_by       text CHECK (length(leased_by) BETWEEN 1 AND 255),
    sent_at         timestamptz,
    last_error      text CHECK (length(last_error) <= 2000),
    last_error_at   timestamptz,
    response        jsonb,
    wms_order_id    text CHECK (length(wms_order_id) BETWEEN 1 AND 255),
    tracking_number text CHECK (length(tracking_number) BETWEEN 1 AND 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT wms_commands_finished CHECK ((status IN ('done', 'dead', 'skipped'))
                                            = (finished_at IS NOT NULL)),
    CONSTRAINT wms_commands_leased CHECK ((status = 'sending') = (leased_by IS NOT NULL))
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);

COMMENT ON TABLE orderdb.wms_commands IS
    'Commands for warehouses'' WMSs (create, update, cancel) and carriers (waybill, '
    'cancel_waybill), queued with the change that causes them; command_id is the idempotency '
    'key. pending: due at next_attempt_at; sending: leased until next_attempt_at.';

-- claims: the due ones (pending, or sending with an expired lease) by time
CREATE INDEX IF NOT EXISTS wms_commands_due
    ON orderdb.wms_commands (next_attempt_at) WHERE status IN ('pending', 'sending');
-- an order's commands in order (the per-order rule, the triggers, get_order's wms_order_id)
CREATE INDEX IF NOT EXISTS wms_commands_order ON orderdb.wms_commands (order_id, command_id);
-- the backlog and the dead letters per warehouse (orderdb_ops.wms_backlog, orderdb_ops.alerts)
CREATE INDEX IF NOT EXISTS wms_commands_open
    ON orderdb.wms_commands (warehouse_id, created_at)
    WHERE status IN ('pending', 'sending', 'dead');
