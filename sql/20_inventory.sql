-- Inventory: stock receipts, stock levels, reservations and the ledger moves between reservation
-- states (held -> consumed | released, consumed -> returned).
--
-- Locking rule (no deadlocks by construction): whoever changes more than one inventory row locks
-- them first with one `SELECT ... ORDER BY sku FOR NO KEY UPDATE` (sku is COLLATE "C", the
-- primary key order), then updates them set-based. Single-row changes need no ordering.

-- receive_stock: adds p_quantity units to (warehouse, sku), creating the warehouse and the
-- inventory row on first receipt, and records the receipt (orderdb.stock_receipts).
-- Raises 22023 (warehouse_id/quantity not positive, a bad sku (orderdb._check_sku; the sku is
-- stored in NFC), actor over 1000 characters, on_hand would exceed 2147483647).
-- Locks the inventory row (warehouse_id, sku).
CREATE OR REPLACE FUNCTION orderdb.receive_stock(p_warehouse_id integer, p_sku text,
                                                 p_quantity integer, p_actor text DEFAULT NULL)
RETURNS TABLE (warehouse_id integer, sku text, on_hand integer, reserved integer,
               available integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    p_sku := orderdb._check_sku(p_sku);  -- NFC, no control characters, not blank
    PERFORM orderdb._check_positive(p_quantity, 'quantity');
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);

    INSERT INTO orderdb.warehouses AS w (warehouse_id) VALUES (p_warehouse_id)
    ON CONFLICT ON CONSTRAINT warehouses_pkey DO NOTHING;

    -- flash-sale skus keep their stock in buckets (sql/25_stock_buckets.sql). A SKU is split
    -- into buckets (also automatically, under contention) only under its inventory row lock:
    -- hold the row first, then look, so that no receipt lands in the emptied row of a SKU split
    -- meanwhile
    PERFORM 1 FROM orderdb.inventory i
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku
       FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku) THEN
        RETURN QUERY SELECT * FROM orderdb._receive_bucketed_stock(p_warehouse_id, p_sku,
                                                                   p_quantity, p_actor);
        RETURN;
    END IF;

    -- the DO UPDATE condition keeps on_hand within integer range (no row: the receipt would overflow)
    INSERT INTO orderdb.inventory AS i (warehouse_id, sku, on_hand, reserved)
    VALUES (p_warehouse_id, p_sku, p_quantity, 0)
    ON CONFLICT ON CONSTRAINT inventory_pkey
    DO UPDATE SET on_hand = i.on_hand + excluded.on_hand, updated_at = now()
         WHERE i.on_hand <= 2147483647 - excluded.on_hand
    RETURNING i.warehouse_id, i.sku, i.on_hand, i.reserved, i.on_hand - i.reserved
         INTO warehouse_id, sku, on_hand, reserved, available;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'quantity would raise on_hand above 2147483647',
            DETAIL = format('warehouse_id=%s sku=%s quantity=%s', p_warehouse_id, p_sku,
                            p_quantity);
    END IF;

    INSERT INTO orderdb.stock_receipts (warehouse_id, sku, quantity, actor)
    VALUES (p_warehouse_id, p_sku, p_quantity, p_actor);

    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.receive_stock(integer, text, integer, text) IS
    'Adds received units to a warehouse''s stock of a sku (creating the row); returns the new level.';

-- stock_level: on_hand, reserved and available (on_hand - reserved) of (warehouse, sku).
-- Raises 22023 (bad arguments), OD004 when the warehouse has no row for the sku. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb.stock_level(p_warehouse_id integer, p_sku text)
RETURNS TABLE (on_hand integer, reserved integer, available integer)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    p_sku := orderdb._check_sku(p_sku);

    SELECT i.on_hand, i.reserved, i.on_hand - i.reserved
      INTO on_hand, reserved, available
      FROM orderdb.inventory_levels i  -- inventory row + stock buckets (sql/25_stock_buckets.sql)
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('no stock row for sku %s in warehouse %s', orderdb._quote_sku(p_sku),
                             p_warehouse_id),
            DETAIL = format('warehouse_id=%s sku=%s', p_warehouse_id, p_sku);
    END IF;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.stock_level(integer, text) IS
    'Returns on_hand, reserved and available of a sku in a warehouse (OD004 when there is no row).';

