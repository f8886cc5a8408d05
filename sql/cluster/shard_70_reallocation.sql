-- Reallocation across shards (docs/scaling.md "Reallocation across shards"): reallocate_order to
-- a warehouse of another shard is a saga of three steps, each one transaction on one shard, no
-- two-phase commit. The order moves with its id; the source keeps a forward.
--   1. target: reallocation_reserve   reserves the order's held quantities in the target
--      warehouse for the order (a row of incoming_reallocations); OD001: nothing changed
--   2. source: reallocation_send      checks the order as reallocate_order does (OD002, OD003,
--      22023), releases its held counters, removes its rows and keeps them, with a forward, in
--      order_forwards; on an error the proxy undoes step 1 (reallocation_unreserve)
--   3. target: reallocation_receive   writes the order's rows in the target warehouse (the
--      reservation of step 1 becomes the order's), version + 1, a history row and an
--      order.reallocated event, as reallocate_order writes them; idempotent (a retried step 3
--      after a lost answer returns the order as it is)
-- Between steps 2 and 3 the order is in flight (the target's counters are reserved without the
-- order's lines: orderdb_ops.inventory_drift shows it until step 3).

CREATE TABLE IF NOT EXISTS orderdb_shard.order_forwards (
    order_id        bigint PRIMARY KEY,
    to_shard        integer NOT NULL,
    to_warehouse_id integer NOT NULL,
    payload         jsonb NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orderdb_shard.order_forwards IS
    'Orders that moved to another shard (reallocation): where to, and their rows as they left.';
REVOKE ALL ON orderdb_shard.order_forwards FROM PUBLIC;

CREATE TABLE IF NOT EXISTS orderdb_shard.incoming_reallocations (
    order_id        bigint PRIMARY KEY,
    to_warehouse_id integer NOT NULL,
    skus            text[] NOT NULL,
    quantities      integer[] NOT NULL,
    reserved_at     timestamptz NOT NULL DEFAULT now(),
    received_at     timestamptz
);
COMMENT ON TABLE orderdb_shard.incoming_reallocations IS
    'Orders moving in from another shard: the stock reserved for them (step 1), received (step 3).';
REVOKE ALL ON orderdb_shard.incoming_reallocations FROM PUBLIC;

-- _reallocation_tables: the order-owned tables whose rows move with an order (every column).
CREATE OR REPLACE FUNCTION orderdb_shard._reallocation_tables()
RETURNS text[]
    LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT ARRAY['order_directory', 'orders', 'order_lines', 'order_status_history',
                 'order_hold_reasons', 'order_amendments', 'wms_events', 'sla_escalations']
$fn$;

-- reallocation_held: the held quantities of an order of this shard (sku order) after the
-- checks of reallocate_order (22023, OD004, OD002, OD003), as data: nothing changes.
CREATE OR REPLACE FUNCTION orderdb_shard.reallocation_held(p_order_id bigint,
                                                           p_to_warehouse_id integer,
                                                           p_expected_version integer)
RETURNS TABLE (from_warehouse_id integer, status text, version integer, skus text[],
               quantities integer[], err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_row record;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    SELECT * INTO v_row FROM orderdb_shard._reallocation_check(p_order_id, p_to_warehouse_id,
                                                               p_expected_version, false);
    RETURN QUERY SELECT v_row.from_warehouse_id, v_row.status, v_row.version, v_row.skus,
                        v_row.quantities, NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN QUERY SELECT NULL::integer, NULL::text, NULL::integer, NULL::text[],
                        NULL::integer[], v_sqlstate, v_message, nullif(v_detail, ''),
                        nullif(v_hint, '');
END;
$fn$;

-- _reallocation_check: the checks of reallocate_order on the source (the target warehouse is
-- on another shard: its existence and stock are the target's to check); p_lock: FOR UPDATE.
-- Raises 22023, OD004, OD002, OD003 with reallocate_order's texts.
CREATE OR REPLACE FUNCTION orderdb_shard._reallocation_check(p_order_id bigint,
                                                             p_to_warehouse_id integer,
                                                             p_expected_version integer,
                                                             p_lock boolean,
                                                             OUT from_warehouse_id integer,
                                                             OUT status text,
                                                             OUT version integer,
                                                             OUT skus text[],
                                                             OUT quantities integer[])
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    PERFORM orderdb._check_positive(p_to_warehouse_id, 'to_warehouse_id');
    PERFORM orderdb._check_positive(p_expected_version, 'expected_version');
    -- moved away by a concurrent reallocation: the caller is stale
    SELECT f.payload ->> 'status', (f.payload ->> 'version')::integer + 1 INTO status, version
      FROM orderdb_shard.order_forwards f
     WHERE f.order_id = p_order_id
       AND NOT EXISTS (SELECT 1 FROM orderdb.order_directory d WHERE d.order_id = p_order_id);
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: it moved to another warehouse', p_order_id),
            DETAIL = format('status=%s version=%s', status, version),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;
    from_warehouse_id := orderdb._locate_order(p_order_id);
    IF p_lock THEN
        SELECT o.status, o.version INTO status, version FROM orderdb.orders o
         WHERE o.warehouse_id = from_warehouse_id AND o.order_id = p_order_id FOR UPDATE;
    ELSE
        SELECT o.status, o.version INTO status, version FROM orderdb.orders o
         WHERE o.warehouse_id = from_warehouse_id AND o.order_id = p_order_id;
    END IF;
    IF NOT FOUND THEN
        -- moved by a concurrent reallocation while this one waited for the order's row
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: it moved to another warehouse', p_order_id),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;
    -- reallocate_order's version, warehouse and status checks (sql/35_reallocation.sql)
    PERFORM orderdb._check_reallocatable(p_order_id, from_warehouse_id, p_to_warehouse_id,
                                         status, version, p_expected_version);
    SELECT coalesce(array_agg(l.sku ORDER BY l.sku), '{}'),
           coalesce(array_agg(l.qty_held ORDER BY l.sku), '{}')
      INTO skus, quantities
      FROM orderdb.order_lines l
     WHERE l.warehouse_id = from_warehouse_id AND l.order_id = p_order_id AND l.qty_held > 0;
END;
$fn$;

-- reallocation_reserve (step 1, target): reserves p_quantities of p_skus in p_to_warehouse_id
-- for the incoming order. Raises (as data) OD004 (the warehouse has never received stock here),
-- OD001 (the target cannot serve every held line; reallocate_order's texts). Locks the
-- inventory rows (orderdb._reserve_stock).
CREATE OR REPLACE FUNCTION orderdb_shard.reallocation_reserve(p_order_id bigint,
                                                              p_to_warehouse_id integer,
                                                              p_skus text[],
                                                              p_quantities integer[])
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_short text[];
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_to_warehouse_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('unknown warehouse %s', p_to_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_to_warehouse_id),
            HINT = 'A warehouse exists once it has received stock (orderdb.receive_stock).';
    END IF;
    IF cardinality(p_skus) > 0 THEN
        PERFORM 1 FROM orderdb.inventory i
          WHERE i.warehouse_id = p_to_warehouse_id AND i.sku = ANY (p_skus)
          ORDER BY i.sku
            FOR NO KEY UPDATE;
        SELECT (array_agg(ARRAY[r.sku, r.quantity::text, coalesce(i.available, 0)::text]
                          ORDER BY r.sku)
                  FILTER (WHERE coalesce(i.available, 0) < r.quantity))[1:1]
          INTO v_short
          FROM unnest(p_skus, p_quantities) AS r(sku, quantity)
          LEFT JOIN LATERAL (
                SELECT il.available FROM orderdb.inventory_levels il
                 WHERE il.warehouse_id = p_to_warehouse_id AND il.sku = r.sku) i ON true;
        IF v_short IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD001',
                MESSAGE = format('insufficient stock for sku %s in warehouse %s',
                                 orderdb._quote_sku(v_short[1][1]), p_to_warehouse_id),
                DETAIL = format('sku=%s requested=%s available=%s',
                                v_short[1][1], v_short[1][2], v_short[1][3]),
                HINT = 'Nothing was moved.';
        END IF;
        PERFORM orderdb._reserve_stock(p_to_warehouse_id, p_skus, p_quantities);
    END IF;
    -- a reservation of another reallocation of this order under way: the caller is stale
    -- (one that was received is history: replaced)
    DELETE FROM orderdb_shard.incoming_reallocations r
     WHERE r.order_id = p_order_id AND r.received_at IS NOT NULL;
    INSERT INTO orderdb_shard.incoming_reallocations (order_id, to_warehouse_id, skus, quantities)
    VALUES (p_order_id, p_to_warehouse_id, p_skus, p_quantities)
    ON CONFLICT (order_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: another reallocation of it is under way',
                             p_order_id),
            DETAIL = format('order_id=%s', p_order_id),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;

-- reallocation_unreserve (compensation of step 1, target): gives back what step 1 reserved for
-- an order that did not come (its source refused). Returns whether there was such a
-- reservation. Locks the inventory rows (sku order), then the incoming row.
CREATE OR REPLACE FUNCTION orderdb_shard.reallocation_unreserve(p_order_id bigint)
RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_in orderdb_shard.incoming_reallocations;
BEGIN
    -- the inventory rows first, as reallocation_reserve takes them (else the two deadlock: a
    -- reservation holding the rows waits for this delete of the incoming row)
    PERFORM 1
       FROM orderdb.inventory i
       JOIN orderdb_shard.incoming_reallocations r
         ON r.order_id = p_order_id AND i.warehouse_id = r.to_warehouse_id
        AND i.sku = ANY (r.skus)
      ORDER BY i.sku
        FOR NO KEY UPDATE OF i;
    DELETE FROM orderdb_shard.incoming_reallocations r
     WHERE r.order_id = p_order_id AND r.received_at IS NULL
    RETURNING * INTO v_in;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF cardinality(v_in.skus) > 0 THEN
        PERFORM orderdb._release_held_counters(v_in.to_warehouse_id, v_in.skus, v_in.quantities);
    END IF;
    RETURN true;
END;
$fn$;

-- reallocation_send (step 2, source): under the order's row lock, checks it again (the order may
-- have changed since step 1: OD002 / OD003), releases its held counters, removes its rows and
-- keeps them in order_forwards (the forward), and returns them. Errors as data.
CREATE OR REPLACE FUNCTION orderdb_shard.reallocation_send(p_order_id bigint,
                                                           p_to_warehouse_id integer,
                                                           p_expected_version integer,
                                                           p_to_shard integer)
RETURNS TABLE (payload jsonb, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_order record;
    v_table text;
    v_rows jsonb;
    v_payload jsonb := '{}'::jsonb;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    SELECT * INTO v_order FROM orderdb_shard._reallocation_check(p_order_id, p_to_warehouse_id,
                                                                 p_expected_version, true);
    PERFORM 1 FROM orderdb.inventory i
      WHERE i.warehouse_id = v_order.from_warehouse_id AND i.sku = ANY (v_order.skus)
      ORDER BY i.sku
        FOR NO KEY UPDATE;
    IF cardinality(v_order.skus) > 0 THEN
        PERFORM orderdb._release_held_counters(v_order.from_warehouse_id, v_order.skus,
                                               v_order.quantities);
    END IF;
    FOREACH v_table IN ARRAY orderdb_shard._reallocation_tables() LOOP
        EXECUTE format('WITH gone AS (DELETE FROM orderdb.%I t WHERE t.order_id = $1 '
                       'RETURNING t.*) SELECT coalesce(jsonb_agg(to_jsonb(g)), ''[]'') '
                       'FROM gone g', v_table)
           INTO v_rows USING p_order_id;
        v_payload := v_payload || jsonb_build_object(v_table, v_rows);
    END LOOP;
    v_payload := v_payload || jsonb_build_object(
        'from_warehouse_id', v_order.from_warehouse_id, 'status', v_order.status,
        'version', v_order.version, 'skus', to_jsonb(v_order.skus),
        'quantities', to_jsonb(v_order.quantities));
    INSERT INTO orderdb_shard.order_forwards AS f (order_id, to_shard, to_warehouse_id, payload)
    VALUES (p_order_id, p_to_shard, p_to_warehouse_id, v_payload)
    ON CONFLICT (order_id) DO UPDATE
       SET to_shard = EXCLUDED.to_shard, to_warehouse_id = EXCLUDED.to_warehouse_id,
           payload = EXCLUDED.payload, sent_at = now();
    RETURN QUERY SELECT v_payload, NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT NULL::jsonb, v_sqlstate, v_message, nullif(v_detail, ''),
                        nullif(v_hint, '');
END;
$fn$;

-- reallocation_receive (step 3, target): writes the rows of p_payload in the target warehouse
-- (the reservation of step 1 becomes the order's held stock), version + 1, a history row
-- (source 'reallocation') and an order.reallocated event, as reallocate_order. A repeated call
-- returns the order as it is. Raises (as data) 55000 when step 1 did not reserve for it.
-- Locks the incoming row and the new rows.
CREATE OR REPLACE FUNCTION orderdb_shard.reallocation_receive(p_order_id bigint,
                                                              p_payload jsonb,
                                                              p_actor text, p_reason text)
RETURNS TABLE (order_id bigint, warehouse_id integer, status text, version integer,
               err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_in orderdb_shard.incoming_reallocations;
    v_table text;
    v_from integer := (p_payload ->> 'from_warehouse_id')::integer;
    v_status text := p_payload ->> 'status';
    v_version integer;
    v_lines jsonb;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    SELECT * INTO v_in FROM orderdb_shard.incoming_reallocations r
     WHERE r.order_id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '55000',
            MESSAGE = format('no stock was reserved for order %s on this shard', p_order_id),
            DETAIL = format('order_id=%s', p_order_id);
    END IF;
    IF v_in.received_at IS NULL THEN
        FOREACH v_table IN ARRAY orderdb_shard._reallocation_tables() LOOP
            EXECUTE format(
                'INSERT INTO orderdb.%1$I OVERRIDING SYSTEM VALUE '
                'SELECT * FROM jsonb_populate_recordset(NULL::orderdb.%1$I, '
                '(SELECT coalesce(jsonb_agg(e || jsonb_build_object(''warehouse_id'', $2)), '
                '''[]'') FROM jsonb_array_elements($1) e))', v_table)
              USING p_payload -> v_table, v_in.to_warehouse_id;
        END LOOP;
        UPDATE orderdb.orders AS o SET version = o.version + 1, updated_at = now()
         WHERE o.warehouse_id = v_in.to_warehouse_id AND o.order_id = p_order_id
        RETURNING o.version INTO v_version;
        -- the order's cached timeline documents on this shard (sql/47_timeline_cache.sql)
        PERFORM orderdb._timeline_bump_order(p_order_id);
        PERFORM orderdb._record_status_change(
            v_in.to_warehouse_id, p_order_id, v_version, v_status, v_status, p_actor, p_reason,
            jsonb_build_object('from_warehouse_id', v_from,
                               'to_warehouse_id', v_in.to_warehouse_id),
            'reallocation', NULL);
        SELECT coalesce(jsonb_agg(jsonb_build_object('sku', r.sku, 'quantity', r.quantity)
                                  ORDER BY r.sku), '[]'::jsonb)
          INTO v_lines
          FROM unnest(v_in.skus, v_in.quantities) AS r(sku, quantity);
        PERFORM orderdb._emit_event('order.reallocated', p_order_id, v_in.to_warehouse_id,
                                    jsonb_build_object('from_warehouse_id', v_from,
                                                       'to_warehouse_id', v_in.to_warehouse_id,
                                                       'status', v_status,
                                                       'version', v_version,
                                                       'lines', v_lines));
        UPDATE orderdb_shard.incoming_reallocations r SET received_at = now()
         WHERE r.order_id = p_order_id;
        -- back on a shard it once left: that forward is history
        DELETE FROM orderdb_shard.order_forwards f WHERE f.order_id = p_order_id;
    END IF;
    RETURN QUERY
        SELECT o.order_id, o.warehouse_id, o.status, o.version,
               NULL::text, NULL::text, NULL::text, NULL::text
          FROM orderdb.orders o
         WHERE o.warehouse_id = v_in.to_warehouse_id AND o.order_id = p_order_id;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN QUERY SELECT NULL::bigint, NULL::integer, NULL::text, NULL::integer, v_sqlstate,
                        v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;

REVOKE ALL ON FUNCTION orderdb_shard._reallocation_tables() FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard._reallocation_check(bigint, integer, integer, boolean)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard.reallocation_held(bigint, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard.reallocation_reserve(bigint, integer, text[], integer[])
    FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard.reallocation_unreserve(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard.reallocation_send(bigint, integer, integer, integer)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard.reallocation_receive(bigint, jsonb, text, text)
    FROM PUBLIC;

-- reallocation_sent: an order this shard sent and its target has not confirmed receiving yet
-- as far as this shard knows: the target shard and the rows as they left (no row when the order
-- never left). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.reallocation_sent(p_order_id bigint)
RETURNS TABLE (to_shard integer, payload jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT f.to_shard, f.payload FROM orderdb_shard.order_forwards f
     WHERE f.order_id = p_order_id
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.reallocation_sent(bigint) FROM PUBLIC;

-- reallocations_sent_before: the orders this shard sent before now() - p_older_than and does not
-- hold (its forwards: in flight or received, which only the proxy's routing tells apart; the
-- proxy's finish_stopped_reallocations filters them). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.reallocations_sent_before(p_older_than interval)
RETURNS TABLE (order_id bigint, to_shard integer, sent_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT f.order_id, f.to_shard, f.sent_at FROM orderdb_shard.order_forwards f
     WHERE f.sent_at < now() - p_older_than
       AND NOT EXISTS (SELECT 1 FROM orderdb.order_directory d WHERE d.order_id = f.order_id)
     ORDER BY f.order_id
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.reallocations_sent_before(interval) FROM PUBLIC;
