-- Warehouses for orders: the automatic choice of create_order (p_warehouse_id NULL) and moving a
-- not-yet-shipped order to another warehouse (reallocate_order).
--
-- Strategy of the automatic choice (docs/integrations.md), among the warehouses that take part
-- (orderdb.warehouse_priority.auto_allocate, true without a row):
--   1. only warehouses whose available stock serves every line of the order;
--   2. lower orderdb.warehouse_priority.priority first (100 without a row);
--   3. then the most stock: the largest sum of available units of the order's skus;
--   4. then the smallest warehouse_id (deterministic).
-- The choice reads without locking; the reservation in the chosen warehouse is the guard (a
-- concurrent order may take the stock first: OD001, retry).
--
-- Lock order of a reallocation: the orders row, then the inventory rows of both warehouses in
-- (warehouse_id, sku) order (every other writer locks one warehouse's rows in sku order after the
-- orders row, so no cycle can form).

-- _warehouse_candidates: every warehouse taking part in the automatic choice, ranked for an
-- order of p_skus / p_quantities (distinct skus): lines it can serve, its priority, the available
-- units of the order's skus (orderdb.inventory_levels: flash-sale buckets included). Ordered best
-- first (serves_all, priority, total_available, warehouse_id). Reads inventory by primary key
-- (warehouse_id, sku). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._warehouse_candidates(p_skus text[], p_quantities integer[])
RETURNS TABLE (warehouse_id integer, priority integer, lines_served integer, lines integer,
               total_available bigint, serves_all boolean, first_short_sku text,
               first_short_requested integer, first_short_available integer)
LANGUAGE sql
STABLE
AS $$
    SELECT c.warehouse_id, c.priority, c.lines_served, c.lines, c.total_available,
           c.lines_served = c.lines, c.short[1][1], c.short[1][2]::integer,
           c.short[1][3]::integer
      FROM (
        SELECT w.warehouse_id,
               coalesce(wp.priority, 100) AS priority,
               count(*) FILTER (WHERE coalesce(i.available, 0) >= r.quantity)::integer
                   AS lines_served,
               count(*)::integer AS lines,
               coalesce(sum(greatest(i.available, 0)), 0)::bigint AS total_available,
               (array_agg(ARRAY[r.sku, r.quantity::text, coalesce(i.available, 0)::text]
                          ORDER BY r.sku)
                  FILTER (WHERE coalesce(i.available, 0) < r.quantity))[1:1]
                   AS short
          FROM orderdb.warehouses w
          LEFT JOIN orderdb.warehouse_priority wp ON wp.warehouse_id = w.warehouse_id
         CROSS JOIN unnest(p_skus, p_quantities) AS r(sku, quantity)
          -- LATERAL: one primary-key probe per (warehouse, sku), never a scan of inventory
          LEFT JOIN LATERAL (
                SELECT il.available
                  FROM orderdb.inventory_levels il
                 WHERE il.warehouse_id = w.warehouse_id AND il.sku = r.sku
               ) i ON true
         WHERE coalesce(wp.auto_allocate, true)
         GROUP BY w.warehouse_id, wp.priority
      ) c
     ORDER BY c.lines_served = c.lines DESC, c.priority, c.total_available DESC, c.warehouse_id;
$$;
COMMENT ON FUNCTION orderdb._warehouse_candidates(text[], integer[]) IS
    'Ranks the warehouses of the automatic choice for an order: serves every line, priority, stock.';

