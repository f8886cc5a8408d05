-- The sweep of parked carrier events, proxy side (docs/scaling.md "Carrier events"; the shard
-- side is sql/cluster/shard_50_tracking_sweep.sql). A SHIPPED callback through the proxy moves
-- the events parked at its tracking number's home at once; a shipment made on its shard without
-- the proxy (the callback sent to the shard's DSN, a waybill recorded by the WMS command queue)
-- is found by this sweep, which `orderdb maintain --dsn PROXY` runs.

CREATE OR REPLACE FUNCTION orderdb_cluster.parked_tracking_numbers(p_shard integer,
                                                                   p_limit integer)
RETURNS TABLE (carrier text, tracking_number text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.parked_tracking_numbers(p_limit);
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.shipment_shards(p_carriers text[], p_numbers text[])
RETURNS TABLE (carrier text, tracking_number text, shard integer)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.shipment_shards(p_carriers, p_numbers);
$fn$;

-- sweep_parked_tracking_events: for every shard, up to p_limit (1..100000) tracking numbers
-- whose events are parked there (that shard is their home) and whose shipment exists on another
-- shard: registers each at its home and moves its parked events to the shipment's shard
-- (orderdb_cluster._move_parked_tracking_events: recorded there, matched, dropped at the home;
-- an event the shipment's shard refuses stays parked). Returns one row per tracking number
-- moved: its home, carrier, number, the shipment's shard and how many events moved. Safe to run
-- at any time and concurrently with carrier events and callbacks (the moves take the tracking
-- number's lock at the home; the shipment's shard deduplicates). Raises 22023 for p_limit out
-- of range. Locks what the moves lock.
CREATE OR REPLACE FUNCTION orderdb_cluster.sweep_parked_tracking_events(
    p_limit integer DEFAULT 1000)
RETURNS TABLE (home integer, carrier text, tracking_number text, shard integer, moved integer)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_home integer;
    v_carriers text[];
    v_numbers text[];
    r record;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'limit must be 1 to 100000',
            DETAIL = format('limit=%s', coalesce(p_limit::text, 'NULL'));
    END IF;
    FOR v_home IN SELECT s.shard FROM orderdb_cluster.shards s ORDER BY s.shard LOOP
        SELECT array_agg(p.carrier), array_agg(p.tracking_number) INTO v_carriers, v_numbers
          FROM orderdb_cluster.parked_tracking_numbers(v_home, p_limit) p
         WHERE orderdb_cluster.tracking_home(p.carrier, p.tracking_number) = v_home;
        CONTINUE WHEN v_carriers IS NULL;
        FOR r IN SELECT DISTINCT ON (x.carrier, x.tracking_number) x.*
                   FROM orderdb_cluster.shipment_shards(v_carriers, v_numbers) x
                  WHERE x.shard <> v_home
                  ORDER BY x.carrier, x.tracking_number, x.shard LOOP
            home := v_home;
            carrier := r.carrier;
            tracking_number := r.tracking_number;
            shard := r.shard;
            moved := orderdb_cluster._move_parked_tracking_events(v_home, r.carrier,
                                                                  r.tracking_number, r.shard);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END;
$fn$;

REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb_cluster FROM PUBLIC;
