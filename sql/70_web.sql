-- The web pages' SQL (orderdb/web, docs/web.md): the tracking page's lookup by order number and
-- the operations board's snapshot. The pages compute nothing themselves: every status, SLA state,
-- level, location and estimate they show comes from here or from the views of orderdb_ops.

-- order_timeline_by_no: orderdb.order_timeline for the order numbered p_order_no, scoped to
-- customer p_customer_id (the tracking page: customers know their order number, not its id).
-- An order of another customer is answered exactly like an unknown number: OD004 with the same
-- message, detail and hint (order numbers are sequential; a different answer would let anyone
-- probe which numbers exist). The order's rules (what the customer sees) stay in order_timeline.
-- p_locale: as order_timeline's (checked first: an unknown locale is 22023 for any number).
-- Raises 22023 (order_no empty or over 255 characters, customer_id not positive, unknown
-- locale), OD004 (no order with this number for this customer). Locks nothing.
-- The signature before locales (p_order_no, p_customer_id): calls with 2 arguments now take the
-- default locale.
DROP FUNCTION IF EXISTS orderdb.order_timeline_by_no(text, bigint);
CREATE OR REPLACE FUNCTION orderdb.order_timeline_by_no(p_order_no text, p_customer_id bigint,
                                                        p_locale text DEFAULT 'en')
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_order_id bigint;
    v_number   numeric;
BEGIN
    PERFORM orderdb._check_text(p_order_no, 'order_no', 255, true);
    PERFORM orderdb._check_positive(p_customer_id, 'customer_id');
    PERFORM orderdb._check_locale(p_locale);

    -- the number carries the order id (from its 12th character; the CHECK
    -- order_directory_order_no_id): found by the primary key, then the whole number compared.
    -- A number without an order id in it is unknown (nested IFs: no cast of a non-number)
    IF substr(p_order_no, 12) ~ '^[0-9]{8,19}$' THEN
        v_number := substr(p_order_no, 12)::numeric;
        IF v_number <= 9223372036854775807 THEN
            SELECT d.order_id INTO v_order_id
              FROM orderdb.order_directory d
             WHERE d.order_id = v_number::bigint AND d.order_no = p_order_no;
        END IF;
    END IF;

    IF v_order_id IS NOT NULL THEN
        BEGIN
            RETURN orderdb.order_timeline(v_order_id, p_customer_id, p_locale);
        EXCEPTION
            WHEN SQLSTATE 'OD005' OR SQLSTATE 'OD004' THEN
                NULL;  -- another customer's (or a vanished) order: answered like an unknown one
        END;
    END IF;

    RAISE EXCEPTION USING
        ERRCODE = 'OD004',
        MESSAGE = 'order not found',
        DETAIL = format('no order %s for customer %s', p_order_no, p_customer_id),
        HINT = 'Check the order number and the customer it belongs to.';
END;
$$;
COMMENT ON FUNCTION orderdb.order_timeline_by_no(text, bigint, text) IS
    'The customer''s timeline of an order named by its number; another customer''s order is '
    'OD004 like an unknown number.';

-- board_snapshot: what the operations board shows about orders, as one JSON document, for one
-- warehouse and/or carrier (NULL: all):
--   lanes      one per non-terminal status that has orders, in lifecycle order: "orders" (how
--              many, exact), "critical" / "warning" (how many breach an SLA rule at that level)
--              and "top": the p_per_lane oldest orders (by creation) with their carrier, time in
--              the stage, "sla_state" (red: a critical breach, yellow: a warning breach, green:
--              none; orderdb_ops.sla_breaches decides) with the rules, and "stages" (each status
--              the order went through with its start and end by effective time — never before
--              the previous stage, so no bar ends before it starts; the current one ends null)
--   breaches   the p_limit oldest rows of orderdb_ops.sla_breaches for the filters
--   warehouses, carriers   the values the filters offer
-- Orders count when created within the longest enabled SLA horizon (orderdb.sla_rules.horizon,
-- as in sla_breaches), read through the BRIN index orders_created_at_brin; the carrier filter keeps orders
-- with a shipment of that carrier. One pass over those orders gives the lane counts and the top
-- orders; only the top orders' history and shipments are read.
-- Raises 22023 (warehouse_id not positive, carrier over 255 characters, per_lane outside 1..100,
-- limit outside 1..500). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb_ops.board_snapshot(p_warehouse_id integer DEFAULT NULL,
                                                      p_carrier text DEFAULT NULL,
                                                      p_per_lane integer DEFAULT 20,
                                                      p_limit integer DEFAULT 50)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_doc jsonb;
