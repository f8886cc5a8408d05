-- Operator views: SLA breaches (rules in orderdb.sla_rules) and fulfillment KPIs (thresholds in
-- orderdb.kpi_thresholds).
--
-- Times are the times things happened, not when orderdb heard of them, as *effective* times
-- (docs/tracking.md "Reported and effective times"): a status change's effective_at (its
-- reported occurred_at, never before the order's previous change nor its creation, never after
-- it was recorded); a carrier event's event_time and a WMS callback's occurred_at capped at
-- when they were received, an out-for-delivery scan never before its parcel was handed over.
-- So no rule's clock starts before the step it measures from, and no KPI duration is negative. Promised dates come from the order's options (create_order
-- p_options, ISO 8601 strings): promised_ship_at (alias promised_ship_by), promised_delivery_at
-- (as order_timeline's estimated_delivery; alias promised_delivery_by), payment_due_by (alias
-- payment_due_at). A missing or malformed one is ignored: the rule's default applies.
--
-- Cost (docs/operations.md "Cost"): both views start from orders created within a horizon (per
-- rule: sla_rules.horizon; per KPI: kpi_thresholds.window_size), read through the index
-- orders_created_at_brin (a BRIN index, 0016_perf_indexes; created_at never changes, so status
-- changes stay HOT),
-- and then touch each candidate's history, shipments, WMS and carrier events by their primary
-- keys / order indexes. Nothing scans a whole table.

-- Both views are thin wrappers over SECURITY DEFINER functions (orderdb_ops has no table
-- privileges; the functions are STABLE, so sql/90_grants.sql lets orderdb_ops execute them) that
-- switch JIT off: the planner cannot know how many orders a window or horizon read from a table
-- holds, guesses a third of the table, and JIT-compiling that plan cost more than running it
-- (measured: 0.65 s of 0.95 s on 1M orders).
-- The per-order lookups are LATERAL subqueries (not functions) so that the planner runs them as
-- nested-loop index scans: status history by its primary key prefix (warehouse_id, order_id),
-- shipments and WMS events by their (warehouse_id, order_id) indexes, carrier events by the
-- leading (carrier, tracking_number) columns of their natural key.

