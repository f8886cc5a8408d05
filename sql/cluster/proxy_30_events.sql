-- Events across shards, proxy side (docs/scaling.md "Events"). Every shard has its own outbox,
-- and a consumer has a position on each shard (the shard's event_consumers row of its name).
-- read_events on the proxy reads every shard (from each shard's acknowledged position), merges
-- the streams without reordering any of them, and records what it returned in
-- orderdb_cluster.event_reads: the consumer's *read order* across the cluster, fixed once an
-- event is returned (a read without an acknowledgement returns the same events again, new ones
-- after them). ack_events looks the event up there and acknowledges, on each shard, the last
-- event of that shard returned before it (in that read order): "it and every event returned
-- before it", as on one database. Consumer groups need no such record: their leases are per
-- event and an order's events live on one shard.

CREATE TABLE IF NOT EXISTS orderdb_cluster.event_consumers (
    consumer   text PRIMARY KEY CHECK (length(consumer) BETWEEN 1 AND 255),
    next_seq   bigint NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orderdb_cluster.event_consumers IS
    'Event consumers that read through the proxy: the next position number of their read order '
    '(orderdb_cluster.event_reads). Their positions live on the shards.';

CREATE TABLE IF NOT EXISTS orderdb_cluster.event_reads (
    consumer text NOT NULL REFERENCES orderdb_cluster.event_consumers (consumer)
                          ON DELETE CASCADE,
    seq      bigint NOT NULL,
    event_id bigint NOT NULL,
    shard    integer NOT NULL,
    PRIMARY KEY (consumer, seq),
    UNIQUE (consumer, event_id)
);
COMMENT ON TABLE orderdb_cluster.event_reads IS
    'Events read_events returned to a consumer through the proxy and not acknowledged yet, in '
    'the consumer''s read order (seq); per shard they are the head of what the shard has not '
    'seen acknowledged.';
REVOKE ALL ON orderdb_cluster.event_consumers, orderdb_cluster.event_reads FROM PUBLIC;

DO $do$
BEGIN
    IF to_regtype('orderdb_cluster.shard_event') IS NULL THEN
        CREATE TYPE orderdb_cluster.shard_event AS (
            shard integer, ordinal integer, event_id bigint, event_type text, order_id bigint,
            payload jsonb, created_at timestamptz, err_sqlstate text, err_message text,
            err_detail text, err_hint text);
    END IF;
END;
$do$;
COMMENT ON TYPE orderdb_cluster.shard_event IS
    'One event as a shard''s cluster_read_events returns it, with its shard.';

-- the PL/Proxy calls (sql/cluster/shard_30_events.sql)
CREATE OR REPLACE FUNCTION orderdb_cluster.cluster_read_events(p_consumer text, p_limit integer)
RETURNS TABLE (ordinal integer, event_id bigint, event_type text, order_id bigint,
               payload jsonb, created_at timestamptz, err_sqlstate text, err_message text,
               err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.cluster_read_events(p_consumer, p_limit);
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.cluster_ack_events(p_consumer text,
                                                              p_event_ids bigint[])
RETURNS TABLE (acked_event_id bigint, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.cluster_ack_events(p_consumer, p_event_ids);
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.cluster_check_ack(p_shard integer, p_consumer text,
                                                             p_event_id bigint)
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.cluster_check_ack(p_consumer, p_event_id);
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.cluster_claim_events(p_shard integer, p_group text,
                                                                p_member text,
                                                                p_limit integer,
                                                                p_lease_seconds integer)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.cluster_claim_events(p_group, p_member, p_limit,
                                                     p_lease_seconds);
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.cluster_settle_claimed(p_group text, p_member text,
                                                                  p_event_ids bigint[],
                                                                  p_release boolean)
RETURNS TABLE (settled integer, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.cluster_settle_claimed(p_group, p_member, p_event_ids,
                                                       p_release);
$fn$;

-- _lock_event_consumer: the transaction advisory lock of one consumer on the proxy (its reads
-- and acks take turns). Locks that.
CREATE OR REPLACE FUNCTION orderdb_cluster._lock_event_consumer(p_consumer text)
RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('orderdb_cluster.event_consumer'),
                                            pg_catalog.hashtext(coalesce(p_consumer, '')))
$fn$;

-- read_events (API.md) on the proxy: the next p_limit events of p_consumer over every shard.
-- First the events returned before and not acknowledged (in the order they were returned), then
-- new ones: each shard's next events in its own read order, merged by the newest created_at so
-- far of each shard's run (ties: shard, then the shard's order), so that no shard's order
-- changes; recorded in orderdb_cluster.event_reads. A shard's position that moved past
-- recorded events (an acknowledgement whose proxy transaction failed after the shards
-- committed) drops them from the record. Raises what the shards raise (22023: consumer or
-- limit). Locks the consumer (orderdb_cluster._lock_event_consumer: reads and acks of one
-- consumer take turns), and what read_events locks on each shard.
CREATE OR REPLACE FUNCTION orderdb.read_events(p_consumer text, p_limit integer DEFAULT 100)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_got orderdb_cluster.shard_event[];
    v_err orderdb_cluster.shard_event;
    v_next bigint;
    v_recorded integer;
    v_added integer;
BEGIN
    IF length(p_consumer) BETWEEN 1 AND 255 THEN
        -- reads and acks of one consumer take turns; an advisory lock, so that an idle poll
        -- writes nothing on the proxy
        PERFORM orderdb_cluster._lock_event_consumer(p_consumer);
        IF NOT EXISTS (SELECT 1 FROM orderdb_cluster.event_consumers c
                        WHERE c.consumer = p_consumer) THEN
            INSERT INTO orderdb_cluster.event_consumers AS c (consumer) VALUES (p_consumer)
            ON CONFLICT (consumer) DO NOTHING;
        END IF;
        SELECT c.next_seq INTO v_next
          FROM orderdb_cluster.event_consumers c
         WHERE c.consumer = p_consumer;
    END IF;
    SELECT array_agg(ROW(orderdb_cluster.order_shard(g.event_id), g.ordinal, g.event_id,
                         g.event_type, g.order_id, g.payload, g.created_at, g.err_sqlstate,
                         g.err_message, g.err_detail, g.err_hint)::orderdb_cluster.shard_event)
      INTO v_got
      FROM orderdb_cluster.cluster_read_events(p_consumer, p_limit) g;
    SELECT e.* INTO v_err FROM unnest(v_got) e WHERE e.err_sqlstate IS NOT NULL
     ORDER BY e.err_sqlstate, e.err_message LIMIT 1;
    IF FOUND THEN
        PERFORM orderdb_cluster._raise(v_err.err_sqlstate, v_err.err_message, v_err.err_detail,
                                       v_err.err_hint);
    END IF;

    -- recorded events a shard no longer returns first were acknowledged there
    DELETE FROM orderdb_cluster.event_reads r
     WHERE r.consumer = p_consumer
       AND NOT EXISTS (SELECT 1
                         FROM unnest(v_got) g
                         JOIN orderdb_cluster.event_reads f
                           ON f.consumer = p_consumer AND f.event_id = g.event_id
                        WHERE g.ordinal = 1 AND g.shard = r.shard AND f.seq <= r.seq);
    SELECT count(*) INTO v_recorded FROM orderdb_cluster.event_reads r
     WHERE r.consumer = p_consumer;

    IF v_recorded < p_limit THEN
        WITH fresh AS (
            SELECT g.shard, g.ordinal, g.event_id,
                   max(g.created_at) OVER (PARTITION BY g.shard ORDER BY g.ordinal) AS run_max
              FROM unnest(v_got) g
             WHERE NOT EXISTS (SELECT 1 FROM orderdb_cluster.event_reads r
                                WHERE r.consumer = p_consumer AND r.event_id = g.event_id)
        ), ranked AS (
            SELECT f.*, row_number() OVER (ORDER BY f.run_max, f.shard, f.ordinal) AS k
              FROM fresh f
        )
        INSERT INTO orderdb_cluster.event_reads (consumer, seq, event_id, shard)
        SELECT p_consumer, v_next + k.k - 1, k.event_id, k.shard
          FROM ranked k
         WHERE k.k <= p_limit - v_recorded;
        GET DIAGNOSTICS v_added = ROW_COUNT;
        UPDATE orderdb_cluster.event_consumers c SET next_seq = v_next + v_added
         WHERE c.consumer = p_consumer;
    END IF;

    RETURN QUERY
    SELECT g.event_id, g.event_type, g.order_id, g.payload, g.created_at
      FROM (SELECT r.seq, r.event_id FROM orderdb_cluster.event_reads r
             WHERE r.consumer = p_consumer ORDER BY r.seq LIMIT p_limit) r
      JOIN unnest(v_got) g ON g.event_id = r.event_id
     ORDER BY r.seq;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb.read_events(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb.read_events(text, integer) TO orderdb_app;

-- ack_events (API.md) on the proxy: acknowledges p_event_id and every event returned to
-- p_consumer before it: on each shard, the last of that shard's events returned before it
-- (one call to every shard, in parallel; each shard's acknowledgement commits there, and
-- repeating the call after a failure finishes what is left). An id the proxy has no record of
-- is answered by its shard as one database answers (acknowledged already: nothing happens;
-- else 22023 / OD004). Raises 22023 (consumer malformed, event id NULL, not positive or not
-- returned to this consumer), OD004 (unknown consumer). Locks the consumer
-- (orderdb_cluster._lock_event_consumer) and what ack_events locks on the shards.
CREATE OR REPLACE FUNCTION orderdb.ack_events(p_consumer text, p_event_id bigint)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_seq bigint;
    v_targets bigint[];
    r record;
BEGIN
    PERFORM orderdb_cluster._lock_event_consumer(p_consumer);
    SELECT e.seq INTO v_seq FROM orderdb_cluster.event_reads e
     WHERE e.consumer = p_consumer AND e.event_id = p_event_id;
    IF v_seq IS NULL THEN
        FOR r IN SELECT * FROM orderdb_cluster.cluster_check_ack(
                     orderdb_cluster.order_shard(p_event_id), p_consumer, p_event_id) LOOP
            IF r.err_sqlstate IS NOT NULL THEN
                PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                               r.err_hint);
            END IF;
        END LOOP;
        RETURN;
    END IF;
    SELECT array_agg(t.event_id) INTO v_targets
      FROM (SELECT DISTINCT ON (e.shard) e.event_id
              FROM orderdb_cluster.event_reads e
             WHERE e.consumer = p_consumer AND e.seq <= v_seq
             ORDER BY e.shard, e.seq DESC) t;
    FOR r IN SELECT * FROM orderdb_cluster.cluster_ack_events(p_consumer, v_targets) x
              ORDER BY x.err_sqlstate NULLS LAST LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
    END LOOP;
    DELETE FROM orderdb_cluster.event_reads e WHERE e.consumer = p_consumer AND e.seq <= v_seq;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb.ack_events(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb.ack_events(text, bigint) TO orderdb_app;

-- claim_events (API.md) on the proxy: leases up to p_limit events of p_group to p_member, from
-- the shards one after the other (starting at a random shard, so that no shard waits behind a
-- busy one) until p_limit are leased; each shard's in its read order. An order's events are on
-- one shard, so "in read order, never to two members at once" holds as on one database.
-- Raises what the shards raise (22023). Locks what claim_events locks on each shard asked.
CREATE OR REPLACE FUNCTION orderdb.claim_events(p_group text, p_member text,
                                                p_limit integer DEFAULT 100,
                                                p_lease_seconds integer DEFAULT 30)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_shards integer;
    v_start integer;
    v_left integer := p_limit;
    r record;
BEGIN
    SELECT count(*) INTO v_shards FROM orderdb_cluster.shards;
    v_start := floor(random() * v_shards)::integer;
    FOR i IN 0 .. v_shards - 1 LOOP
        FOR r IN SELECT * FROM orderdb_cluster.cluster_claim_events((v_start + i) % v_shards,
                                                                    p_group, p_member, v_left,
                                                                    p_lease_seconds) LOOP
            IF r.err_sqlstate IS NOT NULL THEN
                PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                               r.err_hint);
            END IF;
            event_id := r.event_id;
            event_type := r.event_type;
            order_id := r.order_id;
            payload := r.payload;
            created_at := r.created_at;
            v_left := v_left - 1;
            RETURN NEXT;
        END LOOP;
        EXIT WHEN v_left <= 0;
    END LOOP;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb.claim_events(text, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb.claim_events(text, text, integer, integer) TO orderdb_app;

-- _settle_claimed: ack_claimed / release_claimed on every shard (each settles the ids it handed
-- out); the sum. Raises what the shards raise (22023). Locks what those lock.
CREATE OR REPLACE FUNCTION orderdb_cluster._settle_claimed(p_group text, p_member text,
                                                           p_event_ids bigint[],
                                                           p_release boolean)
RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_total integer := 0;
    r record;
BEGIN
    FOR r IN SELECT * FROM orderdb_cluster.cluster_settle_claimed(p_group, p_member, p_event_ids,
                                                                  p_release) x
              ORDER BY x.err_sqlstate NULLS LAST LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        v_total := v_total + r.settled;
    END LOOP;
    RETURN v_total;
END;
$fn$;

-- ack_claimed (API.md) on the proxy: acknowledges those of p_event_ids leased to p_member, on
-- the shards that handed them out; returns how many. Raises 22023 as on one database.
CREATE OR REPLACE FUNCTION orderdb.ack_claimed(p_group text, p_member text, p_event_ids bigint[])
RETURNS integer
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT orderdb_cluster._settle_claimed(p_group, p_member, p_event_ids, false)
$fn$;
REVOKE ALL ON FUNCTION orderdb.ack_claimed(text, text, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb.ack_claimed(text, text, bigint[]) TO orderdb_app;

-- release_claimed on the proxy: as ack_claimed, giving the leases back.
CREATE OR REPLACE FUNCTION orderdb.release_claimed(p_group text, p_member text,
                                                   p_event_ids bigint[])
RETURNS integer
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT orderdb_cluster._settle_claimed(p_group, p_member, p_event_ids, true)
$fn$;
REVOKE ALL ON FUNCTION orderdb.release_claimed(text, text, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb.release_claimed(text, text, bigint[]) TO orderdb_app;

CREATE OR REPLACE FUNCTION orderdb_cluster.cluster_drop_consumer(p_consumer text)
RETURNS TABLE (dropped boolean, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.cluster_drop_consumer(p_consumer);
$fn$;

-- drop_consumer on the proxy (as on one database, for the owner: not granted to the API
-- roles): deletes the consumer's position on every shard (it no longer holds back their
-- purge_events) and its record on the proxy; returns whether it existed anywhere. Raises 22023
-- for a malformed name. Locks the consumer (orderdb_cluster._lock_event_consumer) and its row
-- on each shard.
CREATE OR REPLACE FUNCTION orderdb.drop_consumer(p_consumer text)
RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_found boolean := false;
    r record;
BEGIN
    PERFORM orderdb_cluster._lock_event_consumer(p_consumer);
    FOR r IN SELECT * FROM orderdb_cluster.cluster_drop_consumer(p_consumer) x
              ORDER BY x.err_sqlstate NULLS LAST LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        v_found := v_found OR r.dropped;
    END LOOP;
    DELETE FROM orderdb_cluster.event_consumers c WHERE c.consumer = p_consumer;
    RETURN v_found OR FOUND;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb.drop_consumer(text) FROM PUBLIC;

REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb_cluster FROM PUBLIC;