BEGIN
    IF p_warehouse_id IS NOT NULL THEN
        PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    END IF;
    PERFORM orderdb._check_text(p_carrier, 'carrier', 255);
    PERFORM orderdb._check_range(p_per_lane, 'per_lane', 1, 100);
    PERFORM orderdb._check_range(p_limit, 'limit', 1, 500);

    WITH horizon AS (
        SELECT now() - coalesce(max(r.horizon), interval '90 days') AS since
          FROM orderdb.sla_rules r
         WHERE r.enabled
    ), breaches AS MATERIALIZED (
        SELECT b.order_id, b.rule, b.breached_since, b.warehouse_id, b.order_no, b.status,
               b.level
          FROM orderdb_ops.sla_breaches b
    ), sla AS (
        SELECT b.order_id,
               CASE WHEN bool_or(b.level = 'critical') THEN 'red' ELSE 'yellow' END AS state,
               jsonb_agg(b.rule ORDER BY b.rule) AS rules
          FROM breaches b
         GROUP BY b.order_id
    ), candidates AS MATERIALIZED (
        -- the active orders (one pass over the orders of the horizon); the carrier filter is
        -- applied to these only, not to every order of the horizon
        SELECT o.warehouse_id, o.order_id, o.order_no, o.status, o.created_at, s.position
          FROM orderdb.orders o
          JOIN orderdb.order_statuses s ON s.status = o.status AND NOT s.is_terminal
         WHERE o.created_at >= (SELECT h.since FROM horizon h)
           AND (p_warehouse_id IS NULL OR o.warehouse_id = p_warehouse_id)
    ), active AS MATERIALIZED (
        SELECT c.*,
               row_number() OVER (PARTITION BY c.status ORDER BY c.created_at, c.order_id) AS rn
          FROM candidates c
         WHERE p_carrier IS NULL
            OR EXISTS (SELECT 1
                         FROM orderdb.shipments sh
                        WHERE sh.warehouse_id = c.warehouse_id AND sh.order_id = c.order_id
                          AND sh.carrier = p_carrier)
    ), lane_counts AS (
        SELECT a.status, a.position, count(*) AS orders,
               count(*) FILTER (WHERE sla.state = 'red') AS critical,
               count(*) FILTER (WHERE sla.state = 'yellow') AS warning
          FROM active a
          LEFT JOIN sla ON sla.order_id = a.order_id
         GROUP BY a.status, a.position
    ), top AS MATERIALIZED (
        SELECT a.*, coalesce(sla.state, 'green') AS sla_state,
               coalesce(sla.rules, '[]'::jsonb) AS sla_rules,
               st.stages, st.stage_since, sh.carrier, sh.tracking_number
          FROM active a
          LEFT JOIN sla ON sla.order_id = a.order_id
          CROSS JOIN LATERAL (
                SELECT jsonb_agg(jsonb_build_object('status', x.status, 'start', x.at,
                                                    'end', x.next_at)
                                 ORDER BY x.version) AS stages,
                       max(x.at) AS stage_since
                  FROM (SELECT y.version, y.status, y.at,
                               lead(y.at) OVER (ORDER BY y.version) AS next_at
                          FROM (SELECT 1 AS version, 'pending'::text AS status,
                                       a.created_at AS at
                                UNION ALL
                                SELECT h.version, h.to_status, h.effective_at
                                  FROM orderdb.order_status_history h
                                 WHERE h.warehouse_id = a.warehouse_id
                                   AND h.order_id = a.order_id) y) x
               ) st
          LEFT JOIN LATERAL (
                SELECT s.carrier, s.tracking_number
                  FROM orderdb.shipments s
                 WHERE s.warehouse_id = a.warehouse_id AND s.order_id = a.order_id
                   AND (p_carrier IS NULL OR s.carrier = p_carrier)
                 ORDER BY s.shipped_at DESC, s.shipment_id DESC
                 LIMIT 1
               ) sh ON true
         WHERE a.rn <= p_per_lane
    ), lanes AS (
        SELECT lc.position,
               jsonb_build_object(
                   'status', lc.status, 'position', lc.position, 'orders', lc.orders,
                   'critical', lc.critical, 'warning', lc.warning,
                   'top', coalesce((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'order_id', t.order_id, 'order_no', t.order_no,
                                  'warehouse_id', t.warehouse_id, 'status', t.status,
                                  'created_at', t.created_at, 'stage_since', t.stage_since,
                                  'age_seconds', round(extract(epoch FROM now() - t.stage_since)),
                                  'carrier', t.carrier, 'tracking_number', t.tracking_number,
                                  'sla_state', t.sla_state, 'sla_rules', t.sla_rules,
                                  'stages', t.stages)
                                ORDER BY t.rn)
                         FROM top t
                        WHERE t.status = lc.status), '[]'::jsonb)) AS lane
          FROM lane_counts lc
    ), listed_breaches AS (
        SELECT b.*
          FROM breaches b
         WHERE (p_warehouse_id IS NULL OR b.warehouse_id = p_warehouse_id)
           AND (p_carrier IS NULL
                OR EXISTS (SELECT 1
                             FROM orderdb.shipments sh
                            WHERE sh.warehouse_id = b.warehouse_id AND sh.order_id = b.order_id
                              AND sh.carrier = p_carrier))
         ORDER BY b.breached_since, b.order_id, b.rule
         LIMIT p_limit
    )
    SELECT jsonb_build_object(
               'read_at', now(),
               'horizon_start', (SELECT h.since FROM horizon h),
               'warehouse_id', p_warehouse_id,
               'carrier', p_carrier,
               'per_lane', p_per_lane,
               'lanes', coalesce((SELECT jsonb_agg(l.lane ORDER BY l.position) FROM lanes l),
                                 '[]'::jsonb),
               'breaches', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                                'order_id', lb.order_id, 'order_no', lb.order_no,
                                                'warehouse_id', lb.warehouse_id,
                                                'status', lb.status, 'rule', lb.rule,
                                                'level', lb.level,
                                                'breached_since', lb.breached_since)
                                              ORDER BY lb.breached_since, lb.order_id, lb.rule)
                                       FROM listed_breaches lb), '[]'::jsonb),
               'warehouses', coalesce((SELECT jsonb_agg(w.warehouse_id ORDER BY w.warehouse_id)
                                         FROM orderdb.warehouses w), '[]'::jsonb),
               'carriers', coalesce((SELECT jsonb_agg(DISTINCT m.carrier)
                                       FROM orderdb.carrier_status_map m), '[]'::jsonb))
      INTO v_doc;
    RETURN v_doc;
END;
$$;
COMMENT ON FUNCTION orderdb_ops.board_snapshot(integer, text, integer, integer) IS
    'The operations board''s orders: per active status the count, SLA counts and oldest orders '
    'with their SLA state and stages; the oldest SLA breaches; the filter values.';

-- board: the operations board's snapshot for all warehouses and carriers (20 orders per lane,
-- 50 breaches), for psql: SELECT jsonb_pretty(snapshot) FROM orderdb_ops.board;
-- The web board calls orderdb_ops.board_snapshot(warehouse, carrier) with its filters.
CREATE OR REPLACE VIEW orderdb_ops.board AS
SELECT orderdb_ops.board_snapshot() AS snapshot;
COMMENT ON VIEW orderdb_ops.board IS
    'The operations board''s snapshot (active orders per stage with SLA state, oldest breaches) '
    'as JSON; orderdb_ops.board_snapshot(warehouse, carrier) filters it.';
