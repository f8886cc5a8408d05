-- Fulfillment: WMS callbacks (PICKED, PACKED, SHIPPED, EXCEPTION), shipments (partial shipments
-- included), cancelling the remainder of lines, the ways out of on_hold, and customer returns.
-- Every status change goes through orderdb._apply_transition (sql/30_orders.sql); every ledger
-- move through orderdb._move_reservations and its wrappers (sql/20_inventory.sql).
--
-- Lock order (no deadlocks by construction): the tracking-number advisory lock (SHIPPED only,
-- orderdb._lock_tracking_number), then the orders row, then shipments, then inventory rows in sku
-- order. orderdb.record_tracking_event (sql/45_tracking.sql) takes them in the same order.

-- _lock_order: locks an order's row (FOR NO KEY UPDATE) and returns its warehouse, status,
-- previous status and version. Raises OD004 (unknown order), 40001 when the order moved to another
-- warehouse between the directory lookup and the lock (retry). Locks the orders row.
CREATE OR REPLACE FUNCTION orderdb._lock_order(p_order_id bigint,
                                               OUT warehouse_id integer, OUT status text,
                                               OUT previous_status text, OUT version integer,
                                               OUT customer_id bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    warehouse_id := orderdb._locate_order(p_order_id);
    SELECT o.status, o.previous_status, o.version, o.customer_id
      INTO status, previous_status, version, customer_id
      FROM orderdb.orders o
     WHERE o.warehouse_id = _lock_order.warehouse_id AND o.order_id = p_order_id
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '40001',
            MESSAGE = format('order %s moved to another warehouse concurrently; retry', p_order_id);
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._lock_order(bigint) IS
    'Locks an order''s row and returns its warehouse, status, previous status, version and customer.';

-- _check_event_time: a caller-supplied event time (WMS occurred_at, carrier event time) is taken
-- as given, but must be present, finite, not before 2000-01-01 (UTC) and at most one day in the
-- future (other clocks are skewed, but not by years).
-- Raises 22023 naming p_name. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_event_time(p_value timestamptz, p_name text)
RETURNS void
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s is required', p_name);
    END IF;
    IF NOT isfinite(p_value) OR p_value < timestamptz '2000-01-01 00:00:00+00'
       OR p_value > now() + interval '1 day' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be finite, not before 2000-01-01 and at most one day in '
                             'the future', p_name),
            DETAIL = format('%s=%s now=%s', p_name, p_value, now());
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_event_time(timestamptz, text) IS
    'Raises 22023 unless an event time is present, finite, from 2000 on and at most a day ahead.';

-- _payload_time: payload->>'occurred_at' as timestamptz (now() when absent or null), checked by
-- orderdb._check_event_time. Raises 22023 'payload.occurred_at ...'. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._payload_time(p_payload jsonb)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_at timestamptz;
BEGIN
    IF jsonb_typeof(p_payload -> 'occurred_at') IS NULL
       OR jsonb_typeof(p_payload -> 'occurred_at') = 'null' THEN
        RETURN now();
    END IF;
    IF jsonb_typeof(p_payload -> 'occurred_at') <> 'string' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'payload.occurred_at must be a timestamp string (ISO 8601)';
    END IF;
    BEGIN
        v_at := (p_payload ->> 'occurred_at')::timestamptz;
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                   OR invalid_time_zone_displacement_value THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'payload.occurred_at must be a timestamp string (ISO 8601)',
            DETAIL = format('occurred_at=%s', left(p_payload ->> 'occurred_at', 100));
    END;
    PERFORM orderdb._check_event_time(v_at, 'payload.occurred_at');
    RETURN v_at;
END;
$$;
COMMENT ON FUNCTION orderdb._payload_time(jsonb) IS
    'Returns payload.occurred_at (default now()), which must be finite, from 2000 on and at most a day ahead.';

-- _lock_tracking_number: transaction advisory lock on (carrier, tracking_number), taken by the
-- WMS SHIPPED callback and by record_tracking_event before anything else, so an event that
-- arrives while its shipment is being created is matched either way. Locks that key.
CREATE OR REPLACE FUNCTION orderdb._lock_tracking_number(p_carrier text, p_tracking_number text)
RETURNS void
LANGUAGE sql
AS $$
    SELECT pg_advisory_xact_lock(
               hashtextextended('orderdb.tracking:' || p_carrier || chr(31) || p_tracking_number, 0));
$$;
COMMENT ON FUNCTION orderdb._lock_tracking_number(text, text) IS
    'Takes the transaction advisory lock of one (carrier, tracking_number).';

