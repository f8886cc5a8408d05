-- depends: 0002_core
--
-- Events: consumer bookkeeping beside the outbox of 0001, and webhook subscriptions, their
-- per-event deliveries (a durable queue, one row per subscription and event) and every delivery
-- attempt (an append-only log).
--
-- The relay (orderdb/events.py) reads the outbox with orderdb.read_events, fans each batch out into
-- webhook_deliveries in the same transaction that acknowledges it (so fan-out is exactly once), and
-- a dispatcher posts the deliveries. Deliveries copy the event (type, order, payload): the outbox
-- is purged once every consumer has acknowledged an event, independently of webhook retries.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- when a consumer last acknowledged / was last given events (relay_lag, stale consumers)
ALTER TABLE orderdb.event_consumers
    ADD COLUMN IF NOT EXISTS acked_at timestamptz,
    ADD COLUMN IF NOT EXISTS read_at timestamptz;

COMMENT ON TABLE orderdb.event_consumers IS
    'One row per outbox consumer: acked_* is the acknowledged read position (tx_id, event_id), '
    'read_* the furthest position read_events has returned.';

CREATE TABLE IF NOT EXISTS orderdb.webhook_subscriptions (
    subscription_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url             text NOT NULL CHECK (url ~ '^https?://[^\s]+$' AND length(url) <= 2000),
    -- NULL: every event type
    event_types     text[] CHECK (event_types IS NULL OR cardinality(event_types) BETWEEN 1 AND 100),
    secret          text NOT NULL CHECK (length(secret) BETWEEN 16 AND 255),
    active          boolean NOT NULL DEFAULT true,
    max_attempts    bigint NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 100),
    description     text CHECK (length(description) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE orderdb.webhook_subscriptions IS
    'Webhook endpoints: events whose type is in event_types (NULL: all) are POSTed to url, signed '
    'with secret (X-Orderdb-Signature: sha256=<hex HMAC of the body>); dead-lettered after '
    'max_attempts failed attempts.';

CREATE TABLE IF NOT EXISTS orderdb.webhook_deliveries (
    delivery_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  bigint NOT NULL
                     REFERENCES orderdb.webhook_subscriptions (subscription_id) ON DELETE CASCADE,
    event_id         bigint NOT NULL,
    event_tx_id      xid8 NOT NULL,          -- with event_id: the outbox read order
    event_type       text NOT NULL,
    order_id         bigint,
    payload          jsonb NOT NULL,
    event_created_at timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         bigint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code bigint,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    dead_at          timestamptz,
    CONSTRAINT webhook_deliveries_once UNIQUE (subscription_id, event_id)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);

COMMENT ON TABLE orderdb.webhook_deliveries IS
    'Durable webhook queue: one row per (subscription, event); pending until a 2xx answer '
    '(delivered) or max_attempts failures (dead). Events of one order are delivered one at a time '
    'in outbox read order per subscription.';

-- the dispatcher's claim: due pending deliveries
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON orderdb.webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- per-order ordering: is there an earlier pending delivery of this order for this subscription?
CREATE INDEX IF NOT EXISTS webhook_deliveries_order_queue
    ON orderdb.webhook_deliveries (subscription_id, order_id, event_tx_id, event_id)
    WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS orderdb.webhook_attempts (
    attempt_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL
                 REFERENCES orderdb.webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt      bigint NOT NULL CHECK (attempt >= 1),
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code  bigint,                   -- NULL: no HTTP answer (see error)
    error        text CHECK (length(error) <= 1000),
    duration_ms  bigint CHECK (duration_ms >= 0)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.webhook_attempts IS
    'Every webhook delivery attempt: HTTP status code or error, when, how long it took.';

CREATE INDEX IF NOT EXISTS webhook_attempts_delivery
    ON orderdb.webhook_attempts (delivery_id, attempt);
