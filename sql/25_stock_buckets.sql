-- Flash-sale stock (bucketed SKUs, migrations/0008_stock_buckets.sql).
--
-- A bucketed SKU keeps its stock in orderdb.stock_buckets rows 0..n-1 (on_hand, reserved each);
-- its orderdb.inventory row stays, with on_hand = reserved = 0. A reservation claims one bucket
-- that can serve the line and that nobody else holds (FOR NO KEY UPDATE SKIP LOCKED, starting at
-- a bucket chosen by the backend pid, so concurrent buyers spread over the buckets). When no free
-- bucket can serve it — every bucket with enough stock is held by an order in flight, or the
-- stock is spread too thin — it waits for all the SKU's buckets (in bucket order), takes the line
-- from their total and spreads what is left evenly again (rebalancing). OD001 is raised only from
-- that point, when every bucket is locked: never while stock sits in a bucket someone holds.
--
-- The routing is in sql/20_inventory.sql: receive_stock, _reserve_stock and _move_reservations
-- send bucketed SKUs here; stock_level and orderdb_ops.inventory_drift read
-- orderdb.inventory_levels (inventory row + buckets). Ledgers are unchanged (order_lines.qty_*),
-- so counters == ledger keeps holding: the sum of a SKU's reserved is its held reservations.
--
-- Lock order (extends 20_inventory.sql's rule): inventory rows first, in (warehouse_id, sku)
-- order; then bucket rows in (warehouse_id, sku, bucket) order. A claim with SKIP LOCKED never
-- waits, so it may take any bucket; whoever waits for buckets holds no other bucket of that SKU.

-- inventory_levels: on_hand and reserved of every (warehouse, sku): the inventory row plus, for
-- a bucketed SKU, the sum of its buckets. Locks nothing.
CREATE OR REPLACE VIEW orderdb.inventory_levels AS
SELECT i.warehouse_id,
       i.sku,
       (i.on_hand + coalesce(b.on_hand, 0))::integer AS on_hand,
       (i.reserved + coalesce(b.reserved, 0))::integer AS reserved,
       (i.on_hand - i.reserved + coalesce(b.on_hand - b.reserved, 0))::integer AS available,
       i.updated_at,
       b.buckets
  FROM orderdb.inventory i
  LEFT JOIN LATERAL (
        SELECT sum(sb.on_hand) AS on_hand, sum(sb.reserved) AS reserved,
               count(*)::integer AS buckets
          FROM orderdb.stock_buckets sb
         WHERE sb.warehouse_id = i.warehouse_id AND sb.sku = i.sku
        HAVING count(*) > 0
       ) b ON true;
COMMENT ON VIEW orderdb.inventory_levels IS
    'Stock per (warehouse, sku): the inventory row plus the buckets of a bucketed SKU.';

-- _rewrite_buckets: locks every bucket of (warehouse, sku) in bucket order (waiting), then, if
-- the stock allows it, reserves p_reserve units and adds p_receive units to on_hand, and spreads
-- the available stock evenly over the buckets (each keeps its reserved units; bucket 0 takes
-- p_reserve). Returns the SKU's available units before the change, NULL when it has no buckets;
-- nothing changes when available + p_receive < p_reserve (the caller raises OD001).
-- Raises 22023 when on_hand would exceed 2147483647.
-- Locks the SKU's bucket rows, in bucket order.
CREATE OR REPLACE FUNCTION orderdb._rewrite_buckets(p_warehouse_id integer, p_sku text,
                                                    p_reserve integer DEFAULT 0,
                                                    p_receive integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_n       integer;
    v_on_hand bigint;
    v_avail   bigint;
    v_left    bigint;
BEGIN
    -- twice: the second statement's snapshot also sees buckets a resize committed while the
    -- first one waited (their locks are then held too; nobody can resize any more)
    FOR pass IN 1 .. 2 LOOP
        SELECT count(*)::integer, sum(l.on_hand), sum(l.on_hand - l.reserved)
          INTO v_n, v_on_hand, v_avail
          FROM (SELECT b.on_hand, b.reserved
                  FROM orderdb.stock_buckets b
                 WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku
                 ORDER BY b.bucket
                   FOR NO KEY UPDATE) l;
        EXIT WHEN v_n > 0 AND v_avail + p_receive >= p_reserve;
    END LOOP;
    IF v_n = 0 THEN
        RETURN NULL;
    END IF;
    IF v_avail + p_receive < p_reserve THEN
        RETURN v_avail;
    END IF;
    IF v_on_hand + p_receive > 2147483647 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'quantity would raise on_hand above 2147483647',
            DETAIL = format('warehouse_id=%s sku=%s quantity=%s', p_warehouse_id, p_sku,
                            p_receive);
    END IF;

    v_left := v_avail + p_receive - p_reserve;
    UPDATE orderdb.stock_buckets AS b
       SET reserved = b.reserved + CASE WHEN b.bucket = 0 THEN p_reserve ELSE 0 END,
           reservations = b.reservations
                          + CASE WHEN b.bucket = 0 AND p_reserve > 0 THEN 1 ELSE 0 END,
           on_hand  = b.reserved + CASE WHEN b.bucket = 0 THEN p_reserve ELSE 0 END
                      + (v_left / v_n)::integer
                      + CASE WHEN b.bucket < v_left % v_n THEN 1 ELSE 0 END
     WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku;
    RETURN v_avail;
END;
$$;
COMMENT ON FUNCTION orderdb._rewrite_buckets(integer, text, integer, integer) IS
    'Locks all buckets of a SKU, reserves/receives units and spreads the available stock evenly.';

-- _claim_bucket_stock: reserves p_quantity units of a bucketed SKU. First a claim without
-- waiting: one bucket with enough available stock that no other transaction holds (FOR NO KEY
-- UPDATE SKIP LOCKED), searched from bucket pid % p_buckets on. Otherwise orderdb._rewrite_buckets
-- (waits for every bucket, reserves from the total, rebalances). Returns NULL when reserved,
-- else the SKU's available units (all its buckets locked: the shortage is real). When the SKU
-- stopped being bucketed meanwhile, reserves from its inventory row (conditional UPDATE).
-- Locks one bucket, or all of the SKU's buckets in bucket order.
CREATE OR REPLACE FUNCTION orderdb._claim_bucket_stock(p_warehouse_id integer, p_sku text,
                                                       p_quantity integer, p_buckets integer)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_start integer := pg_catalog.pg_backend_pid() % greatest(p_buckets, 1);
    v_avail bigint;
BEGIN
    -- A probe may keep a lock on a bucket it could not use: READ COMMITTED re-checks a bucket
    -- updated meanwhile once it holds its lock, and skips it, still locked, when it no longer
    -- has enough. The probes run in a subtransaction, rolled back when nothing was claimed, so
    -- that orderdb._rewrite_buckets below waits for the buckets in order holding none of them
    -- (a stray lock on a higher bucket would deadlock with another transaction doing the same).
    -- SQLSTATE OD900 is internal: it never leaves this block.
    BEGIN
        -- buckets v_start.. first, then 0..v_start-1 (two index-ordered probes, the second only
        -- when the first finds nothing)
        UPDATE orderdb.stock_buckets AS b
           SET reserved = b.reserved + p_quantity, reservations = b.reservations + 1
         WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku
           AND b.bucket = coalesce(
                   (SELECT c.bucket
                      FROM orderdb.stock_buckets c
                     WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku
                       AND c.bucket >= v_start AND c.on_hand - c.reserved >= p_quantity
                     ORDER BY c.bucket
                     LIMIT 1
                       FOR NO KEY UPDATE SKIP LOCKED),
                   (SELECT c.bucket
                      FROM orderdb.stock_buckets c
                     WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku
                       AND c.bucket < v_start AND c.on_hand - c.reserved >= p_quantity
                     ORDER BY c.bucket
                     LIMIT 1
                       FOR NO KEY UPDATE SKIP LOCKED));
        IF FOUND THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'OD900', MESSAGE = 'no free bucket';
    EXCEPTION WHEN SQLSTATE 'OD900' THEN
        NULL;
    END;

    v_avail := orderdb._rewrite_buckets(p_warehouse_id, p_sku, p_quantity, 0);
    IF v_avail IS NOT NULL THEN
        RETURN CASE WHEN v_avail >= p_quantity THEN NULL ELSE v_avail END;
    END IF;

    -- no buckets any more (switched off meanwhile): the inventory row holds the stock again
    UPDATE orderdb.inventory AS i
       SET reserved = i.reserved + p_quantity, updated_at = now()
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku
       AND i.on_hand - i.reserved >= p_quantity;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(max(i.on_hand - i.reserved), 0) INTO v_avail
      FROM orderdb.inventory i
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku;
    RETURN v_avail;
END;
$$;
COMMENT ON FUNCTION orderdb._claim_bucket_stock(integer, text, integer, integer) IS
    'Reserves units of a bucketed SKU: a free bucket (SKIP LOCKED), else all buckets; NULL = done.';

-- _reserve_stock_bucketed: orderdb._reserve_stock for an order with at least one bucketed SKU
-- (same contract: every line or none; p_skus distinct). Plain lines first: their inventory rows
-- are locked in sku order and checked, then reserved set-based; then the bucketed lines in sku
-- order (orderdb._claim_bucket_stock).
-- Raises OD001 (DETAIL 'sku=... requested=... available=...', the first short sku in sku order).
-- Locks the inventory rows of the plain skus in sku order, then buckets of the bucketed skus.
CREATE OR REPLACE FUNCTION orderdb._reserve_stock_bucketed(p_warehouse_id integer,
                                                           p_skus text[],
                                                           p_quantities integer[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_plain_skus  text[];
    v_plain_qtys  integer[];
    v_short_sku   text;
    v_short_req   integer;
    v_short_avail bigint;
    v_avail       bigint;
    v_buckets     integer;
    v_start       integer;
    r             record;
BEGIN
    IF cardinality(p_skus) = 1 THEN
        -- one line (the flash-sale case): straight to its buckets; the common outcome, a free
        -- bucket from pid % buckets on, inline (orderdb._claim_bucket_stock's first step)
        SELECT c.buckets INTO v_buckets
          FROM orderdb.stock_bucket_skus c
         WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_skus[1];
        v_start := pg_catalog.pg_backend_pid() % greatest(coalesce(v_buckets, 1), 1);
        -- in a subtransaction, rolled back when nothing was claimed: no stray bucket lock is
        -- kept (orderdb._claim_bucket_stock explains why; OD900 never leaves this block)
        BEGIN
            UPDATE orderdb.stock_buckets AS b
               SET reserved = b.reserved + p_quantities[1], reservations = b.reservations + 1
             WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_skus[1]
               AND b.bucket = (SELECT c.bucket
                                 FROM orderdb.stock_buckets c
                                WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_skus[1]
                                  AND c.bucket >= v_start
                                  AND c.on_hand - c.reserved >= p_quantities[1]
                                ORDER BY c.bucket
                                LIMIT 1
                                  FOR NO KEY UPDATE SKIP LOCKED);
            IF FOUND THEN
                RETURN;
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'OD900', MESSAGE = 'no free bucket';
        EXCEPTION WHEN SQLSTATE 'OD900' THEN
            NULL;
        END;
        v_avail := orderdb._claim_bucket_stock(p_warehouse_id, p_skus[1], p_quantities[1],
                                               v_buckets);
        IF v_avail IS NULL THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'OD001',
            MESSAGE = format('insufficient stock for sku %s', orderdb._quote_sku(p_skus[1])),
            DETAIL = format('sku=%s requested=%s available=%s', p_skus[1], p_quantities[1],
                            v_avail),
            HINT = 'Nothing was reserved.';
    END IF;

    SELECT array_agg(u.sku ORDER BY u.sku COLLATE "C"), array_agg(u.quantity ORDER BY u.sku COLLATE "C")
      INTO v_plain_skus, v_plain_qtys
      FROM unnest(p_skus, p_quantities) AS u(sku, quantity)
     WHERE NOT EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                        WHERE c.warehouse_id = p_warehouse_id AND c.sku = u.sku);

    IF v_plain_skus IS NOT NULL THEN
        WITH locked AS MATERIALIZED (
            SELECT i.sku, i.on_hand - i.reserved AS available
              FROM orderdb.inventory i
             WHERE i.warehouse_id = p_warehouse_id AND i.sku = ANY (v_plain_skus)
             ORDER BY i.sku
               FOR NO KEY UPDATE
        )
        SELECT s.sku, s.quantity, coalesce(l.available, 0)
          INTO v_short_sku, v_short_req, v_short_avail
          FROM unnest(v_plain_skus, v_plain_qtys) AS s(sku, quantity)
          LEFT JOIN locked l ON l.sku = s.sku
         WHERE coalesce(l.available, 0) < s.quantity
         ORDER BY s.sku COLLATE "C"
         LIMIT 1;
        IF v_short_sku IS NULL THEN
            UPDATE orderdb.inventory AS i
               SET reserved = i.reserved + s.quantity, updated_at = now()
              FROM unnest(v_plain_skus, v_plain_qtys) AS s(sku, quantity)
             WHERE i.warehouse_id = p_warehouse_id AND i.sku = s.sku;
        END IF;
    END IF;

    FOR r IN
        SELECT u.sku, u.quantity, c.buckets
          FROM unnest(p_skus, p_quantities) AS u(sku, quantity)
          JOIN orderdb.stock_bucket_skus c ON c.warehouse_id = p_warehouse_id AND c.sku = u.sku
         ORDER BY u.sku COLLATE "C"
    LOOP
        -- a plain line earlier in sku order is short already: it is the one reported
        EXIT WHEN v_short_sku IS NOT NULL AND r.sku COLLATE "C" > v_short_sku COLLATE "C";
        v_avail := orderdb._claim_bucket_stock(p_warehouse_id, r.sku, r.quantity, r.buckets);
        IF v_avail IS NOT NULL THEN
            v_short_sku := r.sku;
            v_short_req := r.quantity;
            v_short_avail := v_avail;
            EXIT;
        END IF;
    END LOOP;

    IF v_short_sku IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD001',
            MESSAGE = format('insufficient stock for sku %s', orderdb._quote_sku(v_short_sku)),
            DETAIL = format('sku=%s requested=%s available=%s', v_short_sku, v_short_req,
                            v_short_avail),
            HINT = 'Nothing was reserved.';
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._reserve_stock_bucketed(integer, text[], integer[]) IS
    'Reserves every line or none when some skus are bucketed (flash-sale stock).';

-- _move_bucket_stock: the bucket side of orderdb._move_reservations for the bucketed skus among
-- p_skus (p_quantities: the units moved, as _move_reservations computed them; other skus are
-- ignored). held -> consumed / released: the SKU's buckets are locked in bucket order and the
-- units leave reserved (and on_hand when consumed) from the lowest buckets that hold
-- reservations; consumed -> returned: on_hand of one bucket grows (a free one if any).
-- Raises 23514 if the buckets hold fewer reserved units than the ledger moves (drift: a bug).
-- Locks bucket rows of the bucketed skus in (sku, bucket) order.
CREATE OR REPLACE FUNCTION orderdb._move_bucket_stock(p_warehouse_id integer, p_from_state text,
                                                      p_to_state text, p_skus text[],
                                                      p_quantities integer[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    r          record;
    v_reserved bigint;
BEGIN
    FOR r IN
        SELECT u.sku, u.quantity
          FROM unnest(p_skus, p_quantities) AS u(sku, quantity)
          JOIN orderdb.stock_bucket_skus c ON c.warehouse_id = p_warehouse_id AND c.sku = u.sku
         WHERE u.quantity > 0
         ORDER BY u.sku COLLATE "C"
    LOOP
        IF p_from_state = 'held' THEN
            SELECT coalesce(sum(l.reserved), 0) INTO v_reserved
              FROM (SELECT b.reserved
                      FROM orderdb.stock_buckets b
                     WHERE b.warehouse_id = p_warehouse_id AND b.sku = r.sku
                     ORDER BY b.bucket
                       FOR NO KEY UPDATE) l;
            IF v_reserved < r.quantity THEN
                RAISE EXCEPTION USING
                    ERRCODE = '23514',
                    MESSAGE = format('stock buckets of sku %s hold fewer reserved units than '
                                     'the ledger moves', orderdb._quote_sku(r.sku)),
                    DETAIL = format('warehouse_id=%s sku=%s reserved=%s moving=%s',
                                    p_warehouse_id, r.sku, v_reserved, r.quantity),
                    HINT = 'See orderdb_ops.inventory_drift.';
            END IF;
            UPDATE orderdb.stock_buckets AS b
               SET reserved = b.reserved - t.take,
                   on_hand = b.on_hand - CASE WHEN p_to_state = 'consumed' THEN t.take ELSE 0 END
              FROM (SELECT x.bucket,
                           least(x.reserved,
                                 greatest(0, r.quantity - (x.running - x.reserved)))::integer
                               AS take
                      FROM (SELECT s.bucket, s.reserved,
                                   sum(s.reserved) OVER (ORDER BY s.bucket) AS running
                              FROM orderdb.stock_buckets s
                             WHERE s.warehouse_id = p_warehouse_id AND s.sku = r.sku) x) t
             WHERE b.warehouse_id = p_warehouse_id AND b.sku = r.sku AND b.bucket = t.bucket
               AND t.take > 0;
        ELSE
            UPDATE orderdb.stock_buckets AS b
               SET on_hand = b.on_hand + r.quantity
             WHERE b.warehouse_id = p_warehouse_id AND b.sku = r.sku
               AND b.bucket = (SELECT c.bucket
                                 FROM orderdb.stock_buckets c
                                WHERE c.warehouse_id = p_warehouse_id AND c.sku = r.sku
                                ORDER BY c.bucket
                                LIMIT 1
                                  FOR NO KEY UPDATE SKIP LOCKED);
            IF NOT FOUND THEN
                UPDATE orderdb.stock_buckets AS b
                   SET on_hand = b.on_hand + r.quantity
                 WHERE b.warehouse_id = p_warehouse_id AND b.sku = r.sku AND b.bucket = 0;
            END IF;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb._move_bucket_stock(integer, text, text, text[], integer[]) IS
    'Applies a ledger move (consume, release, restock) to the buckets of bucketed skus.';

-- _receive_bucketed_stock: orderdb.receive_stock for a bucketed SKU: the units are spread over
-- its buckets (orderdb._rewrite_buckets) and the receipt recorded. Same result columns.
-- Raises 22023 (on_hand would exceed 2147483647).
-- Locks the inventory row, then the SKU's buckets in bucket order.
CREATE OR REPLACE FUNCTION orderdb._receive_bucketed_stock(p_warehouse_id integer, p_sku text,
                                                           p_quantity integer,
                                                           p_actor text DEFAULT NULL)
RETURNS TABLE (warehouse_id integer, sku text, on_hand integer, reserved integer,
               available integer)
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM orderdb.inventory i
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku
       FOR NO KEY UPDATE;
    IF orderdb._rewrite_buckets(p_warehouse_id, p_sku, 0, p_quantity) IS NULL THEN
        -- switched off meanwhile: the inventory row takes the units (receive_stock's rule)
        UPDATE orderdb.inventory AS i
           SET on_hand = i.on_hand + p_quantity, updated_at = now()
         WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku
           AND i.on_hand <= 2147483647 - p_quantity;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = 'quantity would raise on_hand above 2147483647',
                DETAIL = format('warehouse_id=%s sku=%s quantity=%s', p_warehouse_id, p_sku,
                                p_quantity);
        END IF;
    END IF;
    INSERT INTO orderdb.stock_receipts (warehouse_id, sku, quantity, actor)
    VALUES (p_warehouse_id, p_sku, p_quantity, p_actor);

    RETURN QUERY
        SELECT l.warehouse_id, l.sku::text, l.on_hand, l.reserved, l.available
          FROM orderdb.inventory_levels l
         WHERE l.warehouse_id = p_warehouse_id AND l.sku = p_sku;
END;
$$;
COMMENT ON FUNCTION orderdb._receive_bucketed_stock(integer, text, integer, text) IS
    'Adds received units to a bucketed SKU, spread over its buckets; records the receipt.';

-- _set_buckets: the switch of orderdb.set_stock_buckets and of the automatic split/merge (no
-- argument checks): locks the SKU's inventory row (waiting), then its buckets in bucket order,
-- and splits its stock over p_buckets rows (2..1024) or puts it back into the inventory row (1).
-- Every unit moves: reservations stay reservations, the available stock is spread evenly.
-- p_mode 'manual' | 'automatic' and p_reason are recorded (orderdb_ops.stock_buckets); the
-- reservation counts of the buckets start again from 0. Returns false (nothing changed) when the
-- warehouse has no inventory row for the SKU.
-- Locks the inventory row, then the SKU's buckets in bucket order.
CREATE OR REPLACE FUNCTION orderdb._set_buckets(p_warehouse_id integer, p_sku text,
                                                p_buckets integer, p_actor text,
                                                p_mode text, p_reason text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_inv_on_hand  integer;
    v_inv_reserved integer;
    v_on_hand      bigint;
    v_reserved     bigint;
    v_gone         bigint;
    v_left         bigint;
BEGIN
    SELECT i.on_hand, i.reserved INTO v_inv_on_hand, v_inv_reserved
      FROM orderdb.inventory i
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    SELECT coalesce(sum(l.on_hand), 0), coalesce(sum(l.reserved), 0),
           coalesce(sum(l.reserved) FILTER (WHERE l.bucket >= p_buckets), 0)
      INTO v_on_hand, v_reserved, v_gone
      FROM (SELECT b.bucket, b.on_hand, b.reserved
              FROM orderdb.stock_buckets b
             WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku
             ORDER BY b.bucket
               FOR NO KEY UPDATE) l;
    v_on_hand := v_on_hand + v_inv_on_hand;
    v_reserved := v_reserved + v_inv_reserved;

    IF p_buckets = 1 THEN
        DELETE FROM orderdb.stock_buckets b
         WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku;
        DELETE FROM orderdb.stock_bucket_skus c
         WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku;
        UPDATE orderdb.inventory AS i
           SET on_hand = v_on_hand::integer, reserved = v_reserved::integer, updated_at = now()
         WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku;
    ELSE
        INSERT INTO orderdb.stock_bucket_skus AS c (warehouse_id, sku, buckets, actor, mode,
                                                    reason)
        VALUES (p_warehouse_id, p_sku, p_buckets, p_actor, p_mode, p_reason)
        ON CONFLICT ON CONSTRAINT stock_bucket_skus_pkey
        DO UPDATE SET buckets = excluded.buckets, actor = excluded.actor, mode = excluded.mode,
                      reason = excluded.reason, updated_at = now(),
                      bucketed_since = CASE WHEN c.mode = excluded.mode THEN c.bucketed_since
                                            ELSE now() END,
                      reservations_seen = 0, seen_at = now();
        DELETE FROM orderdb.stock_buckets b
         WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku AND b.bucket >= p_buckets;
        INSERT INTO orderdb.stock_buckets (warehouse_id, sku, bucket, on_hand, reserved)
        SELECT p_warehouse_id, p_sku, g, 0, 0
          FROM generate_series(0, p_buckets - 1) AS g
        ON CONFLICT ON CONSTRAINT stock_buckets_pkey DO NOTHING;
        UPDATE orderdb.inventory AS i
           SET on_hand = 0, reserved = 0, updated_at = now()
         WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku;
        -- reservations of removed buckets and of the inventory row go to bucket 0; the
        -- available stock is spread evenly
        v_left := v_on_hand - v_reserved;
        UPDATE orderdb.stock_buckets AS b
           SET reserved = b.reserved + CASE WHEN b.bucket = 0
                                            THEN (v_gone + v_inv_reserved)::integer ELSE 0 END,
               on_hand = b.reserved + CASE WHEN b.bucket = 0
                                           THEN (v_gone + v_inv_reserved)::integer ELSE 0 END
                         + (v_left / p_buckets)::integer
                         + CASE WHEN b.bucket < v_left % p_buckets THEN 1 ELSE 0 END,
               reservations = 0
         WHERE b.warehouse_id = p_warehouse_id AND b.sku = p_sku;
    END IF;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION orderdb._set_buckets(integer, text, integer, text, text, text) IS
    'Splits a SKU''s stock into buckets or back into its inventory row (manual or automatic).';

-- set_stock_buckets: switches a SKU of a warehouse to bucketed stock (p_buckets 2..1024: its
-- stock split over that many rows, for flash sales) or back (p_buckets 1: one inventory row).
-- Changing the number of buckets, or switching, moves every unit: reservations stay reservations,
-- the available stock is spread evenly. Waits for the reservations in flight on that SKU.
-- The manual override of the automatic buckets: a SKU switched on here is never merged back
-- automatically (mode manual); p_buckets 1 also ends automatic buckets at once.
-- Returns the SKU's stock and its number of buckets (1 = not bucketed).
-- Raises 22023 (bad arguments), OD004 (the warehouse has no inventory row for the sku).
-- Locks the inventory row, then the SKU's buckets in bucket order.
CREATE OR REPLACE FUNCTION orderdb.set_stock_buckets(p_warehouse_id integer, p_sku text,
                                                     p_buckets integer,
                                                     p_actor text DEFAULT NULL)
RETURNS TABLE (warehouse_id integer, sku text, buckets integer, on_hand integer,
               reserved integer, available integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    p_sku := orderdb._check_sku(p_sku);
    IF p_buckets IS NULL OR p_buckets NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'buckets must be from 1 to 1024',
            DETAIL = format('buckets=%s', coalesce(p_buckets::text, 'NULL')),
            HINT = '1 switches bucketing off.';
    END IF;
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);

    IF NOT orderdb._set_buckets(p_warehouse_id, p_sku, p_buckets, p_actor, 'manual', NULL) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('no stock row for sku %s in warehouse %s', orderdb._quote_sku(p_sku),
                             p_warehouse_id),
            DETAIL = format('warehouse_id=%s sku=%s', p_warehouse_id, p_sku),
            HINT = 'Receive the sku first (orderdb.receive_stock).';
    END IF;

    RETURN QUERY
        SELECT l.warehouse_id, l.sku::text, coalesce(l.buckets, 1), l.on_hand, l.reserved,
               l.available
          FROM orderdb.inventory_levels l
         WHERE l.warehouse_id = p_warehouse_id AND l.sku = p_sku;
END;
$$;
COMMENT ON FUNCTION orderdb.set_stock_buckets(integer, text, integer, text) IS
    'Splits a SKU''s stock into buckets for flash sales (2..1024), or back into one row (1).';

-- rebalance_stock_buckets: spreads a bucketed SKU's available stock evenly over its buckets
-- (reservations stay where they are). Reservations rebalance by themselves whenever no single
-- free bucket can serve a line; this is for operators (e.g. before a sale starts).
-- Returns the SKU's stock and its number of buckets.
-- Raises 22023 (bad arguments), OD004 (the sku is not bucketed in that warehouse).
-- Locks the SKU's buckets in bucket order.
CREATE OR REPLACE FUNCTION orderdb.rebalance_stock_buckets(p_warehouse_id integer, p_sku text)
RETURNS TABLE (warehouse_id integer, sku text, buckets integer, on_hand integer,
               reserved integer, available integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    p_sku := orderdb._check_sku(p_sku);
    IF orderdb._rewrite_buckets(p_warehouse_id, p_sku, 0, 0) IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('sku %s is not bucketed in warehouse %s', orderdb._quote_sku(p_sku),
                             p_warehouse_id),
            DETAIL = format('warehouse_id=%s sku=%s', p_warehouse_id, p_sku),
            HINT = 'orderdb.set_stock_buckets splits a SKU''s stock into buckets.';
    END IF;
    RETURN QUERY
        SELECT l.warehouse_id, l.sku::text, l.buckets, l.on_hand, l.reserved, l.available
          FROM orderdb.inventory_levels l
         WHERE l.warehouse_id = p_warehouse_id AND l.sku = p_sku;
END;
$$;
COMMENT ON FUNCTION orderdb.rebalance_stock_buckets(integer, text) IS
    'Spreads a bucketed SKU''s available stock evenly over its buckets.';

-- Automatic buckets (migrations/0016_auto_buckets.sql). A single-line reservation first tries to
-- lock the plain SKU's inventory row without waiting (orderdb._reserve_stock); when another
-- transaction holds it, that is a lock conflict: orderdb._note_stock_conflict appends a row to
-- orderdb.stock_lock_conflicts (no shared counter row to queue on) and, once the policy's
-- split_conflicts were noted within split_window, splits the SKU into buckets in the
-- reservation's own transaction (it was about to wait for that row lock anyway). The split moves
-- the stock under the inventory row lock; reservations that waited for that lock find the row
-- emptied and then see the SKU bucketed (every path re-reads stock_bucket_skus after it holds the
-- inventory row: a SKU is split or merged only under that lock), so none gets a false OD001.
-- `orderdb maintain` merges an automatic SKU back (orderdb._merge_cooled_stock_buckets) when it
-- served fewer than merge_below_rate reservations per second over at least merge_after.

-- _note_stock_conflict: records that a reservation of (warehouse, sku) found its inventory row
-- held by another transaction and, past the policy's threshold (orderdb.stock_bucket_policy),
-- splits the SKU into buckets (mode automatic, reason 'N lock conflicts in S s'): the policy's
-- number, fewer when that would leave less than 4 available units a bucket. Returns true
-- when the SKU is bucketed now (split here or by someone else meanwhile): the caller reserves
-- from its buckets; false, noting nothing, when the policy is disabled. Raises nothing of its own.
-- Locks: none below the threshold; past it the SKU's inventory row (waiting), then its buckets.
CREATE OR REPLACE FUNCTION orderdb._note_stock_conflict(p_warehouse_id integer, p_sku text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_policy    record;
    v_conflicts integer;
    v_first     timestamptz;
    v_available integer;
    v_buckets   integer;
BEGIN
    SELECT p.enabled, p.split_conflicts, p.split_window, p.buckets INTO v_policy
      FROM orderdb.stock_bucket_policy p;
    IF NOT FOUND OR NOT v_policy.enabled THEN
        RETURN false;  -- automatic buckets are off: nothing to count
    END IF;
    INSERT INTO orderdb.stock_lock_conflicts (warehouse_id, sku)
    VALUES (p_warehouse_id, p_sku);
    -- the newest split_conflicts conflicts of the window at most (this one included)
    SELECT count(*)::integer, min(t.noted_at) INTO v_conflicts, v_first
      FROM (SELECT c.noted_at
              FROM orderdb.stock_lock_conflicts c
             WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku
               AND c.noted_at > clock_timestamp() - v_policy.split_window
             ORDER BY c.noted_at DESC
             LIMIT v_policy.split_conflicts) t;
    IF v_conflicts < v_policy.split_conflicts THEN
        RETURN false;
    END IF;

    -- wait for the row (this reservation would have), then look again: split meanwhile?
    SELECT i.on_hand - i.reserved INTO v_available
      FROM orderdb.inventory i
     WHERE i.warehouse_id = p_warehouse_id AND i.sku = p_sku
       FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku) THEN
        RETURN true;
    END IF;
    -- at least 4 units a bucket: a nearly sold-out SKU split into empty buckets would send
    -- every order to the all-buckets path; fewer than 8 units stay in the row
    v_buckets := least(v_policy.buckets, coalesce(v_available, 0) / 4);
    IF v_buckets < 2 THEN
        RETURN false;
    END IF;
    PERFORM orderdb._set_buckets(
        p_warehouse_id, p_sku, v_buckets, 'orderdb (automatic)', 'automatic',
        format('%s lock conflicts in %s s', v_conflicts,
               round(extract(epoch FROM clock_timestamp() - v_first), 1)));
    DELETE FROM orderdb.stock_lock_conflicts c
     WHERE c.warehouse_id = p_warehouse_id AND c.sku = p_sku;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION orderdb._note_stock_conflict(integer, text) IS
    'Notes a lock conflict on a plain SKU''s inventory row; past the policy''s threshold splits '
    'the SKU into buckets (true = bucketed now).';

-- _merge_cooled_stock_buckets: the stock-bucket step of orderdb.maintain_partitions (`orderdb
-- maintain`). Every automatic SKU (manual ones are left alone) whose last check (seen_at, or its
-- split) is at least the policy's merge_after ago: fewer than merge_below_rate reservations per
-- second since then -> merged back into its inventory row (orderdb._set_buckets, 1 bucket);
-- otherwise the check point moves to now. Also forgets lock conflicts older than split_window.
-- Returns one row per merge, shaped like maintain_partitions' rows: ('orderdb.stock_buckets',
-- 'merged', 'warehouse <id> sku <sku>', from = the last check, to = now, rows_moved = the
-- reservations in between). p_dry_run: the same rows, nothing changed.
-- Raises nothing of its own. Locks each merged SKU's inventory row, then its buckets (waiting
-- for the reservations in flight).
CREATE OR REPLACE FUNCTION orderdb._merge_cooled_stock_buckets(p_dry_run boolean DEFAULT false)
RETURNS TABLE (parent_table text, action text, partition_name text, range_from timestamptz,
               range_to timestamptz, rows_moved bigint)
LANGUAGE plpgsql
AS $$
DECLARE
    v_policy record;
    v_sku    record;
    v_now    timestamptz := clock_timestamp();
    v_rate   numeric;
BEGIN
    SELECT p.split_window, p.merge_below_rate, p.merge_after INTO v_policy
      FROM orderdb.stock_bucket_policy p;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF NOT p_dry_run THEN
        DELETE FROM orderdb.stock_lock_conflicts c
         WHERE c.noted_at < v_now - v_policy.split_window;
    END IF;

    FOR v_sku IN
        SELECT c.warehouse_id, c.sku, c.seen_at,
               t.total - c.reservations_seen AS reservations, t.total
          FROM orderdb.stock_bucket_skus c
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(b.reservations), 0)::bigint AS total
                 FROM orderdb.stock_buckets b
                WHERE b.warehouse_id = c.warehouse_id AND b.sku = c.sku) t
         WHERE c.mode = 'automatic' AND c.seen_at <= v_now - v_policy.merge_after
         ORDER BY c.warehouse_id, c.sku
    LOOP
        v_rate := v_sku.reservations
                  / greatest(extract(epoch FROM v_now - v_sku.seen_at), 0.001);
        IF v_rate >= v_policy.merge_below_rate THEN
            IF NOT p_dry_run THEN  -- still warm: the next check counts from now
                UPDATE orderdb.stock_bucket_skus AS c
                   SET reservations_seen = v_sku.total, seen_at = v_now
                 WHERE c.warehouse_id = v_sku.warehouse_id AND c.sku = v_sku.sku;
            END IF;
            CONTINUE;
        END IF;
        IF NOT p_dry_run THEN
            -- under the inventory row lock: still automatic (not switched by hand meanwhile)?
            PERFORM 1 FROM orderdb.inventory i
             WHERE i.warehouse_id = v_sku.warehouse_id AND i.sku = v_sku.sku
               FOR NO KEY UPDATE;
            CONTINUE WHEN NOT EXISTS (SELECT 1 FROM orderdb.stock_bucket_skus c
                                       WHERE c.warehouse_id = v_sku.warehouse_id
                                         AND c.sku = v_sku.sku AND c.mode = 'automatic');
            PERFORM orderdb._set_buckets(v_sku.warehouse_id, v_sku.sku, 1, 'orderdb maintain',
                                         'automatic', NULL);
        END IF;
        parent_table := 'orderdb.stock_buckets';
        action := 'merged';
        partition_name := format('warehouse %s sku %s', v_sku.warehouse_id, v_sku.sku);
        range_from := v_sku.seen_at;
        range_to := v_now;
        rows_moved := v_sku.reservations;
        PERFORM orderdb._maintain_progress(parent_table, action, partition_name, rows_moved);
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb._merge_cooled_stock_buckets(boolean) IS
    'Merges automatic stock buckets that cooled down back into their inventory rows '
    '(orderdb maintain); p_dry_run reports only.';

-- orderdb_ops.stock_buckets: every bucketed SKU: how many buckets, mode (manual: set with
-- orderdb.set_stock_buckets; automatic: split because of lock conflicts, merged back by
-- `orderdb maintain` once cool), since when, why, its stock, and the reservations its buckets
-- served since the last cool-down check (and their rate per second). Locks nothing.
CREATE OR REPLACE VIEW orderdb_ops.stock_buckets AS
SELECT c.warehouse_id,
       c.sku,
       c.buckets,
       c.mode,
       c.bucketed_since AS since,
       coalesce(c.reason, 'set with orderdb.set_stock_buckets') AS reason,
       c.actor,
       l.on_hand,
       l.reserved,
       l.available,
       (b.reservations - c.reservations_seen)::bigint AS reservations_since_check,
       round((b.reservations - c.reservations_seen)
             / greatest(extract(epoch FROM now() - c.seen_at), 0.001), 1)
           AS reservations_per_second
  FROM orderdb.stock_bucket_skus c
  JOIN orderdb.inventory_levels l ON l.warehouse_id = c.warehouse_id AND l.sku = c.sku
  CROSS JOIN LATERAL (
        SELECT coalesce(sum(sb.reservations), 0)::bigint AS reservations
          FROM orderdb.stock_buckets sb
         WHERE sb.warehouse_id = c.warehouse_id AND sb.sku = c.sku
       ) b;
COMMENT ON VIEW orderdb_ops.stock_buckets IS
    'Bucketed SKUs: buckets, mode (manual | automatic), since, reason, stock, recent reservations.';