-- _walk_forward: moves a locked order along the main path (confirmed -> dispatched -> picked ->
-- packed -> shipped) up to p_target, one _apply_transition per stage, each in the history.
-- From on_hold it first returns to the status before the hold. The caller holds the order row
-- lock and checked that p_target is ahead. p_lines is passed to the shipped step (partial
-- consumption). Returns the final status and version. Raises OD003 when the path is not allowed.
-- Locks (already held) the orders row, inventory rows when shipping.
CREATE OR REPLACE FUNCTION orderdb._walk_forward(p_warehouse_id integer, p_order_id bigint,
                                                 p_target text, p_actor text, p_reason text,
                                                 p_context jsonb, p_source text,
                                                 p_occurred_at timestamptz,
                                                 p_lines jsonb DEFAULT NULL,
                                                 OUT status text, OUT version integer)
LANGUAGE plpgsql
AS $$
DECLARE
    c_path   CONSTANT text[] := ARRAY['confirmed', 'dispatched', 'picked', 'packed', 'shipped'];
    v_prev   text;
    v_from   integer;
    v_to     integer;
    v_step   text;
BEGIN
    SELECT o.status, o.previous_status, o.version INTO status, v_prev, version
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;

    IF status = 'on_hold' THEN
        SELECT t.status, t.version INTO status, version
          FROM orderdb._apply_transition(p_warehouse_id, p_order_id, v_prev, NULL, p_actor,
                                         'hold lifted: ' || coalesce(p_reason, p_source),
                                         p_context, p_source, p_occurred_at) t;
    END IF;

    v_from := array_position(c_path, status);
    v_to := array_position(c_path, p_target);
    IF v_from IS NULL OR v_to IS NULL OR v_to < v_from THEN
        PERFORM orderdb._raise_transition_error(p_warehouse_id, p_order_id, p_target, NULL);
    END IF;

    FOR i IN v_from + 1 .. v_to LOOP
        v_step := c_path[i];
        SELECT t.status, t.version INTO status, version
          FROM orderdb._apply_transition(p_warehouse_id, p_order_id, v_step, NULL, p_actor,
                                         CASE WHEN v_step = p_target THEN p_reason
                                              ELSE format('implied by %s', coalesce(p_reason, p_target)) END,
                                         p_context, p_source, p_occurred_at,
                                         CASE WHEN v_step = 'shipped' THEN p_lines END) t;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb._walk_forward(integer, bigint, text, text, text, jsonb, text,
                                          timestamptz, jsonb) IS
    'Walks a locked order forward along confirmed..shipped, each skipped stage in the history.';

-- _resolve_lines: turns optional p_lines [{"sku", "quantity"?}] into explicit lines with the
-- quantity each sku has in p_state ('held' or 'consumed') when quantity is absent. NULL p_lines:
-- every line with a positive quantity in that state. Returns NULL when nothing is in that state.
-- Raises 22023 (malformed lines, a sku that is not a line of the order, a quantity above what
-- the line has in p_state, or a line with nothing in p_state). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._resolve_lines(p_warehouse_id integer, p_order_id bigint,
                                                  p_lines jsonb, p_state text)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_skus   text[];
    v_qtys   integer[];
    v_error  text;
    v_result jsonb;
BEGIN
    IF p_lines IS NULL THEN
        SELECT jsonb_agg(jsonb_build_object('sku', l.sku, 'quantity', l.q) ORDER BY l.sku)
          INTO v_result
          FROM (SELECT ol.sku,
                       CASE p_state WHEN 'held' THEN ol.qty_held ELSE ol.qty_consumed END AS q
                  FROM orderdb.order_lines ol
                 WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id) l
         WHERE l.q > 0;
        RETURN v_result;
    END IF;

    SELECT p.skus, p.quantities INTO v_skus, v_qtys
      FROM orderdb._parse_items(p_lines, 'lines', false) p;

    SELECT (array_agg(
              CASE WHEN l.sku IS NULL THEN
                     format('lines: sku %s is not a line of order %s',
                            orderdb._quote_sku(r.sku), p_order_id)
                   WHEN l.available = 0 THEN
                     format('lines: sku %s has no %s quantity', orderdb._quote_sku(r.sku),
                            p_state)
                   ELSE format('lines: quantity %s of sku %s exceeds the %s quantity %s',
                               r.quantity, orderdb._quote_sku(r.sku), p_state,
                               l.available) END
              ORDER BY r.sku)
              FILTER (WHERE l.sku IS NULL OR l.available = 0 OR r.quantity > l.available))[1],
           jsonb_agg(jsonb_build_object('sku', r.sku, 'quantity', coalesce(r.quantity, l.available))
                     ORDER BY r.sku)
      INTO v_error, v_result
      FROM unnest(v_skus, v_qtys) AS r(sku, quantity)
      LEFT JOIN LATERAL (
          SELECT ol.sku,
                 CASE p_state WHEN 'held' THEN ol.qty_held ELSE ol.qty_consumed END AS available
            FROM orderdb.order_lines ol
           WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id
             AND ol.sku = r.sku) l ON true;
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = v_error;
    END IF;
    RETURN v_result;
