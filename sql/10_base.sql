-- Shared internal helpers: outbox writes and input checks used by every business function.

-- _emit_event: append one event to the outbox in the caller's transaction. Never NOTIFYs.
CREATE OR REPLACE FUNCTION orderdb._emit_event(p_event_type text, p_order_id bigint,
                                               p_warehouse_id integer, p_payload jsonb)
RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO orderdb.outbox (event_type, order_id, warehouse_id, payload)
    VALUES (p_event_type, p_order_id, p_warehouse_id, coalesce(p_payload, '{}'::jsonb));
$$;
COMMENT ON FUNCTION orderdb._emit_event(text, bigint, integer, jsonb) IS
    'Appends one event to the transactional outbox in the caller''s transaction (never NOTIFYs).';