-- sla_breaches: one row per order and enabled rule it breaches now; breached_since is the moment
-- the rule's deadline passed. level: critical once the breach is older than the rule's
-- critical_after, else warning. detail: the times the deadline was computed from.
--   unpaid             pending past options.payment_due_by, else threshold after creation
--   late_shipment      not shipped (pending .. packed, on_hold) past options.promised_ship_at,
--                      else threshold after the first confirmation
--   no_tracking_update shipped or delivering, newest of (carrier event_time, WMS occurred_at,
--                      effective time of the change into the current status) older than threshold
--   unsigned           shipped, delivering or delivery_failed, newest out_for_delivery carrier
--                      event older than threshold (and not delivered)
--   late_delivery      shipped, delivering or delivery_failed (not delivered) past
--                      options.promised_delivery_at, else threshold after the first change into
--                      shipped, whatever the carrier reports meanwhile
-- Every rule orderdb.sla_rules may hold (its CHECK sla_rules_known_rule) has a branch here.
CREATE OR REPLACE FUNCTION orderdb._sla_breaches()
RETURNS TABLE (order_id bigint, rule text, breached_since timestamptz, warehouse_id integer,
               order_no text, status text, level text, action text, detail jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 100
AS $$
WITH rules AS (
    SELECT r.rule, r.threshold, r.critical_after, r.horizon, r.action
      FROM orderdb.sla_rules r
     WHERE r.enabled
), candidates AS (
    SELECT o.warehouse_id, o.order_id, o.order_no, o.status, o.created_at, o.options
      FROM orderdb.orders o
     WHERE o.created_at >= now() - (SELECT max(r.horizon) FROM rules r)
       AND o.status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold',
                        'shipped', 'delivering', 'delivery_failed')
), unpaid AS (
    SELECT c.warehouse_id, c.order_id, c.order_no, c.status, r.rule, r.critical_after,
           r.action,
           coalesce(orderdb._ops_timestamptz(coalesce(c.options ->> 'payment_due_by',
                                                        c.options ->> 'payment_due_at')),
                    c.created_at + r.threshold) AS breached_since,
           jsonb_build_object('created_at', c.created_at,
                              'payment_due_by',
                              coalesce(c.options -> 'payment_due_by',
                                       c.options -> 'payment_due_at')) AS detail
      FROM candidates c
      JOIN rules r ON r.rule = 'unpaid' AND c.created_at >= now() - r.horizon
     WHERE c.status = 'pending'
), late AS (
    SELECT c.warehouse_id, c.order_id, c.order_no, c.status, r.rule, r.critical_after,
           r.action,
           coalesce(orderdb._ops_timestamptz(coalesce(c.options ->> 'promised_ship_at',
                                                        c.options ->> 'promised_ship_by')),
                    m.confirmed_at + r.threshold) AS breached_since,
           jsonb_build_object('confirmed_at', m.confirmed_at,
                              'promised_ship_at',
                              coalesce(c.options -> 'promised_ship_at',
                                       c.options -> 'promised_ship_by')) AS detail
      FROM candidates c
      JOIN rules r ON r.rule = 'late_shipment' AND c.created_at >= now() - r.horizon
     CROSS JOIN LATERAL (
            SELECT min(h.effective_at) AS confirmed_at
              FROM orderdb.order_status_history h
             WHERE h.warehouse_id = c.warehouse_id AND h.order_id = c.order_id
               AND h.to_status = 'confirmed') m
     WHERE c.status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold')
), shipped AS (
    SELECT c.*, ct.last_event_at, ct.out_for_delivery_at, m.last_change_at, w.last_wms_at
      FROM candidates c
     CROSS JOIN LATERAL (
            SELECT max(least(t.event_time, t.received_at)) AS last_event_at,
                   max(greatest(least(t.event_time, t.received_at),
                                least(s.shipped_at, s.created_at), c.created_at))
                       FILTER (WHERE t.normalized_status = 'out_for_delivery')
                       AS out_for_delivery_at
              FROM orderdb.shipments s
              JOIN orderdb.tracking_events t
                ON t.carrier = s.carrier AND t.tracking_number = s.tracking_number
             WHERE s.warehouse_id = c.warehouse_id AND s.order_id = c.order_id) ct
     LEFT JOIN LATERAL (
            SELECT h.effective_at AS last_change_at
              FROM orderdb.order_status_history h
             WHERE h.warehouse_id = c.warehouse_id AND h.order_id = c.order_id
             ORDER BY h.version DESC
             LIMIT 1) m ON true
     CROSS JOIN LATERAL (
            SELECT max(least(we.occurred_at, we.received_at)) AS last_wms_at
              FROM orderdb.wms_events we
             WHERE we.warehouse_id = c.warehouse_id AND we.order_id = c.order_id) w
     WHERE c.status IN ('shipped', 'delivering', 'delivery_failed')
), stale AS (
    SELECT s.warehouse_id, s.order_id, s.order_no, s.status, r.rule, r.critical_after, r.action,
           greatest(s.last_event_at, s.last_wms_at, s.last_change_at) + r.threshold
               AS breached_since,
           jsonb_build_object('last_carrier_event_at', s.last_event_at,
                              'last_wms_event_at', s.last_wms_at,
                              'last_status_change_at', s.last_change_at) AS detail
      FROM shipped s
      JOIN rules r ON r.rule = 'no_tracking_update' AND s.created_at >= now() - r.horizon
     WHERE s.status IN ('shipped', 'delivering')
), unsigned AS (
    SELECT s.warehouse_id, s.order_id, s.order_no, s.status, r.rule, r.critical_after, r.action,
           s.out_for_delivery_at + r.threshold AS breached_since,
           jsonb_build_object('out_for_delivery_at', s.out_for_delivery_at) AS detail
      FROM shipped s
      JOIN rules r ON r.rule = 'unsigned' AND s.created_at >= now() - r.horizon
     WHERE s.out_for_delivery_at IS NOT NULL
), overdue AS (
    SELECT c.warehouse_id, c.order_id, c.order_no, c.status, r.rule, r.critical_after,
           r.action,
           coalesce(orderdb._ops_timestamptz(coalesce(c.options ->> 'promised_delivery_at',
                                                        c.options ->> 'promised_delivery_by')),
                    m.shipped_at + r.threshold) AS breached_since,
           jsonb_build_object('shipped_at', m.shipped_at,
                              'promised_delivery_at',
                              coalesce(c.options -> 'promised_delivery_at',
                                       c.options -> 'promised_delivery_by')) AS detail
      FROM candidates c
      JOIN rules r ON r.rule = 'late_delivery' AND c.created_at >= now() - r.horizon
     CROSS JOIN LATERAL (
            SELECT min(h.effective_at) AS shipped_at
              FROM orderdb.order_status_history h
             WHERE h.warehouse_id = c.warehouse_id AND h.order_id = c.order_id
               AND h.to_status = 'shipped') m
     WHERE c.status IN ('shipped', 'delivering', 'delivery_failed')
), breaches AS (
    SELECT * FROM unpaid
    UNION ALL SELECT * FROM late
    UNION ALL SELECT * FROM stale
    UNION ALL SELECT * FROM unsigned
    UNION ALL SELECT * FROM overdue
)
SELECT b.order_id,
       b.rule,
       b.breached_since,
       b.warehouse_id,
       b.order_no,
       b.status,
       CASE WHEN now() - b.breached_since >= b.critical_after THEN 'critical' ELSE 'warning' END
           AS level,
       b.action,
       b.detail
  FROM breaches b
 WHERE b.breached_since <= now();
