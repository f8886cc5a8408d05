-- Operator views behind the exporter's counters and fulfillment-time sums (docs/operations.md,
-- "Prometheus metrics"). Both are cheap enough for every scrape: activity_totals reads one row
-- per consumer, one count per webhook table and one row per polled shipment; fulfillment_times
-- reads the orders of one KPI window, like fulfillment_kpis.

-- _activity_totals: what only grows, counted where the state lives, so a restart of any process
-- loses nothing (metric, label, value):
--   events_acked          per consumer: events acknowledged (event_consumers.acked_events)
--   webhook_attempts      label success (2xx) / failure: every recorded delivery attempt
--   webhooks_delivered    deliveries that reached a 2xx answer
--   carrier_polls         per carrier: tracking polls made (shipment_polls.polls)
--   carrier_poll_errors   per carrier: polls that failed (shipment_polls.errors)
-- A value goes down only when rows are deleted (drop_consumer, a deleted webhook subscription):
-- Prometheus reads that as a counter reset.
CREATE OR REPLACE FUNCTION orderdb._activity_totals()
RETURNS TABLE (metric text, label text, value bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
ROWS 20
AS $$
SELECT 'events_acked', c.consumer, c.acked_events
  FROM orderdb.event_consumers c
UNION ALL
SELECT 'webhook_attempts', r.result, CASE r.result WHEN 'success' THEN a.ok ELSE a.failed END
  FROM (SELECT count(*) FILTER (WHERE w.status_code BETWEEN 200 AND 299) AS ok,
               count(*) FILTER (WHERE w.status_code IS NULL
                                   OR w.status_code NOT BETWEEN 200 AND 299) AS failed
          FROM orderdb.webhook_attempts w) a
 CROSS JOIN (VALUES ('success'), ('failure')) r (result)
UNION ALL
SELECT 'webhooks_delivered', '', count(*)
  FROM orderdb.webhook_deliveries d
 WHERE d.status = 'delivered'
UNION ALL
SELECT m.metric, p.carrier, CASE m.metric WHEN 'carrier_polls' THEN p.polls ELSE p.errors END
  FROM (SELECT s.carrier, sum(s.polls)::bigint AS polls, sum(s.errors)::bigint AS errors
          FROM orderdb.shipment_polls s
         GROUP BY s.carrier) p
 CROSS JOIN (VALUES ('carrier_polls'), ('carrier_poll_errors')) m (metric);
$$;
COMMENT ON FUNCTION orderdb._activity_totals() IS
    'The rows of orderdb_ops.activity_totals (a function: SECURITY DEFINER).';

CREATE OR REPLACE VIEW orderdb_ops.activity_totals AS
SELECT t.metric, t.label, t.value
  FROM orderdb._activity_totals() t;
COMMENT ON VIEW orderdb_ops.activity_totals IS
    'Totals that only grow (events acknowledged per consumer, webhook attempts and deliveries, '
    'carrier polls and poll errors), read by the exporter as Prometheus counters.';

-- _fulfillment_times: over the window of the avg_fulfillment_hours KPI (kpi_thresholds, default
-- 7 days): the orders created in it and delivered, and the sum of their creation-to-first-delivered
-- times in seconds (effective times, as fulfillment_kpis). sum / count is that KPI's mean; sums
-- and counts of several databases add up.
CREATE OR REPLACE FUNCTION orderdb._fulfillment_times()
RETURNS TABLE (window_size interval, delivered_orders bigint, fulfillment_seconds numeric)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 1
AS $$
WITH w AS (
    SELECT coalesce((SELECT t.window_size FROM orderdb.kpi_thresholds t
                      WHERE t.category = 'fulfillment' AND t.metric = 'avg_fulfillment_hours'),
                    interval '7 days') AS window_size
)
SELECT w.window_size, count(d.delivered_at),
       coalesce(sum(extract(epoch FROM d.delivered_at - o.created_at)), 0)
  FROM w
  LEFT JOIN orderdb.orders o ON o.created_at >= now() - w.window_size
  LEFT JOIN LATERAL (
        SELECT min(h.effective_at) AS delivered_at
          FROM orderdb.order_status_history h
         WHERE h.warehouse_id = o.warehouse_id AND h.order_id = o.order_id
           AND h.to_status = 'delivered') d ON true
 GROUP BY w.window_size;
$$;
COMMENT ON FUNCTION orderdb._fulfillment_times() IS
    'The row of orderdb_ops.fulfillment_times (a function: SECURITY DEFINER, JIT off).';

CREATE OR REPLACE VIEW orderdb_ops.fulfillment_times AS
SELECT f.window_size, f.delivered_orders, f.fulfillment_seconds
  FROM orderdb._fulfillment_times() f;
COMMENT ON VIEW orderdb_ops.fulfillment_times IS
    'Orders created in the avg_fulfillment_hours window and delivered, and the sum of their '
    'creation-to-delivery seconds (the exporter''s sum and count instead of a mean).';