-- _choose_warehouse: the warehouse create_order uses when the caller gives none (strategy at the
-- top of this file) for the lines p_skus / p_quantities (distinct skus, as orderdb._parse_items
-- returns them). A retried request (p_idempotency_key already taken) gets the warehouse of
-- the order it replays, so a replay never fails for lack of stock.
-- Raises OD001 when no warehouse can serve every line
-- (DETAIL 'sku=... requested=... available=...' of the closest warehouse, named in the HINT).
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._choose_warehouse(p_skus text[], p_quantities integer[],
                                                     p_idempotency_key text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_best      record;
    v_warehouse integer;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        SELECT d.warehouse_id INTO v_warehouse
          FROM orderdb.order_directory d WHERE d.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            RETURN v_warehouse;
        END IF;
    END IF;

    SELECT c.* INTO v_best
      FROM orderdb._warehouse_candidates(p_skus, p_quantities) c
     ORDER BY c.serves_all DESC, c.lines_served DESC, c.priority, c.total_available DESC,
              c.warehouse_id
     LIMIT 1;
    IF FOUND AND v_best.serves_all THEN
        RETURN v_best.warehouse_id;
    END IF;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD001',
            MESSAGE = format('insufficient stock for sku %s', orderdb._quote_sku(p_skus[1])),
            DETAIL = format('sku=%s requested=%s available=0', p_skus[1], p_quantities[1]),
            HINT = 'No warehouse takes part in the automatic choice (orderdb.warehouse_priority).';
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'OD001',
        MESSAGE = format('insufficient stock for sku %s',
                         orderdb._quote_sku(v_best.first_short_sku)),
        DETAIL = format('sku=%s requested=%s available=%s', v_best.first_short_sku,
                        v_best.first_short_requested, v_best.first_short_available),
        HINT = format('No warehouse can serve every line; the closest, warehouse %s, serves %s of '
                      '%s lines. Nothing was reserved.', v_best.warehouse_id,
                      v_best.lines_served, v_best.lines);
END;
$$;
COMMENT ON FUNCTION orderdb._choose_warehouse(text[], integer[], text) IS
    'Chooses the warehouse for an order created without one (OD001 when none serves every line).';

-- _release_held_counters: gives back p_quantities[i] reserved units of p_skus[i] in a warehouse,
-- counters only (the ledger rows are moved by the caller): plain skus in their inventory row,
-- flash-sale skus in their buckets (orderdb._move_bucket_stock). The caller holds the inventory
-- rows. Raises 23514 (CHECK) if fewer units are reserved than given back (drift: a bug).
-- Locks the bucket rows of bucketed skus, in (sku, bucket) order.
CREATE OR REPLACE FUNCTION orderdb._release_held_counters(p_warehouse_id integer, p_skus text[],
                                                          p_quantities integer[])
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE orderdb.inventory AS i
       SET reserved = i.reserved - r.quantity, updated_at = now()
      FROM unnest(p_skus, p_quantities) AS r(sku, quantity)
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = r.sku
       AND NOT EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                        WHERE c.warehouse_id = p_warehouse_id AND c.sku = r.sku);
    PERFORM orderdb._move_bucket_stock(p_warehouse_id, 'held', 'released', p_skus, p_quantities);
END;
$$;
COMMENT ON FUNCTION orderdb._release_held_counters(integer, text[], integer[]) IS
    'Gives back reserved units in a warehouse''s counters (inventory row or buckets), not the ledger.';

