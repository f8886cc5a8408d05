-- depends: 0003_events
--
-- Fulfilment and tracking: shipments and their lines, the tracking-number directory, every WMS
-- callback (deduplicated by event id), the normalised tracking taxonomy and the carrier code
-- mapping table (seeded for GENERIC, AfterShip, SF, YTO, ZTO, KUAIDI100), carrier tracking events
-- (deduplicated by event id or natural key; unmatched events kept until their shipment appears),
-- hold reasons, customer returns, warehouse locations, couriers and planned routes.
--
-- Write patterns decide the storage settings (DESIGN principle 7):
--   * update-heavy: shipments (status per carrier event), couriers: fillfactor 85, no index on
--     status / last_event_time / updated_at / available;
--   * append-only: shipment_lines, wms_events, tracking_events, order_hold_reasons, route_stops:
--     fillfactor 100 (wms_events and tracking_events rows are updated at most once: the WMS row
--     gets its outcome in the inserting transaction, an unmatched tracking event gets its order
--     when the shipment appears).
-- Scale-out (principle 10): order-owned tables carry warehouse_id first in their primary key.
-- Global keys (WMS event ids, carrier tracking numbers) live in their own tables keyed by the key,
-- like orderdb.order_directory.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- ---------------------------------------------------------------------------------------------
-- Shipments
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.shipments (
    warehouse_id    integer NOT NULL,
    shipment_id     bigint GENERATED ALWAYS AS IDENTITY,
    order_id        bigint NOT NULL,
    carrier         text NOT NULL CHECK (length(carrier) BETWEEN 1 AND 255),
    tracking_number text NOT NULL CHECK (length(tracking_number) BETWEEN 1 AND 255),
    -- normalised status of the newest carrier event ('shipped' until the first one)
    status          text NOT NULL DEFAULT 'shipped',
    shipped_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_event_time timestamptz,
    wms_event_id    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, shipment_id)
) WITH (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.1
);

COMMENT ON TABLE orderdb.shipments IS
    'One row per parcel handed to a carrier (an order may have several: partial shipments). '
    'status, last_event_time and updated_at change with every carrier event and are not indexed.';

CREATE INDEX IF NOT EXISTS shipments_order
    ON orderdb.shipments (warehouse_id, order_id);

