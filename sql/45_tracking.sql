-- Tracking: carrier events (record_tracking_event), their mapping to the normalised taxonomy,
-- matching to shipments (also later, when the shipment appears), the order status they imply
-- (never backwards), the customer's timeline (order_timeline) and the unknown-codes view.
--
-- Lock order: the tracking-number advisory lock, then the shipments row, then the orders row
-- (the same order as orderdb.wms_callback: advisory lock, orders row, new shipment row).

-- The signatures these helpers had before tracking_events was partitioned (they looked the
-- event up by its id alone).
DROP FUNCTION IF EXISTS orderdb._apply_tracking_to_shipment(integer, bigint, bigint);
DROP FUNCTION IF EXISTS orderdb._apply_tracking_to_order(integer, bigint, bigint);

-- _normalize_carrier_status: the normalised status of a carrier code (orderdb.carrier_status_map),
-- 'unknown' when the carrier/code pair has no mapping. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._normalize_carrier_status(p_carrier text, p_carrier_status text)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce((SELECT m.normalized_status
                       FROM orderdb.carrier_status_map m
                      WHERE m.carrier = p_carrier AND m.carrier_status = p_carrier_status),
                    'unknown');
$$;
COMMENT ON FUNCTION orderdb._normalize_carrier_status(text, text) IS
    'Maps a carrier status code to the normalised taxonomy (unknown when unmapped).';

-- _apply_tracking_to_shipment: records a carrier event (its normalised status and event time)
-- on its shipment if it is the newest known event of that shipment (by event time; ties
-- apply): status, last_event_time, delivered_at. A delivered event is applied whenever it
-- arrives (a parcel reported delivered is delivered): older than the newest event, it still sets
-- status and delivered_at of a shipment not delivered yet (last_event_time stays the newest).
-- 'unknown' events change nothing. Returns true when the event was applied.
-- Locks the shipments row; the order's cached timeline documents are invalidated
-- (orderdb._timeline_bump_order).
CREATE OR REPLACE FUNCTION orderdb._apply_tracking_to_shipment(p_warehouse_id integer,
                                                               p_shipment_id bigint,
                                                               p_normalized_status text,
                                                               p_event_time timestamptz)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_order_id bigint;
BEGIN
    IF p_normalized_status IS NULL OR p_normalized_status = 'unknown' THEN
        RETURN false;
    END IF;
    UPDATE orderdb.shipments AS s
       SET status = p_normalized_status,
           last_event_time = greatest(s.last_event_time, p_event_time),
           delivered_at = CASE WHEN p_normalized_status = 'delivered'
                               THEN coalesce(s.delivered_at, p_event_time)
                               ELSE s.delivered_at END,
           updated_at = now()
     WHERE s.warehouse_id = p_warehouse_id AND s.shipment_id = p_shipment_id
       AND (s.last_event_time IS NULL OR s.last_event_time <= p_event_time
            OR (p_normalized_status = 'delivered' AND s.delivered_at IS NULL))
    RETURNING s.order_id INTO v_order_id;
    IF v_order_id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM orderdb._timeline_bump_order(v_order_id);
    RETURN true;
END;
$$;
COMMENT ON FUNCTION orderdb._apply_tracking_to_shipment(integer, bigint, text, timestamptz) IS
    'Sets a shipment''s status from a carrier event if it is its newest (or a first delivered); true when applied.';

-- _tracking_target: the order status a carrier event (its normalised status) implies for an
-- order in p_order_status, forward only; NULL when it implies no change:
--   in_transit, available_for_pickup: shipped -> delivering
--   out_for_delivery: shipped | delivery_failed (redelivery) -> delivering
--   failed_attempt: shipped | delivering -> delivery_failed
--   delivered: shipped | delivering | delivery_failed -> delivered (the caller checks that every
--              shipment of the order is delivered)
--   returned_to_sender: shipped | delivering | delivery_failed -> returning
--   info_received, exception, unknown: no change. Any other order status: no change.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._tracking_target(p_normalized_status text,
                                                    p_order_status text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE
        WHEN p_normalized_status IN ('in_transit', 'available_for_pickup')
             AND p_order_status = 'shipped' THEN 'delivering'
        WHEN p_normalized_status = 'out_for_delivery'
             AND p_order_status IN ('shipped', 'delivery_failed') THEN 'delivering'
        WHEN p_normalized_status = 'failed_attempt'
             AND p_order_status IN ('shipped', 'delivering') THEN 'delivery_failed'
        WHEN p_normalized_status = 'delivered'
             AND p_order_status IN ('shipped', 'delivering', 'delivery_failed') THEN 'delivered'
        WHEN p_normalized_status = 'returned_to_sender'
             AND p_order_status IN ('shipped', 'delivering', 'delivery_failed') THEN 'returning'
    END;
$$;
COMMENT ON FUNCTION orderdb._tracking_target(text, text) IS
    'The order status a carrier event implies (forward only), or NULL for no change.';

-- _apply_tracking_to_order: moves an order as its shipment's (newest) carrier event implies
-- (orderdb._tracking_target), through orderdb._apply_transition (source 'carrier', occurred_at =
-- event time); 'delivered' only once every shipment of the order is delivered (else
-- delivering). The order's status is first read without a lock: most events (in_transit on an
-- order already delivering) change nothing and then lock and write nothing — as if they had
-- come just before any concurrent change; otherwise the row is locked and the target decided
-- again on its current status. The event is given by its key (tracking_event_id, event_time):
-- one partition is read, and only when the order changes.
-- Returns the order's status afterwards. Locks the orders row when it changes.
CREATE OR REPLACE FUNCTION orderdb._apply_tracking_to_order(p_warehouse_id integer,
                                                            p_order_id bigint,
                                                            p_normalized_status text,
                                                            p_tracking_event_id bigint,
                                                            p_event_time timestamptz)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_event    record;
    v_order_id bigint := p_order_id;
    v_status   text;
    v_target   text;
    v_pending  boolean;
    v_context  jsonb;
    v_actor    text;