-- _check_reallocatable: the checks of reallocate_order on an order whose row is read (status,
-- version, in warehouse p_from_warehouse_id), in this order: OD002 (version is not
-- p_expected_version), 22023 (p_to_warehouse_id is the order's current warehouse), OD003 (past
-- packed, cancelled, or partly shipped). Used by reallocate_order and by the source side of a
-- reallocation across shards (sql/cluster/shard_70_reallocation.sql). Reads the order's lines and
-- shipments; locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_reallocatable(p_order_id bigint,
                                                        p_from_warehouse_id integer,
                                                        p_to_warehouse_id integer,
                                                        p_status text, p_version integer,
                                                        p_expected_version integer)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_version <> p_expected_version THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: expected version %s, current version %s',
                             p_order_id, p_expected_version, p_version),
            DETAIL = format('status=%s version=%s', p_status, p_version),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;

    IF p_from_warehouse_id = p_to_warehouse_id THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'to_warehouse_id must differ from the order''s current warehouse',
            DETAIL = format('order_id=%s warehouse_id=%s', p_order_id, p_from_warehouse_id);
    END IF;

    IF p_status NOT IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD003',
            MESSAGE = format('order %s cannot be reallocated in status %s', p_order_id, p_status),
            DETAIL = format('status=%s version=%s', p_status, p_version),
            HINT = 'Only orders that have not shipped (pending to packed, or on hold) move.';
    END IF;

    IF EXISTS (SELECT 1 FROM orderdb.order_lines l
                WHERE l.warehouse_id = p_from_warehouse_id AND l.order_id = p_order_id
                  AND (l.qty_consumed > 0 OR l.qty_returned > 0))
       OR EXISTS (SELECT 1 FROM orderdb.shipments s
                   WHERE s.warehouse_id = p_from_warehouse_id AND s.order_id = p_order_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD003',
            MESSAGE = format('order %s cannot be reallocated: part of it has shipped', p_order_id),
            DETAIL = format('status=%s version=%s', p_status, p_version),
            HINT = 'Cancel the remaining lines and create a new order in the other warehouse.';
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_reallocatable(bigint, integer, integer, text, integer, integer) IS
    'The version, warehouse and status checks of reallocate_order (OD002, 22023, OD003).';

-- reallocate_order: moves a not-yet-shipped order (pending .. packed, or on_hold) to another
-- warehouse, all or nothing: its held reservations are released in the old warehouse and taken
-- in the new one, and the order's rows (order_directory, orders, order_lines, status history,
-- hold reasons, WMS events) move with it. The version increases by 1; a history row (from = to =
-- the unchanged status, source 'reallocation', context {from_warehouse_id, to_warehouse_id})
-- and an order.reallocated event record the move.
-- Raises 22023 (bad input; the target is the order's current warehouse), OD004 (unknown order or
-- target warehouse), OD002 (version is not p_expected_version; also when the order moved
-- meanwhile), OD003 (the order is past packed, cancelled, or partly shipped), OD001 (the target
-- cannot serve every held line; DETAIL 'sku=... requested=... available=...').
-- Locks the orders row, then the inventory rows of the order's skus in both warehouses in
-- (warehouse_id, sku) order.
CREATE OR REPLACE FUNCTION orderdb.reallocate_order(p_order_id bigint, p_to_warehouse_id integer,
                                                    p_expected_version integer,
                                                    p_actor text DEFAULT NULL,
                                                    p_reason text DEFAULT NULL)