END;
$$;
COMMENT ON FUNCTION orderdb._resolve_lines(integer, bigint, jsonb, text) IS
    'Resolves optional lines to explicit (sku, quantity) pairs against one ledger state (22023 if invalid).';

-- _held_units: units an order still holds (not shipped, not released). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._held_units(p_warehouse_id integer, p_order_id bigint)
RETURNS bigint
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce(sum(ol.qty_held), 0)::bigint
      FROM orderdb.order_lines ol
     WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id;
$$;
COMMENT ON FUNCTION orderdb._held_units(integer, bigint) IS
    'Units of an order still held in the warehouse.';

-- _create_shipment: records a shipment of p_lines (explicit sku/quantity pairs), its lines and its
-- tracking number, and emits shipment.created. Does not move the ledger (the caller does).
-- Raises 22023 when the tracking number belongs to another order. Returns the shipment id.
-- Locks nothing beyond the inserted rows (caller holds the tracking-number lock).
CREATE OR REPLACE FUNCTION orderdb._create_shipment(p_warehouse_id integer, p_order_id bigint,
                                                    p_carrier text, p_tracking_number text,
                                                    p_lines jsonb, p_shipped_at timestamptz,
                                                    p_wms_event_id text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_shipment_id bigint;
BEGIN
    -- the order's cached timeline documents (a new parcel, and the events matched to it)
    PERFORM orderdb._timeline_bump_order(p_order_id);
    INSERT INTO orderdb.shipments (warehouse_id, order_id, carrier, tracking_number, shipped_at,
                                   wms_event_id)
    VALUES (p_warehouse_id, p_order_id, p_carrier, p_tracking_number, p_shipped_at,
            p_wms_event_id)
    RETURNING shipments.shipment_id INTO v_shipment_id;

    INSERT INTO orderdb.tracking_numbers (carrier, tracking_number, warehouse_id, shipment_id,
                                          order_id)
    VALUES (p_carrier, p_tracking_number, p_warehouse_id, v_shipment_id, p_order_id);

    INSERT INTO orderdb.shipment_lines (warehouse_id, shipment_id, sku, quantity)
    SELECT p_warehouse_id, v_shipment_id, e ->> 'sku', (e ->> 'quantity')::integer
      FROM jsonb_array_elements(p_lines) AS e;

    -- carrier events that arrived before the shipment (unmatched until now)
    PERFORM orderdb._match_tracking_events(p_warehouse_id, v_shipment_id);

    PERFORM orderdb._emit_event('shipment.created', p_order_id, p_warehouse_id,
                                jsonb_build_object('shipment_id', v_shipment_id,
                                                   'carrier', p_carrier,
                                                   'tracking_number', p_tracking_number,
                                                   'lines', p_lines,
                                                   'shipped_at', p_shipped_at));
    RETURN v_shipment_id;
END;
$$;
COMMENT ON FUNCTION orderdb._create_shipment(integer, bigint, text, text, jsonb, timestamptz, text) IS
    'Records a shipment, its lines and its tracking number; emits shipment.created.';

-- _order_shipments (replaces the placeholder of sql/30_orders.sql): the shipments array of
-- get_order: [{shipment_id, carrier, tracking_number, status, shipped_at, delivered_at,
-- lines [{sku, quantity}]}] oldest first. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_shipments(p_warehouse_id integer, p_order_id bigint)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'shipment_id', s.shipment_id,
               'carrier', s.carrier,
               'tracking_number', s.tracking_number,
               'status', s.status,
               'shipped_at', s.shipped_at,
               'delivered_at', s.delivered_at,
               'lines', (SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sl.sku,
                                                                      'quantity', sl.quantity)
                                                   ORDER BY sl.sku), '[]'::jsonb)
                           FROM orderdb.shipment_lines sl
                          WHERE sl.warehouse_id = s.warehouse_id
                            AND sl.shipment_id = s.shipment_id))
             ORDER BY s.shipped_at, s.shipment_id), '[]'::jsonb)
      FROM orderdb.shipments s
     WHERE s.warehouse_id = p_warehouse_id AND s.order_id = p_order_id;
$$;
COMMENT ON FUNCTION orderdb._order_shipments(integer, bigint) IS
    'The shipments array of get_order: carrier, tracking number, status, times and lines.';

-- _finish_shipping: once an order holds nothing more, moves it to shipped (when something was
-- shipped) or cancelled (when everything was released), then applies the carrier events already
-- received for its shipments. The caller holds the order lock. Returns status and version.
CREATE OR REPLACE FUNCTION orderdb._finish_shipping(p_warehouse_id integer, p_order_id bigint,
                                                    p_actor text, p_reason text,
                                                    p_context jsonb, p_source text,
                                                    p_occurred_at timestamptz,
                                                    OUT status text, OUT version integer)
