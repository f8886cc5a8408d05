-- Batches of carrier events: orderdb.record_tracking_events (docs/contract.md, "Batches").

-- record_tracking_events: records p_events, a JSON array of 1..1000 carrier events, in array
-- order, each exactly as orderdb.record_tracking_event records it (dedupe, matching, order
-- moves, tracking.recorded). An element is an object whose keys are that function's parameter
-- names without p_: carrier, tracking_number, event_time, carrier_status (strings, required),
-- location, description, event_id (strings or null), payload (object or null); event_time is an
-- ISO 8601 time with an offset (a time without one is refused: no session time zone decides).
-- Returns one row per element: its ordinal (1-based) and record_tracking_event's row.
-- How (set-based where the elements do not depend on each other; element by element, in array
-- order, where they do):
--   1. checks: one statement reads every element when each passes plain conditions that every
--      bad element fails; otherwise each element is checked in array order (as
--      record_tracking_event checks its arguments) and the first bad one is reported;
--   2. the tracking numbers are locked, in (carrier, tracking number) order;
--   3. new or duplicate (the single call's rule: by event id, else by natural key; an event id
--      reused for another parcel or status is OD006): one statement looks every element up
--      among the stored events; when two elements of the batch share an event id or a natural
--      key, each is decided in array order against the stored events and the batch's earlier
--      new elements;
--   4. the new elements are stored by one INSERT (normalised through
--      orderdb.carrier_status_map, matched through orderdb.tracking_numbers), in array order;
--   5. effects: the elements of an order that a new event may move from its status
--      (orderdb._tracking_target; an in_transit scan of a delivering order does not), new and
--      duplicate, are applied one by one in array order as the single call applies them
--      (outbox row, shipment, order transition), the other elements' tracking.recorded rows
--      written in runs before each (the outbox keeps array order); then one statement writes
--      the remaining outbox rows, updates each other shipment once, to what the events applied
--      one by one leave (its status from the last event that is its newest or a first
--      delivered one, last_event_time the newest, delivered_at the first delivered), and
--      answers every element. When a concurrent transaction stored one of the new events
--      meanwhile, every element is applied in array order, that one by
--      orderdb.record_tracking_event (its duplicate answer).
-- Raises 22023 for a p_events that is not a JSON array of 1..1000 elements, and for the first
-- bad element, the message starting 'event <ordinal>: ' (not an object, an unknown key, a field
-- of the wrong type, or anything record_tracking_event refuses): nothing of the batch is
-- recorded. Other errors of an element (OD006 ...) keep their SQLSTATE and gain the ordinal the
-- same way. Locks what record_tracking_event locks, for each element (the tracking numbers'
-- advisory locks first, all of them; the shipments rows; the orders rows that move).
CREATE OR REPLACE FUNCTION orderdb.record_tracking_events(p_events jsonb)
RETURNS TABLE (ordinal integer, tracking_event_id bigint, duplicate boolean,
               normalized_status text, order_id bigint, order_status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_elem   jsonb;
    v_ord    integer := 0;
    v_n      integer;
    v_key    text;
    v_time   timestamptz;
    v_state  text;
    v_msg    text;
    v_detail text;
    v_hint   text;
    v_ok     boolean;
    -- the elements, checked
    v_c      text[] := '{}'::text[];
    v_tn     text[] := '{}'::text[];
    v_t      timestamptz[] := '{}'::timestamptz[];
    v_s      text[] := '{}'::text[];
    v_loc    text[] := '{}'::text[];
    v_desc   text[] := '{}'::text[];
    v_eid    text[] := '{}'::text[];
    v_pay    jsonb[] := '{}'::jsonb[];
    -- the decisions: v_new[k]; for a duplicate, the stored event (v_dup_id, its normalised
    -- status and order) or the earlier element it repeats (v_dup_of)
    v_new      boolean[] := '{}'::boolean[];
    v_dup_id   bigint[] := '{}'::bigint[];
    v_dup_norm text[] := '{}'::text[];
    v_dup_ord  bigint[] := '{}'::bigint[];
    v_dup_of   integer[] := '{}'::integer[];
    v_batch_eid jsonb := '{}'::jsonb;   -- carrier/event id -> the element that stores it
    v_batch_nat jsonb := '{}'::jsonb;   -- natural key -> the element that stores it
    v_eid_key text;
    v_nat_key text;
    v_known  boolean;
    v_stored record;
    v_j      integer;
    v_repeats boolean;
    v_st_tn  text[];             -- the stored event of an element's event id: its parcel
    v_st_s   text[];             -- and its carrier status (OD006)
    -- the new elements as stored, by ordinal (NULL: not new, or not stored by this batch)
    v_id     bigint[];
    v_norm   text[];
    v_wh     integer[];
    v_oid    bigint[];
    v_sid    bigint[];
    v_ostat  text[];             -- a new matched element's order status (read unlocked)
    v_stored_n integer;
    v_new_n    integer;
    v_move_orders bigint[];      -- the orders a new event of the batch may move
    v_seq    boolean[];          -- the elements applied one by one (of those orders)
    v_seq_ords integer[];
    v_a_status text[];           -- their answers' order status
    v_prev   integer;
    v_k      integer;
    v_status text;
    v_newest boolean;
    v_rec    record;
BEGIN
    -- orderdb._check_json's checks (its errors, in its order); its depth walk only when an
    -- element is not an object or holds an object or array (else the array is 3 levels at most)
    IF p_events IS NULL OR jsonb_typeof(p_events) <> 'array'
       OR octet_length(p_events::text) > 65536
       OR p_events @? 'lax $[*] ? (@.type() != "object")'
       OR p_events @? 'lax $[*].* ? (@.type() == "object" || @.type() == "array")' THEN
        PERFORM orderdb._check_json(p_events, 'events', 'array');
    END IF;
    v_n := jsonb_array_length(p_events);
    IF v_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'events must hold 1 to 1000 events',
            DETAIL = format('events=%s', v_n);
    END IF;

    BEGIN
        -- 1. every element read by one statement when each passes these plain conditions (every
        -- bad element fails one of them: the key set, the fields' JSON types, the event time's
        -- form and range, the texts' lengths, the payload's size and depth); a cast or a check
        -- that raises sends the batch to the per-element checks as well
        v_ok := false;
        BEGIN
            SELECT coalesce(bool_and(x.ok AND x.t IS NOT NULL AND isfinite(x.t)
                                     AND x.t >= timestamptz '2000-01-01 00:00:00+00'
                                     AND x.t <= now() + interval '1 day'), false),
                   array_agg(x.c ORDER BY x.ord), array_agg(x.tn ORDER BY x.ord),
                   array_agg(x.t ORDER BY x.ord), array_agg(x.s ORDER BY x.ord),
                   array_agg(x.loc ORDER BY x.ord), array_agg(x.descr ORDER BY x.ord),
                   array_agg(x.eid ORDER BY x.ord), array_agg(x.pay ORDER BY x.ord)
              INTO v_ok, v_c, v_tn, v_t, v_s, v_loc, v_desc, v_eid, v_pay
              FROM (SELECT a.ord,
                           a.e ->> 'carrier' AS c, a.e ->> 'tracking_number' AS tn,
                           a.e ->> 'carrier_status' AS s, a.e ->> 'location' AS loc,
                           a.e ->> 'description' AS descr, a.e ->> 'event_id' AS eid,
                           CASE WHEN jsonb_typeof(a.e -> 'payload') = 'object'
                                THEN a.e -> 'payload' END AS pay,
                           CASE WHEN jsonb_typeof(a.e -> 'event_time') = 'string'
                                     AND (a.e ->> 'event_time')
                                         ~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}'
                                            || '(:[0-9]{2}(\.[0-9]{1,6})?)?'
                                            || '([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$')
                                THEN (a.e ->> 'event_time')::timestamptz END AS t,
                           jsonb_typeof(a.e) = 'object'
                           AND (a.e - ARRAY['carrier', 'tracking_number', 'event_time',
                                            'carrier_status', 'location', 'description',
                                            'event_id', 'payload']) = '{}'::jsonb
                           AND jsonb_typeof(a.e -> 'carrier') = 'string'
                           AND length(a.e ->> 'carrier') BETWEEN 1 AND 255
                           AND jsonb_typeof(a.e -> 'tracking_number') = 'string'
                           AND length(a.e ->> 'tracking_number') BETWEEN 1 AND 255
                           AND jsonb_typeof(a.e -> 'carrier_status') = 'string'
                           AND length(a.e ->> 'carrier_status') BETWEEN 1 AND 255
                           AND coalesce(jsonb_typeof(a.e -> 'location'), 'null')
                               IN ('string', 'null')
                           AND coalesce(length(a.e ->> 'location'), 0) <= 1000
                           AND coalesce(jsonb_typeof(a.e -> 'description'), 'null')
                               IN ('string', 'null')
                           AND coalesce(length(a.e ->> 'description'), 0) <= 1000
                           AND coalesce(jsonb_typeof(a.e -> 'event_id'), 'null')
                               IN ('string', 'null')
                           AND coalesce(length(a.e ->> 'event_id') BETWEEN 1 AND 255, true)
                           AND CASE coalesce(jsonb_typeof(a.e -> 'payload'), 'null')
                                   WHEN 'null' THEN true
                                   WHEN 'object'
                                   THEN octet_length((a.e -> 'payload')::text) <= 65536
                                        AND NOT orderdb._json_too_deep(a.e -> 'payload',
                                                                       (a.e -> 'payload')::text)
                                   ELSE false END AS ok
                      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS a(e, ord)
                    OFFSET 0) x;  -- each element's expressions evaluated once
        EXCEPTION WHEN OTHERS THEN
            v_ok := false;
        END;

        IF NOT v_ok THEN
            -- each element in array order, with the error of the first bad one
            v_c := '{}'::text[];
            v_tn := '{}'::text[];
            v_t := '{}'::timestamptz[];
            v_s := '{}'::text[];
            v_loc := '{}'::text[];
            v_desc := '{}'::text[];
            v_eid := '{}'::text[];
            v_pay := '{}'::jsonb[];
            v_ord := 0;
            FOR v_elem IN SELECT a.elem FROM jsonb_array_elements(p_events) AS a(elem) LOOP
                v_ord := v_ord + 1;
                IF jsonb_typeof(v_elem) <> 'object' THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'must be a JSON object',
                        DETAIL = format('got a JSON %s', jsonb_typeof(v_elem));
                END IF;
                SELECT k INTO v_key
                  FROM jsonb_object_keys(v_elem) AS k
                 WHERE k NOT IN ('carrier', 'tracking_number', 'event_time', 'carrier_status',
                                 'location', 'description', 'event_id', 'payload')
                 ORDER BY k
                 LIMIT 1;
                IF v_key IS NOT NULL THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = format('unknown key %s', to_json(left(v_key, 100))),
                        HINT = 'Keys: carrier, tracking_number, event_time, carrier_status, location, '
                               'description, event_id, payload.';
                END IF;
                SELECT k INTO v_key
                  FROM unnest(ARRAY['carrier', 'tracking_number', 'event_time', 'carrier_status',
                                    'location', 'description', 'event_id']) AS k
                 WHERE coalesce(jsonb_typeof(v_elem -> k), 'null') NOT IN ('string', 'null')
                 LIMIT 1;
                IF v_key IS NOT NULL THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = format('%s must be a string', v_key),
                        DETAIL = format('got a JSON %s', jsonb_typeof(v_elem -> v_key));
                END IF;
                IF coalesce(jsonb_typeof(v_elem -> 'payload'), 'null') NOT IN ('object', 'null') THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'payload must be a JSON object',
                        DETAIL = format('got a JSON %s', jsonb_typeof(v_elem -> 'payload'));
                END IF;

                v_time := NULL;
                IF jsonb_typeof(v_elem -> 'event_time') = 'string' THEN
                    IF (v_elem ->> 'event_time')
                       !~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}'
                           || '(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$') THEN
                        RAISE EXCEPTION USING
                            ERRCODE = '22023',
                            MESSAGE = 'event_time must be an ISO 8601 time with an offset '
                                      '(e.g. 2030-01-31T18:00:00+08:00)',
                            DETAIL = format('event_time=%s', left(v_elem ->> 'event_time', 100));
                    END IF;
                    BEGIN
                        v_time := (v_elem ->> 'event_time')::timestamptz;
                    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                                   OR invalid_time_zone_displacement_value THEN
                        RAISE EXCEPTION USING
                            ERRCODE = '22023',
                            MESSAGE = 'event_time must be an ISO 8601 time with an offset '
                                      '(e.g. 2030-01-31T18:00:00+08:00)',
                            DETAIL = format('event_time=%s', left(v_elem ->> 'event_time', 100));
                    END;
                END IF;

                -- record_tracking_event's checks, in its order
                PERFORM orderdb._check_text(v_elem ->> 'carrier', 'carrier', 255, true),
                        orderdb._check_text(v_elem ->> 'tracking_number', 'tracking_number', 255,
                                            true),
                        orderdb._check_event_time(v_time, 'event_time'),
                        orderdb._check_text(v_elem ->> 'carrier_status', 'carrier_status', 255, true),
                        orderdb._check_text(v_elem ->> 'location', 'location', 1000),
                        orderdb._check_text(v_elem ->> 'description', 'description', 1000),
                        orderdb._check_text(v_elem ->> 'event_id', 'event_id', 255,
                                            v_elem ->> 'event_id' IS NOT NULL),
                        CASE WHEN jsonb_typeof(v_elem -> 'payload') = 'object'
                             THEN orderdb._check_json(v_elem -> 'payload', 'payload', 'object') END;

                v_c := array_append(v_c, v_elem ->> 'carrier');
                v_tn := array_append(v_tn, v_elem ->> 'tracking_number');
                v_t := array_append(v_t, v_time);
                v_s := array_append(v_s, v_elem ->> 'carrier_status');
                v_loc := array_append(v_loc, v_elem ->> 'location');
                v_desc := array_append(v_desc, v_elem ->> 'description');
                v_eid := array_append(v_eid, v_elem ->> 'event_id');
                v_pay := array_append(v_pay, CASE WHEN jsonb_typeof(v_elem -> 'payload') = 'object'
                                                  THEN v_elem -> 'payload' END);
            END LOOP;
        END IF;

        -- 2. the tracking numbers' locks, all first and in one order (two batches sharing
        -- parcels take them alike), each in the statement before the reads below (as the
        -- single call)
        v_ord := NULL;
        PERFORM orderdb._lock_tracking_number(x.c, x.tn)
           FROM (SELECT DISTINCT u.c, u.tn FROM unnest(v_c, v_tn) AS u(c, tn)
                  ORDER BY u.c, u.tn) x;

        -- 3. new or duplicate: every element looked up among the stored events (by event id and
        -- by natural key: the single call's lookups), and whether two elements share a key
        SELECT coalesce(bool_or(x.repeated), false),
               array_agg(x.ei_id IS NULL AND x.na_id IS NULL ORDER BY x.ord),
               array_agg(coalesce(x.ei_id, x.na_id) ORDER BY x.ord),
               array_agg(CASE WHEN x.ei_id IS NOT NULL THEN x.ei_norm ELSE x.na_norm END
                         ORDER BY x.ord),
               array_agg(CASE WHEN x.ei_id IS NOT NULL THEN x.ei_order ELSE x.na_order END
                         ORDER BY x.ord),
               array_agg(x.ei_tn ORDER BY x.ord), array_agg(x.ei_s ORDER BY x.ord),
               min(x.ord) FILTER (WHERE x.ei_id IS NOT NULL
                                    AND (x.ei_tn <> x.tn OR x.ei_s <> x.s))
          INTO v_repeats, v_new, v_dup_id, v_dup_norm, v_dup_ord, v_st_tn, v_st_s, v_j
          FROM (SELECT u.ord, u.tn, u.s,
                       (u.eid IS NOT NULL AND count(*) OVER (PARTITION BY u.c, u.eid) > 1)
                       OR count(*) OVER (PARTITION BY u.c, u.tn, u.t, u.s) > 1 AS repeated,
                       ei.tracking_event_id AS ei_id, ei.normalized_status AS ei_norm,
                       ei.order_id AS ei_order, ei.tracking_number AS ei_tn,
                       ei.carrier_status AS ei_s,
                       na.tracking_event_id AS na_id, na.normalized_status AS na_norm,
                       na.order_id AS na_order
                  FROM unnest(v_c, v_tn, v_t, v_s, v_eid) WITH ORDINALITY AS u(c, tn, t, s, eid, ord)
                  LEFT JOIN LATERAL (
                        SELECT te.tracking_event_id, te.normalized_status, te.order_id,
                               te.tracking_number, te.carrier_status
                          FROM orderdb.tracking_events te
                         WHERE u.eid IS NOT NULL AND te.carrier = u.c AND te.event_id = u.eid
                         LIMIT 1) ei ON true
                  LEFT JOIN LATERAL (
                        SELECT te.tracking_event_id, te.normalized_status, te.order_id
                          FROM orderdb.tracking_events te
                         WHERE te.carrier = u.c AND te.tracking_number = u.tn
                           AND te.event_time = u.t AND te.carrier_status = u.s) na ON true) x;
        v_dup_of := array_fill(NULL::integer, ARRAY[v_n]);
        IF NOT v_repeats AND v_j IS NOT NULL THEN
            -- the first element whose event id is stored for another parcel or status
            v_ord := v_j;
            RAISE EXCEPTION USING
                ERRCODE = 'OD006',
                MESSAGE = format('event_id %L of carrier %L was already used for another '
                                 'event', v_eid[v_j], v_c[v_j]),
                DETAIL = format('stored: tracking_number=%s carrier_status=%s; this call: '
                                'tracking_number=%s carrier_status=%s',
                                v_st_tn[v_j], v_st_s[v_j], v_tn[v_j], v_s[v_j]),
                HINT = 'Each carrier event needs its own event id (unique per carrier).';
        END IF;
        IF v_repeats THEN
            -- two elements share a key: each decided in array order, against the stored events
            -- and the batch's earlier new elements (record_tracking_event's rule)
            v_new := array_fill(NULL::boolean, ARRAY[v_n]);
            v_dup_id := array_fill(NULL::bigint, ARRAY[v_n]);
            v_dup_norm := array_fill(NULL::text, ARRAY[v_n]);
            v_dup_ord := array_fill(NULL::bigint, ARRAY[v_n]);
            FOR k IN 1 .. v_n LOOP
                v_ord := k;
                v_eid_key := CASE WHEN v_eid[k] IS NOT NULL
                                  THEN jsonb_build_array(v_c[k], v_eid[k])::text END;
                v_nat_key := jsonb_build_array(v_c[k], v_tn[k], v_t[k], v_s[k])::text;
                v_known := false;
                IF v_eid[k] IS NOT NULL THEN
                    v_known := v_batch_eid ? v_eid_key
                               OR EXISTS (SELECT 1 FROM orderdb.tracking_events te
                                           WHERE te.carrier = v_c[k] AND te.event_id = v_eid[k]);
                END IF;
                IF NOT v_known AND NOT v_batch_nat ? v_nat_key
                   AND NOT EXISTS (SELECT 1 FROM orderdb.tracking_events te
                                    WHERE te.carrier = v_c[k] AND te.tracking_number = v_tn[k]
                                      AND te.event_time = v_t[k] AND te.carrier_status = v_s[k]) THEN
                    v_new[k] := true;
                    IF v_eid_key IS NOT NULL THEN
                        v_batch_eid := v_batch_eid || jsonb_build_object(v_eid_key, k);
                    END IF;
                    v_batch_nat := v_batch_nat || jsonb_build_object(v_nat_key, k);
                    CONTINUE;
                END IF;
                v_new[k] := false;
                -- a duplicate: by event id, else by natural key (an earlier element of the batch
                -- by event id first: a stored one then has another event id)
                v_j := (v_batch_eid ->> v_eid_key)::integer;
                IF v_j IS NULL THEN
                    SELECT te.tracking_event_id, te.normalized_status, te.order_id,
                           te.tracking_number, te.carrier_status, te.event_id
                      INTO v_stored
                      FROM orderdb.tracking_events te
                     WHERE (v_eid[k] IS NOT NULL AND te.carrier = v_c[k] AND te.event_id = v_eid[k])
                        OR (te.carrier = v_c[k] AND te.tracking_number = v_tn[k]
                            AND te.event_time = v_t[k] AND te.carrier_status = v_s[k])
                     ORDER BY (te.event_id IS NOT DISTINCT FROM v_eid[k]) DESC
                     LIMIT 1;
                    IF NOT FOUND OR (v_stored.event_id IS DISTINCT FROM v_eid[k]
                                     AND v_batch_nat ? v_nat_key
                                     AND v_eid[(v_batch_nat ->> v_nat_key)::integer]
                                         IS NOT DISTINCT FROM v_eid[k]) THEN
                        v_j := (v_batch_nat ->> v_nat_key)::integer;
                    END IF;
                END IF;
                IF v_j IS NOT NULL THEN
                    IF v_eid[k] IS NOT NULL AND v_eid[v_j] = v_eid[k]
                       AND (v_tn[v_j] <> v_tn[k] OR v_s[v_j] <> v_s[k]) THEN
                        RAISE EXCEPTION USING
                            ERRCODE = 'OD006',
                            MESSAGE = format('event_id %L of carrier %L was already used for another '
                                             'event', v_eid[k], v_c[k]),
                            DETAIL = format('stored: tracking_number=%s carrier_status=%s; this call: '
                                            'tracking_number=%s carrier_status=%s',
                                            v_tn[v_j], v_s[v_j], v_tn[k], v_s[k]),
                            HINT = 'Each carrier event needs its own event id (unique per carrier).';
                    END IF;
                    v_dup_of[k] := v_j;
                ELSE
                    IF v_eid[k] IS NOT NULL AND v_stored.event_id = v_eid[k]
                       AND (v_stored.tracking_number <> v_tn[k]
                            OR v_stored.carrier_status <> v_s[k]) THEN
                        RAISE EXCEPTION USING
                            ERRCODE = 'OD006',
                            MESSAGE = format('event_id %L of carrier %L was already used for another '
                                             'event', v_eid[k], v_c[k]),
                            DETAIL = format('stored: tracking_number=%s carrier_status=%s; this call: '
                                            'tracking_number=%s carrier_status=%s',
                                            v_stored.tracking_number, v_stored.carrier_status, v_tn[k], v_s[k]),
                            HINT = 'Each carrier event needs its own event id (unique per carrier).';
                    END IF;
                    v_dup_id[k] := v_stored.tracking_event_id;
                    v_dup_norm[k] := v_stored.normalized_status;
                    v_dup_ord[k] := v_stored.order_id;
                END IF;
            END LOOP;
        END IF;

        -- 4. the new elements, stored by one statement (in array order: ids grow with it), each
        -- one's stored row by its ordinal
        v_ord := NULL;
        WITH stored AS (
            INSERT INTO orderdb.tracking_events AS te
                   (carrier, tracking_number, event_time, carrier_status, normalized_status,
                    location, description, event_id, payload, warehouse_id, order_id, shipment_id,
                    matched_at)
            SELECT u.c, u.tn, u.t, u.s, coalesce(m.normalized_status, 'unknown'), u.loc,
                   u.descr, u.eid, u.pay, tn.warehouse_id, tn.order_id, tn.shipment_id,
                   CASE WHEN tn.order_id IS NOT NULL THEN now() END
              FROM unnest(v_c, v_tn, v_t, v_s, v_loc, v_desc, v_eid, v_pay, v_new)
                   WITH ORDINALITY AS u(c, tn, t, s, loc, descr, eid, pay, is_new, ord)
              LEFT JOIN orderdb.carrier_status_map m
                ON m.carrier = u.c AND m.carrier_status = u.s
              LEFT JOIN orderdb.tracking_numbers tn
                ON tn.carrier = u.c AND tn.tracking_number = u.tn
             WHERE u.is_new
             ORDER BY u.ord
            ON CONFLICT DO NOTHING
            RETURNING te.tracking_event_id, te.carrier, te.tracking_number, te.event_time,
                      te.carrier_status, te.normalized_status, te.warehouse_id, te.order_id,
                      te.shipment_id
        )
        SELECT array_agg(st.tracking_event_id ORDER BY u.ord),
               array_agg(st.normalized_status ORDER BY u.ord),
               array_agg(st.warehouse_id ORDER BY u.ord), array_agg(st.order_id ORDER BY u.ord),
               array_agg(st.shipment_id ORDER BY u.ord),
               array_agg(o.status ORDER BY u.ord),
               count(st.tracking_event_id), count(*) FILTER (WHERE u.is_new),
               coalesce(array_agg(DISTINCT st.order_id)
                            FILTER (WHERE orderdb._tracking_target(st.normalized_status, o.status)
                                          IS NOT NULL), '{}'::bigint[])
          INTO v_id, v_norm, v_wh, v_oid, v_sid, v_ostat, v_stored_n, v_new_n, v_move_orders
          FROM unnest(v_c, v_tn, v_t, v_s, v_new) WITH ORDINALITY AS u(c, tn, t, s, is_new, ord)
          LEFT JOIN stored st
            ON u.is_new AND st.carrier = u.c AND st.tracking_number = u.tn
               AND st.event_time = u.t AND st.carrier_status = u.s
          LEFT JOIN orderdb.orders o
            ON o.warehouse_id = st.warehouse_id AND o.order_id = st.order_id;
        -- the cached timeline documents of the orders whose parcels got events (their
        -- shipments, updated below, belong to the same orders): invalidated here, not by row
        -- triggers (sql/47_timeline_cache.sql)
        PERFORM orderdb._timeline_bump_order(b.order_id)
           FROM (SELECT DISTINCT u.order_id FROM unnest(v_oid) AS u(order_id)
                  WHERE u.order_id IS NOT NULL ORDER BY u.order_id) b;

        IF v_stored_n = v_new_n THEN
            -- 5. the elements of an order that a new event may move (orderdb._tracking_target
            -- from its status), new or duplicate, are applied one by one, in array order, as the
            -- single call applies them; the tracking.recorded rows of the other elements before
            -- each are written first (the outbox keeps array order)
            v_seq := array_fill(false, ARRAY[v_n]);
            v_a_status := array_fill(NULL::text, ARRAY[v_n]);
            v_prev := 0;
            IF cardinality(v_move_orders) > 0 THEN
                SELECT array_agg(u.ord ORDER BY u.ord) INTO v_seq_ords
                  FROM unnest(v_new, v_oid, v_dup_of, v_dup_ord)
                       WITH ORDINALITY AS u(is_new, oid, dup_of, dup_ord, ord)
                 WHERE CASE WHEN u.is_new THEN u.oid
                            WHEN u.dup_of IS NOT NULL THEN v_oid[u.dup_of]
                            ELSE u.dup_ord END = ANY (v_move_orders);
                FOREACH v_k IN ARRAY v_seq_ords LOOP
                    v_seq[v_k] := true;
                    v_ord := NULL;
                    INSERT INTO orderdb.outbox (event_type, order_id, warehouse_id, payload)
                    SELECT 'tracking.recorded', u.oid, u.wh,
                           orderdb._tracking_recorded_payload(u.id, u.c, u.tn, u.t, u.s, u.norm,
                                                              u.loc, u.descr, u.oid)
                      FROM unnest(v_id, v_c, v_tn, v_t, v_s, v_norm, v_loc, v_desc, v_wh, v_oid)
                           WITH ORDINALITY AS u(id, c, tn, t, s, norm, loc, descr, wh, oid, ord)
                     WHERE u.id IS NOT NULL AND u.ord > v_prev AND u.ord <= v_k
                     ORDER BY u.ord;
                    v_ord := v_k;
                    IF v_new[v_k] THEN
                        -- its outbox row was the last one written; then shipment and order
                        IF orderdb._apply_tracking_to_shipment(v_wh[v_k], v_sid[v_k],
                                                               v_norm[v_k], v_t[v_k]) THEN
                            v_status := orderdb._apply_tracking_to_order(
                                            v_wh[v_k], v_oid[v_k], v_norm[v_k], v_id[v_k],
                                            v_t[v_k]);
                        ELSE
                            SELECT o.status INTO v_status
                              FROM orderdb.orders o
                             WHERE o.warehouse_id = v_wh[v_k] AND o.order_id = v_oid[v_k];
                        END IF;
                    ELSE
                        v_status := NULL;
                        SELECT o.status INTO v_status
                          FROM orderdb.order_directory d
                          JOIN orderdb.orders o
                            ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
                         WHERE d.order_id = CASE WHEN v_dup_of[v_k] IS NOT NULL
                                                 THEN v_oid[v_dup_of[v_k]]
                                                 ELSE v_dup_ord[v_k] END;
                    END IF;
                    v_a_status[v_k] := v_status;
                    v_prev := v_k;
                END LOOP;
            END IF;

            -- the other elements: the outbox rows after the last element applied one by one,
            -- the shipments (each once) and every answer in one statement
            v_ord := NULL;
            RETURN QUERY
            WITH outbox_rows AS (
                INSERT INTO orderdb.outbox (event_type, order_id, warehouse_id, payload)
                SELECT 'tracking.recorded', u.oid, u.wh,
                       orderdb._tracking_recorded_payload(u.id, u.c, u.tn, u.t, u.s, u.norm,
                                                          u.loc, u.descr, u.oid)
                  FROM unnest(v_id, v_c, v_tn, v_t, v_s, v_norm, v_loc, v_desc, v_wh, v_oid)
                       WITH ORDINALITY AS u(id, c, tn, t, s, norm, loc, descr, wh, oid, ord)
                 WHERE u.id IS NOT NULL AND u.ord > v_prev
                 ORDER BY u.ord
            ), applied AS (
                -- each shipment's new events with a status, in array order, with the newest
                -- event time and whether a delivered one came before each
                SELECT u.wh, u.sid, u.ord, u.norm, u.t,
                       max(u.t) OVER w AS before_max,
                       coalesce(bool_or(u.norm = 'delivered') OVER w, false) AS before_delivered
                  FROM unnest(v_wh, v_sid, v_norm, v_t, v_seq)
                       WITH ORDINALITY AS u(wh, sid, norm, t, seq, ord)
                 WHERE u.sid IS NOT NULL AND u.norm <> 'unknown' AND NOT u.seq
                WINDOW w AS (PARTITION BY u.wh, u.sid ORDER BY u.ord
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            ), per_shipment AS (
                SELECT a.wh, a.sid,
                       array_agg(a.norm ORDER BY a.ord) AS norms,
                       array_agg(a.t ORDER BY a.ord) AS times,
                       array_agg(a.before_max ORDER BY a.ord) AS before_max,
                       array_agg(a.before_delivered ORDER BY a.ord) AS before_delivered,
                       max(a.t) AS max_time,
                       (array_agg(a.t ORDER BY a.ord) FILTER (WHERE a.norm = 'delivered'))[1]
                           AS first_delivered
                  FROM applied a
                 GROUP BY a.wh, a.sid
            ), shipment_rows AS (
                -- what orderdb._apply_tracking_to_shipment leaves after the events one by one:
                -- an event applies when it is the newest so far (the shipment's time or an
                -- earlier event's) or a first delivered one; the status is the last applied
                -- event's; the times only grow (an event that does not apply is older than the
                -- newest); delivered_at is the first delivered event's
                UPDATE orderdb.shipments AS s
                   SET status = (SELECT e.norm
                                   FROM unnest(p.norms, p.times, p.before_max, p.before_delivered)
                                        WITH ORDINALITY AS e(norm, t, bmax, bdel, i)
                                  WHERE greatest(s.last_event_time, e.bmax) IS NULL
                                     OR greatest(s.last_event_time, e.bmax) <= e.t
                                     OR (e.norm = 'delivered' AND s.delivered_at IS NULL
                                         AND NOT e.bdel)
                                  ORDER BY e.i DESC
                                  LIMIT 1),
                       last_event_time = greatest(s.last_event_time, p.max_time),
                       delivered_at = coalesce(s.delivered_at, p.first_delivered),
                       updated_at = now()
                  FROM per_shipment p
                 WHERE s.warehouse_id = p.wh AND s.shipment_id = p.sid
                   AND EXISTS (SELECT 1
                                 FROM unnest(p.norms, p.times, p.before_max, p.before_delivered)
                                      AS e(norm, t, bmax, bdel)
                                WHERE greatest(s.last_event_time, e.bmax) IS NULL
                                   OR greatest(s.last_event_time, e.bmax) <= e.t
                                   OR (e.norm = 'delivered' AND s.delivered_at IS NULL
                                       AND NOT e.bdel))
            )
            SELECT r.ord::integer, r.id, r.dup, r.norm, r.oid,
                   CASE WHEN v_seq[r.ord] THEN v_a_status[r.ord]
                        WHEN NOT r.dup THEN v_ostat[r.ord]
                        ELSE (SELECT o.status
                                FROM orderdb.order_directory d
                                JOIN orderdb.orders o
                                  ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
                               WHERE d.order_id = r.oid) END
              FROM (SELECT u.ord,
                           coalesce(u.id, v_id[u.dup_of], u.dup_id) AS id,
                           NOT u.is_new AS dup,
                           CASE WHEN u.is_new THEN u.norm
                                WHEN u.dup_of IS NOT NULL THEN v_norm[u.dup_of]
                                ELSE u.dup_norm END AS norm,
                           CASE WHEN u.is_new THEN u.oid
                                WHEN u.dup_of IS NOT NULL THEN v_oid[u.dup_of]
                                ELSE u.dup_ord END AS oid
                      FROM unnest(v_new, v_id, v_norm, v_oid, v_dup_of, v_dup_id, v_dup_norm,
                                  v_dup_ord)
                           WITH ORDINALITY AS u(is_new, id, norm, oid, dup_of, dup_id, dup_norm,
                                                dup_ord, ord)) r
             ORDER BY r.ord;
            RETURN;
        END IF;

        -- 5'. an element was stored by a concurrent transaction meanwhile: in array order, each
        -- element's effects and answer as the single call gives them
        FOR k IN 1 .. v_n LOOP
            v_ord := k;
            ordinal := k;
            IF v_new[k] THEN
                IF v_id[k] IS NULL THEN
                    -- stored by a concurrent transaction meanwhile: the single call's answer
                    SELECT r.* INTO v_rec
                      FROM orderdb.record_tracking_event(v_c[k], v_tn[k], v_t[k], v_s[k],
                                                         v_loc[k], v_desc[k], v_eid[k],
                                                         v_pay[k]) AS r;
                    tracking_event_id := v_rec.tracking_event_id;
                    duplicate := v_rec.duplicate;
                    normalized_status := v_rec.normalized_status;
                    order_id := v_rec.order_id;
                    order_status := v_rec.order_status;
                    v_new[k] := false;
                    v_dup_id[k] := v_rec.tracking_event_id;
                    v_dup_norm[k] := v_rec.normalized_status;
                    v_dup_ord[k] := v_rec.order_id;
                    RETURN NEXT;
                    CONTINUE;
                END IF;
                INSERT INTO orderdb.outbox (event_type, order_id, warehouse_id, payload)
                VALUES ('tracking.recorded', v_oid[k], v_wh[k],
                        orderdb._tracking_recorded_payload(v_id[k], v_c[k], v_tn[k], v_t[k],
                                                           v_s[k], v_norm[k], v_loc[k],
                                                           v_desc[k], v_oid[k]));
                tracking_event_id := v_id[k];
                duplicate := false;
                normalized_status := v_norm[k];
                order_id := v_oid[k];
                order_status := NULL;
                IF order_id IS NOT NULL THEN
                    v_newest := orderdb._apply_tracking_to_shipment(v_wh[k], v_sid[k],
                                                                    normalized_status, v_t[k]);
                    IF v_newest THEN
                        order_status := orderdb._apply_tracking_to_order(
                                            v_wh[k], order_id, normalized_status,
                                            tracking_event_id, v_t[k]);
                    ELSE
                        SELECT o.status INTO order_status
                          FROM orderdb.orders o
                         WHERE o.warehouse_id = v_wh[k]
                           AND o.order_id = record_tracking_events.order_id;
                    END IF;
                END IF;
                v_dup_id[k] := tracking_event_id;
                v_dup_norm[k] := normalized_status;
                v_dup_ord[k] := order_id;
            ELSE
                v_j := v_dup_of[k];
                tracking_event_id := v_dup_id[coalesce(v_j, k)];
                normalized_status := v_dup_norm[coalesce(v_j, k)];
                order_id := v_dup_ord[coalesce(v_j, k)];
                duplicate := true;
                SELECT o.status INTO order_status
                  FROM orderdb.order_directory d
                  JOIN orderdb.orders o
                    ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
                 WHERE d.order_id = record_tracking_events.order_id;
                IF NOT FOUND THEN
                    order_status := NULL;
                END IF;
            END IF;
            RETURN NEXT;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        -- one handler for the whole batch (one subtransaction, not one per element): the
        -- element's error again, with its ordinal; everything the batch did is undone
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        IF v_state IN ('40001', '40P01', '57014', '53200', '53100', '53300', '55P03')
           OR v_ord IS NULL THEN
            RAISE;  -- retryable or resource errors, or none of one element's doing
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = v_state,
            MESSAGE = format('event %s: %s', v_ord, v_msg),
            DETAIL = concat_ws('; ', format('ordinal=%s', v_ord), nullif(v_detail, '')),
            HINT = coalesce(nullif(v_hint, ''), 'Nothing of the batch was recorded.');
    END;
END;
$$;
COMMENT ON FUNCTION orderdb.record_tracking_events(jsonb) IS
    'Records a batch (1..1000) of carrier events, each as record_tracking_event; all or nothing.';
