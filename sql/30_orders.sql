-- Orders: creation (idempotent, reserving all lines or none), the state machine (one internal
-- function, orderdb._apply_transition, used by transition_order and by the WMS/carrier entry
-- points), reads (get_order, order_history, allowed_transitions).
--
-- Orders are found by order_id through orderdb.order_directory (order_id -> warehouse_id);
-- internal functions take warehouse_id first (DESIGN principle 10).

-- _order_no: 'ORD' || UTC date YYYYMMDD || the number padded to at least 8 digits (never
-- truncated). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_no(p_number bigint, p_at timestamptz DEFAULT now())
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT 'ORD' || to_char(p_at AT TIME ZONE 'UTC', 'YYYYMMDD')
           || lpad(p_number::text, greatest(8, length(p_number::text)), '0');
$$;
COMMENT ON FUNCTION orderdb._order_no(bigint, timestamptz) IS
    'Formats an order number: ORD + UTC date YYYYMMDD + the number padded to at least 8 digits.';

-- _locate_order: the warehouse that holds an order (orderdb.order_directory).
-- Raises OD004 when the order does not exist. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._locate_order(p_order_id bigint)
RETURNS integer
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_warehouse_id integer;
BEGIN
    SELECT d.warehouse_id INTO v_warehouse_id
      FROM orderdb.order_directory d WHERE d.order_id = p_order_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('order %s not found', p_order_id),
            DETAIL = format('order_id=%s', p_order_id);
    END IF;
    RETURN v_warehouse_id;
END;
$$;
COMMENT ON FUNCTION orderdb._locate_order(bigint) IS
    'Returns the warehouse_id that holds an order (OD004 when it does not exist).';

-- _totals_json: an order's "totals" object: {"currency", "items", "shipping", "total"} — exact
-- decimals as JSON numbers (jsonb numeric: no binary floating point; total = items + shipping).
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._totals_json(p_currency text, p_items numeric,
                                                p_shipping numeric)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT jsonb_build_object('currency', p_currency, 'items', p_items, 'shipping', p_shipping,
                              'total', p_items + p_shipping);
$$;
COMMENT ON FUNCTION orderdb._totals_json(text, numeric, numeric) IS
    'The totals object of an order (currency, items, shipping, total).';

-- _items_total: the items total of an order as stored (orders.items_total), or, for an order
-- created before that column existed (NULL), the sum of quantity x unit_price of its lines (a
-- line without a price counts 0). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._items_total(p_warehouse_id integer, p_order_id bigint,
                                                p_items_total numeric)
RETURNS numeric
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce(p_items_total,
                    (SELECT coalesce(sum(l.quantity * l.unit_price), 0)
                       FROM orderdb.order_lines l
                      WHERE l.warehouse_id = p_warehouse_id AND l.order_id = p_order_id));
$$;
COMMENT ON FUNCTION orderdb._items_total(integer, bigint, numeric) IS
    'An order''s items total (stored, or summed from its lines for older orders).';

