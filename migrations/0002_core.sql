-- depends: 0001_schemas_outbox
--
-- Core engine: the status list and its allowed edges (the state machine as data), warehouses,
-- inventory counters, the order directory (global keys), orders, order lines (which are also the
-- per-order reservation ledger), status history and stock receipts.
--
-- Write patterns decide the storage settings:
--   * update-heavy (inventory, orders, order_lines): fillfactor 80-90 so updates stay HOT, and no
--     index on a column that every update changes (status, version, reserved, updated_at ...);
--     aggressive per-table autovacuum;
--   * append-only (order_status_history, stock_receipts): fillfactor 100, insert-driven vacuum.
-- Scale-out (DESIGN principle 10): every order- or warehouse-owned table carries warehouse_id first
-- in its primary key; order_directory (keyed by order_id) tells which warehouse holds an order and
-- keeps order numbers and idempotency keys globally unique.
-- Hot-path tables have no foreign keys on purpose: a FK check per inserted line (and the KEY SHARE
-- row lock it takes on the parent) costs more than the rest of the insert; the functions of sql/
-- are the only writers (least privilege) and CHECK constraints guard the counters.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- ---------------------------------------------------------------------------------------------
-- State machine as data
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.order_statuses (
    status      text PRIMARY KEY CHECK (status ~ '^[a-z_]{1,40}$'),
    position    integer NOT NULL UNIQUE,
    is_terminal boolean NOT NULL DEFAULT false,
    description text NOT NULL
);

COMMENT ON TABLE orderdb.order_statuses IS
    'Every order status; position orders them along the lifecycle (for listings).';

INSERT INTO orderdb.order_statuses (status, position, is_terminal, description) VALUES
    ('pending',          10, false, 'created, stock reserved, awaiting confirmation (payment)'),
    ('confirmed',        20, false, 'confirmed, waiting for the warehouse'),
    ('dispatched',       30, false, 'sent to the warehouse for picking'),
    ('picked',           40, false, 'picked in the warehouse'),
    ('packed',           50, false, 'packed, waiting for the carrier'),
    ('shipped',          60, false, 'handed to the carrier; reservations consumed'),
    ('delivering',       70, false, 'in transit / out for delivery'),
    ('delivered',        80, false, 'delivered to the customer'),
    ('completed',        90, true,  'closed after delivery'),
    ('cancelled',       100, true,  'cancelled before shipping; reservations released'),
    ('on_hold',         110, false, 'exception (address, stock, fraud check); returns to the status before the hold'),
    ('delivery_failed', 120, false, 'a delivery attempt failed'),
    ('return_requested',130, false, 'the customer asked to return the goods'),
    ('returning',       140, false, 'goods on their way back to the warehouse'),
    ('returned',        150, true,  'goods back in the warehouse; consumed stock restocked')
ON CONFLICT (status) DO NOTHING;

CREATE TABLE IF NOT EXISTS orderdb.order_transitions (
    from_status text NOT NULL REFERENCES orderdb.order_statuses (status),
    to_status   text NOT NULL REFERENCES orderdb.order_statuses (status),
    PRIMARY KEY (from_status, to_status),
    CHECK (from_status <> to_status)
);

COMMENT ON TABLE orderdb.order_transitions IS
    'Allowed status edges (the state machine as data). Edges out of on_hold are further restricted '
    'by orderdb._apply_transition: only back to the status before the hold, or to cancelled.';

INSERT INTO orderdb.order_transitions (from_status, to_status) VALUES
    ('pending', 'confirmed'),
    ('confirmed', 'dispatched'),
    ('dispatched', 'picked'),
    ('picked', 'packed'),
    ('packed', 'shipped'),
    ('shipped', 'delivering'),
    ('delivering', 'delivered'),
    ('delivered', 'completed'),
    ('pending', 'cancelled'),
    ('confirmed', 'cancelled'),
    ('dispatched', 'cancelled'),
    ('picked', 'cancelled'),
    ('packed', 'cancelled'),
    ('confirmed', 'on_hold'),
    ('dispatched', 'on_hold'),
    ('picked', 'on_hold'),
    ('packed', 'on_hold'),
    ('on_hold', 'confirmed'),
    ('on_hold', 'dispatched'),
    ('on_hold', 'picked'),
    ('on_hold', 'packed'),
    ('on_hold', 'cancelled'),
    ('shipped', 'delivered'),
    ('shipped', 'delivery_failed'),
    ('delivering', 'delivery_failed'),
    ('delivery_failed', 'delivering'),
    ('delivery_failed', 'returning'),
    ('shipped', 'returning'),
    ('delivering', 'returning'),
    ('delivered', 'return_requested'),
    ('return_requested', 'returning'),
    ('returning', 'returned')