BEGIN
    SELECT o.status INTO v_status
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
    IF orderdb._tracking_target(p_normalized_status, v_status) IS NULL THEN
        RETURN v_status;
    END IF;

    SELECT o.status INTO v_status
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id
       FOR NO KEY UPDATE;
    v_target := orderdb._tracking_target(p_normalized_status, v_status);
    IF v_target IS NULL THEN
        RETURN v_status;
    END IF;
    SELECT te.* INTO v_event
      FROM orderdb.tracking_events te
     WHERE te.tracking_event_id = p_tracking_event_id AND te.event_time = p_event_time;

    IF v_target = 'delivered' THEN
        SELECT EXISTS (SELECT 1 FROM orderdb.shipments s
                        WHERE s.warehouse_id = p_warehouse_id AND s.order_id = v_order_id
                          AND s.delivered_at IS NULL)
          INTO v_pending;
        IF v_pending THEN
            v_target := 'delivering';
        END IF;
    END IF;

    v_context := jsonb_build_object('tracking_event_id', v_event.tracking_event_id,
                                    'carrier', v_event.carrier,
                                    'tracking_number', v_event.tracking_number,
                                    'carrier_status', v_event.carrier_status,
                                    'normalized_status', v_event.normalized_status);
    v_actor := left('carrier:' || v_event.carrier, 1000);

    IF v_target = v_status THEN
        RETURN v_status;
    END IF;
    -- delivery_failed -> delivered goes through delivering (the redelivery)
    IF v_target = 'delivered' AND v_status = 'delivery_failed' THEN
        PERFORM orderdb._apply_transition(p_warehouse_id, v_order_id, 'delivering', NULL, v_actor,
                                          'redelivery', v_context, 'carrier', v_event.event_time);
    END IF;
    SELECT t.status INTO v_status
      FROM orderdb._apply_transition(p_warehouse_id, v_order_id, v_target, NULL, v_actor,
                                     left(v_event.description, 1000), v_context, 'carrier',
                                     v_event.event_time) t;
    RETURN v_status;
END;
$$;
COMMENT ON FUNCTION orderdb._apply_tracking_to_order(integer, bigint, text, bigint, timestamptz) IS
    'Moves an order forward as a carrier event implies (never backwards); returns its status.';

-- _match_tracking_events: attaches the unmatched carrier events of a new shipment's tracking
-- number to it and sets the shipment's status from the newest of them — or from the earliest
-- delivered one, when there is one (a parcel reported delivered is delivered). The order's
-- status is left to the caller (orderdb._finish_shipping). Returns the number of events matched.
-- Locks the matched tracking_events rows and the shipments row.
CREATE OR REPLACE FUNCTION orderdb._match_tracking_events(p_warehouse_id integer,
                                                          p_shipment_id bigint)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_matched integer;
    v_newest  record;
BEGIN
    WITH s AS (
        SELECT sh.carrier, sh.tracking_number, sh.order_id
          FROM orderdb.shipments sh
         WHERE sh.warehouse_id = p_warehouse_id AND sh.shipment_id = p_shipment_id
    )
    UPDATE orderdb.tracking_events AS te
       SET warehouse_id = p_warehouse_id, order_id = s.order_id, shipment_id = p_shipment_id,
           matched_at = now()
      FROM s
     WHERE te.carrier = s.carrier AND te.tracking_number = s.tracking_number
       AND te.order_id IS NULL;
    GET DIAGNOSTICS v_matched = ROW_COUNT;
    IF v_matched = 0 THEN
        RETURN 0;
    END IF;
    -- the order's timeline now shows these events
    PERFORM orderdb._timeline_bump_order(sh.order_id)
       FROM orderdb.shipments sh
      WHERE sh.warehouse_id = p_warehouse_id AND sh.shipment_id = p_shipment_id;

    SELECT te.normalized_status, te.event_time INTO v_newest
      FROM orderdb.tracking_events te
     WHERE te.warehouse_id = p_warehouse_id AND te.shipment_id = p_shipment_id
       AND te.normalized_status <> 'unknown'
     ORDER BY te.event_time DESC, te.tracking_event_id DESC
     LIMIT 1;
    IF FOUND THEN
        PERFORM orderdb._apply_tracking_to_shipment(p_warehouse_id, p_shipment_id,
                                                    v_newest.normalized_status,
                                                    v_newest.event_time);
    END IF;
    IF v_newest.normalized_status IS DISTINCT FROM 'delivered' THEN
        SELECT te.normalized_status, te.event_time INTO v_newest
          FROM orderdb.tracking_events te
         WHERE te.warehouse_id = p_warehouse_id AND te.shipment_id = p_shipment_id
           AND te.normalized_status = 'delivered'
         ORDER BY te.event_time, te.tracking_event_id
         LIMIT 1;
        IF FOUND THEN
            PERFORM orderdb._apply_tracking_to_shipment(p_warehouse_id, p_shipment_id,
                                                        'delivered', v_newest.event_time);
        END IF;
    END IF;
    RETURN v_matched;
END;
$$;
COMMENT ON FUNCTION orderdb._match_tracking_events(integer, bigint) IS
    'Matches earlier unmatched carrier events to a new shipment and sets its status from the newest.';

