-- Events across shards, shard side (docs/scaling.md "Events"): what the proxy's read_events,
-- ack_events, claim_events, ack_claimed and release_claimed call on every shard. Each wraps the
-- shard's own function and returns an error as data (err_* columns), as the generated wrappers
-- of orderdb.cluster.routing do: a remote error would make PL/Proxy drop its connection.
-- EXECUTE is granted to orderdb_app, of which the proxy's shard role is a member; only roles
-- with USAGE on schema orderdb_shard (the proxy's role) reach them.

-- cluster_read_events: orderdb.read_events(p_consumer, p_limit) with each event's position in
-- this shard's read order (ordinal, from 1), so that the proxy merges the shards' streams without
-- reordering any of them. Raises nothing (errors as data). Locks what read_events locks.
CREATE OR REPLACE FUNCTION orderdb_shard.cluster_read_events(p_consumer text, p_limit integer)
RETURNS TABLE (ordinal integer, event_id bigint, event_type text, order_id bigint,
               payload jsonb, created_at timestamptz, err_sqlstate text, err_message text,
               err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    RETURN QUERY
    SELECT r.n::integer, r.event_id, r.event_type, r.order_id, r.payload, r.created_at,
           NULL::text, NULL::text, NULL::text, NULL::text
      FROM orderdb.read_events(p_consumer, p_limit)
           WITH ORDINALITY AS r(event_id, event_type, order_id, payload, created_at, n)
     ORDER BY r.n;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT NULL::integer, NULL::bigint, NULL::text, NULL::bigint, NULL::jsonb,
                        NULL::timestamptz, v_sqlstate, v_message, nullif(v_detail, ''),
                        nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.cluster_read_events(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.cluster_read_events(text, integer) TO orderdb_app;

-- cluster_ack_events: acknowledges, for p_consumer, the one id of p_event_ids that this shard
-- handed out (id - 1 modulo the id stride is this shard; the proxy passes at most one per shard:
-- the last event of this shard it returned before the acknowledged one), with
-- orderdb.ack_events. Returns one row: the id acknowledged (NULL: none of this shard) and the
-- error as data. Locks what ack_events locks.
CREATE OR REPLACE FUNCTION orderdb_shard.cluster_ack_events(p_consumer text, p_event_ids bigint[])
RETURNS TABLE (acked_event_id bigint, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id bigint;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    SELECT max(e.id) INTO v_id
      FROM unnest(p_event_ids) AS e(id), orderdb_shard.shard_identity i
     WHERE (e.id - 1) % i.id_stride = i.shard;
    IF v_id IS NOT NULL THEN
        PERFORM orderdb.ack_events(p_consumer, v_id);
    END IF;
    RETURN QUERY SELECT v_id, NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT NULL::bigint, v_sqlstate, v_message, nullif(v_detail, ''),
                        nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.cluster_ack_events(text, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.cluster_ack_events(text, bigint[]) TO orderdb_app;

-- cluster_check_ack: for an event id the proxy has no record of returning to p_consumer (it
-- was acknowledged already, or never returned): answers as orderdb.ack_events would without
-- moving anything: no error when the event is at or before the consumer's acknowledged position
-- on this shard; else the error ack_events raises (22023 malformed consumer or id, or an id not
-- returned to this consumer; OD004 unknown consumer). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.cluster_check_ack(p_consumer text, p_event_id bigint)
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_consumer orderdb.event_consumers%ROWTYPE;
    v_tx_id xid8;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    PERFORM orderdb._check_text(p_consumer, 'consumer', 255, true);
    PERFORM orderdb._check_positive(p_event_id, 'event_id');
    SELECT c.* INTO v_consumer FROM orderdb.event_consumers c WHERE c.consumer = p_consumer;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('consumer %s not found', p_consumer),
            DETAIL = format('consumer=%s', p_consumer),
            HINT = 'A consumer is created by its first orderdb.read_events call.';
    END IF;
    IF p_event_id <> v_consumer.acked_event_id THEN
        SELECT o.tx_id INTO v_tx_id FROM orderdb.outbox o WHERE o.event_id = p_event_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('event_id %s was not returned to consumer %s: no such event',
                                 p_event_id, p_consumer),
                DETAIL = format('consumer=%s event_id=%s acked_event_id=%s', p_consumer,
                                p_event_id, v_consumer.acked_event_id),
                HINT = 'Acknowledge an event id that read_events returned (events are purged '
                       'only after every consumer acknowledged them and they are older than '
                       'the retention).';
        END IF;
        IF (v_tx_id, p_event_id) > (v_consumer.acked_tx_id, v_consumer.acked_event_id) THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('event_id %s was not returned to consumer %s', p_event_id,
                                 p_consumer),
                DETAIL = format('consumer=%s event_id=%s', p_consumer, p_event_id),
                HINT = 'Acknowledge only event ids that read_events returned to this consumer.';
        END IF;
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN QUERY SELECT v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.cluster_check_ack(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.cluster_check_ack(text, bigint) TO orderdb_app;

-- cluster_claim_events: orderdb.claim_events on this shard, errors as data. Locks what
-- claim_events locks.
CREATE OR REPLACE FUNCTION orderdb_shard.cluster_claim_events(p_group text, p_member text,
                                                              p_limit integer,
                                                              p_lease_seconds integer)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    RETURN QUERY
    SELECT c.event_id, c.event_type, c.order_id, c.payload, c.created_at,
           NULL::text, NULL::text, NULL::text, NULL::text
      FROM orderdb.claim_events(p_group, p_member, p_limit, p_lease_seconds) c;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bigint, NULL::jsonb, NULL::timestamptz,
                        v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.cluster_claim_events(text, text, integer, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.cluster_claim_events(text, text, integer, integer)
    TO orderdb_app;

-- cluster_settle_claimed: orderdb.ack_claimed (p_release false) or orderdb.release_claimed
-- (p_release true) of those of p_event_ids this shard handed out; returns how many, and the
-- error as data. Locks what those lock.
CREATE OR REPLACE FUNCTION orderdb_shard.cluster_settle_claimed(p_group text, p_member text,
                                                                p_event_ids bigint[],
                                                                p_release boolean)
RETURNS TABLE (settled integer, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ids bigint[];
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    -- the checks of one database first (NULL or too many ids), on the whole array
    IF p_event_ids IS NULL OR cardinality(p_event_ids) > 10000 THEN
        v_ids := p_event_ids;
    ELSE
        SELECT coalesce(array_agg(e.id), '{}') INTO v_ids
          FROM unnest(p_event_ids) AS e(id), orderdb_shard.shard_identity i
         WHERE (e.id - 1) % i.id_stride = i.shard;
    END IF;
    IF p_release THEN
        RETURN QUERY SELECT orderdb.release_claimed(p_group, p_member, v_ids),
                            NULL::text, NULL::text, NULL::text, NULL::text;
    ELSE
        RETURN QUERY SELECT orderdb.ack_claimed(p_group, p_member, v_ids),
                            NULL::text, NULL::text, NULL::text, NULL::text;
    END IF;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT NULL::integer, v_sqlstate, v_message, nullif(v_detail, ''),
                        nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.cluster_settle_claimed(text, text, bigint[], boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.cluster_settle_claimed(text, text, bigint[], boolean)
    TO orderdb_app;

-- cluster_drop_consumer: orderdb.drop_consumer on this shard (whether the consumer existed
-- here), errors as data. Locks the consumer's row.
CREATE OR REPLACE FUNCTION orderdb_shard.cluster_drop_consumer(p_consumer text)
RETURNS TABLE (dropped boolean, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    RETURN QUERY SELECT orderdb.drop_consumer(p_consumer), NULL::text, NULL::text, NULL::text,
                        NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN QUERY SELECT NULL::boolean, v_sqlstate, v_message, nullif(v_detail, ''),
                        nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.cluster_drop_consumer(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.cluster_drop_consumer(text) TO orderdb_app;
