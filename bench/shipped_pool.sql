-- shipped_pool: bench.count shipped orders, made through the API the way production makes them:
-- create_order (1 line) -> confirmed -> dispatched (transition_order) -> PICKED -> PACKED ->
-- SHIPPED (wms_callback; carrier GENERIC, tracking number <bench.prefix><n>, n = 0 ..
-- bench.count - 1) -> bench.events carrier events (record_tracking_event, in_transit, 4 h apart).
-- With 5 events an order has 6 status rows + 5 carrier events (order_timeline.sql).
-- Needs orderdb.wms_callback and orderdb.record_tracking_event. By hand:
--   psql <dsn> -c "SET bench.skus = 10000" -c "SET bench.count = 500" \
--        -c "SET bench.prefix = 'BENCH-L-'" -c "SET bench.events = 5" -f bench/shipped_pool.sql
DO $pool$
DECLARE
    v_count  integer := current_setting('bench.count')::integer;
    v_events integer := current_setting('bench.events')::integer;
    v_skus   integer := current_setting('bench.skus')::integer;
    v_prefix text := current_setting('bench.prefix');
    v_id     bigint;
    v_track  text;
BEGIN
    FOR n IN 0 .. v_count - 1 LOOP
        v_track := v_prefix || n;
        SELECT c.order_id INTO v_id
          FROM orderdb.create_order(1 + n, 1, jsonb_build_array(jsonb_build_object(
                   'sku', 'SKU-' || (100001 + n % v_skus), 'quantity', 1, 'unit_price', 9.90)),
                   NULL, 'bench') c;
        PERFORM orderdb.transition_order(v_id, 'confirmed', 1, 'bench');
        PERFORM orderdb.transition_order(v_id, 'dispatched', 2, 'bench');
        PERFORM orderdb.wms_callback('bench-pick-' || v_track, v_id, 'PICKED',
            jsonb_build_object('occurred_at', now() - interval '27 hours'));
        PERFORM orderdb.wms_callback('bench-pack-' || v_track, v_id, 'PACKED',
            jsonb_build_object('occurred_at', now() - interval '26 hours'));
        PERFORM orderdb.wms_callback('bench-ship-' || v_track, v_id, 'SHIPPED',
            jsonb_build_object('occurred_at', now() - interval '25 hours',
                               'carrier', 'GENERIC', 'tracking_number', v_track));
        FOR e IN 1 .. v_events LOOP
            PERFORM orderdb.record_tracking_event(
                'GENERIC', v_track, now() - interval '24 hours' + (e - 1) * interval '4 hours',
                'in_transit', 'Hub ' || e, 'scanned at hub ' || e,
                'bench-pool-' || v_track || '-' || e);
        END LOOP;
    END LOOP;
END;
$pool$;