-- _tracking_recorded_payload: the payload of a tracking.recorded event (record_tracking_event and
-- record_tracking_events): the event as sent, phone numbers in its location and description masked
-- (orderdb._mask_phones_in_text; the stored event keeps the text as sent), and whether it matched an
-- order. A SQL expression the planner inlines into the caller's INSERT. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._tracking_recorded_payload(
    p_tracking_event_id bigint, p_carrier text, p_tracking_number text, p_event_time timestamptz,
    p_carrier_status text, p_normalized_status text, p_location text, p_description text,
    p_order_id bigint)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT jsonb_build_object('tracking_event_id', p_tracking_event_id,
                              'carrier', p_carrier,
                              'tracking_number', p_tracking_number,
                              'event_time', p_event_time,
                              'carrier_status', p_carrier_status,
                              'normalized_status', p_normalized_status,
                              'location',
                              CASE WHEN p_location ~ '[0-9]{4}'
                                   THEN orderdb._mask_phones_in_text(p_location)
                                   ELSE p_location END,
                              'description',
                              CASE WHEN p_description ~ '[0-9]{4}'
                                   THEN orderdb._mask_phones_in_text(p_description)
                                   ELSE p_description END,
                              'matched', p_order_id IS NOT NULL)
$$;
COMMENT ON FUNCTION orderdb._tracking_recorded_payload(bigint, text, text, timestamptz, text, text,
                                                       text, text, bigint) IS
    'The payload of a tracking.recorded event (phones in location and description masked).';

