-- tracking_events_batch: 100 carrier events in one call (orderdb.record_tracking_events, a JSON
-- array): the same events tracking_event.sql records one call each — carrier GENERIC, status
-- in_transit, a new event id each, on the client's own parcels (BENCH-T-<n>,
-- n = :client_id + :nclients * (j % :m)), 5 events per parcel per batch, a microsecond apart (event_time: a timestamptz in
-- jsonb is ISO 8601 with an offset).
-- The array is built by the server here (pgbench has no loops); a carrier integration sends it
-- as one JSON parameter. Compared in events/s (100 x tps) with tracking_event.sql.
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D k=0 -D m=20 -D nclients=16 -D run=x1 \
--           -l --log-prefix=tracking_events_batch -f bench/tracking_events_batch.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
SELECT count(*) FROM orderdb.record_tracking_events((
    SELECT jsonb_agg(jsonb_build_object(
               'carrier', 'GENERIC',
               'tracking_number', 'BENCH-T-' || (CAST(:client_id AS integer)
                                              + CAST(:nclients AS integer) * (g % CAST(:m AS integer))),
               'event_time', now() + g * interval '1 microsecond',
               'carrier_status', 'in_transit',
               'location', 'Hub ' || (1 + g % 50),
               'description', 'arrived at sorting centre',
               'event_id', concat_ws('-', 'bench', CAST(:run AS text), CAST(:client_id AS text),
                                  CAST(:k AS text), g))
           ORDER BY g)
      FROM generate_series(1, 100) AS g));
\set k :k + 1
