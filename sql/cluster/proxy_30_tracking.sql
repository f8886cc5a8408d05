-- Carrier events through the proxy (docs/scaling.md "Carrier events"; the shard side is
-- sql/cluster/shard_40_tracking_homes.sql): an event goes to the shard of its shipment; an
-- event that arrives before its shipment is parked at its tracking number's home and moved to
-- the shipment's shard when the shipment appears (a SHIPPED callback through the proxy, or the
-- next event of that number once a shard has the shipment).

-- tracking_home: the home shard of a tracking number: md5 of carrier and number modulo the
-- shards of the first init (as orderdb_cluster.key_shard). Reads settings.
CREATE OR REPLACE FUNCTION orderdb_cluster.tracking_home(p_carrier text, p_tracking_number text)
RETURNS integer
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT orderdb_cluster.key_shard('tracking:' || coalesce(p_carrier, '') || chr(31)
                                     || coalesce(p_tracking_number, ''))
$fn$;

-- _move_parked_tracking_events: registers at the home that the shipment of a tracking number
-- lives on p_shard and records the events parked at the home on that shard (where they are
-- matched), then drops them at the home. An event the shipment's shard refuses stays parked
-- (nothing is lost). Returns the number of events moved. Locks: the tracking number at the home
-- (while registering), what record_tracking_event locks on the shipment's shard.
CREATE OR REPLACE FUNCTION orderdb_cluster._move_parked_tracking_events(
    p_home integer, p_carrier text, p_tracking_number text, p_shard integer)
RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_reg record;
    v_event jsonb;
    v_moved bigint[] := '{}'::bigint[];
    v_result record;
BEGIN
    SELECT * INTO v_reg
      FROM orderdb_cluster.register_tracking_number(p_home, p_carrier, p_tracking_number,
                                                    p_shard);
    IF v_reg.registered_shard IS NULL OR v_reg.registered_shard = p_home
       OR jsonb_array_length(v_reg.parked) = 0 THEN
        RETURN 0;
    END IF;
    FOR v_event IN SELECT e FROM jsonb_array_elements(v_reg.parked) e LOOP
        SELECT * INTO v_result
          FROM orderdb_cluster.record_tracking_event(
                   v_reg.registered_shard, p_carrier, p_tracking_number,
                   (v_event ->> 'event_time')::timestamptz, v_event ->> 'carrier_status',
                   v_event ->> 'location', v_event ->> 'description', v_event ->> 'event_id',
                   CASE WHEN jsonb_typeof(v_event -> 'payload') = 'object'
                        THEN v_event -> 'payload' END);
        IF v_result.err_sqlstate IS NULL THEN
            v_moved := v_moved || (v_event ->> 'tracking_event_id')::bigint;
        END IF;
    END LOOP;
    IF cardinality(v_moved) > 0 THEN
        PERFORM orderdb_cluster.drop_parked_tracking_events(p_home, p_carrier,
                                                            p_tracking_number, v_moved);
    END IF;
    RETURN cardinality(v_moved);
END;
$fn$;

-- record_tracking_event: as on one database (docs/api.md). The shard of the shipment is the one
-- registered at the tracking number's home, else the shard that has the shipment (asked of every
-- shard; the number is then registered and anything parked is moved there), else the home,
-- which parks the event unmatched until the shipment appears. An event id that a shard stores
-- for another parcel or carrier status (asked of every shard) sends the call to that shard,
-- which refuses it as one database does (22023 for a bad argument first, else OD006) and
-- stores nothing. Raises what the shard raises.
CREATE OR REPLACE FUNCTION orderdb.record_tracking_event(p_carrier text, p_tracking_number text,
                                                         p_event_time timestamptz,
                                                         p_carrier_status text,
                                                         p_location text DEFAULT NULL,
                                                         p_description text DEFAULT NULL,
                                                         p_event_id text DEFAULT NULL,
                                                         p_payload jsonb DEFAULT NULL)
