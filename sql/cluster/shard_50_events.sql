-- Events across shards (docs/scaling.md "Events"): one consumer reads every shard's outbox
-- through the proxy; each shard keeps the consumer's position in its own outbox
-- (orderdb.event_consumers), the proxy merges the shards' batches.

-- read_events_in_order: orderdb.read_events for the proxy, each row with this shard's number
-- and its place in the shard's read order (ordinal), an error as data (err_* columns). Same
-- effects as read_events (creates the consumer, records the furthest position returned).
CREATE OR REPLACE FUNCTION orderdb_shard.read_events_in_order(p_consumer text, p_limit integer)
RETURNS TABLE (shard integer, ordinal bigint, event_id bigint, event_type text, order_id bigint,
               payload jsonb, created_at timestamptz, err_sqlstate text, err_message text,
               err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_shard integer := (SELECT i.shard FROM orderdb_shard.shard_identity i);
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    RETURN QUERY
        SELECT v_shard, row_number() OVER (), e.event_id, e.event_type, e.order_id, e.payload,
               e.created_at, NULL::text, NULL::text, NULL::text, NULL::text
          FROM orderdb.read_events(p_consumer, p_limit) e;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT v_shard, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint,
                        NULL::jsonb, NULL::timestamptz, v_sqlstate, v_message,
                        nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.read_events_in_order(text, integer) FROM PUBLIC;
