-- Events through the proxy (docs/scaling.md "Events"): read_events and ack_events keep their
-- contract for a consumer across shards. Each shard keeps the consumer's position in its own
-- outbox; read_events merges the shards' next events into one batch (each shard's in its own
-- read order), and remembers the batch so that ack_events acknowledges, on every shard, what
-- the batch returned up to the acknowledged event.

CREATE TABLE IF NOT EXISTS orderdb_cluster.event_batches (
    consumer text NOT NULL,
    ordinal  integer NOT NULL,
    shard    integer NOT NULL,
    event_id bigint NOT NULL,
    PRIMARY KEY (consumer, ordinal)
);
COMMENT ON TABLE orderdb_cluster.event_batches IS
    'The last batch read_events returned to each consumer through the proxy, in read order.';
CREATE INDEX IF NOT EXISTS event_batches_event ON orderdb_cluster.event_batches (consumer, event_id);
REVOKE ALL ON orderdb_cluster.event_batches FROM PUBLIC;

-- read_events: as on one database (docs/api.md): the next committed events after the
-- consumer's acknowledged positions, at most p_limit, never skipping one. Every shard returns
-- its next p_limit (orderdb_shard.read_events_in_order); the batches are merged by creation
-- time (each shard's events stay in the shard's read order: the merge key is the running
-- maximum of created_at along it) and cut at p_limit, so each shard contributes a prefix of
-- its batch. The batch is remembered for ack_events. Raises what the shards raise (22023).
-- Locks: the consumer's rows of event_batches.
CREATE OR REPLACE FUNCTION orderdb.read_events(p_consumer text, p_limit integer DEFAULT 100)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
    v_ordinal integer := 0;
BEGIN
    DELETE FROM orderdb_cluster.event_batches b WHERE b.consumer = p_consumer;
    FOR r IN
        SELECT m.*
          FROM (SELECT x.*,
                       max(x.created_at) OVER (PARTITION BY x.shard ORDER BY x.ordinal)
                           AS merge_at
                  FROM orderdb_cluster.read_events_in_order(p_consumer, p_limit) x) m
         -- a shard's error first (every shard refuses bad arguments alike)
         ORDER BY (m.err_sqlstate IS NULL), m.merge_at, m.shard, m.ordinal
         LIMIT greatest(p_limit, 1)
    LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        v_ordinal := v_ordinal + 1;
        INSERT INTO orderdb_cluster.event_batches (consumer, ordinal, shard, event_id)
        VALUES (p_consumer, v_ordinal, r.shard, r.event_id);
        event_id := r.event_id;
        event_type := r.event_type;
        order_id := r.order_id;
        payload := r.payload;
        created_at := r.created_at;
        RETURN NEXT;
    END LOOP;
END;
$fn$;

-- ack_events: as on one database: acknowledges p_event_id and every event read_events returned
-- before it. An event of the consumer's last batch: on every shard, the last event of that
-- shard returned up to it is acknowledged there; any other event (a retried ack, an older
-- batch): on its own shard, which answers as one database does. Raises what the shards raise
-- (22023, OD004). Locks: the consumer's rows of event_batches; each shard's consumer row.
CREATE OR REPLACE FUNCTION orderdb.ack_events(p_consumer text, p_event_id bigint)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_upto integer;
    v_ack record;
    r record;
BEGIN
    SELECT b.ordinal INTO v_upto FROM orderdb_cluster.event_batches b
     WHERE b.consumer = p_consumer AND b.event_id = p_event_id;
    FOR v_ack IN
        SELECT b.shard, (array_agg(b.event_id ORDER BY b.ordinal DESC))[1] AS event_id
          FROM orderdb_cluster.event_batches b
         WHERE v_upto IS NOT NULL AND b.consumer = p_consumer AND b.ordinal <= v_upto
         GROUP BY b.shard
        UNION ALL
        SELECT orderdb_cluster.order_shard(p_event_id), p_event_id
         WHERE v_upto IS NULL
         ORDER BY 1
    LOOP
        FOR r IN SELECT * FROM orderdb_cluster.ack_events(v_ack.shard, p_consumer, v_ack.event_id)
        LOOP
            IF r.err_sqlstate IS NOT NULL THEN
                PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                               r.err_hint);
            END IF;
        END LOOP;
    END LOOP;
    IF v_upto IS NOT NULL THEN
        DELETE FROM orderdb_cluster.event_batches b
         WHERE b.consumer = p_consumer AND b.ordinal <= v_upto;
    END IF;
END;
$fn$;
