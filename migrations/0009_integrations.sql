-- depends: 0004_fulfilment
--
-- Integrations: automatic warehouse choice and reallocation settings, signed HTTP ingestion
-- (one row per carrier / WMS integration with its HMAC secret and rate limit) and scheduled
-- carrier polling (per-carrier interval and back-off, per-shipment polling state), plus the
-- status codes of the built-in simulated carrier (SIM).
--
--   warehouse_priority   how create_order (p_warehouse_id NULL) ranks warehouses that can serve
--                        every line: lower priority first (default 100 without a row);
--                        auto_allocate = false keeps a warehouse out of the automatic choice
--   integrations         who may post to `orderdb ingest serve`: name (the carrier code for
--                        /hooks/carriers/<name>, any name for /hooks/wms), HMAC-SHA256 secret
--                        (owner only: sql/90_grants.sql grants no table to any role), token-bucket
--                        rate (requests per second) and burst
--   carrier_polling      per carrier: polling interval (30 minutes without a row) and error back-off
--   shipment_polls       per shipment: when it was last polled, when it is due, who holds the claim
--
-- Write patterns: all four tables are small and updated in place (fillfactor 90).
-- shipment_polls is indexed on next_poll_at although every poll changes it: a poll happens once
-- per interval per shipment (not per business operation), and without the index every claim
-- would scan every shipment still in transit.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE IF NOT EXISTS orderdb.warehouse_priority (
    warehouse_id  integer PRIMARY KEY CHECK (warehouse_id > 0),
    priority      integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000000),
    auto_allocate boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);

COMMENT ON TABLE orderdb.warehouse_priority IS
    'Automatic warehouse choice (create_order without a warehouse): lower priority first (100 '
    'without a row); auto_allocate = false excludes the warehouse from the automatic choice.';

CREATE TABLE IF NOT EXISTS orderdb.integrations (
    name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    kind       text NOT NULL CHECK (kind IN ('carrier', 'wms')),
    secret     text NOT NULL CHECK (length(secret) BETWEEN 16 AND 255),
    rate       numeric NOT NULL DEFAULT 50 CHECK (rate > 0 AND rate <= 100000),
    burst      integer NOT NULL DEFAULT 100 CHECK (burst BETWEEN 1 AND 1000000),
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);

COMMENT ON TABLE orderdb.integrations IS
    'Carrier and WMS integrations allowed to post to the HTTP ingestion endpoints: HMAC-SHA256 '
    'secret (readable by the owner only), token-bucket rate (per second) and burst.';

CREATE TABLE IF NOT EXISTS orderdb.carrier_polling (
    carrier            text PRIMARY KEY CHECK (length(carrier) BETWEEN 1 AND 255),
    poll_interval      interval NOT NULL DEFAULT '30 minutes'
                       CHECK (poll_interval >= interval '1 second'),
    consecutive_errors integer NOT NULL DEFAULT 0 CHECK (consecutive_errors >= 0),
    backoff_until      timestamptz,
    last_error         text CHECK (length(last_error) <= 1000),
    last_error_at      timestamptz,
    last_success_at    timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);

COMMENT ON TABLE orderdb.carrier_polling IS
    'Per carrier: polling interval (30 minutes without a row) and the error back-off '
    '(consecutive_errors, backoff_until) shared by every poller.';

CREATE TABLE IF NOT EXISTS orderdb.shipment_polls (
    warehouse_id    integer NOT NULL,
    shipment_id     bigint NOT NULL,
    carrier         text NOT NULL,
    tracking_number text NOT NULL,
    next_poll_at    timestamptz NOT NULL DEFAULT '-infinity',
    last_polled_at  timestamptz,
    claimed_by      text CHECK (length(claimed_by) <= 255),
    claimed_until   timestamptz,
    polls           integer NOT NULL DEFAULT 0 CHECK (polls >= 0),
    errors          integer NOT NULL DEFAULT 0 CHECK (errors >= 0),
    last_error      text CHECK (length(last_error) <= 1000),
    done            boolean NOT NULL DEFAULT false,
    PRIMARY KEY (warehouse_id, shipment_id)
) WITH (fillfactor = 90);

COMMENT ON TABLE orderdb.shipment_polls IS
    'Carrier polling state per shipment: due at next_poll_at, claimed by one poller until '
    'claimed_until (FOR UPDATE SKIP LOCKED), done once the shipment is delivered or returned.';

CREATE INDEX IF NOT EXISTS shipment_polls_due
    ON orderdb.shipment_polls (next_poll_at)
    WHERE NOT done;

-- the built-in simulated carrier (orderdb/carriers/simulated.py)
INSERT INTO orderdb.carrier_status_map
       (carrier, carrier_status, normalized_status, description, verified, source) VALUES
    ('SIM', 'ACCEPTED', 'info_received', 'label created, parcel announced', true, 'orderdb simulated carrier'),
    ('SIM', 'PICKED_UP', 'in_transit', 'picked up at the warehouse', true, 'orderdb simulated carrier'),
    ('SIM', 'HUB_SCAN', 'in_transit', 'scanned at a hub', true, 'orderdb simulated carrier'),
    ('SIM', 'OUT_FOR_DELIVERY', 'out_for_delivery', 'with the courier', true, 'orderdb simulated carrier'),
    ('SIM', 'DELIVERY_FAILED', 'failed_attempt', 'recipient not at home', true, 'orderdb simulated carrier'),
    ('SIM', 'DELIVERED', 'delivered', 'signed for', true, 'orderdb simulated carrier'),
    ('SIM', 'RETURNED', 'returned_to_sender', 'back to the sender', true, 'orderdb simulated carrier')
ON CONFLICT (carrier, carrier_status) DO NOTHING;
