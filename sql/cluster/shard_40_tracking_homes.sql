-- Carrier events across shards (docs/scaling.md "Carrier events"): a carrier event must reach
-- the shard of its shipment, which the tracking number does not say. Every tracking number has
-- a home shard (a hash of carrier and number, like idempotency keys). An event whose shipment
-- no shard has yet is recorded at the home, unmatched (parked), as one database records it;
-- when the shipment appears on another shard, the proxy registers the number at its home
-- (orderdb_shard.register_tracking_number) and moves the parked events to the shipment's shard,
-- where they are matched. Both run under the tracking number's lock at the home, so an event is
-- either parked before the registration (and moved) or redirected after it.

CREATE TABLE IF NOT EXISTS orderdb_shard.tracking_homes (
    carrier         text NOT NULL,
    tracking_number text NOT NULL,
    shard           integer NOT NULL CHECK (shard >= 0),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (carrier, tracking_number)
);
COMMENT ON TABLE orderdb_shard.tracking_homes IS
    'Tracking numbers whose home is this shard and whose shipment lives on another shard.';
REVOKE ALL ON orderdb_shard.tracking_homes FROM PUBLIC;

-- tracking_number_shard: this shard's number when it has a shipment with the tracking number
-- (orderdb.tracking_numbers), else no row; asked of every shard (RUN ON ALL). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.tracking_number_shard(p_carrier text,
                                                               p_tracking_number text)
RETURNS TABLE (shard integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT i.shard
      FROM orderdb_shard.shard_identity i
     WHERE EXISTS (SELECT 1 FROM orderdb.tracking_numbers tn
                    WHERE tn.carrier = p_carrier AND tn.tracking_number = p_tracking_number)
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.tracking_number_shard(text, text) FROM PUBLIC;

-- registered_tracking_shard: the shard registered at this home for a tracking number, else
-- no row. Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.registered_tracking_shard(p_carrier text,
                                                                   p_tracking_number text)
RETURNS TABLE (shard integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT h.shard FROM orderdb_shard.tracking_homes h
     WHERE h.carrier = p_carrier AND h.tracking_number = p_tracking_number
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.registered_tracking_shard(text, text) FROM PUBLIC;

-- register_tracking_number: records at this home that the shipment of a tracking number lives
-- on p_shard (the first registration stays) and returns the registered shard with the events
-- parked here for that number (unmatched tracking_events rows: what record_tracking_event needs
-- to record them again, and their ids for drop_parked_tracking_events). Locks the tracking
-- number (orderdb._lock_tracking_number), the registration row.
CREATE OR REPLACE FUNCTION orderdb_shard.register_tracking_number(p_carrier text,
                                                                  p_tracking_number text,
                                                                  p_shard integer)
RETURNS TABLE (registered_shard integer, parked jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM orderdb._lock_tracking_number(p_carrier, p_tracking_number);
    INSERT INTO orderdb_shard.tracking_homes (carrier, tracking_number, shard)
    VALUES (p_carrier, p_tracking_number, p_shard)
    ON CONFLICT (carrier, tracking_number) DO NOTHING;
    RETURN QUERY
        SELECT h.shard,
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                                    'tracking_event_id', te.tracking_event_id,
                                    'event_time', te.event_time,
                                    'carrier_status', te.carrier_status,
                                    'location', te.location,
                                    'description', te.description,
                                    'event_id', te.event_id,
                                    'payload', te.payload)
                                  ORDER BY te.event_time, te.tracking_event_id)
                           FROM orderdb.tracking_events te
                          WHERE te.carrier = p_carrier
                            AND te.tracking_number = p_tracking_number
                            AND te.order_id IS NULL), '[]'::jsonb)
          FROM orderdb_shard.tracking_homes h
         WHERE h.carrier = p_carrier AND h.tracking_number = p_tracking_number;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.register_tracking_number(text, text, integer) FROM PUBLIC;

-- drop_parked_tracking_events: deletes parked events of a tracking number once the proxy has
-- recorded them on their shipment's shard (only unmatched rows of that number; returns how
-- many). Locks the tracking number and the rows.
CREATE OR REPLACE FUNCTION orderdb_shard.drop_parked_tracking_events(
    p_carrier text, p_tracking_number text, p_tracking_event_ids bigint[])
RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_dropped integer;
BEGIN
    PERFORM orderdb._lock_tracking_number(p_carrier, p_tracking_number);
    DELETE FROM orderdb.tracking_events te
     WHERE te.carrier = p_carrier AND te.tracking_number = p_tracking_number
       AND te.order_id IS NULL AND te.tracking_event_id = ANY (p_tracking_event_ids);
    GET DIAGNOSTICS v_dropped = ROW_COUNT;
    RETURN v_dropped;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.drop_parked_tracking_events(text, text, bigint[])
    FROM PUBLIC;

-- record_tracking_event_at_home: record_tracking_event at the tracking number's home: when the
-- number is registered to another shard, records nothing and returns that shard
-- (redirect_shard); otherwise records it here (matched when this shard has the shipment, else
-- parked) through the wrapper orderdb_shard.record_tracking_event (errors as data). Locks the
-- tracking number first, so that a registration cannot slip between the check and the record.
CREATE OR REPLACE FUNCTION orderdb_shard.record_tracking_event_at_home(
    p_carrier text, p_tracking_number text, p_event_time timestamptz, p_carrier_status text,
    p_location text, p_description text, p_event_id text, p_payload jsonb)
RETURNS TABLE (redirect_shard integer, tracking_event_id bigint, duplicate boolean,
               normalized_status text, order_id bigint, order_status text,
               err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_shard integer;
BEGIN
    IF p_carrier IS NOT NULL AND p_tracking_number IS NOT NULL THEN
        PERFORM orderdb._lock_tracking_number(p_carrier, p_tracking_number);
        SELECT h.shard INTO v_shard FROM orderdb_shard.tracking_homes h
         WHERE h.carrier = p_carrier AND h.tracking_number = p_tracking_number
           AND h.shard <> (SELECT i.shard FROM orderdb_shard.shard_identity i);
        IF FOUND THEN
            RETURN QUERY SELECT v_shard, NULL::bigint, NULL::boolean, NULL::text, NULL::bigint,
                                NULL::text, NULL::text, NULL::text, NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
        SELECT NULL::integer, w.*
          FROM orderdb_shard.record_tracking_event(p_carrier, p_tracking_number, p_event_time,
                                                   p_carrier_status, p_location,
                                                   p_description, p_event_id, p_payload) w;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.record_tracking_event_at_home(
    text, text, timestamptz, text, text, text, text, jsonb) FROM PUBLIC;

-- tracking_event_id_use: this shard's number with the parcel and carrier status of the event it
-- stores under a carrier's event id (unique per carrier on a shard), else no row; asked of every
-- shard (RUN ON ALL) by the proxy's record_tracking_event, so that an event id stored on another
-- shard for another parcel or status is refused as one database refuses it (OD006). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.tracking_event_id_use(p_carrier text, p_event_id text)
RETURNS TABLE (shard integer, tracking_number text, carrier_status text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT i.shard, te.tracking_number, te.carrier_status
      FROM orderdb_shard.shard_identity i
      JOIN orderdb.tracking_events te ON te.carrier = p_carrier AND te.event_id = p_event_id
     LIMIT 1
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.tracking_event_id_use(text, text) FROM PUBLIC;