RETURNS TABLE (tracking_event_id bigint, duplicate boolean, normalized_status text,
               order_id bigint, order_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_home integer := orderdb_cluster.tracking_home(p_carrier, p_tracking_number);
    v_shard integer;
    v_recorded boolean := false;
    r record;
BEGIN
    IF p_event_id IS NOT NULL AND p_carrier IS NOT NULL THEN
        -- the event id stored for another parcel or status: that shard answers (it refuses)
        SELECT u.shard INTO v_shard
          FROM orderdb_cluster.tracking_event_id_use(p_carrier, p_event_id) u
         WHERE u.tracking_number IS DISTINCT FROM p_tracking_number
            OR u.carrier_status IS DISTINCT FROM p_carrier_status
         ORDER BY u.shard
         LIMIT 1;
    END IF;
    IF v_shard IS NULL THEN
        SELECT s.shard INTO v_shard
          FROM orderdb_cluster.registered_tracking_shard(v_home, p_carrier, p_tracking_number) s;
    ELSE
        v_home := NULL;  -- not at the home
    END IF;
    IF v_shard IS NULL THEN
        SELECT s.shard INTO v_shard
          FROM orderdb_cluster.tracking_number_shard(p_carrier, p_tracking_number) s
         ORDER BY s.shard
         LIMIT 1;
        IF v_shard IS NOT NULL AND v_shard <> v_home THEN
            PERFORM orderdb_cluster._move_parked_tracking_events(v_home, p_carrier,
                                                                 p_tracking_number, v_shard);
        END IF;
    END IF;
    IF v_shard IS NULL OR v_shard = v_home THEN  -- v_home NULL: an event id stored elsewhere
        -- at the home: recorded there, unless a registration came first (then: its shard)
        SELECT * INTO r
          FROM orderdb_cluster.record_tracking_event_at_home(
                   v_home, p_carrier, p_tracking_number, p_event_time, p_carrier_status,
                   p_location, p_description, p_event_id, p_payload);
        v_recorded := r.redirect_shard IS NULL;
        v_shard := r.redirect_shard;
    END IF;
    IF NOT v_recorded THEN
        SELECT * INTO r
          FROM orderdb_cluster.record_tracking_event(
                   v_shard, p_carrier, p_tracking_number, p_event_time, p_carrier_status,
                   p_location, p_description, p_event_id, p_payload);
    END IF;
    IF r.err_sqlstate IS NOT NULL THEN
        PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail, r.err_hint);
    END IF;
    tracking_event_id := r.tracking_event_id;
    duplicate := r.duplicate;
    normalized_status := r.normalized_status;
    order_id := r.order_id;
    order_status := r.order_status;
    RETURN NEXT;
END;
$fn$;

-- wms_callback: as on one database (docs/api.md), on the order's shard; after a SHIPPED
-- callback that names a carrier and a tracking number, the number is registered at its home
-- and the carrier events parked there are moved to the order's shard (and matched).
CREATE OR REPLACE FUNCTION orderdb.wms_callback(p_event_id text, p_order_id bigint,
                                                p_event_type text, p_payload jsonb DEFAULT '{}',
                                                p_source text DEFAULT 'wms')
RETURNS TABLE (order_id bigint, status text, version integer, duplicate boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_shard integer := orderdb_cluster.order_shard(p_order_id);
    v_carrier text;
    v_number text;
    v_home integer;
    r record;
BEGIN
    FOR r IN SELECT * FROM orderdb_cluster.wms_callback(v_shard, p_event_id, p_order_id,
                                                        p_event_type, p_payload, p_source) LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        order_id := r.order_id;
        status := r.status;
        version := r.version;
        duplicate := r.duplicate;
        RETURN NEXT;
    END LOOP;
    IF p_event_type = 'SHIPPED' AND jsonb_typeof(p_payload) = 'object' THEN
        v_carrier := p_payload ->> 'carrier';
        v_number := p_payload ->> 'tracking_number';
        IF v_carrier IS NOT NULL AND v_number IS NOT NULL THEN
            v_home := orderdb_cluster.tracking_home(v_carrier, v_number);
            IF v_home <> v_shard THEN
                PERFORM orderdb_cluster._move_parked_tracking_events(v_home, v_carrier,
                                                                     v_number, v_shard);
            END IF;
        END IF;
    END IF;
END;
$fn$;