-- _reserve_stock: reserves p_quantities[i] of p_skus[i] in one warehouse, every line or none.
-- p_skus must be distinct (orderdb._parse_items guarantees it). Callers write the matching held
-- ledger rows (order_lines.qty_held).
-- One line: one UPDATE that locks the inventory row only if nobody holds it (SKIP LOCKED) and
-- reserves. When another transaction holds the row, that is a lock conflict: it is noted
-- (orderdb._note_stock_conflict, which splits a SKU that keeps others waiting into stock buckets
-- automatically), then the reservation waits for the row as before. Several lines (or a single
-- line that was not served at once): one statement locks the rows in sku order and reserves
-- every line when each has a row that serves it; otherwise (nothing reserved) a second one,
-- with the rows held, finds the first short line (or reserves, when a row stocked meanwhile
-- serves it). A SKU is split into buckets or merged back only under its inventory
-- row lock, so once the rows are held a short line is looked at again: a SKU bucketed meanwhile
-- is served from its buckets (orderdb._reserve_stock_bucketed, sql/25_stock_buckets.sql), never
-- a false OD001.
-- Raises OD001 (DETAIL 'sku=... requested=... available=...', the first short sku in sku order;
-- a sku never stocked here has available 0), OD004 when the warehouse is unknown.
-- Locks the inventory rows of the skus, in (warehouse_id, sku) order (and buckets of bucketed
-- skus after them).
CREATE OR REPLACE FUNCTION orderdb._reserve_stock(p_warehouse_id integer, p_skus text[],
                                                  p_quantities integer[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_lines   integer := cardinality(p_skus);
    v_updated integer;
    v_short   text[];
BEGIN
    IF v_lines = 1 THEN
        -- lock without waiting and reserve in one statement (the row is locked only when it
        -- can serve the line: a bucketed SKU's emptied row is not)
        UPDATE orderdb.inventory AS i
           SET reserved = i.reserved + p_quantities[1], updated_at = now()
         WHERE i.warehouse_id = p_warehouse_id
           AND i.sku = (SELECT l.sku
                          FROM orderdb.inventory l
                         WHERE l.warehouse_id = p_warehouse_id AND l.sku = p_skus[1]
                           AND l.on_hand - l.reserved >= p_quantities[1]
                           FOR NO KEY UPDATE SKIP LOCKED)
           AND i.on_hand - i.reserved >= p_quantities[1];
        IF FOUND THEN
            RETURN;
        END IF;
        -- short, bucketed, or held by another transaction (a lock conflict)?
        IF EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                    WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_skus[1]) THEN
            PERFORM orderdb._reserve_stock_bucketed(p_warehouse_id, p_skus, p_quantities);
            RETURN;
        END IF;
        PERFORM 1 FROM orderdb.inventory l
         WHERE l.warehouse_id = p_warehouse_id AND l.sku = p_skus[1]
           FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND
           AND EXISTS (SELECT 1 FROM orderdb.inventory l
                        WHERE l.warehouse_id = p_warehouse_id AND l.sku = p_skus[1])
           AND orderdb._note_stock_conflict(p_warehouse_id, p_skus[1]) THEN
            -- bucketed now (split past the conflict threshold)
            PERFORM orderdb._reserve_stock_bucketed(p_warehouse_id, p_skus, p_quantities);
            RETURN;
        END IF;
        -- else wait for the row and look again (the statement below)
    ELSIF EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                   WHERE c.warehouse_id = p_warehouse_id AND c.sku = ANY (p_skus)) THEN
        -- several lines, flash-sale skus among them (stock in buckets, sql/25_stock_buckets.sql)
        PERFORM orderdb._reserve_stock_bucketed(p_warehouse_id, p_skus, p_quantities);
        RETURN;
    END IF;

    -- the common outcome, every line served, in one statement with few plan nodes: lock the
    -- rows of the lines in sku order (the sort under the row locks: LockRows locks in the order
    -- its input comes), each row's "serves its line" read from its locked (latest) version;
    -- the UPDATE runs only when every line has a row that serves it (a one-time filter on the
    -- locked rows, evaluated before the UPDATE reads a row), so it reserves every line or none
    -- (it reads the rows' latest versions: READ COMMITTED re-checks an outdated version on
    -- update). Anything else (a short line, a sku without a row, a SKU bucketed meanwhile)
    -- reserved nothing and goes on to the statement below, which finds and words it with the
    -- rows held (docs/benchmarks.md "create_order and tpcb-like, one call at a time").
    WITH locked AS MATERIALIZED (
        SELECT i.on_hand - i.reserved >= r.quantity AS serves
          FROM unnest(p_skus, p_quantities) AS r(sku, quantity)
          JOIN orderdb.inventory i ON i.warehouse_id = p_warehouse_id AND i.sku = r.sku
         ORDER BY i.sku
           FOR NO KEY UPDATE OF i
    )
    UPDATE orderdb.inventory AS i
       SET reserved = i.reserved + r.quantity, updated_at = now()
      FROM unnest(p_skus, p_quantities) AS r(sku, quantity)
     WHERE (SELECT count(*) FILTER (WHERE l.serves) FROM locked l) = v_lines
       AND i.warehouse_id = p_warehouse_id AND i.sku = r.sku
       AND i.on_hand - i.reserved >= r.quantity;
    GET DIAGNOSTICS v_updated = ROW_COUNT;
    IF v_updated = v_lines THEN
        RETURN;
    ELSIF v_updated <> 0 THEN
        -- unreachable while the rows are locked; kept as a guard
        RAISE EXCEPTION USING
            ERRCODE = 'OD001',
            MESSAGE = 'insufficient stock',
            DETAIL = format('warehouse_id=%s reserved %s of %s lines', p_warehouse_id,
                            v_updated, v_lines);
    END IF;

    -- one statement: lock every existing row in sku order, find the first line that cannot be
    -- served, and reserve every line when there is none. The UPDATE reads the rows' latest
    -- versions (the ones locked; READ COMMITTED re-checks an outdated version on update).
    -- After the statement above it finds the rows already held (a row stocked meanwhile for a
    -- sku that had none can let it serve every line).
    WITH locked AS MATERIALIZED (
        SELECT i.sku, i.on_hand - i.reserved AS available
          FROM orderdb.inventory i
         WHERE i.warehouse_id = p_warehouse_id AND i.sku = ANY (p_skus)
         ORDER BY i.sku
           FOR NO KEY UPDATE
    ), short AS MATERIALIZED (
        SELECT (array_agg(ARRAY[r.sku, r.quantity::text, coalesce(l.available, 0)::text]
                          ORDER BY r.sku)
                  FILTER (WHERE coalesce(l.available, 0) < r.quantity))[1:1] AS line
          FROM unnest(p_skus, p_quantities) AS r(sku, quantity)
          LEFT JOIN locked l ON l.sku = r.sku
    ), reserved AS (
        UPDATE orderdb.inventory AS i
           SET reserved = i.reserved + r.quantity, updated_at = now()
          FROM unnest(p_skus, p_quantities) AS r(sku, quantity), short s
         WHERE s.line IS NULL
           AND i.warehouse_id = p_warehouse_id AND i.sku = r.sku
           AND i.on_hand - i.reserved >= r.quantity
        RETURNING 1
    )
    SELECT s.line, (SELECT count(*)::integer FROM reserved) INTO v_short, v_updated
      FROM short s;

    IF v_short IS NULL THEN
        IF v_updated = v_lines THEN
            RETURN;
        END IF;
        -- unreachable while the rows are locked; kept as a guard
        RAISE EXCEPTION USING
            ERRCODE = 'OD001',
            MESSAGE = 'insufficient stock',
            DETAIL = format('warehouse_id=%s reserved %s of %s lines', p_warehouse_id,
                            v_updated, v_lines);
    END IF;

    -- the rows are held now: a SKU split into buckets while this waited for its row is served
    -- from its buckets (its row was emptied by the split)
    IF EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                WHERE c.warehouse_id = p_warehouse_id AND c.sku = ANY (p_skus)) THEN
        PERFORM orderdb._reserve_stock_bucketed(p_warehouse_id, p_skus, p_quantities);
        RETURN;
    END IF;

    IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_warehouse_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('unknown warehouse %s', p_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_warehouse_id),
            HINT = 'A warehouse exists once it has received stock (orderdb.receive_stock).';
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'OD001',
        MESSAGE = format('insufficient stock for sku %s', orderdb._quote_sku(v_short[1][1])),
        DETAIL = format('sku=%s requested=%s available=%s',
                        v_short[1][1], v_short[1][2], v_short[1][3]),
        HINT = 'Nothing was reserved.';
