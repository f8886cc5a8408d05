-- tracking_event: one carrier event (orderdb.record_tracking_event) for a shipped order's
-- parcel, carrier GENERIC, status in_transit, a new event id each time.
-- Each client uses its own parcels (BENCH-T-<n>, n = :client_id + :nclients * (k % :m), shipped
-- by `orderdb bench` through wms_callback), so clients do not queue on one shipment.
-- Run by hand (-D run=<any text> makes the event ids new for this run):
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D k=0 -D m=<m> -D nclients=16 -D run=x1 \
--           -l --log-prefix=tracking_event -f bench/tracking_event.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
-- Compared with: pgbench -M prepared -c 16 -j 2 -T 30 -b simple-update <pgbench database>
\set n :client_id + :nclients * (:k % :m)
\set loc random(1, 50)
SELECT tracking_event_id FROM orderdb.record_tracking_event(
    'GENERIC', 'BENCH-T-' || :n, now(), 'in_transit', 'Hub ' || :loc,
    'arrived at sorting centre', 'bench-' || :run || '-' || :client_id || '-' || :k);
\set k :k + 1
