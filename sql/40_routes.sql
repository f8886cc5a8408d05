-- Courier routes: warehouse locations, couriers, and a nearest-neighbour route planner over the
-- orders that are packed and not yet routed. Addresses come from create_order's options:
-- {"ship_to": {"lat": 31.23, "lon": 121.47, ...}}.
--
-- plan_routes never locks orders rows: it reads ready orders and available couriers in ONE
-- statement (one snapshot) and writes only routes, route_stops and couriers. Two planners of the
-- same warehouse are serialised by a transaction advisory lock (and route_stops' primary key
-- guards against routing an order twice).

-- _haversine_km: great-circle distance in km (mean Earth radius 6371.0088 km). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._haversine_km(p_lat1 double precision, p_lon1 double precision,
                                                 p_lat2 double precision, p_lon2 double precision)
RETURNS double precision
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT 2 * 6371.0088 * asin(least(1.0, sqrt(
               power(sin(radians(p_lat2 - p_lat1) / 2), 2)
               + cos(radians(p_lat1)) * cos(radians(p_lat2))
                 * power(sin(radians(p_lon2 - p_lon1) / 2), 2))));
$$;
COMMENT ON FUNCTION orderdb._haversine_km(double precision, double precision, double precision,
                                          double precision) IS
    'Great-circle (haversine) distance in kilometres between two lat/lon points.';

-- _check_coordinates: lat in [-90, 90], lon in [-180, 180], both finite and present.
-- Raises 22023 naming the field. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_coordinates(p_lat double precision,
                                                      p_lon double precision)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_lat IS NULL OR NOT (p_lat BETWEEN -90 AND 90) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'lat must be a number from -90 to 90';
    END IF;
    IF p_lon IS NULL OR NOT (p_lon BETWEEN -180 AND 180) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'lon must be a number from -180 to 180';
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_coordinates(double precision, double precision) IS
    'Raises 22023 unless lat/lon are valid coordinates.';

-- set_warehouse_location: where a warehouse is (routes start there). Creates or replaces it.
-- Raises 22023 (bad input), OD004 (unknown warehouse). Locks the warehouse_locations row.
CREATE OR REPLACE FUNCTION orderdb.set_warehouse_location(p_warehouse_id integer,
                                                          p_lat double precision,
                                                          p_lon double precision)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    PERFORM orderdb._check_coordinates(p_lat, p_lon);
    IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_warehouse_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('unknown warehouse %s', p_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_warehouse_id),
            HINT = 'A warehouse exists once it has received stock (orderdb.receive_stock).';
    END IF;
    INSERT INTO orderdb.warehouse_locations AS l (warehouse_id, lat, lon)
    VALUES (p_warehouse_id, p_lat, p_lon)
    ON CONFLICT ON CONSTRAINT warehouse_locations_pkey
    DO UPDATE SET lat = excluded.lat, lon = excluded.lon;
END;
$$;
COMMENT ON FUNCTION orderdb.set_warehouse_location(integer, double precision, double precision) IS
    'Sets where a warehouse is (the start of its courier routes).';

-- add_courier: registers a courier of a warehouse at a position with a capacity (stops per
-- route), optionally with a phone (normalised by orderdb._normalize_phone; customers see it
-- masked in order_timeline while the courier delivers their order). Returns the courier id.
-- Raises 22023 (bad input; 'phone is not a phone number'), OD004 (unknown warehouse).
-- Locks nothing beyond the new row.
-- The signature before phones (without p_phone): calls without it still work.
DROP FUNCTION IF EXISTS orderdb.add_courier(integer, text, double precision, double precision,
                                            integer, boolean);
