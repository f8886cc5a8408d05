-- Batches of carrier events through the proxy (docs/scaling.md "Carrier events"; the shard side
-- is sql/cluster/shard_80_tracking_batches.sql).

-- check_tracking_events: orderdb_shard.check_tracking_events on every shard at once (one row
-- each).
CREATE OR REPLACE FUNCTION orderdb_cluster.check_tracking_events(p_events jsonb)
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.check_tracking_events(p_events);
$fn$;
REVOKE ALL ON FUNCTION orderdb_cluster.check_tracking_events(jsonb) FROM PUBLIC;

-- record_tracking_events: as on one database (docs/api.md), but not all or nothing across shards.
-- First the whole batch is checked on every shard at once by one database's
-- record_tracking_events, undone there (orderdb_shard.check_tracking_events): a batch a shard
-- refuses with 22023 (not an array of 1..1000, a bad element: 'event <ordinal>: ...') or with
-- OD006 (an element whose event id that shard stores for another parcel or status, or that an
-- earlier element of the batch uses so) is refused with that error (22023 first, then the lowest
-- ordinal, as one database decides) and nothing is recorded anywhere. Then each element, in
-- array order, is recorded by the proxy's orderdb.record_tracking_event (the shipment's shard,
-- or parked at the tracking number's home), committing on its shard. An element's error there
-- (what a concurrent call stored after the check, a shard that cannot be reached) is raised with
-- its SQLSTATE and the message 'event <ordinal>: ...'; the elements before it stay recorded
-- (docs/scaling.md "What differs"). Returns one row per element: its ordinal and
-- record_tracking_event's row. Locks what the batch locks on every shard while it is checked,
-- then what record_tracking_event locks, element by element.
CREATE OR REPLACE FUNCTION orderdb.record_tracking_events(p_events jsonb)
RETURNS TABLE (ordinal integer, tracking_event_id bigint, duplicate boolean,
               normalized_status text, order_id bigint, order_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_check record;
    v_elem jsonb;
    v_ord integer := 0;
    v_state text;
    v_msg text;
    v_detail text;
    v_hint text;
    r record;
BEGIN
    SELECT * INTO v_check
      FROM orderdb_cluster.check_tracking_events(p_events) c
     WHERE c.err_sqlstate IN ('22023', 'OD006')
     ORDER BY c.err_sqlstate <> '22023',
              (substring(c.err_detail FROM '^ordinal=([0-9]+)'))::integer NULLS LAST
     LIMIT 1;
    IF FOUND THEN
        PERFORM orderdb_cluster._raise(v_check.err_sqlstate, v_check.err_message,
                                       v_check.err_detail, v_check.err_hint);
    END IF;
    FOR v_elem IN SELECT a.elem FROM jsonb_array_elements(p_events) AS a(elem) LOOP
        v_ord := v_ord + 1;
        BEGIN
            SELECT * INTO r
              FROM orderdb.record_tracking_event(
                       v_elem ->> 'carrier', v_elem ->> 'tracking_number',
                       (v_elem ->> 'event_time')::timestamptz, v_elem ->> 'carrier_status',
                       v_elem ->> 'location', v_elem ->> 'description', v_elem ->> 'event_id',
                       CASE WHEN jsonb_typeof(v_elem -> 'payload') = 'object'
                            THEN v_elem -> 'payload' END);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            IF v_state IN ('40001', '40P01', '57014', '53200', '53100', '53300', '55P03') THEN
                RAISE;  -- retryable or resource errors, as one database raises them
            END IF;
            RAISE EXCEPTION USING
                ERRCODE = v_state,
                MESSAGE = format('event %s: %s', v_ord, v_msg),
                DETAIL = concat_ws('; ', format('ordinal=%s', v_ord), nullif(v_detail, '')),
                HINT = coalesce(nullif(v_hint, ''),
                                CASE WHEN v_ord = 1 THEN 'Nothing of the batch was recorded.'
                                     ELSE format('Events 1 to %s of the batch were recorded '
                                                 '(through the cluster proxy a batch is not '
                                                 'all or nothing).', v_ord - 1) END);
        END;
        ordinal := v_ord;
        tracking_event_id := r.tracking_event_id;
        duplicate := r.duplicate;
        normalized_status := r.normalized_status;
        order_id := r.order_id;
        order_status := r.order_status;
        RETURN NEXT;
    END LOOP;
END;
$fn$;