LANGUAGE plpgsql
AS $$
DECLARE
    v_consumed bigint;
    v_event    record;
BEGIN
    SELECT o.status, o.version INTO status, version
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
    IF orderdb._held_units(p_warehouse_id, p_order_id) > 0 THEN
        RETURN;
    END IF;

    SELECT coalesce(sum(ol.qty_consumed), 0) INTO v_consumed
      FROM orderdb.order_lines ol
     WHERE ol.warehouse_id = p_warehouse_id AND ol.order_id = p_order_id;

    IF v_consumed = 0 THEN
        SELECT t.status, t.version INTO status, version
          FROM orderdb._apply_transition(p_warehouse_id, p_order_id, 'cancelled', NULL, p_actor,
                                         coalesce(p_reason, 'every line cancelled'), p_context,
                                         p_source, p_occurred_at) t;
        RETURN;
    END IF;

    SELECT w.status, w.version INTO status, version
      FROM orderdb._walk_forward(p_warehouse_id, p_order_id, 'shipped', p_actor, p_reason,
                                 p_context, p_source, p_occurred_at) w;

    -- carrier events that arrived before the order was shipped: the newest of each shipment,
    -- and its earliest delivered event (applied whenever it arrives), in event-time order
    FOR v_event IN
        SELECT n.tracking_event_id, n.event_time, n.normalized_status
          FROM (SELECT DISTINCT ON (s.shipment_id) te.tracking_event_id, s.shipment_id,
                       te.event_time, te.normalized_status
                  FROM orderdb.shipments s
                  JOIN orderdb.tracking_events te
                    ON te.carrier = s.carrier AND te.tracking_number = s.tracking_number
                 WHERE s.warehouse_id = p_warehouse_id AND s.order_id = p_order_id
                   AND te.normalized_status <> 'unknown'
                 ORDER BY s.shipment_id, te.event_time DESC, te.tracking_event_id DESC) n
        UNION
        SELECT d.tracking_event_id, d.event_time, d.normalized_status
          FROM (SELECT DISTINCT ON (s.shipment_id) te.tracking_event_id, te.event_time,
                       te.normalized_status
                  FROM orderdb.shipments s
                  JOIN orderdb.tracking_events te
                    ON te.carrier = s.carrier AND te.tracking_number = s.tracking_number
                 WHERE s.warehouse_id = p_warehouse_id AND s.order_id = p_order_id
                   AND te.normalized_status = 'delivered'
                 ORDER BY s.shipment_id, te.event_time, te.tracking_event_id) d
         ORDER BY 2, 1
    LOOP
        PERFORM orderdb._apply_tracking_to_order(p_warehouse_id, p_order_id,
                                                 v_event.normalized_status,
                                                 v_event.tracking_event_id, v_event.event_time);
    END LOOP;

    SELECT o.status, o.version INTO status, version
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
END;
$$;
COMMENT ON FUNCTION orderdb._finish_shipping(integer, bigint, text, text, jsonb, text, timestamptz) IS
    'Moves an order that holds nothing more to shipped (or cancelled) and applies early carrier events.';

-- wms_callback: one warehouse (WMS) callback for an order: PICKED, PACKED, SHIPPED or EXCEPTION.
--   * event ids are scoped per p_source (the sender: HTTP ingestion passes its integration name;
--     default 'wms'): the same (p_source, p_event_id) again with the same order and event type is
--     a duplicate: duplicate = true, current status and version, nothing changes; with another
--     order or event type it is OD006 and nothing changes;
--   * every callback is stored (orderdb.wms_events) with its outcome: a stage the order has
--     passed (late) or repeats changes nothing and is no error; one that skips ahead walks forward
--     through the skipped stages, each in the history;
--   * payload.occurred_at (default now()) is taken as given: finite, not before 2000-01-01, at
--     most a day ahead;
--   * SHIPPED {carrier, tracking_number, lines?}: creates a shipment and consumes the reservations
--     of the lines it carries (all remaining when lines is absent). The order becomes shipped
--     when nothing is held any more (partial shipments: several calls; the remainder may be
--     cancelled with orderdb.cancel_order_lines). On an order on hold it lifts the hold first
--     (the goods left). Carrier events already received for the tracking number are matched;
--   * EXCEPTION {exception_type}: puts the order on hold with that reason; on an order already on
--     hold it adds the reason (orderdb.order_hold_reasons).
-- Raises 22023 (bad input, unknown event type, tracking number of another order, bad lines),
-- OD004 (unknown order), OD003 (a pending order; SHIPPED on a cancelled order), OD006 (the event
-- id of this source was used for another order or event type).
-- Locks the tracking-number advisory lock (SHIPPED), the orders row, inventory rows in sku order.
-- The signature before event ids were scoped per source (no p_source).
DROP FUNCTION IF EXISTS orderdb.wms_callback(text, bigint, text, jsonb);
CREATE OR REPLACE FUNCTION orderdb.wms_callback(p_event_id text, p_order_id bigint,
                                                p_event_type text,
                                                p_payload jsonb DEFAULT '{}',
                                                p_source text DEFAULT 'wms')