END;
$$;
COMMENT ON FUNCTION orderdb._reserve_stock(integer, text[], integer[]) IS
    'Reserves every line or none (OD001), locking inventory rows in sku order.';

-- _move_reservations: moves quantities of one order's lines between ledger states and applies
-- the matching inventory counter change, in one place:
--   held     -> consumed : goods left the warehouse  (on_hand -= q, reserved -= q)
--   held     -> released : reservation given back   (reserved -= q)
--   consumed -> returned : goods came back, restock (on_hand += q)
-- p_lines NULL: every line, its whole quantity in p_from_state. Otherwise a JSON array
-- [{"sku": "SKU-1", "quantity": 2}, ...] (quantity optional = all of that line in p_from_state):
-- each sku must be a line of the order and quantity at most what the line has in p_from_state.
-- Returns the number of units moved (0 when nothing was in p_from_state).
-- The caller must hold the order's row lock (e.g. have updated the orders row in this
-- transaction); CHECK constraints on order_lines and inventory stay the last guard.
-- Raises 22023 (bad p_lines / state pair). Locks the inventory rows of every line of the order
-- that holds or consumed stock (a superset of the moved skus), in sku order.
CREATE OR REPLACE FUNCTION orderdb._move_reservations(p_warehouse_id integer, p_order_id bigint,
                                                      p_from_state text, p_to_state text,
                                                      p_lines jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_req_skus text[];
    v_req_qtys integer[];
    v_error    text;
    v_skus     text[];
    v_qtys     integer[];
    v_moved    integer;
BEGIN
    IF (p_from_state, p_to_state) NOT IN (('held', 'consumed'), ('held', 'released'),
                                          ('consumed', 'returned')) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('cannot move reservations from %s to %s', p_from_state, p_to_state);
    END IF;

    IF p_lines IS NOT NULL THEN
        -- the callers' lines are resolved already (orderdb._resolve_lines: the skus as the order
        -- stores them): not parsed again, so a sku stored before the sku rules still moves
        SELECT array_agg(e ->> 'sku'), array_agg((e ->> 'quantity')::integer)
          INTO v_req_skus, v_req_qtys
          FROM jsonb_array_elements(p_lines) AS e;
        -- every requested sku must be a line with enough quantity in the source state
        SELECT (array_agg(
                  CASE WHEN l.sku IS NULL THEN
                         format('lines: sku %s is not a line of order %s',
                                orderdb._quote_sku(r.sku), p_order_id)
                       ELSE format('lines: quantity %s of sku %s exceeds the %s quantity %s',
                                   r.quantity, orderdb._quote_sku(r.sku), p_from_state,
                                   l.available) END
                  ORDER BY r.sku)
                  FILTER (WHERE l.sku IS NULL OR r.quantity > l.available))[1]
          INTO v_error
          FROM unnest(v_req_skus, v_req_qtys) AS r(sku, quantity)
          LEFT JOIN LATERAL (
              SELECT ol.sku,
                     CASE p_from_state WHEN 'held' THEN ol.qty_held
                                       ELSE ol.qty_consumed END AS available
                FROM orderdb.order_lines ol
               WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id
                 AND ol.sku = r.sku) l ON true;
        IF v_error IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = v_error;
        END IF;
    END IF;

    -- what moves. The lock covers the inventory rows of every line of the order that still
    -- holds or consumed stock (a superset of what moves), in sku order: a caller that moves
    -- several subsets in one transaction (a partial shipment, then a return that restocks the
    -- shipped lines and releases the held ones) takes all its row locks in the first move, in
    -- the global (warehouse_id, sku) order, and never waits for a lower sku while holding a higher.
    SELECT array_agg(m.sku ORDER BY m.sku) FILTER (WHERE m.quantity > 0),
           array_agg(m.quantity ORDER BY m.sku) FILTER (WHERE m.quantity > 0)
      INTO v_skus, v_qtys
      FROM (
        SELECT ol.sku,
               CASE WHEN v_req_skus IS NOT NULL AND r.sku IS NULL THEN 0
                    ELSE coalesce(r.quantity,
                                  CASE p_from_state WHEN 'held' THEN ol.qty_held
                                                    ELSE ol.qty_consumed END)
               END AS quantity
          FROM orderdb.order_lines ol
          JOIN orderdb.inventory i ON i.warehouse_id = ol.warehouse_id AND i.sku = ol.sku
          LEFT JOIN unnest(v_req_skus, v_req_qtys) AS r(sku, quantity) ON r.sku = ol.sku
         WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id
           AND (ol.qty_held > 0 OR ol.qty_consumed > 0)
         ORDER BY ol.sku
           FOR NO KEY UPDATE OF i
      ) m;

    IF v_skus IS NULL THEN
        RETURN 0;
    END IF;

    WITH moved AS (
        UPDATE orderdb.order_lines AS ol
           SET qty_held     = ol.qty_held     - CASE WHEN p_from_state = 'held' THEN m.quantity ELSE 0 END,
               qty_consumed = ol.qty_consumed - CASE WHEN p_from_state = 'consumed' THEN m.quantity ELSE 0 END
                                              + CASE WHEN p_to_state = 'consumed' THEN m.quantity ELSE 0 END,
               qty_released = ol.qty_released + CASE WHEN p_to_state = 'released' THEN m.quantity ELSE 0 END,
               qty_returned = ol.qty_returned + CASE WHEN p_to_state = 'returned' THEN m.quantity ELSE 0 END
          FROM unnest(v_skus, v_qtys) AS m(sku, quantity)
         WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id AND ol.sku = m.sku
        RETURNING ol.sku, m.quantity
    )
    UPDATE orderdb.inventory AS i
       SET on_hand  = i.on_hand + CASE p_to_state WHEN 'consumed' THEN -mv.quantity
                                                  WHEN 'returned' THEN mv.quantity
                                                  ELSE 0 END,
           reserved = i.reserved - CASE WHEN p_from_state = 'held' THEN mv.quantity ELSE 0 END,
           updated_at = now()
      FROM moved mv
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = mv.sku
       AND NOT EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                        WHERE c.warehouse_id = p_warehouse_id AND c.sku = mv.sku);
    -- bucketed (flash-sale) skus: the counters live in their buckets (sql/25_stock_buckets.sql)
    PERFORM orderdb._move_bucket_stock(p_warehouse_id, p_from_state, p_to_state, v_skus, v_qtys);

    SELECT sum(q)::integer INTO v_moved FROM unnest(v_qtys) AS u(q);
    RETURN v_moved;