-- record_tracking_event: stores one carrier event and applies it.
--   * deduplicated by (carrier, p_event_id) when an event id is given, and always by (carrier,
--     tracking number, event time, carrier status): the same event again returns duplicate = true,
--     the stored event's id and normalised status, and changes nothing. The unique key on event
--     ids includes the event time (the partition key); the same id with another time is found
--     by a lookup under the tracking-number lock (a carrier resends an event for its parcel);
--     the same event id with another tracking number or carrier status is OD006 (nothing
--     changes): it is another event, which a duplicate answer would drop;
--   * the carrier code is mapped by orderdb.carrier_status_map ('GENERIC' takes the normalised
--     names); an unmapped code is stored as 'unknown' and changes no status
--     (orderdb_ops.unknown_carrier_codes lists them);
--   * a tracking number no shipment has yet: stored unmatched (order_id NULL) and matched when
--     the WMS SHIPPED callback creates the shipment;
--   * moves the order forward only (orderdb._apply_tracking_to_order), and only with the newest
--     event of its shipment: a late or out-of-order event is stored and changes nothing — except
--     a delivered event, applied whenever it arrives (the parcel is delivered);
-- p_event_time is taken as given: finite, not before 2000-01-01, at most a day in the future.
-- Emits tracking.recorded (phone numbers in its description and location masked by
-- orderdb._mask_phones_in_text; tracking_events keeps the text as sent). Raises 22023 (bad
-- input), OD006 (the carrier's event id was used for another parcel or status). Locks the
-- tracking-number advisory lock, the shipments row, the orders row.
CREATE OR REPLACE FUNCTION orderdb.record_tracking_event(p_carrier text, p_tracking_number text,
                                                         p_event_time timestamptz,
                                                         p_carrier_status text,
                                                         p_location text DEFAULT NULL,
                                                         p_description text DEFAULT NULL,
                                                         p_event_id text DEFAULT NULL,
                                                         p_payload jsonb DEFAULT NULL)
RETURNS TABLE (tracking_event_id bigint, duplicate boolean, normalized_status text,
               order_id bigint, order_status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_norm   text;
    v_tn_warehouse_id integer;
    v_tn_order_id     bigint;
    v_order_status    text;
    v_id     bigint;
    v_newest boolean;
    v_stored record;
BEGIN
    -- the checks (in this order: the first bad field is the one reported) run only when one of
    -- these plain conditions, which every bad call meets, holds (or a payload is given)
    IF p_carrier IS NULL OR length(p_carrier) NOT BETWEEN 1 AND 255
       OR p_tracking_number IS NULL OR length(p_tracking_number) NOT BETWEEN 1 AND 255
       OR p_event_time IS NULL OR NOT isfinite(p_event_time)
       OR p_event_time < timestamptz '2000-01-01 00:00:00+00'
       OR p_event_time > now() + interval '1 day'
       OR p_carrier_status IS NULL OR length(p_carrier_status) NOT BETWEEN 1 AND 255
       OR length(p_location) > 1000 OR length(p_description) > 1000
       OR length(p_event_id) NOT BETWEEN 1 AND 255 OR p_payload IS NOT NULL THEN
        PERFORM orderdb._check_text(p_carrier, 'carrier', 255, true),
                orderdb._check_text(p_tracking_number, 'tracking_number', 255, true),
                orderdb._check_event_time(p_event_time, 'event_time'),
                orderdb._check_text(p_carrier_status, 'carrier_status', 255, true),
                orderdb._check_text(p_location, 'location', 1000),
                orderdb._check_text(p_description, 'description', 1000),
                orderdb._check_text(p_event_id, 'event_id', 255, p_event_id IS NOT NULL),
                CASE WHEN p_payload IS NOT NULL
                     THEN orderdb._check_json(p_payload, 'payload', 'object') END;
    END IF;

    -- the lock first, in its own statement: the read below must see a shipment committed by
    -- a WMS callback that held it
    PERFORM orderdb._lock_tracking_number(p_carrier, p_tracking_number);
    -- then one statement: the event (unless its event id is known; normalised through
    -- orderdb.carrier_status_map as orderdb._normalize_carrier_status maps it, matched through
    -- orderdb.tracking_numbers), its tracking.recorded outbox row (inline, what
    -- orderdb._emit_event writes), the shipment (orderdb._apply_tracking_to_shipment's UPDATE:
    -- only when the event is its newest, or a first delivered one) and the order's status
    -- (unlocked: see orderdb._apply_tracking_to_order); nothing of it when the event is
    -- already stored
    WITH ins AS (
        INSERT INTO orderdb.tracking_events AS te
               (carrier, tracking_number, event_time, carrier_status, normalized_status,
                location, description, event_id, payload, warehouse_id, order_id, shipment_id,
                matched_at)
        SELECT p_carrier, p_tracking_number, p_event_time, p_carrier_status,
               coalesce(m.normalized_status, 'unknown'), p_location, p_description, p_event_id,
               p_payload, tn.warehouse_id, tn.order_id, tn.shipment_id,
               CASE WHEN tn.order_id IS NOT NULL THEN now() END
          FROM (SELECT 1) one
          LEFT JOIN orderdb.carrier_status_map m
            ON m.carrier = p_carrier AND m.carrier_status = p_carrier_status
          LEFT JOIN orderdb.tracking_numbers tn
            ON tn.carrier = p_carrier AND tn.tracking_number = p_tracking_number
         WHERE p_event_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM orderdb.tracking_events k
                            WHERE k.carrier = p_carrier AND k.event_id = p_event_id)
        ON CONFLICT DO NOTHING
        RETURNING te.tracking_event_id, te.normalized_status, te.warehouse_id, te.order_id,
                  te.shipment_id
    ), ob AS (
        INSERT INTO orderdb.outbox (event_type, order_id, warehouse_id, payload)
        SELECT 'tracking.recorded', ins.order_id, ins.warehouse_id,
               orderdb._tracking_recorded_payload(ins.tracking_event_id, p_carrier,
                                                  p_tracking_number, p_event_time,
                                                  p_carrier_status, ins.normalized_status,
                                                  p_location, p_description, ins.order_id)
          FROM ins
    ), sh AS (
        UPDATE orderdb.shipments AS s
           SET status = ins.normalized_status,
               last_event_time = greatest(s.last_event_time, p_event_time),
               delivered_at = CASE WHEN ins.normalized_status = 'delivered'
                                   THEN coalesce(s.delivered_at, p_event_time)
                                   ELSE s.delivered_at END,
               updated_at = now()
          FROM ins
         WHERE ins.normalized_status <> 'unknown'
           AND s.warehouse_id = ins.warehouse_id AND s.shipment_id = ins.shipment_id
           AND (s.last_event_time IS NULL OR s.last_event_time <= p_event_time
                OR (ins.normalized_status = 'delivered' AND s.delivered_at IS NULL))
        RETURNING 1
    )
    SELECT ins.tracking_event_id, ins.normalized_status, ins.warehouse_id, ins.order_id,
           o.status, EXISTS (SELECT FROM sh)
      INTO v_id, v_norm, v_tn_warehouse_id, v_tn_order_id, v_order_status, v_newest
      FROM ins
      LEFT JOIN orderdb.orders o
        ON o.warehouse_id = ins.warehouse_id AND o.order_id = ins.order_id;

    IF v_id IS NULL THEN
        -- a duplicate: by event id, else by natural key
        SELECT te.tracking_event_id, te.normalized_status, te.order_id, te.tracking_number,
               te.carrier_status, te.event_id
          INTO v_stored
          FROM orderdb.tracking_events te
         WHERE (p_event_id IS NOT NULL AND te.carrier = p_carrier AND te.event_id = p_event_id)
            OR (te.carrier = p_carrier AND te.tracking_number = p_tracking_number
                AND te.event_time = p_event_time AND te.carrier_status = p_carrier_status)
         ORDER BY (te.event_id IS NOT DISTINCT FROM p_event_id) DESC
         LIMIT 1;
        -- an event id of this carrier reused for another parcel or status is not this event:
        -- answering "duplicate" would drop it without a trace
        IF p_event_id IS NOT NULL AND v_stored.event_id = p_event_id
           AND (v_stored.tracking_number <> p_tracking_number
                OR v_stored.carrier_status <> p_carrier_status) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD006',
                MESSAGE = format('event_id %L of carrier %L was already used for another event',
                                 p_event_id, p_carrier),
                DETAIL = format('stored: tracking_number=%s carrier_status=%s; this call: '
                                'tracking_number=%s carrier_status=%s',
                                v_stored.tracking_number, v_stored.carrier_status,
                                p_tracking_number, p_carrier_status),
                HINT = 'Each carrier event needs its own event id (unique per carrier).';
        END IF;
        tracking_event_id := v_stored.tracking_event_id;
        normalized_status := v_stored.normalized_status;
        order_id := v_stored.order_id;
        SELECT o.status INTO order_status
          FROM orderdb.order_directory d
          JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
         WHERE d.order_id = record_tracking_event.order_id;
        duplicate := true;
        RETURN NEXT;
        RETURN;
    END IF;

    tracking_event_id := v_id;
    duplicate := false;
    normalized_status := v_norm;
    order_id := v_tn_order_id;
    IF v_tn_order_id IS NOT NULL THEN
        -- the order's cached timeline documents (the event, and the shipment updated with it):
        -- invalidated here, not by row triggers (sql/47_timeline_cache.sql)
        PERFORM orderdb._timeline_bump_order(v_tn_order_id);
        -- the order moves only with the shipment's newest event, and only when the event
        -- implies a move from its status (orderdb._tracking_target; decided again under the
        -- order's lock by orderdb._apply_tracking_to_order)
        order_status := v_order_status;
        IF v_newest AND orderdb._tracking_target(v_norm, v_order_status) IS NOT NULL THEN
            order_status := orderdb._apply_tracking_to_order(v_tn_warehouse_id, v_tn_order_id,
                                                             v_norm, v_id, p_event_time);
        END IF;
    END IF;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION orderdb.record_tracking_event(text, text, timestamptz, text, text, text, text, jsonb) IS
    'Stores one carrier tracking event once, matches it to its shipment and moves the order forward.';

-- _check_locale: p_locale as orderdb.customer_texts spells it ('zh-cn' -> 'zh-CN'), when that
-- table has texts in it ('en', 'zh-CN'; a shop adds a language with INSERTs). Raises 22023
-- 'locale must be one of ...' otherwise (NULL included). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_locale(p_locale text)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_locale text;
BEGIN
    SELECT t.locale INTO v_locale
      FROM orderdb.customer_texts t
     WHERE lower(t.locale) = lower(p_locale)
     LIMIT 1;
    IF v_locale IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('locale must be one of %s',
                             (SELECT string_agg(DISTINCT t.locale, ', ')
                                FROM orderdb.customer_texts t)),
            DETAIL = format('locale=%s', left(coalesce(p_locale, 'NULL'), 40));
    END IF;
    RETURN v_locale;
END;
$$;
COMMENT ON FUNCTION orderdb._check_locale(text) IS
    'A locale of orderdb.customer_texts (case-insensitive), else 22023.';

-- _customer_text: the customer-safe sentence of orderdb.customer_texts for p_code of p_kind
-- ('status', 'exception', 'carrier', 'change') in p_locale: that code's text, else the kind's
-- generic text (code '*'); a locale without the text falls back to 'en'. NULL when neither
-- exists. Never returns the code itself: codes and reasons may be internal. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._customer_text(p_kind text, p_code text,
                                                  p_locale text DEFAULT 'en')
RETURNS text
LANGUAGE sql
STABLE
AS $fn$
    SELECT t.text
      FROM orderdb.customer_texts t
     WHERE t.locale IN (p_locale, 'en') AND t.kind = p_kind AND t.code IN (p_code, '*')
     ORDER BY t.code = '*', t.locale <> p_locale
     LIMIT 1;
$fn$;
COMMENT ON FUNCTION orderdb._customer_text(text, text, text) IS
    'The customer-safe text of a status, exception type, carrier status or change '
    '(orderdb.customer_texts, generic and English fallbacks).';

-- _in_locale_script: whether a carrier's own text can stand in a document of p_locale: for a
-- zh (or ja) locale it holds Chinese characters (Han, or Japanese kana), for any other locale
-- none (a Chinese carrier's '快件已签收' is not shown to an English reader, nor 'Delivered' to a
-- Chinese one; the locale's text of the carrier status is shown instead). False for NULL.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._in_locale_script(p_text text, p_locale text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT coalesce((p_locale ~* '^(zh|ja)')
                    = (p_text ~ '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]'),
                    false);
$fn$;
COMMENT ON FUNCTION orderdb._in_locale_script(text, text) IS
    'Whether a carrier''s text is in the script of a locale (Chinese characters for zh).';

-- _status_description: the customer-facing sentence of an order status in the timeline
-- (orderdb.customer_texts, kind 'status', English).
CREATE OR REPLACE FUNCTION orderdb._status_description(p_status text)
RETURNS text
LANGUAGE sql
STABLE
AS $fn$
    SELECT orderdb._customer_text('status', p_status, 'en');
$fn$;
COMMENT ON FUNCTION orderdb._status_description(text) IS
    'The customer-facing sentence for an order status (orderdb.customer_texts).';

-- order_timeline: what a customer sees of an order, as one JSON document:
--   {"order_id", "order_no", "status", "current_location", "estimated_delivery",
--    "shipments": [{"carrier", "tracking_number", "status", "shipped_at", "delivered_at"}],
--    "timeline": [{"time", "status", "description", "location", "kind", "reported_time"?}]}
-- timeline: the order's creation, its status changes and its carrier events, each carrier event
-- once (a status change a carrier event caused is shown as that event, kind 'carrier'; the
-- order status it led to is in "order_status"). "time" is the effective time, "reported_time"
-- the time as reported where the two differ (docs/tracking.md "Reported and effective times"):
--   creation: created_at (always the first entry);
--   status change: order_status_history.effective_at (never before the previous change);
--   carrier event: it belongs after a status change (its phase): the change it caused, else
--     the newest change caused by an event of the order reported no later than it, else the
--     order's newest change when its parcel was recorded (the handover); its time is
--     greatest(event time, shipments.shipped_at, created_at, the phase's effective time);
--   reported times are capped at the time they were recorded (a clock ahead);
-- sorted by time (never decreasing); ties: by phase (the creation first, a status change before
-- the carrier events that belong after it), then by reported time. Descriptions are
-- customer-safe texts (orderdb.customer_texts via orderdb._customer_text): the status's, a
-- warehouse exception type's (on hold), a carrier status's when the carrier gave none or gave
-- one not in the locale's script (orderdb._in_locale_script); never a
-- transition reason or an exception type as such. current_location: the location of the newest
-- carrier event (by time, then reported time) that has one. estimated_delivery:
-- options.promised_delivery_at when set; else, while
-- shipped and not delivered, the latest shipment's shipped_at + the median transit time
-- (delivered_at - shipped_at) of that carrier's shipments delivered in the last 30 days (the
-- newest 1,000 of them at most, so the cost stays flat; a delivery reported before its shipment
-- is left out); else null.
-- Language: p_locale ('en', 'zh-CN', or any locale of orderdb.customer_texts; orderdb.
-- _check_locale) chooses every text: descriptions, "status_text" (the current status's text) and
-- "labels" (the page's wording, kind 'page': {"estimated_delivery": ..., ...}); "locale" says
-- which. "time_zone": the zone the page shows times in: options.time_zone, else Asia/Shanghai
-- for a zh locale, else UTC (times in the document stay timestamps with an offset).
-- People (docs/api.md "Order data"; never a full phone number: a phone a carrier wrote into a
-- description, a location or a courier's name, or one inside the recipient's name, is masked by
-- orderdb._mask_phones_in_text):
--   "recipient": {"name", "phone" (masked, orderdb._mask_phone), "city"} from options.ship_to
--                (null without a ship_to);
--   "courier":   while the order is delivering: the courier named by its newest carrier event
--                when that is out_for_delivery with payload {"courier": {"name", "phone"}}, else
--                the courier of the route plan_routes put it on; {"name", "phone" (masked)};
--                else null.
-- Raises 22023 (bad ids, unknown locale), OD004 (unknown order), OD005 (p_customer_id given and
-- not the owner). Locks nothing.
-- The signature before locales (p_order_id, p_customer_id): calls with 2 arguments now take the
-- default locale.
DROP FUNCTION IF EXISTS orderdb.order_timeline(bigint, bigint);
--
-- _order_timeline_doc builds that document (order_timeline serves it from
-- orderdb.order_timeline_cache, sql/47_timeline_cache.sql): "document" is the whole answer except
-- an estimated delivery from the carrier's median transit time, which moves with other orders'
-- deliveries and with now(): when that applies, "estimate_carrier" and "estimate_shipped_at" are
-- its inputs (orderdb._timeline_estimate) and "document" has "estimated_delivery": null; and
-- except the courier of the order's route: a delivering order whose carrier named no courier has
-- "courier": null (orderdb._timeline_route_courier gives the route's).
-- "customer_id": the order's owner. The same checks and errors as order_timeline; STABLE: every
-- statement reads the caller's snapshot.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_doc(p_order_id bigint, p_customer_id bigint,
                                                       p_locale text,
                                                       OUT document jsonb,
                                                       OUT customer_id bigint,
                                                       OUT estimate_carrier text,
                                                       OUT estimate_shipped_at timestamptz)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_order     record;
    v_estimate  timestamptz;
    v_last_carrier text;
    v_last_shipped timestamptz;
    v_location  text;
    v_timeline  jsonb;
    v_shipments jsonb;
    v_locale    text;
    v_time_zone text;
    v_courier   jsonb;
    v_labels    jsonb;
BEGIN
    PERFORM orderdb._check_positive(p_order_id, 'order_id');
    IF p_customer_id IS NOT NULL THEN
        PERFORM orderdb._check_positive(p_customer_id, 'customer_id');
    END IF;
    v_locale := orderdb._check_locale(p_locale);

    SELECT o.warehouse_id, o.order_id, o.order_no, o.customer_id, o.status, o.options,
           o.created_at
      INTO v_order
      FROM orderdb.order_directory d
      JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
     WHERE d.order_id = p_order_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('order %s not found', p_order_id),
            DETAIL = format('order_id=%s', p_order_id);
    END IF;
    IF p_customer_id IS NOT NULL AND p_customer_id <> v_order.customer_id THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD005',
            MESSAGE = format('order %s does not belong to customer %s', p_order_id, p_customer_id),
            DETAIL = format('order_id=%s customer_id=%s', p_order_id, p_customer_id);
    END IF;

    -- one statement: the shipments, their carrier events and the history are each read once
    WITH hist AS MATERIALIZED (
        SELECT h.version, h.to_status, h.occurred_at, h.effective_at, h.changed_at, h.source,
               h.context,
               CASE WHEN h.source = 'carrier' AND h.context ? 'tracking_event_id'
                    THEN (h.context ->> 'tracking_event_id')::bigint END AS tracking_event_id
          FROM orderdb.order_status_history h
         WHERE h.warehouse_id = v_order.warehouse_id AND h.order_id = p_order_id
    ), ships AS MATERIALIZED (
        -- the parcel's handover: the order's newest change when the shipment was recorded
        -- (handover_version: recorded before it, or by the same warehouse callback; carrier
        -- changes come after a handover) and the earliest time its carrier events may be shown
        SELECT s.shipment_id, s.carrier, s.tracking_number, s.status, s.shipped_at,
               s.delivered_at,
               coalesce((SELECT max(h.version) FROM hist h
                          WHERE h.source <> 'carrier'
                            AND (h.changed_at < s.created_at
                                 OR h.context ->> 'wms_event_id' = s.wms_event_id)),
                        1) AS handover_version,
               greatest(v_order.created_at, least(s.shipped_at, s.created_at)) AS handover_floor
          FROM orderdb.shipments s
         WHERE s.warehouse_id = v_order.warehouse_id AND s.order_id = p_order_id
    ), carrier_events AS MATERIALIZED (
        -- version: the status change the event caused (NULL: none)
        SELECT te.tracking_event_id, te.event_time, te.received_at, te.normalized_status,
               te.description, te.location, s.handover_version, s.handover_floor,
               c.to_status AS order_status, c.version,
               CASE WHEN jsonb_typeof(te.payload -> 'courier') = 'object'
                    THEN te.payload -> 'courier' END AS courier
          FROM ships s
          JOIN orderdb.tracking_events te
            ON te.carrier = s.carrier AND te.tracking_number = s.tracking_number
          LEFT JOIN (SELECT DISTINCT ON (h.tracking_event_id) h.tracking_event_id, h.to_status,
                            h.version
                       FROM hist h
                      WHERE h.tracking_event_id IS NOT NULL
                      ORDER BY h.tracking_event_id, h.version DESC) c
            ON c.tracking_event_id = te.tracking_event_id
    ), phased AS MATERIALIZED (
        -- phase: the order's version the event belongs after: the change it caused, else the
        -- newest change caused by an event reported no later than it (a running maximum over
        -- the events in reported-time order, ties included: one pass, not one per event),
        -- else the handover
        SELECT e.*,
               coalesce(e.version,
                        greatest(e.handover_version,
                                 max(e.version) OVER (ORDER BY e.event_time
                                                      RANGE BETWEEN UNBOUNDED PRECEDING
                                                                AND CURRENT ROW))) AS phase
          FROM carrier_events e
    ), events AS MATERIALIZED (
        SELECT p.*,
               greatest(least(p.event_time, p.received_at), p.handover_floor,
                        coalesce((SELECT h.effective_at FROM hist h WHERE h.version = p.phase),
                                 v_order.created_at)) AS effective_time
          FROM phased p
    ), entries AS (
        SELECT v_order.created_at AS at, NULL::timestamptz AS reported, 1 AS phase, 0 AS sub,
               1::bigint AS seq, 'pending'::text AS status,
               orderdb._customer_text('status', 'pending', v_locale) AS description,
               NULL::text AS location, 'order'::text AS kind, NULL::text AS order_status
        UNION ALL
        SELECT h.effective_at, h.occurred_at, h.version, 0, h.version, h.to_status,
               CASE WHEN h.source = 'reallocation'
                    THEN orderdb._customer_text('change', 'reallocation', v_locale)
                    WHEN h.to_status = 'on_hold' AND h.context ? 'exception_type'
                    THEN orderdb._customer_text('exception', h.context ->> 'exception_type',
                                                v_locale)
                    ELSE orderdb._customer_text('status', h.to_status, v_locale)
                      || CASE WHEN h.to_status = 'shipped' AND h.context ? 'carrier'
                              THEN format(' (%s %s)', h.context ->> 'carrier',
                                          h.context ->> 'tracking_number')
                              ELSE '' END
               END,
               NULL, 'order', NULL
          FROM hist h
         WHERE h.tracking_event_id IS NULL
        UNION ALL
        SELECT e.effective_time, e.event_time, e.phase,
               CASE WHEN e.version IS NULL THEN 1 ELSE 0 END, e.tracking_event_id,
               e.normalized_status,
               coalesce(CASE WHEN orderdb._in_locale_script(e.description, v_locale)
                             THEN orderdb._mask_phones_in_text(e.description) END,
                        orderdb._customer_text('carrier', e.normalized_status, v_locale)),
               orderdb._mask_phones_in_text(e.location), 'carrier', e.order_status
          FROM events e
    )
    SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'carrier', s.carrier, 'tracking_number', s.tracking_number,
                       'status', s.status, 'shipped_at', s.shipped_at,
                       'delivered_at', s.delivered_at)
                     ORDER BY s.shipped_at, s.shipment_id), '[]'::jsonb)
              FROM ships s),
           (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                       'time', e.at, 'status', e.status, 'description', e.description,
                       'kind', e.kind, 'order_status', e.order_status,
                       'reported_time', CASE WHEN e.reported IS DISTINCT FROM e.at
                                             THEN e.reported END))
                     || jsonb_build_object('location', e.location)
                     ORDER BY e.at, e.phase, e.sub, e.reported, e.seq)
              FROM entries e),
           (SELECT orderdb._mask_phones_in_text(e.location) FROM events e
             WHERE e.location IS NOT NULL
             ORDER BY e.effective_time DESC, e.event_time DESC, e.tracking_event_id DESC
             LIMIT 1),
           l.carrier, l.shipped_at,
           (SELECT CASE WHEN e.normalized_status = 'out_for_delivery'
                         AND jsonb_typeof(e.courier -> 'name') = 'string'
                        THEN e.courier END
              FROM events e
             ORDER BY e.effective_time DESC, e.event_time DESC, e.tracking_event_id DESC
             LIMIT 1)
      INTO v_shipments, v_timeline, v_location, v_last_carrier, v_last_shipped, v_courier
      FROM (SELECT 1) one
      -- the latest shipment not delivered yet (the estimate's base)
      LEFT JOIN LATERAL (SELECT s.carrier, s.shipped_at FROM ships s
                          WHERE s.delivered_at IS NULL
                          ORDER BY s.shipped_at DESC, s.shipment_id DESC
                          LIMIT 1) l ON true;

    IF jsonb_typeof(v_order.options -> 'promised_delivery_at') = 'string' THEN
        BEGIN
            v_estimate := (v_order.options ->> 'promised_delivery_at')::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                       OR invalid_time_zone_displacement_value THEN
            v_estimate := NULL;
        END;
    END IF;
    IF v_estimate IS NULL AND v_order.status IN ('shipped', 'delivering', 'delivery_failed')
       AND v_last_carrier IS NOT NULL THEN
        -- computed by the reader (orderdb._timeline_estimate), never stored
        estimate_carrier := v_last_carrier;
        estimate_shipped_at := v_last_shipped;
    END IF;

    -- who is coming: the carrier's courier (out for delivery), else the route's — which the
    -- reader adds (orderdb._timeline_route_courier; a planner's transaction must not hold the
    -- order's cache generation: plan_routes never blocks an order update)
    IF v_order.status <> 'delivering' THEN
        v_courier := NULL;
    END IF;

    IF jsonb_typeof(v_order.options -> 'time_zone') = 'string'
       AND orderdb._is_time_zone(v_order.options ->> 'time_zone') THEN
        v_time_zone := v_order.options ->> 'time_zone';
    ELSE
        v_time_zone := CASE WHEN v_locale LIKE 'zh%' THEN 'Asia/Shanghai' ELSE 'UTC' END;
    END IF;

    SELECT jsonb_object_agg(x.code, x.text) INTO v_labels
      FROM (SELECT DISTINCT ON (t.code) t.code, t.text
              FROM orderdb.customer_texts t
             WHERE t.kind = 'page' AND t.locale IN (v_locale, 'en')
             ORDER BY t.code, t.locale <> v_locale) x;

    customer_id := v_order.customer_id;
    document := jsonb_build_object(
        'order_id', v_order.order_id,
        'order_no', v_order.order_no,
        'status', v_order.status,
        'current_location', v_location,
        'estimated_delivery', v_estimate,
        'shipments', v_shipments,
        'timeline', coalesce(v_timeline, '[]'::jsonb),
        'locale', v_locale,
        'time_zone', v_time_zone,
        'status_text', orderdb._customer_text('status', v_order.status, v_locale),
        'labels', coalesce(v_labels, '{}'::jsonb),
        'recipient', CASE WHEN jsonb_typeof(v_order.options -> 'ship_to') = 'object' THEN
                         jsonb_build_object(
                             'name', orderdb._mask_phones_in_text(
                                         left(v_order.options -> 'ship_to' ->> 'name', 100)),
                             'phone', orderdb._mask_phone(v_order.options -> 'ship_to' ->> 'phone'),
                             'city', left(v_order.options -> 'ship_to' ->> 'city', 100)) END,
        'courier', CASE WHEN v_courier IS NOT NULL THEN
                       jsonb_build_object('name', orderdb._mask_phones_in_text(
                                                      left(v_courier ->> 'name', 100)),
                                          'phone', orderdb._mask_phone(v_courier ->> 'phone'))
                   END);
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_doc(bigint, bigint, text) IS
    'order_timeline''s document without a median-based estimated delivery (and that estimate''s '
    'inputs); the checks and errors of order_timeline.';

-- _timeline_estimate: p_shipped_at + the median transit time (delivered_at - shipped_at) of
-- p_carrier's shipments delivered in the last 30 days (the newest 1,000 of them at most, so the
-- cost stays flat; a delivery reported before its shipment is left out); NULL without any.
-- Locks nothing.
-- (PL/pgSQL, not SQL: its plan is cached for the session, a SQL function with SET is planned at
-- every call.)
CREATE OR REPLACE FUNCTION orderdb._timeline_estimate(p_carrier text, p_shipped_at timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- the newest 1,000 deliveries at most (a backward scan of shipments_carrier_delivered):
    -- the cost of a timeline must not grow with a carrier's volume
    RETURN (
    SELECT p_shipped_at + percentile_cont(0.5) WITHIN GROUP (ORDER BY r.transit)
      FROM (SELECT s.delivered_at - s.shipped_at AS transit
              FROM orderdb.shipments s
             WHERE s.carrier = p_carrier
               AND s.delivered_at IS NOT NULL
               AND s.delivered_at > now() - interval '30 days'
               -- other clocks: a delivery reported before its shipment has no transit time to
               -- learn from (its negative one would put estimates before the shipments they
               -- are for)
               AND s.delivered_at >= s.shipped_at
             ORDER BY s.delivered_at DESC
             LIMIT 1000) r);
END;
$fn$;
COMMENT ON FUNCTION orderdb._timeline_estimate(text, timestamptz) IS
    'Estimated delivery of a parcel shipped at p_shipped_at: the carrier''s median transit time.';

-- _timeline_route_courier: {"name", "phone"} (masked) of the courier of the route plan_routes put
-- the order on; NULL when it is on none. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._timeline_route_courier(p_order_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT jsonb_build_object('name', orderdb._mask_phones_in_text(left(c.name, 100)),
                                      'phone', orderdb._mask_phone(c.phone))
              FROM orderdb.order_directory d
              JOIN orderdb.route_stops rs
                ON rs.warehouse_id = d.warehouse_id AND rs.order_id = d.order_id
              JOIN orderdb.routes r ON r.warehouse_id = rs.warehouse_id AND r.route_id = rs.route_id
              JOIN orderdb.couriers c
                ON c.warehouse_id = r.warehouse_id AND c.courier_id = r.courier_id
             WHERE d.order_id = p_order_id);
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_route_courier(bigint) IS
    'The courier (masked) of the route an order is on, as order_timeline shows it.';

-- _order_timeline_build: order_timeline's answer computed from the tables, without the cache
-- (orderdb._order_timeline_doc plus the estimate and the route's courier). order_timeline
-- returns exactly this; the tests compare the two. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_build(p_order_id bigint,
                                                         p_customer_id bigint DEFAULT NULL,
                                                         p_locale text DEFAULT 'en')
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc record;
BEGIN
    v_doc := orderdb._order_timeline_doc(p_order_id, p_customer_id, p_locale);
    IF v_doc.document ->> 'status' = 'delivering' AND v_doc.document -> 'courier' = 'null' THEN
        v_doc.document := v_doc.document
                          || jsonb_build_object('courier',
                                                orderdb._timeline_route_courier(p_order_id));
    END IF;
    IF v_doc.estimate_carrier IS NULL THEN
        RETURN v_doc.document;
    END IF;
    RETURN v_doc.document
           || jsonb_build_object('estimated_delivery',
                                 orderdb._timeline_estimate(v_doc.estimate_carrier,
                                                            v_doc.estimate_shipped_at));
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_build(bigint, bigint, text) IS
    'order_timeline computed from the tables (no cache).';

-- unknown_carrier_codes: carrier codes received that have no mapping in
-- orderdb.carrier_status_map (stored as 'unknown', they change no status). An operator adds the
-- mapping with one INSERT (docs/tracking.md); the row then disappears (events already stored keep
-- 'unknown' and are not replayed).
CREATE OR REPLACE VIEW orderdb_ops.unknown_carrier_codes AS
SELECT te.carrier,
       te.carrier_status,
       count(*) AS events,
       min(te.received_at) AS first_seen,
       max(te.received_at) AS last_seen,
       (array_agg(te.description ORDER BY te.received_at DESC)
          FILTER (WHERE te.description IS NOT NULL))[1] AS example_description
  FROM orderdb.tracking_events te
 WHERE te.normalized_status = 'unknown'
   AND NOT EXISTS (SELECT 1 FROM orderdb.carrier_status_map m
                    WHERE m.carrier = te.carrier AND m.carrier_status = te.carrier_status)
 GROUP BY te.carrier, te.carrier_status;

COMMENT ON VIEW orderdb_ops.unknown_carrier_codes IS
    'Carrier status codes received without a mapping (add one to orderdb.carrier_status_map).';