CREATE OR REPLACE FUNCTION orderdb.add_courier(p_warehouse_id integer, p_name text,
                                               p_lat double precision, p_lon double precision,
                                               p_capacity integer,
                                               p_available boolean DEFAULT true,
                                               p_phone text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id    bigint;
    v_phone text;
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    PERFORM orderdb._check_text(p_name, 'name', 255, true);
    PERFORM orderdb._check_coordinates(p_lat, p_lon);
    PERFORM orderdb._check_positive(p_capacity, 'capacity');
    IF p_phone IS NOT NULL THEN
        v_phone := orderdb._normalize_phone(p_phone);
        IF v_phone IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = 'phone is not a phone number',
                DETAIL = format('phone=%s', to_json(left(p_phone, 40))),
                HINT = 'A Chinese mobile (13812345678), a Chinese landline (010-12345678) or '
                       'E.164 (+14155552671).';
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_warehouse_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('unknown warehouse %s', p_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_warehouse_id);
    END IF;
    INSERT INTO orderdb.couriers AS c (warehouse_id, name, lat, lon, capacity, available, phone)
    VALUES (p_warehouse_id, p_name, p_lat, p_lon, p_capacity, coalesce(p_available, true),
            v_phone)
    RETURNING c.courier_id INTO v_id;
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION orderdb.add_courier(integer, text, double precision, double precision, integer,
                                        boolean, text) IS
    'Registers a courier of a warehouse (position, capacity, phone); returns its id.';

-- set_courier_available: marks a courier (un)available, optionally with a new position (a
-- courier back from a route). Raises 22023 (bad input), OD004 (unknown courier).
-- Locks the couriers row.
CREATE OR REPLACE FUNCTION orderdb.set_courier_available(p_warehouse_id integer,
                                                         p_courier_id bigint,
                                                         p_available boolean,
                                                         p_lat double precision DEFAULT NULL,
                                                         p_lon double precision DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    PERFORM orderdb._check_positive(p_courier_id, 'courier_id');
    IF p_available IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'available is required';
    END IF;
    IF p_lat IS NOT NULL OR p_lon IS NOT NULL THEN
        PERFORM orderdb._check_coordinates(p_lat, p_lon);
    END IF;
    UPDATE orderdb.couriers AS c
       SET available = p_available,
           lat = coalesce(p_lat, c.lat),
           lon = coalesce(p_lon, c.lon),
           updated_at = now()
     WHERE c.warehouse_id = p_warehouse_id AND c.courier_id = p_courier_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('courier %s of warehouse %s not found', p_courier_id, p_warehouse_id),
            DETAIL = format('warehouse_id=%s courier_id=%s', p_warehouse_id, p_courier_id);
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb.set_courier_available(integer, bigint, boolean, double precision,
                                                  double precision) IS
    'Marks a courier available or not, optionally moving it.';

-- plan_routes: plans courier routes for a warehouse's ready orders (status packed, a ship_to
-- with lat/lon in options, not yet on a route). Couriers that are available are taken nearest to
-- the warehouse first (ties: courier id); each gets up to its capacity of stops, chosen by
-- nearest neighbour starting at the warehouse (haversine; ties: order id). Each route is stored
-- (orderdb.routes: ordered stops as JSONB, distance warehouse -> stops in km, time at 30 km/h
-- plus 5 minutes per stop) and its courier marked unavailable. Returns the routes planned now.
-- Orders and couriers are read in one statement (one snapshot); orders rows are never locked,
-- so concurrent order updates never wait for a planner.
-- Raises 22023 (warehouse_id not positive), OD004 (the warehouse does not exist, or has no
-- location).
-- Locks the warehouse's planner advisory lock, the assigned couriers rows.
CREATE OR REPLACE FUNCTION orderdb.plan_routes(p_warehouse_id integer)
RETURNS TABLE (route_id bigint, courier_id bigint, stop_count integer, distance_km numeric,
               est_minutes integer, stops jsonb)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_speed_kmh   CONSTANT double precision := 30;
    c_stop_min    CONSTANT integer := 5;
    v_wh_lat      double precision;
    v_wh_lon      double precision;
    v_order_ids   bigint[];
    v_order_lat   double precision[];
    v_order_lon   double precision[];
    v_courier_ids bigint[];
    v_capacity    integer[];
    v_taken       boolean[];
    v_left        integer;
    v_cur_lat     double precision;
    v_cur_lon     double precision;
    v_best        integer;
    v_best_d      double precision;
    v_d           double precision;
    v_total       double precision;
    v_stops       jsonb;
    v_stop_ids    bigint[];
    v_route_id    bigint;
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    PERFORM pg_advisory_xact_lock(hashtextextended('orderdb.routes:' || p_warehouse_id, 0));

    -- one statement, one snapshot: the location, the ready orders and the available couriers
    SELECT l.lat, l.lon, r.ids, r.lats, r.lons, c.ids, c.caps
      INTO v_wh_lat, v_wh_lon, v_order_ids, v_order_lat, v_order_lon, v_courier_ids, v_capacity
      FROM orderdb.warehouse_locations l
      CROSS JOIN LATERAL (
          SELECT array_agg(o.order_id ORDER BY o.order_id) AS ids,
                 array_agg((o.options -> 'ship_to' ->> 'lat')::double precision
                           ORDER BY o.order_id) AS lats,
                 array_agg((o.options -> 'ship_to' ->> 'lon')::double precision
                           ORDER BY o.order_id) AS lons
            FROM orderdb.orders o
           WHERE o.warehouse_id = p_warehouse_id
             AND o.status = 'packed'
             AND jsonb_typeof(o.options -> 'ship_to' -> 'lat') = 'number'
             AND jsonb_typeof(o.options -> 'ship_to' -> 'lon') = 'number'
             AND (o.options -> 'ship_to' ->> 'lat')::double precision BETWEEN -90 AND 90
             AND (o.options -> 'ship_to' ->> 'lon')::double precision BETWEEN -180 AND 180
             AND NOT EXISTS (SELECT 1 FROM orderdb.route_stops rs
                              WHERE rs.warehouse_id = o.warehouse_id
                                AND rs.order_id = o.order_id)) r
      CROSS JOIN LATERAL (
          SELECT array_agg(co.courier_id
                           ORDER BY orderdb._haversine_km(l.lat, l.lon, co.lat, co.lon),
                                    co.courier_id) AS ids,
                 array_agg(co.capacity
                           ORDER BY orderdb._haversine_km(l.lat, l.lon, co.lat, co.lon),
                                    co.courier_id) AS caps
            FROM orderdb.couriers co
           WHERE co.warehouse_id = p_warehouse_id AND co.available) c
     WHERE l.warehouse_id = p_warehouse_id;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_warehouse_id) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'OD004',
                MESSAGE = format('warehouse %s not found', p_warehouse_id),
                DETAIL = format('warehouse_id=%s', p_warehouse_id),
                HINT = 'A warehouse exists once it has received stock (orderdb.receive_stock).';
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('warehouse %s has no location', p_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_warehouse_id),
            HINT = 'Set it with orderdb.set_warehouse_location.';
    END IF;
    IF v_order_ids IS NULL OR v_courier_ids IS NULL THEN
        RETURN;
    END IF;

    v_taken := array_fill(false, ARRAY[cardinality(v_order_ids)]);
    v_left := cardinality(v_order_ids);

    FOR ci IN 1 .. cardinality(v_courier_ids) LOOP
        EXIT WHEN v_left = 0;
        v_cur_lat := v_wh_lat;
        v_cur_lon := v_wh_lon;
        v_total := 0;
        v_stops := '[]'::jsonb;
        v_stop_ids := ARRAY[]::bigint[];
        FOR s IN 1 .. v_capacity[ci] LOOP
            EXIT WHEN v_left = 0;
            v_best := NULL;
            v_best_d := NULL;
            FOR oi IN 1 .. cardinality(v_order_ids) LOOP
                CONTINUE WHEN v_taken[oi];
                v_d := orderdb._haversine_km(v_cur_lat, v_cur_lon, v_order_lat[oi], v_order_lon[oi]);
                IF v_best IS NULL OR v_d < v_best_d THEN
                    v_best := oi;
                    v_best_d := v_d;
                END IF;
            END LOOP;
            v_taken[v_best] := true;
            v_left := v_left - 1;
            v_total := v_total + v_best_d;
            v_cur_lat := v_order_lat[v_best];
            v_cur_lon := v_order_lon[v_best];
            v_stop_ids := v_stop_ids || v_order_ids[v_best];
            v_stops := v_stops || jsonb_build_array(jsonb_build_object(
                           'seq', s, 'order_id', v_order_ids[v_best],
                           'lat', v_order_lat[v_best], 'lon', v_order_lon[v_best],
                           'leg_km', round(v_best_d::numeric, 3)));
        END LOOP;

        INSERT INTO orderdb.routes AS r (warehouse_id, courier_id, stops, stop_count, distance_km,
                                         est_minutes)
        VALUES (p_warehouse_id, v_courier_ids[ci], v_stops, cardinality(v_stop_ids),
                round(v_total::numeric, 3),
                ceil(v_total / c_speed_kmh * 60)::integer + c_stop_min * cardinality(v_stop_ids))
        RETURNING r.route_id, r.courier_id, r.stop_count, r.distance_km, r.est_minutes, r.stops
             INTO route_id, courier_id, stop_count, distance_km, est_minutes, stops;
        v_route_id := route_id;

        INSERT INTO orderdb.route_stops (warehouse_id, order_id, route_id, seq)
        SELECT p_warehouse_id, u.order_id, v_route_id, u.seq::integer
          FROM unnest(v_stop_ids) WITH ORDINALITY AS u(order_id, seq);

        UPDATE orderdb.couriers AS co
           SET available = false, updated_at = now()
         WHERE co.warehouse_id = p_warehouse_id AND co.courier_id = v_courier_ids[ci];

        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb.plan_routes(integer) IS
    'Plans nearest-neighbour courier routes for a warehouse''s packed, unrouted orders (snapshot reads, no order locks).';
