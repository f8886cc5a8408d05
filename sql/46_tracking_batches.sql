-- Batches of carrier events: orderdb.record_tracking_events (docs/contract.md, "Batches").

-- record_tracking_events: records p_events, a JSON array of 1..1000 carrier events, in array
-- order, each exactly as orderdb.record_tracking_event records it (dedupe, matching, order
-- moves, tracking.recorded). An element is an object whose keys are that function's parameter
-- names without p_: carrier, tracking_number, event_time, carrier_status (strings, required),
-- location, description, event_id (strings or null), payload (object or null); event_time is an
-- ISO 8601 time with an offset (a time without one is refused: no session time zone decides).
-- Returns one row per element: its ordinal (1-based) and record_tracking_event's row.
-- Raises 22023 for a p_events that is not a JSON array of 1..1000 elements, and for the first
-- bad element, the message starting 'event <ordinal>: ' (not an object, an unknown key, a field
-- of the wrong type, or anything record_tracking_event refuses): nothing of the batch is
-- recorded. Other errors of an element (OD006 ...) keep their SQLSTATE and gain the ordinal the
-- same way. Locks what record_tracking_event locks, for each element.
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
    v_key    text;
    v_time   timestamptz;
    v_row    record;
    v_state  text;
    v_msg    text;
    v_detail text;
    v_hint   text;
BEGIN
    PERFORM orderdb._check_json(p_events, 'events', 'array');
    IF jsonb_array_length(p_events) NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'events must hold 1 to 1000 events',
            DETAIL = format('events=%s', jsonb_array_length(p_events));
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

            SELECT r.* INTO v_row
              FROM orderdb.record_tracking_event(
                       v_elem ->> 'carrier', v_elem ->> 'tracking_number', v_time,
                       v_elem ->> 'carrier_status', v_elem ->> 'location',
                       v_elem ->> 'description', v_elem ->> 'event_id',
                       CASE WHEN jsonb_typeof(v_elem -> 'payload') = 'object'
                            THEN v_elem -> 'payload' END) AS r;
            ordinal := v_ord;
            tracking_event_id := v_row.tracking_event_id;
            duplicate := v_row.duplicate;
            normalized_status := v_row.normalized_status;
            order_id := v_row.order_id;
            order_status := v_row.order_status;
            RETURN NEXT;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        -- one handler for the whole batch (one subtransaction, not one per element): the
        -- element's error again, with its ordinal; everything the batch did is undone
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        IF v_state IN ('40001', '40P01', '57014', '53200', '53100', '53300', '55P03') THEN
            RAISE;  -- retryable or resource errors are not the element's fault
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
