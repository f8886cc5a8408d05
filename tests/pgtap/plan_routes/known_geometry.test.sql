-- plan_routes on known geometry (the equator, 1/100 degree of longitude = 1.112 km): couriers
-- nearest to the warehouse first, stops by nearest neighbour within capacity, orders routed once,
-- only packed orders with coordinates.
BEGIN;
SELECT plan(9);

SELECT FROM orderdb.receive_stock(430, 'RT', 100);
SELECT FROM orderdb.set_warehouse_location(430, 0, 0);
SELECT orderdb.add_courier(430, 'far', 0.5, 0.5, 5) AS c_far \gset
SELECT orderdb.add_courier(430, 'near', 0, 0.001, 3) AS c_near \gset
SELECT FROM orderdb.add_courier(430, 'off duty', 0, 0, 9, false);

CREATE FUNCTION pg_temp.packed_at(p_lon double precision, p_stage text DEFAULT 'PACKED') RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE v bigint;
BEGIN
    SELECT order_id INTO v FROM orderdb.create_order(3, 430, '[{"sku": "RT", "quantity": 1}]', NULL, NULL,
                                                     jsonb_build_object('ship_to', jsonb_build_object('line1', 'Dock 1', 'lat', 0, 'lon', p_lon)));
    PERFORM orderdb.transition_order(v, 'confirmed', 1);
    PERFORM orderdb.wms_callback('rt-' || v, v, p_stage);
    RETURN v;
END $f$;
SELECT pg_temp.packed_at(0.03) AS o3 \gset
SELECT pg_temp.packed_at(0.01) AS o1 \gset
SELECT pg_temp.packed_at(-0.05) AS ow \gset
SELECT pg_temp.packed_at(0.02) AS o2 \gset
SELECT pg_temp.packed_at(0.04, 'PICKED') AS op \gset
SELECT order_id AS nocoord FROM orderdb.create_order(3, 430, '[{"sku": "RT", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:nocoord, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('rt-nc', :nocoord, 'PACKED');

SELECT plan_routes AS r FROM (SELECT jsonb_agg(to_jsonb(p) ORDER BY p.route_id) AS plan_routes FROM orderdb.plan_routes(430) p) x \gset

SELECT is(jsonb_array_length(:'r'::jsonb), 2, 'two routes');
SELECT is((:'r'::jsonb -> 0 ->> 'courier_id')::bigint, :c_near::bigint, 'the courier nearest the warehouse goes first');
SELECT is((SELECT array_agg((s ->> 'order_id')::bigint ORDER BY (s ->> 'seq')::int) FROM jsonb_array_elements(:'r'::jsonb -> 0 -> 'stops') s),
          ARRAY[:o1, :o2, :o3]::bigint[], 'nearest neighbour, capacity 3: 0.01, 0.02, 0.03');
SELECT is(round((:'r'::jsonb -> 0 ->> 'distance_km')::numeric, 1), 3.3, '3 x 1.112 km');
SELECT is((:'r'::jsonb -> 0 ->> 'est_minutes')::int, 22, '3.336 km at 30 km/h = 7 min + 3 stops x 5 min');
SELECT is((SELECT array_agg((s ->> 'order_id')::bigint) FROM jsonb_array_elements(:'r'::jsonb -> 1 -> 'stops') s),
          ARRAY[:ow]::bigint[], 'the next courier takes the rest');
SELECT is((SELECT count(*)::int FROM orderdb.route_stops WHERE order_id IN (:op, :nocoord)), 0,
          'not packed or no coordinates: not routed');
SELECT is((SELECT count(*)::int FROM orderdb.plan_routes(430)), 0, 'planning again routes nothing twice');
SELECT throws_ok($$ SELECT * FROM orderdb.plan_routes(431) $$, 'OD004', NULL, 'a warehouse without location');

SELECT * FROM finish();
ROLLBACK;