ON CONFLICT (from_status, to_status) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Warehouses and inventory
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.warehouses (
    warehouse_id integer PRIMARY KEY CHECK (warehouse_id > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE orderdb.warehouses IS
    'Known warehouses; a warehouse is created by its first orderdb.receive_stock.';

-- One row per (warehouse, sku): the counters that make availability O(1).
-- available = on_hand - reserved. reserved always equals the sum of held reservations
-- (orderdb_ops.inventory_drift proves it).
CREATE TABLE IF NOT EXISTS orderdb.inventory (
    warehouse_id integer NOT NULL REFERENCES orderdb.warehouses (warehouse_id),
    sku          text COLLATE "C" NOT NULL CHECK (length(sku) BETWEEN 1 AND 255),
    on_hand      integer NOT NULL DEFAULT 0,
    reserved     integer NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inventory_pkey PRIMARY KEY (warehouse_id, sku),
    CONSTRAINT inventory_on_hand_nonneg CHECK (on_hand >= 0),
    CONSTRAINT inventory_reserved_nonneg CHECK (reserved >= 0),
    CONSTRAINT inventory_reserved_le_on_hand CHECK (reserved <= on_hand)
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_analyze_scale_factor = 0.05
);

COMMENT ON TABLE orderdb.inventory IS
    'Stock counters per (warehouse_id, sku); rows are locked in (warehouse_id, sku) order.';

-- Append-only record of goods received (who, when, how much).
CREATE TABLE IF NOT EXISTS orderdb.stock_receipts (
    warehouse_id integer NOT NULL,
    receipt_id   bigint GENERATED ALWAYS AS IDENTITY,
    sku          text COLLATE "C" NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    actor        text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, receipt_id)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

-- ---------------------------------------------------------------------------------------------
-- Orders
-- ---------------------------------------------------------------------------------------------

-- Where each order lives, plus the globally unique keys (order number, idempotency key).
-- order_id comes from orderdb.order_id_seq; order_no is derived from the same number.
CREATE TABLE IF NOT EXISTS orderdb.order_directory (
    order_id        bigint GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME orderdb.order_id_seq)
                    PRIMARY KEY,
    warehouse_id    integer NOT NULL,
    order_no        text NOT NULL UNIQUE,
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    bytea,
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
) WITH (fillfactor = 90, autovacuum_vacuum_insert_scale_factor = 0.1);

CREATE UNIQUE INDEX IF NOT EXISTS order_directory_idempotency_key
    ON orderdb.order_directory (idempotency_key) WHERE idempotency_key IS NOT NULL;

COMMENT ON TABLE orderdb.order_directory IS
    'order_id -> warehouse_id lookup (orders can move between warehouses), globally unique '
    'order_no and idempotency_key; request_hash is sha256 of the normalised create request.';

CREATE TABLE IF NOT EXISTS orderdb.orders (
    warehouse_id    integer NOT NULL,
    order_id        bigint NOT NULL,
    order_no        text NOT NULL,
    customer_id     bigint NOT NULL CHECK (customer_id > 0),
    status          text NOT NULL,
    previous_status text,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    options         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, order_id)
) WITH (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.1
);

COMMENT ON TABLE orderdb.orders IS
    'One row per order. status, previous_status, version and updated_at change on every '
    'transition and are deliberately not indexed (HOT updates). previous_status is the status '
    'before the latest transition (for on_hold: the status to return to).';

-- One row per order line; the row is also the line's reservation ledger entry. The four qty_*
-- columns partition the line quantity into ledger states:
--   held     reserved in the warehouse, not yet shipped (sums to inventory.reserved)
--   consumed shipped (left the warehouse)
--   released reservation given back (cancelled before shipping)
--   returned shipped, then came back and was restocked
-- Partial shipments/returns move part of a line between states (orderdb._move_reservations).
CREATE TABLE IF NOT EXISTS orderdb.order_lines (
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    line_no      integer NOT NULL CHECK (line_no BETWEEN 1 AND 500),
    quantity     integer NOT NULL CHECK (quantity > 0),
    unit_price   numeric CHECK (unit_price >= 0),
    qty_held     integer NOT NULL CHECK (qty_held >= 0),
    qty_consumed integer NOT NULL DEFAULT 0 CHECK (qty_consumed >= 0),
    qty_released integer NOT NULL DEFAULT 0 CHECK (qty_released >= 0),
    qty_returned integer NOT NULL DEFAULT 0 CHECK (qty_returned >= 0),
    PRIMARY KEY (warehouse_id, order_id, sku),
    CONSTRAINT order_lines_states_sum
        CHECK (qty_held + qty_consumed + qty_released + qty_returned = quantity)
) WITH (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.1
);

COMMENT ON TABLE orderdb.order_lines IS
    'Order lines, each also the per-order reservation ledger row: qty_held + qty_consumed + '
    'qty_released + qty_returned = quantity.';

-- Append-only: one row per status change (version >= 2). Version 1 (creation) is the orders row
-- itself (created_at, created_by); orderdb.order_history() returns both.
CREATE TABLE IF NOT EXISTS orderdb.order_status_history (
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    version      integer NOT NULL CHECK (version >= 2),
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    actor        text,
    reason       text,
    context      jsonb NOT NULL DEFAULT '{}'::jsonb,
    source       text NOT NULL DEFAULT 'api',
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, order_id, version)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.order_status_history IS
    'Append-only status changes (version >= 2; creation is the orders row). occurred_at: when it '
    'happened (caller-supplied, e.g. WMS occurred_at); changed_at: when it was recorded.';
