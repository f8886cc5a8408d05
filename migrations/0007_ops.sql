-- depends: 0003_events
--
-- Operations: SLA rules, KPI and health thresholds, low-stock thresholds (all data, not code) and
-- the record of SLA escalations. The views of sql/60_ops_*.sql and sql/65_ops_*.sql read them;
-- orderdb.sla_check() writes sla_escalations.
--
-- No foreign keys to order or fulfilment tables: escalations outlive nothing they point to, and a
-- FK check would add a row lock on the hot orders table for an ops insert.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- One row per SLA rule (API.md names). threshold: how long before the rule is breached (what it
-- is measured from depends on the rule, see docs/operations.md); critical_after: how long a
-- breach lasts before it is critical instead of warning; escalate_after: how long a breach lasts
-- before orderdb.sla_check() records its action; horizon: how far back (by order creation) the
-- rule looks, so that the view's cost follows the order rate, not the size of the history.
CREATE TABLE IF NOT EXISTS orderdb.sla_rules (
    rule           text PRIMARY KEY CHECK (rule ~ '^[a-z_]{1,63}$'),
    threshold      interval NOT NULL CHECK (threshold > interval '0'),
    enabled        boolean NOT NULL DEFAULT true,
    action         text NOT NULL CHECK (action ~ '^[a-z_]{1,63}$'),
    escalate_after interval NOT NULL DEFAULT interval '0' CHECK (escalate_after >= interval '0'),
    critical_after interval NOT NULL DEFAULT interval '24 hours'
                   CHECK (critical_after >= interval '0'),
    horizon        interval NOT NULL DEFAULT interval '90 days' CHECK (horizon > interval '0'),
    description    text NOT NULL CHECK (length(description) <= 1000),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE orderdb.sla_rules IS
    'SLA rules as data: threshold, on/off, the escalation action, when a breach escalates and '
    'turns critical, and how far back (by order creation) the rule looks.';

INSERT INTO orderdb.sla_rules (rule, threshold, action, escalate_after, critical_after, horizon,
                               description) VALUES
    ('no_tracking_update', interval '48 hours', 'contact_carrier', interval '0',
     interval '24 hours', interval '60 days',
     'shipped or delivering, and no carrier or warehouse event for threshold, measured from the '
     'newest event time (carrier event time, WMS occurred_at)'),
    ('late_shipment', interval '24 hours', 'delay_compensation', interval '24 hours',
     interval '24 hours', interval '30 days',
     'not shipped by options.promised_ship_at, or (without a promise) threshold after confirmation'),
    ('unsigned', interval '3 days', 'satisfaction_survey', interval '0',
     interval '2 days', interval '60 days',
     'out for delivery, and not delivered threshold after the latest out_for_delivery event'),
    ('unpaid', interval '30 minutes', 'payment_reminder', interval '0',
     interval '24 hours', interval '7 days',
     'pending (not confirmed/paid) longer than options.payment_due_by, or threshold after creation')
ON CONFLICT (rule) DO NOTHING;

-- Numeric alert thresholds: fulfilment KPIs, PostgreSQL health, relay. direction 'max': a value
-- above warning is a warning, above critical is critical; 'min': below warning / below critical.
-- window_size: the period a fulfilment KPI is computed over (orders created in it).
CREATE TABLE IF NOT EXISTS orderdb.kpi_thresholds (
    metric      text PRIMARY KEY CHECK (metric ~ '^[a-z_]{1,63}$'),
    category    text NOT NULL CHECK (category IN ('fulfillment', 'health', 'relay', 'stock')),
    direction   text NOT NULL CHECK (direction IN ('max', 'min')),
    warning     numeric NOT NULL,
    critical    numeric NOT NULL,
    unit        text NOT NULL CHECK (unit IN ('ratio', 'hours', 'seconds', 'count')),
    window_size interval CHECK (window_size > interval '0'),
    description text NOT NULL CHECK (length(description) <= 1000),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kpi_thresholds_order CHECK (CASE direction WHEN 'max' THEN critical >= warning
                                                          ELSE critical <= warning END)
);

COMMENT ON TABLE orderdb.kpi_thresholds IS
    'Alert thresholds for fulfilment KPIs, PostgreSQL health and the relay: warning and critical '
    'bounds, direction max (above is bad) or min (below is bad), the KPI window.';

INSERT INTO orderdb.kpi_thresholds (metric, category, direction, warning, critical, unit,
                                    window_size, description) VALUES
    ('delayed_shipment_rate', 'fulfillment', 'max', 0.05, 0.10, 'ratio', interval '7 days',
     'share of the window''s due orders shipped late or still unshipped past their deadline'),
    ('out_of_stock_rate', 'fulfillment', 'max', 0.02, 0.05, 'ratio', interval '7 days',
     'share of the window''s orders with a warehouse OUT_OF_STOCK exception'),
    ('delivery_failure_rate', 'fulfillment', 'max', 0.03, 0.06, 'ratio', interval '7 days',
     'share of the window''s shipped orders with a failed delivery (delivery_failed)'),
    ('avg_fulfillment_hours', 'fulfillment', 'max', 48, 72, 'hours', interval '7 days',
     'mean hours from creation to delivery of the window''s delivered orders'),
    ('on_time_delivery_rate', 'fulfillment', 'min', 0.95, 0.90, 'ratio', interval '7 days',
     'share of the window''s delivered or overdue orders delivered by their promised time'),
    ('stock_available', 'stock', 'min', 10, 1, 'count', NULL,
     'available units of a sku (default low-stock threshold; orderdb.stock_thresholds overrides)'),
    ('dead_tuple_ratio', 'health', 'max', 0.20, 0.40, 'ratio', NULL,
     'dead / (live + dead) tuples of a table (tables with at least 1000 dead tuples)'),
    ('hot_update_ratio', 'health', 'min', 0.80, 0.50, 'ratio', NULL,
     'HOT share of updates of an update-heavy table (tables with at least 1000 updates)'),
    ('lock_wait_seconds', 'health', 'max', 1, 30, 'seconds', NULL,
     'how long a session has waited for a lock'),
    ('long_transaction_seconds', 'health', 'max', 300, 1800, 'seconds', NULL,
     'age of an open transaction'),
    ('idle_in_transaction_seconds', 'health', 'max', 60, 600, 'seconds', NULL,
     'how long a session has sat idle inside an open transaction'),
    ('notification_queue_usage', 'health', 'max', 0.50, 0.80, 'ratio', NULL,
     'pg_notification_queue_usage(): share of the NOTIFY queue in use'),
    ('relay_lag_seconds', 'relay', 'max', 60, 600, 'seconds', NULL,
     'age of the oldest event an outbox consumer has not acknowledged')
ON CONFLICT (metric) DO NOTHING;

-- Per (warehouse, sku) low-stock thresholds; a sku without a row uses the stock_available
-- warning bound of kpi_thresholds (10).
CREATE TABLE IF NOT EXISTS orderdb.stock_thresholds (
    warehouse_id integer NOT NULL CHECK (warehouse_id > 0),
    sku          text COLLATE "C" NOT NULL CHECK (length(sku) BETWEEN 1 AND 255),
    threshold    integer NOT NULL CHECK (threshold >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, sku)
);

COMMENT ON TABLE orderdb.stock_thresholds IS
    'Low-stock threshold per (warehouse_id, sku): available below it is listed in '
    'orderdb_ops.low_stock (default without a row: kpi_thresholds stock_available, 10).';

-- One row per order and rule that orderdb.sla_check() escalated: the action taken (also written
-- to the outbox as an sla.escalated event in the same transaction). The primary key makes an
-- escalation happen at most once per order and rule, also when two checks run at once.
CREATE TABLE IF NOT EXISTS orderdb.sla_escalations (
    order_id       bigint NOT NULL,
    rule           text NOT NULL,
    warehouse_id   integer NOT NULL,
    action         text NOT NULL,
    breached_since timestamptz NOT NULL,
    escalated_at   timestamptz NOT NULL DEFAULT now(),
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (order_id, rule)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.sla_escalations IS
    'SLA escalations: one row per (order, rule), written once by orderdb.sla_check() together '
    'with an sla.escalated outbox event.';

CREATE INDEX IF NOT EXISTS sla_escalations_escalated_at
    ON orderdb.sla_escalations (escalated_at);
