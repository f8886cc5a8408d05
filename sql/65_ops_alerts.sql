-- Operator alerts (every problem the ops views know of, in one list) and SLA escalation
-- (orderdb.sla_check: one recorded action per order and rule, for pg_cron or `orderdb sla-check`).

-- alerts: one row per problem that needs an operator, level warning or critical, newest state:
--   source 'kpi'              a fulfillment KPI outside its target (subject: the metric)
--   source 'sla'              an SLA rule with breaching orders (subject: the rule; message: how
--                             many, the oldest ones; since: the oldest breach)
--   source 'carrier'          an open parcel whose newest carrier event is an exception (critical)
--                             or a failed delivery attempt (warning), until a later event moves it
--                             on (subject: the order number; message: carrier, tracking number,
--                             location, what the carrier said; since: the event time, or when
--                             it was received if that is earlier). One row
--                             per parcel. Open: not delivered, its order not delivered or closed.
--                             Read from the partial index tracking_events_problem (events of the
--                             longest enabled SLA horizon, 60 days by default), then each parcel
--                             and order by primary key: the cost follows the recent exceptions.
--   source 'hold'             an order on hold for ADDRESS_INCOMPLETE (a warehouse exception of
--                             its current hold) whose ship_to was amended after that reason
--                             (orderdb.amend_order): warning, message 'address fixed: ready to
--                             resume ...', since: the amendment; until the order leaves on_hold.
--                             Read from the partial index order_amendments_ship_to (ship_to
--                             amendments of the last 90 days), then each order by primary key.
--   source 'stock'            a sku below its low-stock threshold (subject: warehouse/sku)
--   source 'inventory_drift'  a reserved counter that disagrees with the reservation ledger
--   source 'relay'            an outbox consumer whose oldest unacknowledged event is too old
--   source 'table'            a table with too many dead tuples, or too few HOT updates
--   source 'lock_wait'        a session waiting for a lock longer than lock_wait_seconds
--   source 'transaction'      a long transaction, or a session idle in a transaction too long
--   source 'notification_queue' the NOTIFY queue fuller than notification_queue_usage
--   source 'wms'              dead WMS commands of a warehouse (critical; subject 'warehouse N';
--                             orderdb._wms_dead_letter_alerts, sql/42_wms_commands.sql)
-- since: when the condition started (as far as it is known; now() for computed figures).
-- A wrapper over a SECURITY DEFINER function with JIT off, like sla_breaches (sql/60_ops_sla.sql).
CREATE OR REPLACE FUNCTION orderdb._alerts()
RETURNS TABLE (source text, subject text, level text, message text, since timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 20
AS $$
WITH th AS (
    SELECT t.metric, t.direction, t.warning, t.critical
      FROM orderdb.kpi_thresholds t
)
SELECT 'kpi'::text AS source,
       k.metric AS subject,
       k.level,
       format('%s is %s (target %s %s, critical %s %s, %s orders over %s)', k.metric, k.value,
              CASE k.direction WHEN 'max' THEN '<=' ELSE '>=' END, k.threshold,
              CASE k.direction WHEN 'max' THEN '>' ELSE '<' END, k.critical, k.sample,
              k.window_size) AS message,
       now() AS since
  FROM orderdb_ops.fulfillment_kpis k
 WHERE k.level <> 'ok'
UNION ALL
SELECT 'sla',
       b.rule,
       CASE WHEN bool_or(b.level = 'critical') THEN 'critical' ELSE 'warning' END,
       format('%s order(s) breach %s (%s critical); oldest: %s', count(*), b.rule,
              count(*) FILTER (WHERE b.level = 'critical'),
              array_to_string((array_agg(b.order_id ORDER BY b.breached_since, b.order_id))[1:5],
                              ', ')),
       min(b.breached_since)
  FROM orderdb_ops.sla_breaches b
 GROUP BY b.rule
UNION ALL
SELECT 'carrier',
       p.order_no,
       CASE p.normalized_status WHEN 'exception' THEN 'critical' ELSE 'warning' END,
       format('%s: parcel %s %s%s, %s', CASE p.normalized_status
                                          WHEN 'exception' THEN 'carrier exception'
                                          ELSE 'delivery attempt failed' END,
              p.carrier, p.tracking_number,
              CASE WHEN p.location IS NOT NULL THEN ' at ' || left(p.location, 100) ELSE '' END,
              left(coalesce(p.description, p.carrier_status), 200)),
       least(p.event_time, p.received_at)
  FROM (SELECT DISTINCT ON (s.warehouse_id, s.shipment_id)
               o.order_no, s.carrier, s.tracking_number, te.normalized_status,
               te.carrier_status, te.location, te.description, te.event_time, te.received_at
          FROM orderdb.tracking_events te
          JOIN orderdb.shipments s
            ON s.warehouse_id = te.warehouse_id AND s.shipment_id = te.shipment_id
          JOIN orderdb.orders o ON o.warehouse_id = s.warehouse_id AND o.order_id = s.order_id
         WHERE te.normalized_status IN ('exception', 'failed_attempt')
           AND te.event_time >= (SELECT now() - coalesce(max(r.horizon), interval '90 days')
                                   FROM orderdb.sla_rules r
                                  WHERE r.enabled)
           -- still the parcel's newest event, the parcel not delivered, the order not done
           AND s.last_event_time = te.event_time
           AND s.status = te.normalized_status
           AND s.delivered_at IS NULL
           AND o.status NOT IN ('delivered', 'completed', 'cancelled', 'returned')
         ORDER BY s.warehouse_id, s.shipment_id, te.tracking_event_id DESC) p
UNION ALL
SELECT 'hold',
       x.order_no,
       'warning',
       format('address fixed: ready to resume (on hold for ADDRESS_INCOMPLETE; ship_to amended%s '
              'at %s)', coalesce(' by ' || left(x.actor, 100), ''), x.changed_at),
       x.changed_at
  FROM (SELECT DISTINCT ON (a.warehouse_id, a.order_id) o.order_no, a.actor, a.changed_at
          FROM orderdb.order_amendments a
          JOIN orderdb.orders o ON o.warehouse_id = a.warehouse_id AND o.order_id = a.order_id
         WHERE a.changes ? 'ship_to'
           AND a.changed_at >= now() - interval '90 days'
           AND o.status = 'on_hold'
           AND EXISTS (SELECT 1
                         FROM orderdb.order_hold_reasons r
                        WHERE r.warehouse_id = o.warehouse_id AND r.order_id = o.order_id
                          AND r.reason = 'ADDRESS_INCOMPLETE'
                          AND r.created_at <= a.changed_at
                          -- a reason of the current hold: since the order last went on hold
                          AND r.created_at >= (SELECT max(h.changed_at)
                                                 FROM orderdb.order_status_history h
                                                WHERE h.warehouse_id = o.warehouse_id
                                                  AND h.order_id = o.order_id
                                                  AND h.to_status = 'on_hold'))
         ORDER BY a.warehouse_id, a.order_id, a.version DESC) x
UNION ALL
SELECT 'stock',
       format('warehouse %s / %s', s.warehouse_id, s.sku),
       s.level,
       format('available %s below threshold %s (on hand %s, reserved %s)', s.available,
              s.threshold, s.on_hand, s.reserved),
       s.updated_at
  FROM orderdb_ops.low_stock s
UNION ALL
SELECT 'inventory_drift',
       format('warehouse %s / %s', d.warehouse_id, d.sku),
       'critical',
       format('counters disagree with the ledgers: %s',
              (to_jsonb(d) - 'warehouse_id' - 'sku')::text),
       now()
  FROM orderdb_ops.inventory_drift d
UNION ALL
SELECT 'relay',
       r.consumer,
       orderdb._ops_level(extract(epoch FROM r.oldest_pending_age)::numeric, th.direction,
                          th.warning, th.critical),
       format('%s pending event(s), oldest %s old', r.pending_events,
              date_trunc('second', r.oldest_pending_age)),
       now() - r.oldest_pending_age
  FROM orderdb_ops.relay_lag r
  JOIN th ON th.metric = 'relay_lag_seconds'
 WHERE extract(epoch FROM r.oldest_pending_age) > th.warning
UNION ALL
SELECT 'table',
       h.table_name,
       orderdb._ops_level(h.dead_tuple_ratio, th.direction, th.warning, th.critical),
       format('dead tuples %s of %s (ratio %s), last autovacuum %s', h.dead_tuples,
              h.live_tuples + h.dead_tuples, h.dead_tuple_ratio,
              coalesce(h.last_autovacuum::text, 'never')),
       coalesce(h.last_autovacuum, h.last_vacuum)
  FROM orderdb_ops.table_health h
  JOIN th ON th.metric = 'dead_tuple_ratio'
 WHERE h.dead_tuples >= 1000 AND h.dead_tuple_ratio > th.warning
UNION ALL
SELECT 'table',
       h.table_name,
       orderdb._ops_level(h.hot_update_ratio, th.direction, th.warning, th.critical),
       format('HOT updates %s of %s (ratio %s, fillfactor %s)', h.hot_updates, h.updates,
              h.hot_update_ratio, h.fillfactor),
       NULL::timestamptz
  FROM orderdb_ops.table_health h
  JOIN th ON th.metric = 'hot_update_ratio'
 WHERE h.updates >= 1000 AND h.hot_update_ratio < th.warning
UNION ALL
SELECT 'lock_wait',
       format('pid %s', l.pid),
       orderdb._ops_level(l.wait_seconds, th.direction, th.warning, th.critical),
       format('waiting %s s for %s on %s, blocked by %s: %s', l.wait_seconds, l.mode,
              coalesce(l.relation, l.locktype), l.blocked_by, left(l.query, 200)),
       l.waitstart
  FROM orderdb_ops.lock_waits l
  JOIN th ON th.metric = 'lock_wait_seconds'
 WHERE l.wait_seconds > th.warning
UNION ALL
SELECT 'transaction',
       format('pid %s', x.pid),
       CASE WHEN extract(epoch FROM x.xact_age) > tl.critical
                 OR (x.state LIKE 'idle in transaction%'
                     AND extract(epoch FROM x.state_age) > ti.critical)
            THEN 'critical' ELSE 'warning' END,
       format('%s, transaction open %s, in this state %s (%s@%s): %s', x.state,
              date_trunc('second', x.xact_age), date_trunc('second', x.state_age), x.usename,
              x.datname, left(x.query, 200)),
       x.xact_start
  FROM orderdb_ops.long_transactions x
  JOIN th tl ON tl.metric = 'long_transaction_seconds'
  JOIN th ti ON ti.metric = 'idle_in_transaction_seconds'
UNION ALL
SELECT 'notification_queue',
       'pg_notification_queue_usage',
       orderdb._ops_level(s.value, th.direction, th.warning, th.critical),
       format('notification queue %s %% full: a listener is not consuming notifications',
              round(s.value * 100, 1)),
       now()
  FROM orderdb_ops.server_health s
  JOIN th ON th.metric = 'notification_queue_usage'
 WHERE s.metric = 'notification_queue_usage' AND s.value > th.warning
UNION ALL
SELECT w.source, w.subject, w.level, w.message, w.since
  FROM orderdb._wms_dead_letter_alerts() w;
$$;
COMMENT ON FUNCTION orderdb._alerts() IS
    'The rows of orderdb_ops.alerts (a function: SECURITY DEFINER, JIT off).';

-- A development version of this view selected straight from the other views (its columns had
-- other collations, which CREATE OR REPLACE VIEW cannot change): replace it once.
DO $drop_old_alerts$
DECLARE
    v_view regclass := to_regclass('orderdb_ops.alerts');
BEGIN
    IF v_view IS NOT NULL THEN
        IF pg_catalog.pg_get_viewdef(v_view) NOT LIKE '%_alerts()%' THEN
            DROP VIEW orderdb_ops.alerts;
        END IF;
    END IF;
END;
$drop_old_alerts$;

CREATE OR REPLACE VIEW orderdb_ops.alerts AS
SELECT a.source, a.subject, a.level, a.message, a.since
  FROM orderdb._alerts() a;
COMMENT ON VIEW orderdb_ops.alerts IS
    'Everything that needs an operator: KPI and SLA breaches, carrier exceptions and failed '
    'deliveries, held orders whose address was fixed, low stock, inventory drift, relay lag, table bloat/HOT, lock waits, long '
    'transactions, NOTIFY queue, dead WMS commands (warning or critical).';

-- sla_check: escalates every current breach (orderdb_ops.sla_breaches) whose rule's
-- escalate_after has passed and that was never escalated for that order and rule: records it in
-- orderdb.sla_escalations and emits an sla.escalated outbox event {rule, action, order_no,
-- status, breached_since, detail} in the same transaction. The action is the rule's
-- (contact_carrier, delay_compensation, satisfaction_survey, payment_reminder). Returns the new
-- escalations. Idempotent: an order and rule is escalated at most once, also when several
-- checks run at once (they are serialised by a transaction-level advisory lock, and the primary
-- key of sla_escalations is the last guard). Raises nothing of its own.
-- Locks: advisory lock (orderdb sla_check) until commit; the inserted escalation rows.
CREATE OR REPLACE FUNCTION orderdb.sla_check()
RETURNS TABLE (order_id bigint, rule text, action text, breached_since timestamptz,
               warehouse_id integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- one checker at a time: a second one waits, then (READ COMMITTED: the next statement sees
    -- the first one's rows) finds nothing new
    PERFORM pg_catalog.pg_advisory_xact_lock(hashtext('orderdb.sla_check'));
    RETURN QUERY
    WITH due AS (
        SELECT b.order_id, b.rule, b.warehouse_id, b.order_no, b.status, b.action,
               b.breached_since, b.detail
          FROM orderdb_ops.sla_breaches b
          JOIN orderdb.sla_rules r ON r.rule = b.rule
         WHERE now() - b.breached_since >= r.escalate_after
           AND NOT EXISTS (SELECT 1
                             FROM orderdb.sla_escalations e
                            WHERE e.order_id = b.order_id AND e.rule = b.rule)
         ORDER BY b.order_id, b.rule
    ), inserted AS (
        INSERT INTO orderdb.sla_escalations AS e
               (order_id, rule, warehouse_id, action, breached_since, details)
        SELECT d.order_id, d.rule, d.warehouse_id, d.action, d.breached_since,
               jsonb_build_object('order_no', d.order_no, 'status', d.status,
                                  'detail', d.detail)
          FROM due d
        ON CONFLICT ON CONSTRAINT sla_escalations_pkey DO NOTHING
        RETURNING e.order_id, e.rule, e.action, e.breached_since, e.warehouse_id, e.details
    ), emitted AS (
        SELECT i.*,
               orderdb._emit_event('sla.escalated', i.order_id, i.warehouse_id,
                                   jsonb_build_object('rule', i.rule, 'action', i.action,
                                                      'order_no', i.details ->> 'order_no',
                                                      'status', i.details ->> 'status',
                                                      'breached_since', i.breached_since,
                                                      'detail', i.details -> 'detail')) AS ok
          FROM inserted i
    )
    SELECT em.order_id, em.rule, em.action, em.breached_since, em.warehouse_id
      FROM emitted em
     ORDER BY em.order_id, em.rule;
END;
$$;
COMMENT ON FUNCTION orderdb.sla_check() IS
    'Escalates each new SLA breach once per order and rule: sla_escalations row + sla.escalated event.';