END;
$$;
COMMENT ON FUNCTION orderdb._move_reservations(integer, bigint, text, text, jsonb) IS
    'Moves one order''s line quantities between ledger states and updates the inventory counters.';

-- _consume_reservations: held -> consumed for the order's lines (all, or the p_lines subset):
-- the goods left the warehouse, so on_hand and reserved both drop. Returns units consumed.
-- Raises 22023 (bad p_lines). Locks the affected inventory rows in sku order.
CREATE OR REPLACE FUNCTION orderdb._consume_reservations(p_warehouse_id integer,
                                                         p_order_id bigint,
                                                         p_lines jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE sql
AS $$
    SELECT orderdb._move_reservations(p_warehouse_id, p_order_id, 'held', 'consumed', p_lines);
$$;
COMMENT ON FUNCTION orderdb._consume_reservations(integer, bigint, jsonb) IS
    'Consumes an order''s held reservations (all or some lines): on_hand and reserved drop.';

-- _release_reservations: held -> released (all lines, or the p_lines subset): reserved drops.
-- Returns units released. Raises 22023 (bad p_lines). Locks the affected inventory rows in sku order.
CREATE OR REPLACE FUNCTION orderdb._release_reservations(p_warehouse_id integer,
                                                         p_order_id bigint,
                                                         p_lines jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE sql
AS $$
    SELECT orderdb._move_reservations(p_warehouse_id, p_order_id, 'held', 'released', p_lines);
$$;
COMMENT ON FUNCTION orderdb._release_reservations(integer, bigint, jsonb) IS
    'Releases an order''s held reservations (all or some lines): reserved drops.';

-- _restock: consumed -> returned (all lines, or the p_lines subset): the goods are back, on_hand
-- rises. Returns units restocked. Raises 22023 (bad p_lines). Locks the affected inventory rows
-- in sku order.
CREATE OR REPLACE FUNCTION orderdb._restock(p_warehouse_id integer, p_order_id bigint,
                                            p_lines jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE sql
AS $$
    SELECT orderdb._move_reservations(p_warehouse_id, p_order_id, 'consumed', 'returned', p_lines);
$$;
COMMENT ON FUNCTION orderdb._restock(integer, bigint, jsonb) IS
    'Restocks what an order consumed (all or some lines): on_hand rises, ledger state returned.';