$$;
COMMENT ON FUNCTION orderdb._sla_breaches() IS
    'The rows of orderdb_ops.sla_breaches (a function: SECURITY DEFINER, JIT off).';

CREATE OR REPLACE VIEW orderdb_ops.sla_breaches AS
SELECT b.order_id, b.rule, b.breached_since, b.warehouse_id, b.order_no, b.status, b.level,
       b.action, b.detail
  FROM orderdb._sla_breaches() b;
COMMENT ON VIEW orderdb_ops.sla_breaches IS
    'Orders breaching an enabled SLA rule now (unpaid, late_shipment, no_tracking_update, '
    'unsigned, late_delivery), since when, and how badly.';

-- fulfillment_kpis: one row per fulfillment KPI of kpi_thresholds, over the orders created in
-- its window (window_size, default 7 days). value is a ratio (0..1) or hours; threshold is the
-- target (the warning bound); level ok / warning / critical (kpi_thresholds direction, warning,
-- critical); sample is the number of orders the value is computed over (0: value NULL, ok).
--   delayed_shipment_rate  orders shipped after their deadline, or unshipped past it, over the
--                          orders shipped or past their deadline (deadline as in late_shipment;
--                          cancelled orders excluded)
--   out_of_stock_rate      orders with a WMS EXCEPTION of exception_type OUT_OF_STOCK
--   delivery_failure_rate  shipped orders that went to delivery_failed at least once
--   avg_fulfillment_hours  creation to first delivered, over the delivered orders
--   on_time_delivery_rate  delivered by options.promised_delivery_at (else created_at + the
--                          metric's promise, 3 days), over the delivered orders and the
--                          undelivered ones past their promise (cancelled excluded)
CREATE OR REPLACE FUNCTION orderdb._fulfillment_kpis()
RETURNS TABLE (metric text, value numeric, threshold numeric, level text, critical numeric,
               direction text, unit text, window_size interval, sample bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 5
AS $$
WITH k AS (
    SELECT t.metric, t.direction, t.warning, t.critical, t.unit,
           coalesce(t.window_size, interval '7 days') AS window_size
      FROM orderdb.kpi_thresholds t
     WHERE t.category = 'fulfillment'
), params AS (
    SELECT coalesce((SELECT r.threshold FROM orderdb.sla_rules r WHERE r.rule = 'late_shipment'),
                    interval '24 hours') AS late_threshold,
           (SELECT max(k.window_size) FROM k) AS max_window,
           now() - (SELECT k.window_size FROM k WHERE k.metric = 'delayed_shipment_rate')
               AS since_delayed,
           now() - (SELECT k.window_size FROM k WHERE k.metric = 'out_of_stock_rate')
               AS since_oos,
           now() - (SELECT k.window_size FROM k WHERE k.metric = 'delivery_failure_rate')
               AS since_failure,
           now() - (SELECT k.window_size FROM k WHERE k.metric = 'avg_fulfillment_hours')
               AS since_fulfil,
           now() - (SELECT k.window_size FROM k WHERE k.metric = 'on_time_delivery_rate')
               AS since_on_time
), cohort AS MATERIALIZED (
    SELECT o.created_at,
           o.status <> 'cancelled' AS open_or_done,
           m.shipped_at,
           m.delivered_at,
           m.failed_delivery,
           coalesce(orderdb._ops_timestamptz(coalesce(o.options ->> 'promised_ship_at',
                                                        o.options ->> 'promised_ship_by')),
                    m.confirmed_at + p.late_threshold) AS ship_deadline,
           coalesce(orderdb._ops_timestamptz(coalesce(o.options ->> 'promised_delivery_at',
                                                        o.options ->> 'promised_delivery_by')),
                    o.created_at + interval '3 days') AS delivery_deadline,
           x.out_of_stock IS NOT NULL AS out_of_stock
      FROM params p
      JOIN orderdb.orders o ON o.created_at >= now() - p.max_window
     CROSS JOIN LATERAL (
            SELECT min(h.effective_at) FILTER (WHERE h.to_status = 'confirmed') AS confirmed_at,
                   min(h.effective_at) FILTER (WHERE h.to_status = 'shipped') AS shipped_at,
                   min(h.effective_at) FILTER (WHERE h.to_status = 'delivered') AS delivered_at,
                   coalesce(bool_or(h.to_status = 'delivery_failed'), false) AS failed_delivery
              FROM orderdb.order_status_history h
             WHERE h.warehouse_id = o.warehouse_id AND h.order_id = o.order_id) m
      LEFT JOIN LATERAL (
            SELECT true AS out_of_stock
              FROM orderdb.wms_events w
             WHERE w.warehouse_id = o.warehouse_id AND w.order_id = o.order_id
               AND w.event_type = 'EXCEPTION'
               AND w.payload ->> 'exception_type' = 'OUT_OF_STOCK'
             LIMIT 1) x ON true
), agg AS MATERIALIZED (
    SELECT
        -- delayed_shipment_rate: due = shipped, or still open past the deadline
        count(*) FILTER (WHERE c.created_at >= p.since_delayed AND c.ship_deadline IS NOT NULL
                           AND (c.shipped_at > c.ship_deadline
                                OR (c.shipped_at IS NULL AND c.open_or_done
                                    AND c.ship_deadline < now()))) AS delayed,
        count(*) FILTER (WHERE c.created_at >= p.since_delayed AND c.ship_deadline IS NOT NULL
                           AND (c.shipped_at IS NOT NULL
                                OR (c.open_or_done AND c.ship_deadline < now()))) AS due,
        count(*) FILTER (WHERE c.created_at >= p.since_oos AND c.out_of_stock) AS oos,
        count(*) FILTER (WHERE c.created_at >= p.since_oos) AS created,
        count(*) FILTER (WHERE c.created_at >= p.since_failure AND c.shipped_at IS NOT NULL
                           AND c.failed_delivery) AS failed,
        count(*) FILTER (WHERE c.created_at >= p.since_failure AND c.shipped_at IS NOT NULL)
            AS shipped,
        avg(extract(epoch FROM c.delivered_at - c.created_at) / 3600)
            FILTER (WHERE c.created_at >= p.since_fulfil AND c.delivered_at IS NOT NULL)
            AS fulfil_hours,
        count(*) FILTER (WHERE c.created_at >= p.since_fulfil AND c.delivered_at IS NOT NULL)
            AS delivered,
        count(*) FILTER (WHERE c.created_at >= p.since_on_time
                           AND c.delivered_at <= c.delivery_deadline) AS on_time,
        count(*) FILTER (WHERE c.created_at >= p.since_on_time
                           AND (c.delivered_at IS NOT NULL
                                OR (c.open_or_done AND c.delivery_deadline < now())))
            AS delivery_due
      FROM params p
      LEFT JOIN cohort c ON true
)
SELECT k.metric,
       round(v.value, 4) AS value,
       k.warning AS threshold,
       orderdb._ops_level(round(v.value, 4), k.direction, k.warning, k.critical) AS level,
       k.critical,
       k.direction,
       k.unit,
       k.window_size,
       v.sample
  FROM k
 CROSS JOIN agg a
 CROSS JOIN LATERAL (
        SELECT CASE k.metric
                 WHEN 'delayed_shipment_rate' THEN a.delayed::numeric / nullif(a.due, 0)
                 WHEN 'out_of_stock_rate' THEN a.oos::numeric / nullif(a.created, 0)
                 WHEN 'delivery_failure_rate' THEN a.failed::numeric / nullif(a.shipped, 0)
                 WHEN 'avg_fulfillment_hours' THEN a.fulfil_hours
                 WHEN 'on_time_delivery_rate' THEN a.on_time::numeric / nullif(a.delivery_due, 0)
               END AS value,
               CASE k.metric
                 WHEN 'delayed_shipment_rate' THEN a.due
                 WHEN 'out_of_stock_rate' THEN a.created
                 WHEN 'delivery_failure_rate' THEN a.shipped
                 WHEN 'avg_fulfillment_hours' THEN a.delivered
                 WHEN 'on_time_delivery_rate' THEN a.delivery_due
                 ELSE 0
               END AS sample) v
 ORDER BY k.metric;
$$;
COMMENT ON FUNCTION orderdb._fulfillment_kpis() IS
    'The rows of orderdb_ops.fulfillment_kpis (a function: SECURITY DEFINER, JIT off).';

CREATE OR REPLACE VIEW orderdb_ops.fulfillment_kpis AS
SELECT f.metric, f.value, f.threshold, f.level, f.critical, f.direction, f.unit, f.window_size,
       f.sample
  FROM orderdb._fulfillment_kpis() f;
COMMENT ON VIEW orderdb_ops.fulfillment_kpis IS
    'Fulfillment KPIs over their window (orders created in it) with target and alert level.';