RETURNS TABLE (order_id bigint, status text, version integer, duplicate boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_stage     CONSTANT text[] := ARRAY['confirmed', 'dispatched', 'picked', 'packed'];
    v_payload   jsonb := coalesce(p_payload, '{}'::jsonb);
    v_at        timestamptz;
    v_carrier   text;
    v_tracking  text;
    v_exception text;
    v_lines     jsonb;
    v_order     record;
    v_target    text;
    v_outcome   text;
    v_context   jsonb;
    v_owner     bigint;
    v_status    text;
    v_version   integer;
    v_known     record;
BEGIN
    PERFORM orderdb._check_text(p_event_id, 'event_id', 255, true);
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    PERFORM orderdb._check_text(p_source, 'source', 255, true);
    IF p_event_type IS NULL OR p_event_type NOT IN ('PICKED', 'PACKED', 'SHIPPED', 'EXCEPTION') THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('unknown event_type %L', left(p_event_type, 100)),
            HINT = 'event_type is one of PICKED, PACKED, SHIPPED, EXCEPTION.';
    END IF;
    PERFORM orderdb._check_json(v_payload, 'payload', 'object');
    v_at := orderdb._payload_time(v_payload);

    IF p_event_type = 'SHIPPED' THEN
        IF jsonb_typeof(v_payload -> 'carrier') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'payload.carrier is required (a string)';
        END IF;
        IF jsonb_typeof(v_payload -> 'tracking_number') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023', MESSAGE = 'payload.tracking_number is required (a string)';
        END IF;
        v_carrier := v_payload ->> 'carrier';
        v_tracking := v_payload ->> 'tracking_number';
        PERFORM orderdb._check_text(v_carrier, 'payload.carrier', 255, true);
        PERFORM orderdb._check_text(v_tracking, 'payload.tracking_number', 255, true);
        v_lines := nullif(v_payload -> 'lines', 'null'::jsonb);
        IF v_lines IS NOT NULL THEN
            PERFORM orderdb._parse_items(v_lines, 'payload.lines', false);
        END IF;
    ELSIF p_event_type = 'EXCEPTION' THEN
        IF jsonb_typeof(v_payload -> 'exception_type') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023', MESSAGE = 'payload.exception_type is required (a string)';
        END IF;
        v_exception := v_payload ->> 'exception_type';
        PERFORM orderdb._check_text(v_exception, 'payload.exception_type', 255, true);
    END IF;

    IF p_event_type = 'SHIPPED' THEN
        PERFORM orderdb._lock_tracking_number(v_carrier, v_tracking);
    END IF;
    SELECT * INTO v_order FROM orderdb._lock_order(p_order_id);

    INSERT INTO orderdb.wms_events AS w (source, event_id, warehouse_id, order_id, event_type,
                                         payload, occurred_at)
    VALUES (p_source, p_event_id, v_order.warehouse_id, p_order_id, p_event_type, v_payload, v_at)
    ON CONFLICT ON CONSTRAINT wms_events_pkey DO NOTHING;
    IF NOT FOUND THEN
        SELECT w.order_id, w.event_type INTO v_known
          FROM orderdb.wms_events w
         WHERE w.source = p_source AND w.event_id = p_event_id;
        IF v_known.order_id <> p_order_id OR v_known.event_type <> p_event_type THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD006',
                MESSAGE = format('event_id %L of source %L was already used for another callback',
                                 left(p_event_id, 255), left(p_source, 255)),
                DETAIL = format('stored: order_id=%s event_type=%s; this call: order_id=%s '
                                'event_type=%s', v_known.order_id, v_known.event_type,
                                p_order_id, p_event_type),
                HINT = 'Each callback needs its own event id (unique per source).';
        END IF;
        order_id := p_order_id;
        status := v_order.status;
        version := v_order.version;
        duplicate := true;
        RETURN NEXT;
        RETURN;
    END IF;

    IF v_order.status = 'pending' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD003',
            MESSAGE = format('order %s is pending: not released to the warehouse', p_order_id),
            DETAIL = format('from=pending event_type=%s version=%s', p_event_type, v_order.version),
            HINT = 'Confirm the order first (transition_order to confirmed).';
    END IF;

    v_context := jsonb_build_object('wms_event_id', p_event_id, 'wms_source', p_source,
                                    'event_type', p_event_type);
    v_status := v_order.status;
    v_version := v_order.version;

    IF p_event_type IN ('PICKED', 'PACKED') THEN
        v_target := lower(p_event_type);
        IF v_order.status = 'on_hold' OR v_order.status = v_target THEN
            v_outcome := 'recorded';
        ELSIF array_position(c_stage, v_order.status) < array_position(c_stage, v_target) THEN
            SELECT w.status, w.version INTO v_status, v_version
              FROM orderdb._walk_forward(v_order.warehouse_id, p_order_id, v_target, 'wms',
                                         p_event_type, v_context, 'wms', v_at) w;
            v_outcome := 'applied';
        ELSE
            v_outcome := 'late';
        END IF;

    ELSIF p_event_type = 'EXCEPTION' THEN
        IF v_order.status = ANY (c_stage) THEN
            SELECT t.status, t.version INTO v_status, v_version
              FROM orderdb._apply_transition(v_order.warehouse_id, p_order_id, 'on_hold', NULL,
                                             'wms', v_exception, v_context || v_payload, 'wms',
                                             v_at) t;
            v_outcome := 'applied';
        ELSIF v_order.status = 'on_hold' THEN
            v_outcome := 'hold_reason_added';
            PERFORM orderdb._emit_event('order.hold_reason_added', p_order_id,
                                        v_order.warehouse_id,
                                        jsonb_build_object('reason', v_exception,
                                                           'wms_event_id', p_event_id,
                                                           'version', v_order.version));
        ELSE
            v_outcome := 'late';
        END IF;
        IF v_outcome <> 'late' THEN
            INSERT INTO orderdb.order_hold_reasons (warehouse_id, order_id, reason, wms_event_id,
                                                    occurred_at)
            VALUES (v_order.warehouse_id, p_order_id, v_exception, p_event_id, v_at);
        END IF;

    ELSE  -- SHIPPED
        SELECT tn.order_id INTO v_owner
          FROM orderdb.tracking_numbers tn
         WHERE tn.carrier = v_carrier AND tn.tracking_number = v_tracking;
        IF FOUND AND v_owner <> p_order_id THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('payload.tracking_number %s of carrier %s belongs to order %s',
                                 v_tracking, v_carrier, v_owner),
                DETAIL = format('carrier=%s tracking_number=%s order_id=%s', v_carrier,
                                v_tracking, v_owner);
        END IF;
        IF v_order.status = 'cancelled' THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD003',
                MESSAGE = format('order %s is cancelled and cannot be shipped', p_order_id),
                DETAIL = format('from=cancelled to=shipped version=%s', v_order.version),
                HINT = 'The reservations were released; stop the parcel or create a new order.';
        END IF;

        IF v_owner IS NOT NULL OR NOT (v_order.status = ANY (c_stage) OR v_order.status = 'on_hold')
           OR orderdb._held_units(v_order.warehouse_id, p_order_id) = 0 THEN
            -- this parcel is already recorded, or the order has passed shipping
            v_outcome := CASE WHEN v_owner IS NOT NULL THEN 'recorded' ELSE 'late' END;
        ELSE
            v_lines := orderdb._resolve_lines(v_order.warehouse_id, p_order_id, v_lines, 'held');
            IF v_order.status <> 'packed' THEN
                SELECT w.status, w.version INTO v_status, v_version
                  FROM orderdb._walk_forward(v_order.warehouse_id, p_order_id, 'packed', 'wms',
                                             p_event_type, v_context, 'wms', v_at) w;
            END IF;
            PERFORM orderdb._create_shipment(v_order.warehouse_id, p_order_id, v_carrier,
                                             v_tracking, v_lines, v_at, p_event_id);
            PERFORM orderdb._consume_reservations(v_order.warehouse_id, p_order_id, v_lines);
            SELECT f.status, f.version INTO v_status, v_version
              FROM orderdb._finish_shipping(v_order.warehouse_id, p_order_id, 'wms',
                                            p_event_type,
                                            v_context || jsonb_build_object(
                                                'carrier', v_carrier,
                                                'tracking_number', v_tracking),
                                            'wms', v_at) f;
            v_outcome := 'applied';
        END IF;
    END IF;

    UPDATE orderdb.wms_events AS w
       SET outcome = v_outcome, status_after = v_status, version_after = v_version
     WHERE w.source = p_source AND w.event_id = p_event_id;

    order_id := p_order_id;
    status := v_status;
    version := v_version;
    duplicate := false;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.wms_callback(text, bigint, text, jsonb, text) IS
    'Applies one WMS callback (PICKED, PACKED, SHIPPED, EXCEPTION) to an order, idempotent on (p_source, p_event_id).';

-- cancel_order_lines: cancels (part of) the lines an order still holds: their reservations are
-- released (held -> released). p_lines [{"sku", "quantity"?}] (quantity absent: all that line
-- holds); NULL: everything still held ("cancel the remainder"). When the order then holds
-- nothing: shipped if something was shipped (partial shipment complete; from on_hold the hold is
-- lifted first), else cancelled. Otherwise the status is unchanged (version too).
-- Raises 22023 (bad input, bad lines, nothing to cancel), OD004, OD002 (p_expected_version is not
-- the current version), OD003 (the order is past packed or terminal).
-- Locks the orders row, inventory rows in sku order.
CREATE OR REPLACE FUNCTION orderdb.cancel_order_lines(p_order_id bigint, p_lines jsonb,
                                                      p_expected_version integer,
                                                      p_actor text DEFAULT NULL,
                                                      p_reason text DEFAULT NULL)
RETURNS TABLE (order_id bigint, status text, version integer, released integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_order   record;
    v_lines   jsonb;
    v_context jsonb;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    PERFORM orderdb._check_positive(p_expected_version, 'expected_version');
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);
    PERFORM orderdb._check_text(p_reason, 'reason', 1000);
    IF p_lines IS NOT NULL AND jsonb_typeof(p_lines) <> 'null' THEN
        PERFORM orderdb._parse_items(p_lines, 'lines', false);
    END IF;

    SELECT * INTO v_order FROM orderdb._lock_order(p_order_id);
    IF v_order.version <> p_expected_version THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: expected version %s, current version %s',
                             p_order_id, p_expected_version, v_order.version),
            DETAIL = format('status=%s version=%s', v_order.status, v_order.version),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;
    IF v_order.status NOT IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD003',
            MESSAGE = format('order %s is %s: its lines can no longer be cancelled', p_order_id,
                             v_order.status),
            DETAIL = format('from=%s version=%s', v_order.status, v_order.version);
    END IF;

    v_lines := orderdb._resolve_lines(v_order.warehouse_id, p_order_id,
                                      nullif(p_lines, 'null'::jsonb), 'held');
    IF v_lines IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('lines: order %s holds nothing to cancel', p_order_id);
    END IF;
    released := orderdb._release_reservations(v_order.warehouse_id, p_order_id, v_lines);
    v_context := jsonb_build_object('cancelled_lines', v_lines);
    PERFORM orderdb._emit_event('order.lines_cancelled', p_order_id, v_order.warehouse_id,
                                jsonb_build_object('lines', v_lines, 'reason', p_reason));

    SELECT f.status, f.version INTO status, version
      FROM orderdb._finish_shipping(v_order.warehouse_id, p_order_id, p_actor,
                                    coalesce(p_reason, 'remaining lines cancelled'),
                                    v_context, 'api', now()) f;
    order_id := p_order_id;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.cancel_order_lines(bigint, jsonb, integer, text, text) IS
    'Cancels (part of) the lines an order still holds; ships or cancels the order when nothing is left.';

