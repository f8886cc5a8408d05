-- Batches of carrier events: orderdb.record_tracking_events (docs/contract.md, "Batches").

-- record_tracking_events: records p_events, a JSON array of 1..1000 carrier events, in array
-- order, each exactly as orderdb.record_tracking_event records it (dedupe, matching, order
-- moves, tracking.recorded). An element is an object whose keys are that function's parameter
-- names without p_: carrier, tracking_number, event_time, carrier_status (strings, required),
-- location, description, event_id (strings or null), payload (object or null); event_time is an
-- ISO 8601 time with an offset (a time without one is refused: no session time zone decides).
-- Returns one row per element: its ordinal (1-based) and record_tracking_event's row.
-- How: every element is checked (as record_tracking_event checks its arguments); the tracking
-- numbers are locked, in (carrier, tracking number) order; each element is then decided in array
-- order — new, or a duplicate of a stored event or of an earlier element of the batch (the
-- single call's rule: by event id, else by natural key; an event id reused for another parcel
-- or status is OD006) — and the new ones are stored by one INSERT; last, in array order, each
-- new event writes its tracking.recorded outbox row (inline, as record_tracking_event does) and
-- is applied to its shipment and order as the single call
-- applies it. A new event that a concurrent transaction stored meanwhile is recorded by
-- orderdb.record_tracking_event (its duplicate answer).
-- Raises 22023 for a p_events that is not a JSON array of 1..1000 elements, and for the first
-- bad element, the message starting 'event <ordinal>: ' (not an object, an unknown key, a field
-- of the wrong type, or anything record_tracking_event refuses): nothing of the batch is
-- recorded. Other errors of an element (OD006 ...) keep their SQLSTATE and gain the ordinal the
-- same way. Locks what record_tracking_event locks, for each element (the tracking numbers'
-- advisory locks first, all of them).
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
    v_ins    jsonb;              -- natural key -> the stored row of a new element
    v_row    jsonb;
    v_newest boolean;
    v_rec    record;
BEGIN
    PERFORM orderdb._check_json(p_events, 'events', 'array');
    v_n := jsonb_array_length(p_events);
    IF v_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'events must hold 1 to 1000 events',
            DETAIL = format('events=%s', v_n);
    END IF;

    BEGIN
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

        -- the tracking numbers' locks, all first and in one order (two batches sharing parcels
        -- take them alike), each in the statement before the reads below (as the single call)
        v_ord := NULL;
        PERFORM orderdb._lock_tracking_number(x.c, x.tn)
           FROM (SELECT DISTINCT u.c, u.tn FROM unnest(v_c, v_tn) AS u(c, tn)
                  ORDER BY u.c, u.tn) x;

        -- each element decided in array order: new, or a duplicate (record_tracking_event's
        -- rule, against the stored events and the batch's earlier new elements)
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

        -- the new elements, stored by one statement (in array order: ids grow with it)
        v_ord := NULL;
        WITH stored AS (
            INSERT INTO orderdb.tracking_events AS te
                   (carrier, tracking_number, event_time, carrier_status, normalized_status,
                    location, description, event_id, payload, warehouse_id, order_id, shipment_id,
                    matched_at)
            SELECT u.c, u.tn, u.t, u.s, orderdb._normalize_carrier_status(u.c, u.s), u.loc,
                   u.descr, u.eid, u.pay, tn.warehouse_id, tn.order_id, tn.shipment_id,
                   CASE WHEN tn.order_id IS NOT NULL THEN now() END
              FROM unnest(v_c, v_tn, v_t, v_s, v_loc, v_desc, v_eid, v_pay, v_new)
                   WITH ORDINALITY AS u(c, tn, t, s, loc, descr, eid, pay, is_new, ord)
              LEFT JOIN orderdb.tracking_numbers tn
                ON tn.carrier = u.c AND tn.tracking_number = u.tn
             WHERE u.is_new
             ORDER BY u.ord
            ON CONFLICT DO NOTHING
            RETURNING te.tracking_event_id, te.carrier, te.tracking_number, te.event_time,
                      te.carrier_status, te.normalized_status, te.warehouse_id, te.order_id,
                      te.shipment_id
        )
        SELECT coalesce(jsonb_object_agg(
                   jsonb_build_array(st.carrier, st.tracking_number, st.event_time,
                                     st.carrier_status)::text,
                   jsonb_build_object('id', st.tracking_event_id,
                                      'norm', st.normalized_status,
                                      'warehouse_id', st.warehouse_id,
                                      'order_id', st.order_id,
                                      'shipment_id', st.shipment_id)), '{}'::jsonb)
          INTO v_ins
          FROM stored st;

        -- in array order: each element's answer, as the single call gives it
        FOR k IN 1 .. v_n LOOP
            v_ord := k;
            ordinal := k;
            IF v_new[k] THEN
                v_row := v_ins -> jsonb_build_array(v_c[k], v_tn[k], v_t[k], v_s[k])::text;
                IF v_row IS NULL THEN
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
                VALUES ('tracking.recorded', (v_row ->> 'order_id')::bigint,
                        (v_row ->> 'warehouse_id')::integer,
                        jsonb_build_object('tracking_event_id', (v_row ->> 'id')::bigint,
                                           'carrier', v_c[k],
                                           'tracking_number', v_tn[k],
                                           'event_time', v_t[k],
                                           'carrier_status', v_s[k],
                                           'normalized_status', v_row ->> 'norm',
                                           'location', orderdb._mask_phones_in_text(v_loc[k]),
                                           'description',
                                           orderdb._mask_phones_in_text(v_desc[k]),
                                           'matched', v_row ->> 'order_id' IS NOT NULL));
                tracking_event_id := (v_row ->> 'id')::bigint;
                duplicate := false;
                normalized_status := v_row ->> 'norm';
                order_id := (v_row ->> 'order_id')::bigint;
                order_status := NULL;
                IF order_id IS NOT NULL THEN
                    v_newest := orderdb._apply_tracking_to_shipment(
                                    (v_row ->> 'warehouse_id')::integer,
                                    (v_row ->> 'shipment_id')::bigint, normalized_status, v_t[k]);
                    IF v_newest THEN
                        order_status := orderdb._apply_tracking_to_order(
                                            (v_row ->> 'warehouse_id')::integer, order_id,
                                            normalized_status, tracking_event_id, v_t[k]);
                    ELSE
                        SELECT o.status INTO order_status
                          FROM orderdb.orders o
                         WHERE o.warehouse_id = (v_row ->> 'warehouse_id')::integer
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
