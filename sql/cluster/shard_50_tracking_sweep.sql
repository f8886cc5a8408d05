-- The sweep of parked carrier events, shard side (docs/scaling.md "Carrier events"): `orderdb
-- maintain --dsn PROXY` moves the events parked at a tracking number's home whose shipment
-- exists on another shard, also when nothing came through the proxy to move them (a SHIPPED
-- callback sent to the shard's DSN, a waybill of the WMS command queue). EXECUTE is granted to
-- orderdb_app, of which the proxy's shard role is a member; only roles with USAGE on schema
-- orderdb_shard (the proxy's role) reach them.

-- parked_tracking_numbers: up to p_limit (carrier, tracking number) pairs of this shard's
-- unmatched carrier events (no shipment here), those waiting longest first. Reads only (the
-- index tracking_events_unmatched).
CREATE OR REPLACE FUNCTION orderdb_shard.parked_tracking_numbers(p_limit integer)
RETURNS TABLE (carrier text, tracking_number text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT te.carrier, te.tracking_number
      FROM orderdb.tracking_events te
     WHERE te.order_id IS NULL
     GROUP BY te.carrier, te.tracking_number
     ORDER BY min(te.received_at), te.carrier, te.tracking_number
     LIMIT greatest(p_limit, 1)
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.parked_tracking_numbers(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.parked_tracking_numbers(integer) TO orderdb_app;

-- shipment_shards: of the (p_carriers[i], p_numbers[i]) pairs, those this shard has a shipment
-- of (orderdb.tracking_numbers), with this shard's number; asked of every shard at once.
-- Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.shipment_shards(p_carriers text[], p_numbers text[])
RETURNS TABLE (carrier text, tracking_number text, shard integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT tn.carrier, tn.tracking_number, i.shard
      FROM unnest(p_carriers, p_numbers) AS q(carrier, tracking_number)
      JOIN orderdb.tracking_numbers tn
        ON tn.carrier = q.carrier AND tn.tracking_number = q.tracking_number
     CROSS JOIN orderdb_shard.shard_identity i
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.shipment_shards(text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.shipment_shards(text[], text[]) TO orderdb_app;