RETURNS TABLE (order_id bigint, warehouse_id integer, status text, version integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_from     integer;
    v_status   text;
    v_version  integer;
    v_skus     text[];
    v_qtys     integer[];
    v_short    text[];
    v_lines    jsonb;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    PERFORM orderdb._check_positive(p_to_warehouse_id, 'to_warehouse_id');
    PERFORM orderdb._check_positive(p_expected_version, 'expected_version');
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);
    PERFORM orderdb._check_text(p_reason, 'reason', 1000);

    v_from := orderdb._locate_order(p_order_id);

    SELECT o.status, o.version INTO v_status, v_version
      FROM orderdb.orders o
     WHERE o.warehouse_id = v_from AND o.order_id = p_order_id
       FOR UPDATE;
    IF NOT FOUND THEN
        -- moved by a concurrent reallocation after the directory lookup: the caller is stale
        SELECT o.status, o.version INTO v_status, v_version
          FROM orderdb.order_directory d
          JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
         WHERE d.order_id = p_order_id;
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: it moved to another warehouse', p_order_id),
            DETAIL = format('status=%s version=%s', v_status, v_version),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;

    PERFORM orderdb._check_reallocatable(p_order_id, v_from, p_to_warehouse_id, v_status,
                                         v_version, p_expected_version);

    IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_to_warehouse_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('unknown warehouse %s', p_to_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_to_warehouse_id),
            HINT = 'A warehouse exists once it has received stock (orderdb.receive_stock).';
    END IF;

    -- what moves: the held quantity of every line (sku order)
    SELECT array_agg(l.sku ORDER BY l.sku), array_agg(l.qty_held ORDER BY l.sku)
      INTO v_skus, v_qtys
      FROM orderdb.order_lines l
     WHERE l.warehouse_id = v_from AND l.order_id = p_order_id AND l.qty_held > 0;

    IF v_skus IS NOT NULL THEN
        -- lock both warehouses' rows in (warehouse_id, sku) order, then check the target
        PERFORM 1
           FROM orderdb.inventory i
          WHERE i.warehouse_id IN (v_from, p_to_warehouse_id) AND i.sku = ANY (v_skus)
          ORDER BY i.warehouse_id, i.sku
            FOR NO KEY UPDATE;

        -- inventory_levels: the inventory row plus the buckets of a flash-sale sku
        SELECT (array_agg(ARRAY[r.sku, r.quantity::text, coalesce(i.available, 0)::text]
                          ORDER BY r.sku)
                  FILTER (WHERE coalesce(i.available, 0) < r.quantity))[1:1]
          INTO v_short
          FROM unnest(v_skus, v_qtys) AS r(sku, quantity)
          LEFT JOIN LATERAL (
                SELECT il.available
                  FROM orderdb.inventory_levels il
                 WHERE il.warehouse_id = p_to_warehouse_id AND il.sku = r.sku
               ) i ON true;
        IF v_short IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD001',
                MESSAGE = format('insufficient stock for sku %s in warehouse %s',
                                 orderdb._quote_sku(v_short[1][1]), p_to_warehouse_id),
                DETAIL = format('sku=%s requested=%s available=%s',
                                v_short[1][1], v_short[1][2], v_short[1][3]),
                HINT = 'Nothing was moved.';
        END IF;

        -- move the counters with the inventory primitives (they know flash-sale buckets), the
        -- lower warehouse first: bucket rows are locked in (warehouse_id, sku, bucket) order.
        -- _reserve_stock is the guard (OD001 if a bucketed sku was taken meanwhile).
        IF v_from < p_to_warehouse_id THEN
            PERFORM orderdb._release_held_counters(v_from, v_skus, v_qtys);
            PERFORM orderdb._reserve_stock(p_to_warehouse_id, v_skus, v_qtys);
        ELSE
            PERFORM orderdb._reserve_stock(p_to_warehouse_id, v_skus, v_qtys);
            PERFORM orderdb._release_held_counters(v_from, v_skus, v_qtys);
        END IF;
    END IF;

    -- the order's rows follow it (every column, including ones added later)
    UPDATE orderdb.orders AS o
       SET warehouse_id = p_to_warehouse_id, version = o.version + 1, updated_at = now()
     WHERE o.warehouse_id = v_from AND o.order_id = p_order_id
    RETURNING o.version INTO v_version;
    -- the order's cached timeline documents, before its directory row is updated below (a
    -- directory row this transaction updated is not bumped again: orderdb._timeline_bump_order)
    PERFORM orderdb._timeline_bump_order(p_order_id);
    UPDATE orderdb.order_lines AS l SET warehouse_id = p_to_warehouse_id
     WHERE l.warehouse_id = v_from AND l.order_id = p_order_id;
    UPDATE orderdb.order_status_history AS h SET warehouse_id = p_to_warehouse_id
     WHERE h.warehouse_id = v_from AND h.order_id = p_order_id;
    UPDATE orderdb.order_hold_reasons AS r SET warehouse_id = p_to_warehouse_id
     WHERE r.warehouse_id = v_from AND r.order_id = p_order_id;
    UPDATE orderdb.order_amendments AS a SET warehouse_id = p_to_warehouse_id
     WHERE a.warehouse_id = v_from AND a.order_id = p_order_id;
    UPDATE orderdb.wms_events AS e SET warehouse_id = p_to_warehouse_id
     WHERE e.warehouse_id = v_from AND e.order_id = p_order_id;
    UPDATE orderdb.order_directory AS d SET warehouse_id = p_to_warehouse_id
     WHERE d.order_id = p_order_id;

    PERFORM orderdb._record_status_change(
        p_to_warehouse_id, p_order_id, v_version, v_status, v_status, p_actor, p_reason,
        jsonb_build_object('from_warehouse_id', v_from, 'to_warehouse_id', p_to_warehouse_id),
        'reallocation', NULL);

    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', r.sku, 'quantity', r.quantity)
                              ORDER BY r.sku), '[]'::jsonb)
      INTO v_lines
      FROM unnest(v_skus, v_qtys) AS r(sku, quantity);
    PERFORM orderdb._emit_event('order.reallocated', p_order_id, p_to_warehouse_id,
                                jsonb_build_object('from_warehouse_id', v_from,
                                                   'to_warehouse_id', p_to_warehouse_id,
                                                   'status', v_status,
                                                   'version', v_version,
                                                   'lines', v_lines));

    order_id := p_order_id;
    warehouse_id := p_to_warehouse_id;
    status := v_status;
    version := v_version;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.reallocate_order(bigint, integer, integer, text, text) IS
    'Moves a not-yet-shipped order and its held reservations to another warehouse, all or nothing.';