-- create_order: creates a pending order (version 1) and reserves every line, or nothing.
-- Idempotency: the key is claimed first (unique index + ON CONFLICT DO NOTHING); a concurrent
-- call with the same key waits for the first one and then replays it. A replay returns the
-- original order's id and number with its current status and version (replayed = true) and
-- reserves nothing; the same key with another request (customer, warehouse, items, options —
-- not actor) raises OD006.
-- Order data in p_options (ship_to, priority, currency, shipping_fee, promised times, time_zone,
-- attributes) is validated and normalised by orderdb._order_data and stored normalised in
-- options; currency, priority, shipping_fee and the items' total (sum of quantity x unit_price,
-- a line without a price counting 0) also go to their columns. The idempotency hash is taken
-- over the options as sent.
-- Emits order.created (with the order's totals and priority; never a phone number).
-- Raises 22023 (bad input, naming the key: ship_to.phone, currency, ...), OD001 (insufficient
-- stock, DETAIL 'sku=... requested=... available=...'), OD004 (unknown warehouse), OD006.
-- Locks the inventory rows of the order's skus, in sku order.
CREATE OR REPLACE FUNCTION orderdb.create_order(p_customer_id bigint, p_warehouse_id integer,
                                                p_items jsonb,
                                                p_idempotency_key text DEFAULT NULL,
                                                p_actor text DEFAULT NULL,
                                                p_options jsonb DEFAULT '{}')
RETURNS TABLE (order_id bigint, order_no text, status text, version integer, replayed boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- generic plans for every statement of the call, the functions it calls included: the set-based
-- statements of _reserve_stock were otherwise re-planned on every call (docs/benchmarks.md)
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_options   jsonb := coalesce(p_options, '{}'::jsonb);
    v_parsed    record;   -- orderdb._parse_items' outputs
    v_skus      text[];
    v_qtys      integer[];
    v_prices    numeric[];
    v_line_nos  integer[];
    v_items     jsonb;
    v_canonical jsonb;
    v_hash      bytea;
    v_old_hash  bytea;
    v_order_id  bigint;
    v_order_no  text;
    v_requested_warehouse integer := p_warehouse_id;  -- as sent (the idempotency hash)
    v_data      jsonb;    -- the options, validated and normalised (orderdb._order_data)
    v_currency  text := 'CNY';
    v_priority  text := 'normal';
    v_shipping  numeric := 0;
    v_items_total numeric;
BEGIN
    -- the checks in this order: customer_id, warehouse_id, items, idempotency_key, actor, options
    -- (a statement runs its calls left to right: the first bad field is the one reported)
    PERFORM orderdb._check_positive(p_customer_id, 'customer_id'),
            CASE WHEN p_warehouse_id IS NOT NULL
                 THEN orderdb._check_positive(p_warehouse_id, 'warehouse_id') END;
    -- the items: orderdb._parse_items called in an expression (PL/pgSQL evaluates it without
    -- starting a query: no function scan, no tuplestore), then their total, the sum of quantity
    -- x unit_price with a line without a price counting 0 (numeric sums are exact: the same
    -- value and scale as sum() in any order), in a loop instead of a subquery and its aggregate
    -- (docs/benchmarks.md "create_order and tpcb-like, one call at a time")
    v_parsed := orderdb._parse_items(p_items);
    v_skus := v_parsed.skus;
    v_qtys := v_parsed.quantities;
    v_prices := v_parsed.unit_prices;
    v_line_nos := v_parsed.line_nos;
    v_items := v_parsed.items;
    v_canonical := v_parsed.items_canonical;
    v_items_total := 0;
    FOR i IN 1 .. cardinality(v_qtys) LOOP
        v_items_total := v_items_total + v_qtys[i] * coalesce(v_prices[i], 0);
    END LOOP;
    PERFORM orderdb._check_text(p_idempotency_key, 'idempotency_key', 255,
                                p_idempotency_key IS NOT NULL),
            orderdb._check_text(p_actor, 'actor', 1000),
            orderdb._check_json(v_options, 'options', 'object');
    -- order data: most orders carry none or a few keys (one jsonb_each loop, nothing for '{}')
    v_data := v_options;
    IF v_options <> '{}'::jsonb THEN
        v_data := orderdb._order_data(v_options);
        v_currency := coalesce(v_data ->> 'currency', 'CNY');
        v_priority := coalesce(v_data ->> 'priority', 'normal');
        v_shipping := coalesce((v_data ->> 'shipping_fee')::numeric, 0);
    END IF;
    IF p_warehouse_id IS NULL THEN
        -- no warehouse given: orderdb._choose_warehouse (sql/35_reallocation.sql) picks one that
        -- serves every line (OD001 when none can; a replayed key gets its order's warehouse)
        p_warehouse_id := orderdb._choose_warehouse(v_skus, v_qtys, p_idempotency_key);
    END IF;

    v_order_id := nextval('orderdb.order_id_seq');
    v_order_no := orderdb._order_no(v_order_id);

    IF p_idempotency_key IS NULL THEN
        INSERT INTO orderdb.order_directory (order_id, warehouse_id, order_no)
        VALUES (v_order_id, p_warehouse_id, v_order_no);
    ELSE
        v_hash := sha256(convert_to(jsonb_build_object(
                      'customer_id', p_customer_id, 'warehouse_id', v_requested_warehouse,
                      'items', v_canonical, 'options', v_options)::text, 'UTF8'));
        INSERT INTO orderdb.order_directory AS d
               (order_id, warehouse_id, order_no, idempotency_key, request_hash)
        VALUES (v_order_id, p_warehouse_id, v_order_no, p_idempotency_key, v_hash)
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

        IF NOT FOUND THEN
            -- the key is taken by a committed order: this statement's snapshot sees it
            SELECT d.order_id, d.order_no, d.request_hash, o.status, o.version
              INTO order_id, order_no, v_old_hash, status, version
              FROM orderdb.order_directory d
              JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
             WHERE d.idempotency_key = p_idempotency_key;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING
                    ERRCODE = '40001',
                    MESSAGE = 'idempotency key changed owner concurrently; retry';
            END IF;
            IF v_old_hash IS DISTINCT FROM v_hash THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'OD006',
                    MESSAGE = 'idempotency key reused with a different request',
                    DETAIL = format('idempotency_key=%s order_no=%s', p_idempotency_key, order_no),
                    HINT = 'Use a new key for a new order.';
            END IF;
            replayed := true;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    PERFORM orderdb._reserve_stock(p_warehouse_id, v_skus, v_qtys);

    INSERT INTO orderdb.orders (warehouse_id, order_id, order_no, customer_id, status, version,
                                options, created_by, currency, priority, items_total,
                                shipping_fee)
    VALUES (p_warehouse_id, v_order_id, v_order_no, p_customer_id, 'pending', 1, v_data,
            p_actor, v_currency, v_priority, v_items_total, v_shipping);

    INSERT INTO orderdb.order_lines (warehouse_id, order_id, sku, line_no, quantity, unit_price,
                                     qty_held)
    SELECT p_warehouse_id, v_order_id, l.sku, l.line_no, l.quantity, l.unit_price, l.quantity
      FROM unnest(v_skus, v_line_nos, v_qtys, v_prices) AS l(sku, line_no, quantity, unit_price);

    -- the outbox row written inline (what orderdb._emit_event writes, without its call: the
    -- hot path of every order; docs/benchmarks.md "What each change measured"); "totals" is
    -- orderdb._totals_json's object built in place (that IMMUTABLE SQL function calls the STABLE
    -- jsonb_build_object, so the planner does not inline it: one function call less per order)
    INSERT INTO orderdb.outbox (event_type, order_id, warehouse_id, payload)
    VALUES ('order.created', v_order_id, p_warehouse_id,
            jsonb_build_object('order_no', v_order_no,
                               'customer_id', p_customer_id,
                               'warehouse_id', p_warehouse_id,
                               'status', 'pending',
                               'version', 1,
                               'items', v_items,
                               'priority', v_priority,
                               'totals', jsonb_build_object('currency', v_currency,
                                                            'items', v_items_total,
                                                            'shipping', v_shipping,
                                                            'total', v_items_total + v_shipping)));

    order_id := v_order_id;
    order_no := v_order_no;
    status := 'pending';
    version := 1;
    replayed := false;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.create_order(bigint, integer, jsonb, text, text, jsonb) IS
    'Creates a pending order and reserves every line or none; idempotent on p_idempotency_key.';

-- _raise_transition_error: explains why _apply_transition's conditional update matched no row,
-- in the contract's order: unknown status (22023), unknown order (OD004), stale version (OD002,
-- DETAIL 'status=... version=...'; also when the order moved to another warehouse meanwhile),
-- edge not allowed (OD003). Always raises. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._raise_transition_error(p_warehouse_id integer,
                                                           p_order_id bigint,
                                                           p_to_status text,
                                                           p_expected_version integer)
RETURNS void
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_status   text;
    v_version  integer;
    v_previous text;
    v_allowed  text;
BEGIN
    PERFORM orderdb._check_status(p_to_status, 'to_status');

    SELECT o.status, o.version, o.previous_status INTO v_status, v_version, v_previous
      FROM orderdb.order_directory d
      JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
     WHERE d.order_id = p_order_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('order %s not found', p_order_id),
            DETAIL = format('order_id=%s', p_order_id);
    END IF;

    IF (p_expected_version IS NOT NULL AND v_version <> p_expected_version)
       OR NOT EXISTS (SELECT 1 FROM orderdb.orders o
                       WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: expected version %s, current version %s',
                             p_order_id, coalesce(p_expected_version::text, 'any'), v_version),
            DETAIL = format('status=%s version=%s', v_status, v_version),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;

    SELECT string_agg(t.to_status, ', ' ORDER BY s.position) INTO v_allowed
      FROM orderdb.order_transitions t
      JOIN orderdb.order_statuses s ON s.status = t.to_status
     WHERE t.from_status = v_status
       AND (v_status <> 'on_hold' OR t.to_status IN ('cancelled', v_previous));
    RAISE EXCEPTION USING
        ERRCODE = 'OD003',
        MESSAGE = format('order %s cannot go from %s to %s', p_order_id, v_status, p_to_status),
        DETAIL = format('from=%s to=%s version=%s', v_status, p_to_status, v_version),
        HINT = format('allowed from %s: %s', v_status, coalesce(v_allowed, 'none'));
END;
$$;
COMMENT ON FUNCTION orderdb._raise_transition_error(integer, bigint, text, integer) IS
    'Raises the contract error (22023, OD004, OD002 or OD003) for a refused status change.';

-- _record_status_change: writes one row of orderdb.order_status_history — the only writer, so
-- the effective-time rule is in one place. occurred_at is kept as reported (NULL: now());
-- effective_at = greatest(least(occurred_at, now()), the order's previous change's effective_at,
-- or its created_at for the first change): never earlier than the step before, never later than
-- the change was recorded (a clock ahead is capped), so timelines, the board,
-- SLA rules and KPIs never go backwards however far behind the reporting clock is (docs/
-- tracking.md "Reported and effective times"). The previous change is looked up by version,
-- in the partitions recorded since the order's creation. Returns effective_at.
-- Invalidates the order's cached timeline documents (orderdb._timeline_bump_order).
-- Trusts its caller (holds the orders row lock, passes the version it set). Locks nothing more.
CREATE OR REPLACE FUNCTION orderdb._record_status_change(p_warehouse_id integer, p_order_id bigint,
                                                         p_version integer, p_from_status text,
                                                         p_to_status text, p_actor text,
                                                         p_reason text, p_context jsonb,
                                                         p_source text,
                                                         p_occurred_at timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_created   timestamptz;
    v_previous  timestamptz;
    v_occurred  timestamptz := coalesce(p_occurred_at, now());
    v_effective timestamptz;
BEGIN
    -- the order's cached timeline documents (sql/47_timeline_cache.sql)
    PERFORM orderdb._timeline_bump_order(p_order_id);
    SELECT o.created_at INTO v_created
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
    SELECT h.effective_at INTO v_previous
      FROM orderdb.order_status_history h
     WHERE h.warehouse_id = p_warehouse_id AND h.order_id = p_order_id
       AND h.version < p_version
       AND h.changed_at >= coalesce(v_created, '-infinity'::timestamptz)
     ORDER BY h.version DESC
     LIMIT 1;
    -- a change cannot have happened after it was recorded: a clock ahead is capped at now()
    v_effective := greatest(least(v_occurred, now()), v_previous, v_created);

    INSERT INTO orderdb.order_status_history (warehouse_id, order_id, version, from_status,
                                              to_status, actor, reason, context, source,
                                              occurred_at, effective_at)
    VALUES (p_warehouse_id, p_order_id, p_version, p_from_status, p_to_status, p_actor, p_reason,
            coalesce(p_context, '{}'::jsonb), coalesce(p_source, 'api'), v_occurred,
            v_effective);
    RETURN v_effective;
END;
$$;
COMMENT ON FUNCTION orderdb._record_status_change(integer, bigint, integer, text, text, text,
                                                  text, jsonb, text, timestamptz) IS
    'Writes one status-history row with its effective time (never before the previous change).';

-- _apply_transition: THE state-machine rule. Moves an order to p_to_status if (a) its version is
-- p_expected_version (NULL: any version, for internal callers that hold the order row lock), (b)
-- the edge is in orderdb.order_transitions, and (c) out of on_hold only to the status before the
-- hold or to cancelled — all in one conditional UPDATE (no read-modify-write). Then: history row
-- (version, from, to, actor, reason, context, source, occurred_at), inventory side effects
-- (shipped: consume held; cancelled, completed: release held; returned: restock consumed and
-- release anything still held; p_lines limits consume/restock to some lines, for partial
-- shipments/returns), outbox event order.status_changed {"from", "to", "version"}.
-- Trusts its caller for argument bounds (public entry points check them).
-- Raises 22023 (unknown status), OD004, OD002 (DETAIL 'status=... version=...'), OD003.
-- Locks the orders row, then inventory rows in sku order (side effects).
CREATE OR REPLACE FUNCTION orderdb._apply_transition(p_warehouse_id integer, p_order_id bigint,
                                                     p_to_status text,
                                                     p_expected_version integer,
                                                     p_actor text DEFAULT NULL,
                                                     p_reason text DEFAULT NULL,
                                                     p_context jsonb DEFAULT '{}',
                                                     p_source text DEFAULT 'api',
                                                     p_occurred_at timestamptz DEFAULT NULL,
                                                     p_lines jsonb DEFAULT NULL)
RETURNS TABLE (order_id bigint, status text, version integer, from_status text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_from    text;
    v_version integer;
BEGIN
    UPDATE orderdb.orders AS o
       SET status = p_to_status,
           previous_status = o.status,
           version = o.version + 1,
           updated_at = now()
     WHERE o.warehouse_id = p_warehouse_id
       AND o.order_id = p_order_id
       AND (p_expected_version IS NULL OR o.version = p_expected_version)
       AND EXISTS (SELECT 1 FROM orderdb.order_transitions t
                    WHERE t.from_status = o.status AND t.to_status = p_to_status)
       AND (o.status <> 'on_hold' OR p_to_status = 'cancelled'
            OR p_to_status = o.previous_status)
    RETURNING o.previous_status, o.version INTO v_from, v_version;

    IF NOT FOUND THEN
        PERFORM orderdb._raise_transition_error(p_warehouse_id, p_order_id, p_to_status,
                                                p_expected_version);
    END IF;
    -- the order's cached timeline documents (sql/47_timeline_cache.sql; no row triggers)
    PERFORM orderdb._timeline_bump_order(p_order_id);

    PERFORM orderdb._record_status_change(p_warehouse_id, p_order_id, v_version, v_from,
                                          p_to_status, p_actor, p_reason, p_context, p_source,
                                          p_occurred_at);

    IF p_to_status = 'shipped' THEN
        PERFORM orderdb._consume_reservations(p_warehouse_id, p_order_id, p_lines);
    ELSIF p_to_status IN ('cancelled', 'completed') THEN
        PERFORM orderdb._release_reservations(p_warehouse_id, p_order_id);
    ELSIF p_to_status = 'returned' THEN
        -- restock (consumed skus) and release (held skus, after a partial shipment) touch
        -- different rows: the first move locks them all, in sku order (_move_reservations)
        PERFORM orderdb._restock(p_warehouse_id, p_order_id, p_lines);
        PERFORM orderdb._release_reservations(p_warehouse_id, p_order_id);
    END IF;

    PERFORM orderdb._emit_event('order.status_changed', p_order_id, p_warehouse_id,
                                jsonb_build_object('from', v_from, 'to', p_to_status,
                                                   'version', v_version));

    order_id := p_order_id;
    status := p_to_status;
    version := v_version;
    from_status := v_from;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb._apply_transition(integer, bigint, text, integer, text, text, jsonb,
                                              text, timestamptz, jsonb) IS
    'Applies one status change (the single state-machine rule) with history, inventory effects and event.';

-- transition_order: moves an order to p_to_status with an optimistic version check.
-- Raises 22023 (bad input, unknown status), OD004 (unknown order), OD002 (version is not
-- p_expected_version; wins over OD003), OD003 (edge not allowed; out of on_hold only back to the
-- status before the hold, or to cancelled).
-- Locks the orders row, and inventory rows in sku order when shipping/cancelling/returning.
CREATE OR REPLACE FUNCTION orderdb.transition_order(p_order_id bigint, p_to_status text,
                                                    p_expected_version integer,
                                                    p_actor text DEFAULT NULL,
                                                    p_reason text DEFAULT NULL,
                                                    p_context jsonb DEFAULT '{}')
RETURNS TABLE (order_id bigint, status text, version integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_context      jsonb := coalesce(p_context, '{}'::jsonb);
    v_warehouse_id integer;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    PERFORM orderdb._check_status(p_to_status, 'to_status');
    PERFORM orderdb._check_positive(p_expected_version, 'expected_version');
    PERFORM orderdb._check_text(p_actor, 'actor', 1000);
    PERFORM orderdb._check_text(p_reason, 'reason', 1000);
    PERFORM orderdb._check_json(v_context, 'context', 'object');

    v_warehouse_id := orderdb._locate_order(p_order_id);

    RETURN QUERY
        SELECT t.order_id, t.status, t.version
          FROM orderdb._apply_transition(v_warehouse_id, p_order_id, p_to_status,
                                         p_expected_version, p_actor, p_reason, v_context) t;
END;
$$;
COMMENT ON FUNCTION orderdb.transition_order(bigint, text, integer, text, text, jsonb) IS
    'Moves an order to another status if its version matches and the edge is allowed.';

-- _order_shipments: the "shipments" array of get_order. Placeholder returning []; the
-- fulfillment/tracking file (40_) replaces it (CREATE OR REPLACE) once shipments exist.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_shipments(p_warehouse_id integer, p_order_id bigint)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT '[]'::jsonb;
$$;
COMMENT ON FUNCTION orderdb._order_shipments(integer, bigint) IS
    'The shipments array of get_order (placeholder: []; replaced by the fulfillment code).';

-- _order_wms_order_id: the "wms_order_id" of get_order. Placeholder returning NULL; the WMS
-- command queue file (42_) replaces it (CREATE OR REPLACE) with the id its WMS accepted.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_wms_order_id(p_warehouse_id integer, p_order_id bigint)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT NULL::text;
$$;
COMMENT ON FUNCTION orderdb._order_wms_order_id(integer, bigint) IS
    'The wms_order_id of get_order (placeholder: NULL; replaced by the WMS command queue).';

-- get_order: the order as one JSON document: order_id, order_no, customer_id, warehouse_id,
-- status, version, previous_status, options, created_by, created_at, updated_at,
-- items [{sku, quantity, unit_price, reservation {held, consumed, released, returned}}] in input
-- order, shipments [...], priority, totals {currency, items, shipping, total} (orderdb.
-- _totals_json), wms_order_id (the warehouse WMS's id of the order; null until it accepted it).
-- For operators and the shop's application: options.ship_to.phone is the full (normalised)
-- phone; customer-facing documents (order_timeline) mask it.
-- Raises 22023 (order_id not positive), OD004 (unknown order). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb.get_order(p_order_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc jsonb;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');

    SELECT jsonb_build_object(
               'order_id', o.order_id,
               'order_no', o.order_no,
               'customer_id', o.customer_id,
               'warehouse_id', o.warehouse_id,
               'status', o.status,
               'version', o.version,
               'previous_status', o.previous_status,
               'options', o.options,
               'created_by', o.created_by,
               'created_at', o.created_at,
               'updated_at', o.updated_at,
               'items', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                    'sku', l.sku,
                                    'quantity', l.quantity,
                                    'unit_price', l.unit_price,
                                    'reservation', jsonb_build_object(
                                        'held', l.qty_held,
                                        'consumed', l.qty_consumed,
                                        'released', l.qty_released,
                                        'returned', l.qty_returned))
                                  ORDER BY l.line_no), '[]'::jsonb)
                           FROM orderdb.order_lines l
                          WHERE l.warehouse_id = o.warehouse_id AND l.order_id = o.order_id),
               'shipments', orderdb._order_shipments(o.warehouse_id, o.order_id),
               'priority', o.priority,
               'totals', orderdb._totals_json(
                   o.currency, orderdb._items_total(o.warehouse_id, o.order_id, o.items_total),
                   o.shipping_fee),
               'wms_order_id', orderdb._order_wms_order_id(o.warehouse_id, o.order_id))
      INTO v_doc
      FROM orderdb.order_directory d
      JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
     WHERE d.order_id = p_order_id;

    IF v_doc IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('order %s not found', p_order_id),
            DETAIL = format('order_id=%s', p_order_id);
    END IF;
    RETURN v_doc;
END;
$$;
COMMENT ON FUNCTION orderdb.get_order(bigint) IS
    'Returns an order with its items and shipments as one JSON document (OD004 when missing).';

-- order_history: every status change of an order, oldest first, starting with its creation
-- (version 1, from NULL to pending, actor = the creating actor): version, from, to, actor, reason,
-- context (e.g. ip, request id), changed_at (when recorded), source (api, wms, carrier, ...) and
-- occurred_at (when it happened, as given by the caller; = changed_at for API calls).
-- Amendments (orderdb.amend_order, orderdb.order_amendments) are in it too: from = to = the
-- status the order had, source 'amendment', context {"changes": {"key": {"old", "new"}}}.
-- Raises 22023 (order_id not positive), OD004 (unknown order). Locks nothing.
DO $$
BEGIN
    -- the result columns source and occurred_at were added: replace an older definition
    IF to_regprocedure('orderdb.order_history(bigint)') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                        WHERE p.oid = to_regprocedure('orderdb.order_history(bigint)')
                          AND 'occurred_at' = ANY (p.proargnames)) THEN
        DROP FUNCTION orderdb.order_history(bigint);
    END IF;
END;
$$;
CREATE OR REPLACE FUNCTION orderdb.order_history(p_order_id bigint)
RETURNS TABLE (version integer, from_status text, to_status text, actor text, reason text,
               context jsonb, changed_at timestamptz, source text, occurred_at timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');

    RETURN QUERY
        SELECT 1, NULL::text, 'pending'::text, o.created_by, NULL::text, '{}'::jsonb,
               o.created_at, 'api'::text, o.created_at
          FROM orderdb.order_directory d
          JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
         WHERE d.order_id = p_order_id
        UNION ALL
        SELECT h.version, h.from_status, h.to_status, h.actor, h.reason, h.context, h.changed_at,
               h.source, h.occurred_at
          FROM orderdb.order_directory d
          JOIN orderdb.order_status_history h
            ON h.warehouse_id = d.warehouse_id AND h.order_id = d.order_id
         WHERE d.order_id = p_order_id
        UNION ALL
        SELECT a.version, a.status, a.status, a.actor, a.reason,
               jsonb_build_object('changes', a.changes), a.changed_at, 'amendment'::text,
               a.changed_at
          FROM orderdb.order_directory d
          JOIN orderdb.order_amendments a
            ON a.warehouse_id = d.warehouse_id AND a.order_id = d.order_id
         WHERE d.order_id = p_order_id
        ORDER BY 1;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('order %s not found', p_order_id),
            DETAIL = format('order_id=%s', p_order_id);
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb.order_history(bigint) IS
    'Lists every status change of an order, oldest first, starting with its creation.';

-- allowed_transitions: the allowed status edges (orderdb.order_transitions), in lifecycle order.
-- Out of on_hold only the edge back to the status before the hold (or to cancelled) applies to
-- a given order. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb.allowed_transitions()
RETURNS TABLE (from_status text, to_status text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.from_status, t.to_status
      FROM orderdb.order_transitions t
      JOIN orderdb.order_statuses f ON f.status = t.from_status
      JOIN orderdb.order_statuses s ON s.status = t.to_status
     ORDER BY f.position, s.position;
$$;
COMMENT ON FUNCTION orderdb.allowed_transitions() IS
    'Lists the allowed order status edges (the state machine as data).';

-- _amendable: whether amend_order may change p_key of an order in p_status:
--   ship_to, priority                    until the order ships: pending, confirmed, dispatched,
--                                        picked, packed, on_hold
--   promised_ship_at, promised_delivery_at  until it is delivered: the above and shipped,
--                                        delivering, delivery_failed
--   attributes                           always
-- (a cancelled, delivered or returned order keeps its address and promises). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._amendable(p_key text, p_status text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE
        WHEN p_key IN ('ship_to', 'priority') THEN
            p_status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold')
        WHEN p_key IN ('promised_ship_at', 'promised_delivery_at') THEN
            p_status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold',
                         'shipped', 'delivering', 'delivery_failed')
        ELSE p_key = 'attributes'
    END;
$$;
COMMENT ON FUNCTION orderdb._amendable(text, text) IS
    'Whether amend_order may change a key of an order in a status.';

-- _mask_ship_to: a ship_to object with its phone masked (orderdb._mask_phone), for events and
-- customer-facing documents; other values as they are. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._mask_ship_to(p_ship_to jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN jsonb_typeof(p_ship_to) = 'object' AND p_ship_to ? 'phone'
                THEN jsonb_set(p_ship_to, '{phone}',
                               coalesce(to_jsonb(orderdb._mask_phone(p_ship_to ->> 'phone')),
                                        'null'::jsonb))
                ELSE p_ship_to END;
$$;
COMMENT ON FUNCTION orderdb._mask_ship_to(jsonb) IS
    'A ship_to object with its phone masked.';

-- amend_order: changes an order's data after creation, with an optimistic version check.
-- p_changes: any of ship_to (replaces the whole address), priority, promised_ship_at,
-- promised_delivery_at (null withdraws the promise), attributes (merged into the current ones;
-- an attribute set to null is removed) — validated by orderdb._order_data as create_order
-- validates them (22023 naming the key; any other key: '<key> cannot be amended').
-- When each may change: orderdb._amendable (ship_to and priority until shipped, promised times
-- until delivered, attributes always). Version + 1; the status does not change.
-- Records orderdb.order_amendments (actor, reason, {"key": {"old", "new"}}; order_history lists
-- it, source 'amendment') and emits order.amended {"status", "version", "keys", "changes"}
-- (phones masked). An order on hold for ADDRESS_INCOMPLETE that gets a ship_to shows in
-- orderdb_ops.alerts (source 'hold') until it leaves on_hold.
-- Raises 22023 (bad input), OD004 (unknown order), OD002 (stale version; wins over OD003),
-- OD003 (a key that may no longer change in the order's status).
-- Locks the orders row.
CREATE OR REPLACE FUNCTION orderdb.amend_order(p_order_id bigint, p_expected_version integer,
                                               p_changes jsonb, p_actor text DEFAULT NULL,
                                               p_reason text DEFAULT NULL)
RETURNS TABLE (order_id bigint, status text, version integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changes      jsonb;
    v_warehouse_id integer;
    v_order        record;
    v_options      jsonb;
    v_key          text;
    v_old          jsonb;
    v_new          jsonb;
    v_record       jsonb := '{}'::jsonb;
    v_event        jsonb := '{}'::jsonb;
    v_version      integer;
    v_now_status   text;
    v_now_version  integer;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id'),
            orderdb._check_positive(p_expected_version, 'expected_version'),
            orderdb._check_json(p_changes, 'changes', 'object'),
            orderdb._check_text(p_actor, 'actor', 1000),
            orderdb._check_text(p_reason, 'reason', 1000);
    IF p_changes = '{}'::jsonb THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'changes must name at least one key',
            HINT = 'amend_order changes ship_to, priority, promised_ship_at, '
                   'promised_delivery_at and attributes.';
    END IF;
    v_changes := orderdb._order_data(p_changes, true);

    v_warehouse_id := orderdb._locate_order(p_order_id);
    SELECT o.status, o.version, o.options INTO v_order
      FROM orderdb.orders o
     WHERE o.warehouse_id = v_warehouse_id AND o.order_id = p_order_id
       FOR UPDATE;
    IF NOT FOUND OR v_order.version <> p_expected_version THEN
        -- not found: the order moved to another warehouse meanwhile (its version changed too)
        SELECT o.status, o.version INTO v_now_status, v_now_version
          FROM orderdb.order_directory d
          JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
         WHERE d.order_id = p_order_id;
        RAISE EXCEPTION USING
            ERRCODE = 'OD002',
            MESSAGE = format('order %s has changed: expected version %s, current version %s',
                             p_order_id, p_expected_version, v_now_version),
            DETAIL = format('status=%s version=%s', v_now_status, v_now_version),
            HINT = 'Re-read the order (orderdb.get_order) and retry with its current version.';
    END IF;

    FOR v_key IN SELECT k FROM jsonb_object_keys(v_changes) k ORDER BY k LOOP
        IF NOT orderdb._amendable(v_key, v_order.status) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD003',
                MESSAGE = format('order %s is %s: its %s can no longer change', p_order_id,
                                 v_order.status, v_key),
                DETAIL = format('key=%s status=%s version=%s', v_key, v_order.status,
                                v_order.version),
                HINT = 'ship_to and priority change until the order ships, promised times until '
                       'it is delivered, attributes always.';
        END IF;
    END LOOP;

    v_options := v_order.options;
    FOR v_key, v_new IN SELECT e.key, e.value FROM jsonb_each(v_changes) e LOOP
        v_old := v_options -> v_key;
        IF v_key = 'attributes' THEN
            SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}'::jsonb) INTO v_new
              FROM jsonb_each(CASE WHEN jsonb_typeof(v_old) = 'object' THEN v_old
                                   ELSE '{}'::jsonb END || v_new) a
             WHERE jsonb_typeof(a.value) <> 'null';
        END IF;
        IF jsonb_typeof(v_new) = 'null' THEN
            v_options := v_options - v_key;
        ELSE
            v_options := jsonb_set(v_options, ARRAY[v_key], v_new);
        END IF;
        v_record := v_record || jsonb_build_object(v_key, jsonb_build_object('old', v_old,
                                                                             'new', v_new));
        v_event := v_event || jsonb_build_object(v_key, jsonb_build_object(
                                  'old', orderdb._mask_ship_to(v_old),
                                  'new', orderdb._mask_ship_to(v_new)));
    END LOOP;
    -- merged attributes may push the options over their bounds
    PERFORM orderdb._check_json(v_options, 'options', 'object');

    UPDATE orderdb.orders AS o
       SET options = v_options,
           priority = coalesce(v_changes ->> 'priority', o.priority),
           version = o.version + 1,
           updated_at = now()
     WHERE o.warehouse_id = v_warehouse_id AND o.order_id = p_order_id
    RETURNING o.version INTO v_version;
    -- the order's cached timeline documents (promised times, time zone, ship-to)
    PERFORM orderdb._timeline_bump_order(p_order_id);

    INSERT INTO orderdb.order_amendments (warehouse_id, order_id, version, status, actor, reason,
                                          changes)
    VALUES (v_warehouse_id, p_order_id, v_version, v_order.status, p_actor, p_reason, v_record);

    PERFORM orderdb._emit_event('order.amended', p_order_id, v_warehouse_id,
                                jsonb_build_object('status', v_order.status,
                                                   'version', v_version,
                                                   'keys', (SELECT jsonb_agg(k ORDER BY k)
                                                              FROM jsonb_object_keys(v_changes) k),
                                                   'changes', v_event));

    order_id := p_order_id;
    status := v_order.status;
    version := v_version;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.amend_order(bigint, integer, jsonb, text, text) IS
    'Changes an order''s address, priority, promised times or attributes (optimistic lock, history, order.amended).';

-- customer_orders: a customer's orders, newest first (by order_id, which grows with creation):
-- order_id, order_no, status, created_at, total (items + shipping, orderdb._items_total) and
-- currency. Keyset pagination: p_before_order_id (the last order_id of the previous page) gives
-- the orders before it; p_limit 1..100. Reads the index orders_customer (customer_id, order_id
-- DESC): one index range per page, whatever the customer's number of orders.
-- Raises 22023 (customer_id or before_order_id not positive, limit outside 1..100).
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb.customer_orders(p_customer_id bigint,
                                                   p_limit integer DEFAULT 20,
                                                   p_before_order_id bigint DEFAULT NULL)
RETURNS TABLE (order_id bigint, order_no text, status text, created_at timestamptz,
               total numeric, currency text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_customer_id, 'customer_id'),
            orderdb._check_range(p_limit, 'limit', 1, 100),
            CASE WHEN p_before_order_id IS NOT NULL
                 THEN orderdb._check_positive(p_before_order_id, 'before_order_id') END;

    RETURN QUERY
        SELECT o.order_id, o.order_no, o.status, o.created_at,
               orderdb._items_total(o.warehouse_id, o.order_id, o.items_total) + o.shipping_fee,
               o.currency
          FROM orderdb.orders o
         WHERE o.customer_id = p_customer_id
           AND o.order_id < coalesce(p_before_order_id, 9223372036854775807)
         ORDER BY o.order_id DESC
         LIMIT p_limit;
END;
$$;
COMMENT ON FUNCTION orderdb.customer_orders(bigint, integer, bigint) IS
    'A customer''s orders, newest first, with totals; keyset pagination (p_before_order_id).';