-- median transit time per carrier (order_timeline's estimated delivery); delivered_at is set once
CREATE INDEX IF NOT EXISTS shipments_carrier_delivered
    ON orderdb.shipments (carrier, delivered_at)
    WHERE delivered_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS orderdb.shipment_lines (
    warehouse_id integer NOT NULL,
    shipment_id  bigint NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (warehouse_id, shipment_id, sku)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.shipment_lines IS
    'What each shipment carries (sku, quantity); the order lines'' consumed quantities sum these.';

-- (carrier, tracking_number) -> shipment: the global key a carrier event is matched by
CREATE TABLE IF NOT EXISTS orderdb.tracking_numbers (
    carrier         text NOT NULL,
    tracking_number text NOT NULL,
    warehouse_id    integer NOT NULL,
    shipment_id     bigint NOT NULL,
    order_id        bigint NOT NULL,
    PRIMARY KEY (carrier, tracking_number)
) WITH (fillfactor = 100);

COMMENT ON TABLE orderdb.tracking_numbers IS
    'Directory of carrier tracking numbers: (carrier, tracking_number) -> warehouse, shipment, order.';

-- ---------------------------------------------------------------------------------------------
-- WMS callbacks
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.wms_events (
    event_id     text PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 255),
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    event_type   text NOT NULL CHECK (event_type IN ('PICKED', 'PACKED', 'SHIPPED', 'EXCEPTION')),
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL,
    -- applied: moved the order; late: a stage the order had passed; recorded: stored, no change
    -- (repeat of the current stage, on hold, partial shipment); set in the inserting transaction
    outcome      text NOT NULL DEFAULT 'received'
                 CHECK (outcome IN ('received', 'applied', 'late', 'recorded', 'hold_reason_added')),
    status_after text,
    version_after integer,
    received_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.wms_events IS
    'Every WMS callback, late ones included, deduplicated by event_id; outcome tells what it did.';

CREATE INDEX IF NOT EXISTS wms_events_order
    ON orderdb.wms_events (warehouse_id, order_id);

CREATE TABLE IF NOT EXISTS orderdb.order_hold_reasons (
    warehouse_id   integer NOT NULL,
    order_id       bigint NOT NULL,
    hold_reason_id bigint GENERATED ALWAYS AS IDENTITY,
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    wms_event_id   text,
    occurred_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, order_id, hold_reason_id)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.order_hold_reasons IS
    'Why an order is (or was) on hold: one row per exception; the current hold''s reasons are the '
    'rows created since the order last entered on_hold.';

-- ---------------------------------------------------------------------------------------------
-- Tracking taxonomy and carrier mapping
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.tracking_statuses (
    status      text PRIMARY KEY CHECK (status ~ '^[a-z_]{1,40}$'),
    position    integer NOT NULL UNIQUE,
    description text NOT NULL
);

COMMENT ON TABLE orderdb.tracking_statuses IS
    'The normalised tracking taxonomy every carrier code is mapped to.';

INSERT INTO orderdb.tracking_statuses (status, position, description) VALUES
    ('info_received',        10, 'the carrier has the shipment data, not the parcel yet'),
    ('in_transit',           20, 'the carrier has the parcel and it is on its way'),
    ('out_for_delivery',     30, 'with the courier for delivery today'),
    ('failed_attempt',       40, 'a delivery attempt failed (recipient absent, refused, ...)'),
    ('available_for_pickup', 50, 'waiting at a pickup point or locker'),
    ('delivered',            60, 'delivered to the recipient'),
    ('exception',            70, 'a problem the carrier reports (delay, damage, customs, ...)'),
    ('returned_to_sender',   80, 'on its way back to the sender, or back there'),
    ('unknown',              90, 'a carrier code with no mapping yet (see orderdb_ops.unknown_carrier_codes)')
ON CONFLICT (status) DO NOTHING;

CREATE TABLE IF NOT EXISTS orderdb.carrier_status_map (
    carrier           text NOT NULL CHECK (length(carrier) BETWEEN 1 AND 255),
    carrier_status    text NOT NULL CHECK (length(carrier_status) BETWEEN 1 AND 255),
    normalized_status text NOT NULL REFERENCES orderdb.tracking_statuses (status),
    description       text,
    verified          boolean NOT NULL DEFAULT false,
    source            text,
    PRIMARY KEY (carrier, carrier_status)
);

COMMENT ON TABLE orderdb.carrier_status_map IS
    'Carrier status code -> normalised tracking status. Add a carrier with INSERTs; verified tells '
    'whether the code was checked against a public source (source).';

INSERT INTO orderdb.carrier_status_map
       (carrier, carrier_status, normalized_status, description, verified, source) VALUES
    -- GENERIC: the normalised names themselves
    ('GENERIC', 'info_received', 'info_received', 'information received', true, 'orderdb'),
    ('GENERIC', 'in_transit', 'in_transit', 'in transit', true, 'orderdb'),
    ('GENERIC', 'out_for_delivery', 'out_for_delivery', 'out for delivery', true, 'orderdb'),
    ('GENERIC', 'failed_attempt', 'failed_attempt', 'delivery attempt failed', true, 'orderdb'),
    ('GENERIC', 'available_for_pickup', 'available_for_pickup', 'available for pickup', true, 'orderdb'),
    ('GENERIC', 'delivered', 'delivered', 'delivered', true, 'orderdb'),
    ('GENERIC', 'exception', 'exception', 'exception', true, 'orderdb'),
    ('GENERIC', 'returned_to_sender', 'returned_to_sender', 'returned to sender', true, 'orderdb'),
    -- AfterShip delivery status tags
    ('AFTERSHIP', 'Pending', 'info_received', 'pending: no tracking information yet', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'InfoReceived', 'info_received', 'carrier received the request from the shipper', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'InTransit', 'in_transit', 'carrier accepted or picked up the shipment', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'OutForDelivery', 'out_for_delivery', 'about to deliver', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'AttemptFail', 'failed_attempt', 'attempted to deliver but failed', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'Delivered', 'delivered', 'delivered successfully', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'AvailableForPickup', 'available_for_pickup', 'at a pickup point', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'Exception', 'exception', 'custom hold, undelivered, returned or other exception', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    ('AFTERSHIP', 'Expired', 'exception', 'no tracking information for 30 days', true, 'aftership.com/docs/tracking/enum/delivery-statuses'),
    -- SF Express route opCodes (public SF route samples and open-source SF clients)
    ('SF', '50', 'in_transit', '顺丰已收件 / picked up by the courier', true, 'SF route samples (eagle1 sfex.ts)'),
    ('SF', '54', 'in_transit', '已收取快件 / received by carrier', true, 'SF route samples (eagle1 sfex.ts)'),
    ('SF', '30', 'in_transit', '完成分拣 / sorted', true, 'SF route samples'),
    ('SF', '31', 'in_transit', '快件到达 / arrived at facility', true, 'SF route samples'),
    ('SF', '36', 'in_transit', '快件离开 / departed facility', true, 'SF route samples'),
    ('SF', '105', 'in_transit', 'in transit (air/line haul)', true, 'eagle1 sfex.ts'),
    ('SF', '106', 'in_transit', 'arrived at destination city', true, 'eagle1 sfex.ts'),
    ('SF', '310', 'in_transit', 'arrived, in transit', true, 'eagle1 sfex.ts'),
    ('SF', '130', 'in_transit', '已到达目的地网点，即将派件 / at the delivery outlet', true, 'open-source SF constants'),
    ('SF', '44', 'out_for_delivery', '正在派送途中 / out for delivery', false, 'not verified'),
    ('SF', '204', 'out_for_delivery', '派送中 / out for delivery', false, 'not verified'),
    ('SF', '70', 'failed_attempt', '派送不成功 / delivery failed', false, 'not verified (eagle1 maps 70 to arrival at destination)'),
    ('SF', '80', 'delivered', '已签收 / signed for', true, 'SF route samples, open-source SF constants'),
    ('SF', '8000', 'delivered', '已签收 (status) / signed', false, 'not verified'),
    ('SF', '631', 'returned_to_sender', '快件已退回 / returned', true, 'open-source SF constants'),
    ('SF', '648', 'returned_to_sender', '退回 / return to sender', false, 'not verified'),
    ('SF', '99', 'exception', '应客户要求改派/转寄 / redirected on request', false, 'not verified'),
    -- ZTO scan types (中通 trace API scanType)
    ('ZTO', '收件', 'in_transit', 'picked up', true, 'ZTO trace API scanType samples'),
    ('ZTO', '发件', 'in_transit', 'departed', true, 'ZTO trace API scanType samples'),
    ('ZTO', '到件', 'in_transit', 'arrived', true, 'ZTO trace API scanType samples'),
    ('ZTO', '派件', 'out_for_delivery', 'out for delivery', true, 'ZTO trace API scanType samples'),
    ('ZTO', '签收', 'delivered', 'signed for', true, 'ZTO trace API scanType samples'),
    ('ZTO', '第三方签收', 'delivered', 'signed for by a third party (locker, station)', true, 'ZTO trace API scanType samples'),
    ('ZTO', '退件签收', 'returned_to_sender', 'return signed by the sender', true, 'ZTO trace API scanType samples'),
    ('ZTO', '问题件', 'exception', 'problem parcel', false, 'not verified'),
    ('ZTO', '驿站代收', 'available_for_pickup', 'at a parcel station', false, 'not verified for ZTO (seen for STO)'),
    -- YTO scan types (圆通)
    ('YTO', '已收件', 'in_transit', 'picked up', true, 'open-source YTO client constants'),
    ('YTO', '派件中', 'out_for_delivery', 'out for delivery', true, 'open-source YTO client constants'),
    ('YTO', '已签收', 'delivered', 'signed for', true, 'open-source YTO client constants'),
    ('YTO', '已发出', 'in_transit', 'departed', false, 'not verified'),
    ('YTO', '已到达', 'in_transit', 'arrived', false, 'not verified'),
    ('YTO', '派送失败', 'failed_attempt', 'delivery failed', false, 'not verified'),
    ('YTO', '退回', 'returned_to_sender', 'returned', false, 'not verified'),
    -- Kuaidi100 state codes (aggregator for SF, YTO, ZTO, ...)
    ('KUAIDI100', '0', 'in_transit', '在途 / in transit', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '1', 'in_transit', '揽收 / picked up', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '2', 'exception', '疑难 / problem', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '3', 'delivered', '签收 / signed for', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '4', 'returned_to_sender', '退签 / returned, signed by the sender', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '5', 'out_for_delivery', '派件 / out for delivery', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '6', 'returned_to_sender', '退回 / on its way back', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '7', 'in_transit', '转投 / forwarded to another carrier', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '14', 'failed_attempt', '拒签 / refused by the recipient', true, 'kuaidi100-api java-demo QueryTrackResp')
ON CONFLICT (carrier, carrier_status) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Carrier tracking events
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.tracking_events (
    tracking_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    carrier           text NOT NULL,
    tracking_number   text NOT NULL,
    event_time        timestamptz NOT NULL,
    carrier_status    text NOT NULL,
    normalized_status text NOT NULL,
    location          text,
    description       text,
    event_id          text,
    payload           jsonb,
    -- NULL while unmatched (no shipment with this tracking number yet)
    warehouse_id      integer,
    order_id          bigint,
    shipment_id       bigint,
    received_at       timestamptz NOT NULL DEFAULT now(),
    matched_at        timestamptz,
    CONSTRAINT tracking_events_natural_key
        UNIQUE (carrier, tracking_number, event_time, carrier_status)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.tracking_events IS
    'Every carrier event once (deduplicated by (carrier, event_id) or by (carrier, tracking_number, '
    'event_time, carrier_status)); order_id NULL until a shipment with the tracking number exists.';

CREATE UNIQUE INDEX IF NOT EXISTS tracking_events_event_id
    ON orderdb.tracking_events (carrier, event_id)
    WHERE event_id IS NOT NULL;

-- unmatched events waiting for their shipment
CREATE INDEX IF NOT EXISTS tracking_events_unmatched
    ON orderdb.tracking_events (carrier, tracking_number)
    WHERE order_id IS NULL;

-- orderdb_ops.unknown_carrier_codes
CREATE INDEX IF NOT EXISTS tracking_events_unknown
    ON orderdb.tracking_events (carrier, carrier_status)
    WHERE normalized_status = 'unknown';

-- ---------------------------------------------------------------------------------------------
-- Returns
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.order_returns (
    warehouse_id integer NOT NULL,
    return_id    bigint GENERATED ALWAYS AS IDENTITY,
    order_id     bigint NOT NULL,
    lines        jsonb NOT NULL,
    reason       text CHECK (length(reason) <= 1000),
    status       text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'received')),
    requested_by text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    received_at  timestamptz,
    received_lines jsonb,
    PRIMARY KEY (warehouse_id, return_id)
) WITH (fillfactor = 90);

COMMENT ON TABLE orderdb.order_returns IS
    'Customer returns: the lines asked back (request_return) and what arrived (receive_return).';

CREATE INDEX IF NOT EXISTS order_returns_order
    ON orderdb.order_returns (warehouse_id, order_id);

-- ---------------------------------------------------------------------------------------------
-- Couriers and routes
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.warehouse_locations (
    warehouse_id integer PRIMARY KEY,
    lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon          double precision NOT NULL CHECK (lon BETWEEN -180 AND 180)
);

COMMENT ON TABLE orderdb.warehouse_locations IS 'Where each warehouse is (routes start there).';

CREATE TABLE IF NOT EXISTS orderdb.couriers (
    warehouse_id integer NOT NULL,
    courier_id   bigint GENERATED ALWAYS AS IDENTITY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon          double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    capacity     integer NOT NULL CHECK (capacity > 0),
    available    boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, courier_id)
) WITH (fillfactor = 85);

COMMENT ON TABLE orderdb.couriers IS
    'Couriers of a warehouse: position, capacity (stops per route), availability.';

CREATE TABLE IF NOT EXISTS orderdb.routes (
    warehouse_id integer NOT NULL,
    route_id     bigint GENERATED ALWAYS AS IDENTITY,
    courier_id   bigint NOT NULL,
    stops        jsonb NOT NULL,
    stop_count   integer NOT NULL CHECK (stop_count > 0),
    distance_km  numeric NOT NULL CHECK (distance_km >= 0),
    est_minutes  integer NOT NULL CHECK (est_minutes >= 0),
    planned_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, route_id)
) WITH (fillfactor = 100);

COMMENT ON TABLE orderdb.routes IS
    'Planned courier routes: ordered stops (JSONB), estimated distance and time.';

CREATE TABLE IF NOT EXISTS orderdb.route_stops (
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    route_id     bigint NOT NULL,
    seq          integer NOT NULL CHECK (seq > 0),
    PRIMARY KEY (warehouse_id, order_id)
) WITH (fillfactor = 100);

COMMENT ON TABLE orderdb.route_stops IS
    'Which route an order is on (an order is routed once); the primary key guards double routing.';