-- request_return: the customer asks to return (part of) a delivered order: delivered ->
-- return_requested, and an orderdb.order_returns row with the lines [{"sku", "quantity"?}]
-- (quantity absent: all shipped of that sku; NULL: everything shipped).
-- Raises 22023 (bad input/lines), OD004, OD002 (stale version; wins over OD003), OD003 (not
-- delivered). Locks the orders row.
CREATE OR REPLACE FUNCTION orderdb.request_return(p_order_id bigint, p_lines jsonb,
                                                  p_expected_version integer,
                                                  p_actor text DEFAULT NULL,
                                                  p_reason text DEFAULT NULL)
RETURNS TABLE (order_id bigint, status text, version integer, return_id bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_warehouse_id integer;
    v_lines        jsonb;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    PERFORM orderdb._check_positive(p_expected_version, 'expected_version');
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);
    PERFORM orderdb._check_text(p_reason, 'reason', 1000);
    IF p_lines IS NOT NULL AND jsonb_typeof(p_lines) <> 'null' THEN
        PERFORM orderdb._parse_items(p_lines, 'lines', false);
    END IF;
    v_warehouse_id := orderdb._locate_order(p_order_id);

    SELECT t.status, t.version INTO status, version
      FROM orderdb._apply_transition(v_warehouse_id, p_order_id, 'return_requested',
                                     p_expected_version, p_actor, p_reason,
                                     jsonb_build_object('lines', p_lines), 'api', NULL) t;

    v_lines := orderdb._resolve_lines(v_warehouse_id, p_order_id,
                                      nullif(p_lines, 'null'::jsonb), 'consumed');
    IF v_lines IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = format('lines: order %s shipped nothing', p_order_id);
    END IF;
    INSERT INTO orderdb.order_returns AS r (warehouse_id, order_id, lines, reason, requested_by)
    VALUES (v_warehouse_id, p_order_id, v_lines, p_reason, p_actor)
    RETURNING r.return_id INTO return_id;

    PERFORM orderdb._emit_event('return.requested', p_order_id, v_warehouse_id,
                                jsonb_build_object('return_id', return_id, 'lines', v_lines,
                                                   'reason', p_reason));
    order_id := p_order_id;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.request_return(bigint, jsonb, integer, text, text) IS
    'Starts a customer return of (part of) a delivered order: delivered -> return_requested.';

-- receive_return: the returned goods arrived at the warehouse: (return_requested ->) returning ->
-- returned, restocking the lines that came back (consumed -> returned, on_hand rises) and
-- releasing anything still held. p_lines: what arrived [{"sku", "quantity"?}]; NULL: the lines of
-- the open return request, or everything shipped for a parcel the carrier brought back.
-- p_expected_version NULL: any version. Returns the units restocked.
-- Raises 22023 (bad input/lines), OD004, OD002, OD003 (not returning / return_requested).
-- Locks the orders row, inventory rows in sku order.
CREATE OR REPLACE FUNCTION orderdb.receive_return(p_order_id bigint, p_lines jsonb DEFAULT NULL,
                                                  p_expected_version integer DEFAULT NULL,
                                                  p_actor text DEFAULT NULL,
                                                  p_reason text DEFAULT NULL)
RETURNS TABLE (order_id bigint, status text, version integer, restocked integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_order     record;
    v_lines     jsonb;
    v_return_id bigint;
    v_before    bigint;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    IF p_expected_version IS NOT NULL THEN
        PERFORM orderdb._check_positive(p_expected_version, 'expected_version');
    END IF;
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);
    PERFORM orderdb._check_text(p_reason, 'reason', 1000);
    IF p_lines IS NOT NULL AND jsonb_typeof(p_lines) <> 'null' THEN
        PERFORM orderdb._parse_items(p_lines, 'lines', false);
    END IF;

    SELECT * INTO v_order FROM orderdb._lock_order(p_order_id);
    IF p_expected_version IS NOT NULL AND v_order.version <> p_expected_version THEN
        PERFORM orderdb._raise_transition_error(v_order.warehouse_id, p_order_id, 'returned',
                                                p_expected_version);
    END IF;
    IF v_order.status NOT IN ('return_requested', 'returning') THEN
        PERFORM orderdb._raise_transition_error(v_order.warehouse_id, p_order_id, 'returned',
                                                NULL);
    END IF;

    SELECT r.return_id, r.lines INTO v_return_id, v_lines
      FROM orderdb.order_returns r
     WHERE r.warehouse_id = v_order.warehouse_id AND r.order_id = p_order_id
       AND r.status = 'requested'
     ORDER BY r.return_id DESC
     LIMIT 1;
    IF p_lines IS NOT NULL AND jsonb_typeof(p_lines) <> 'null' THEN
        v_lines := p_lines;
    END IF;
    v_lines := orderdb._resolve_lines(v_order.warehouse_id, p_order_id, v_lines, 'consumed');

    SELECT coalesce(sum(ol.qty_returned), 0) INTO v_before
      FROM orderdb.order_lines ol
     WHERE ol.warehouse_id = v_order.warehouse_id AND ol.order_id = p_order_id;

    IF v_order.status = 'return_requested' THEN
        PERFORM orderdb._apply_transition(v_order.warehouse_id, p_order_id, 'returning', NULL,
                                          p_actor, 'return parcel received', '{}'::jsonb, 'api',
                                          NULL);
    END IF;
    SELECT t.status, t.version INTO status, version
      FROM orderdb._apply_transition(v_order.warehouse_id, p_order_id, 'returned', NULL, p_actor,
                                     p_reason, jsonb_build_object('lines', v_lines), 'api', NULL,
                                     v_lines) t;

    SELECT (coalesce(sum(ol.qty_returned), 0) - v_before)::integer INTO restocked
      FROM orderdb.order_lines ol
     WHERE ol.warehouse_id = v_order.warehouse_id AND ol.order_id = p_order_id;

    IF v_return_id IS NOT NULL THEN
        UPDATE orderdb.order_returns AS r
           SET status = 'received', received_at = now(), received_lines = v_lines
         WHERE r.warehouse_id = v_order.warehouse_id AND r.return_id = v_return_id;
    END IF;
    PERFORM orderdb._emit_event('return.received', p_order_id, v_order.warehouse_id,
                                jsonb_build_object('return_id', v_return_id, 'lines', v_lines,
                                                   'restocked', restocked));
    order_id := p_order_id;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.receive_return(bigint, jsonb, integer, text, text) IS
    'Receives returned goods: the order becomes returned and what came back is restocked.';
