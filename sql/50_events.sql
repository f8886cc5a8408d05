-- Events: reading and acknowledging the transactional outbox, retention, webhook queue plumbing
-- and the relay_lag ops view.
--
-- Read order and the horizon. Identity values are taken at INSERT, not at commit, so a cursor on
-- event_id alone skips events whose transaction commits after a higher id has been read. Every
-- outbox row records its writer's transaction id (tx_id, 0001). Readers walk the outbox in
-- (tx_id, event_id) order and stop below the *horizon*: the oldest transaction id still running
-- in this database (transactions of other databases cannot write this outbox and are left out
-- when pg_stat_get_activity places them there; everything else counts), else the snapshot's xmax,
-- or the reader's own transaction id if it has one and it is older. Every transaction below the
-- horizon that could write this outbox has finished (its events are visible or never will be),
-- and every later write carries a larger tx_id, so nothing can ever appear behind a consumer's
-- position. The price: a transaction of this database that holds a transaction id for a long time
-- (or any prepared transaction) holds back delivery of everything newer; orderdb_ops.relay_lag
-- shows it.
--
-- Positions. A consumer's position is the (tx_id, event_id) of the last event it acknowledged;
-- event_consumers.read_* is the furthest position read_events has returned to it, which is what
-- ack_events accepts up to.

-- _event_horizon: the exclusive upper bound on tx_id below which outbox rows are final.
-- The oldest transaction id still running in *this* database (from the current snapshot's list of
-- running transactions, leaving out those that pg_stat_get_activity positively places in another
-- database: they cannot write this outbox), else the snapshot's xmax; and never above the
-- caller's own transaction id if it has one. Transactions we cannot place (prepared
-- transactions, background workers, rows we may not see) count as ours: the bound errs on the
-- safe side. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._event_horizon()
RETURNS xid8
LANGUAGE sql
VOLATILE
AS $$
    WITH snap AS MATERIALIZED (
        SELECT pg_catalog.pg_current_snapshot() AS s
    ), elsewhere AS MATERIALIZED (
        SELECT a.backend_xid
          FROM pg_catalog.pg_stat_get_activity(NULL::integer) a
         WHERE a.backend_xid IS NOT NULL
           AND a.datid IS NOT NULL
           AND a.datid <> (SELECT d.oid FROM pg_catalog.pg_database d
                            WHERE d.datname = pg_catalog.current_database())
    ), running AS (
        SELECT min(x.x) AS oldest
          FROM snap, pg_catalog.pg_snapshot_xip(snap.s) AS x(x)
         WHERE NOT EXISTS (SELECT 1 FROM elsewhere e WHERE e.backend_xid = pg_catalog.xid(x.x))
    )
    SELECT LEAST(coalesce(r.oldest, pg_catalog.pg_snapshot_xmax(snap.s)),
                 pg_catalog.pg_current_xact_id_if_assigned())
      FROM snap, running r;
$$;
COMMENT ON FUNCTION orderdb._event_horizon() IS
    'Exclusive upper bound on outbox tx_id below which every event is final (committed or never).';

-- _event_consumer: the consumer row, created (position at the start of the outbox) when p_create
-- and it does not exist. Raises 22023 for a name that is NULL, empty or over 255 characters,
-- OD004 when it does not exist and p_create is false. Locks nothing (an insert of a new row).
CREATE OR REPLACE FUNCTION orderdb._event_consumer(p_consumer text, p_create boolean)
RETURNS orderdb.event_consumers
LANGUAGE plpgsql
AS $$
DECLARE
    v_row orderdb.event_consumers%ROWTYPE;
BEGIN
    PERFORM orderdb._check_text(p_consumer, 'consumer', 255, true);
    SELECT c.* INTO v_row FROM orderdb.event_consumers c WHERE c.consumer = p_consumer;
    IF FOUND THEN
        RETURN v_row;
    END IF;
    IF NOT p_create THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('consumer %s not found', p_consumer),
            DETAIL = format('consumer=%s', p_consumer),
            HINT = 'A consumer is created by its first orderdb.read_events call.';
    END IF;
    INSERT INTO orderdb.event_consumers AS c (consumer) VALUES (p_consumer)
    ON CONFLICT (consumer) DO NOTHING;
    SELECT c.* INTO STRICT v_row FROM orderdb.event_consumers c WHERE c.consumer = p_consumer;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION orderdb._event_consumer(text, boolean) IS
    'The event consumer row, optionally created on first use (22023 bad name, OD004 unknown).';

-- read_events: the next p_limit (1..10000) committed events after p_consumer's acknowledged
-- position, in (tx_id, event_id) order, never past the horizon (see the top of this file).
-- Creates the consumer on first use (position: the oldest retained event). Reading again without
-- acknowledging returns the same events (at-least-once). Records the furthest position returned
-- (read_tx_id, read_event_id) so that ack_events can refuse events never returned.
-- Raises 22023 (consumer NULL/empty/over 255 characters, p_limit outside 1..10000).
-- Locks: the consumer's row (UPDATE) when the batch extends the furthest position returned.
CREATE OR REPLACE FUNCTION orderdb.read_events(p_consumer text, p_limit integer DEFAULT 100)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_consumer orderdb.event_consumers%ROWTYPE;
    v_horizon  xid8;
BEGIN
    PERFORM orderdb._check_range(p_limit, 'limit', 1, 10000);
    v_consumer := orderdb._event_consumer(p_consumer, true);
    -- computed before the read: the horizon only grows, so every row below it is final and
    -- visible to the (later) snapshot of the query below
    v_horizon := orderdb._event_horizon();

    RETURN QUERY
    WITH batch AS MATERIALIZED (
        SELECT o.event_id, o.tx_id, o.event_type, o.order_id, o.payload, o.created_at
          FROM orderdb.outbox o
         WHERE (o.tx_id, o.event_id) > (v_consumer.acked_tx_id, v_consumer.acked_event_id)
           AND o.tx_id < v_horizon
         ORDER BY o.tx_id, o.event_id
         LIMIT p_limit
    ), last_row AS (
        SELECT b.tx_id, b.event_id FROM batch b ORDER BY b.tx_id DESC, b.event_id DESC LIMIT 1
    ), marked AS (
        UPDATE orderdb.event_consumers c
           SET read_tx_id = l.tx_id, read_event_id = l.event_id, read_at = now()
          FROM last_row l
         WHERE c.consumer = v_consumer.consumer
           AND (c.read_tx_id, c.read_event_id) < (l.tx_id, l.event_id)
        RETURNING c.consumer
    )
    SELECT b.event_id, b.event_type, b.order_id, b.payload, b.created_at
      FROM batch b
     ORDER BY b.tx_id, b.event_id;
END;
$$;
COMMENT ON FUNCTION orderdb.read_events(text, integer) IS
    'The next committed events after the consumer''s acknowledged position, in commit-safe '
    '(tx_id, event_id) order; creates the consumer on first use.';

-- ack_events: acknowledges p_event_id and every event read_events returned before it to
-- p_consumer: the consumer's position becomes that event's (tx_id, event_id). Acknowledging an
-- event at or before the current position changes nothing (positions never move back), and
-- acknowledging the consumer's current position again is a no-op even once the event is purged
-- (a retried ack). Raises 22023 (consumer name malformed; p_event_id NULL or not positive; or
-- p_event_id is not an event read_events returned to this consumer: never written, rolled back,
-- not yet committed or not yet readable, purged, or after the furthest position returned),
-- OD004 (unknown consumer: it has never called read_events).
-- Adds the number of events it acknowledges to the consumer's acked_events counter.
-- Locks: the consumer's row (FOR UPDATE), so concurrent acks of one consumer serialise.
CREATE OR REPLACE FUNCTION orderdb.ack_events(p_consumer text, p_event_id bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_consumer orderdb.event_consumers%ROWTYPE;
    v_tx_id    xid8;
BEGIN
    PERFORM orderdb._check_text(p_consumer, 'consumer', 255, true);
    PERFORM orderdb._check_positive(p_event_id, 'event_id');
    SELECT c.* INTO v_consumer
      FROM orderdb.event_consumers c
     WHERE c.consumer = p_consumer
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('consumer %s not found', p_consumer),
            DETAIL = format('consumer=%s', p_consumer),
            HINT = 'A consumer is created by its first orderdb.read_events call.';
    END IF;
    IF p_event_id = v_consumer.acked_event_id THEN
        RETURN;  -- the current position again (a retried ack; the event may be purged by now)
    END IF;
    SELECT o.tx_id INTO v_tx_id FROM orderdb.outbox o WHERE o.event_id = p_event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('event_id %s was not returned to consumer %s: no such event',
                             p_event_id, p_consumer),
            DETAIL = format('consumer=%s event_id=%s acked_event_id=%s', p_consumer, p_event_id,
                            v_consumer.acked_event_id),
            HINT = 'Acknowledge an event id that read_events returned (events are purged only '
                   'after every consumer acknowledged them and they are older than the retention).';
    END IF;
    IF (v_tx_id, p_event_id) <= (v_consumer.acked_tx_id, v_consumer.acked_event_id) THEN
        RETURN;  -- already acknowledged: positions never move back
    END IF;
    IF (v_tx_id, p_event_id) > (v_consumer.read_tx_id, v_consumer.read_event_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('event_id %s was not returned to consumer %s', p_event_id,
                             p_consumer),
            DETAIL = format('consumer=%s event_id=%s read_event_id=%s', p_consumer, p_event_id,
                            v_consumer.read_event_id),
            HINT = 'Acknowledge only event ids that read_events returned to this consumer.';
    END IF;
    -- acked_events counts what this ack covers: every event between the two positions was
    -- returned (read order), and none of them can be purged yet (not acknowledged by this one)
    UPDATE orderdb.event_consumers c
       SET acked_tx_id = v_tx_id, acked_event_id = p_event_id, acked_at = now(),
           updated_at = now(),
           acked_events = c.acked_events
               + (SELECT count(*)
                    FROM orderdb.outbox o
                   WHERE (o.tx_id, o.event_id) > (v_consumer.acked_tx_id, v_consumer.acked_event_id)
                     AND (o.tx_id, o.event_id) <= (v_tx_id, p_event_id))
     WHERE c.consumer = p_consumer;
END;
$$;
COMMENT ON FUNCTION orderdb.ack_events(text, bigint) IS
    'Acknowledges an event read_events returned to the consumer and every event returned before '
    'it (in read order); older acknowledgements are no-ops.';

-- drop_consumer: deletes a consumer and its position (it no longer holds back purge_events).
-- Returns whether it existed. Raises 22023 for a malformed name. Locks the consumer's row.
CREATE OR REPLACE FUNCTION orderdb.drop_consumer(p_consumer text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_text(p_consumer, 'consumer', 255, true);
    DELETE FROM orderdb.event_consumers c WHERE c.consumer = p_consumer;
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION orderdb.drop_consumer(text) IS
    'Deletes an event consumer and its position; returns whether it existed.';

-- _outbox_acked_position: the read position (tx_id, event_id) every event consumer has
-- acknowledged: the lowest acknowledged position over all consumers and consumer groups (a
-- group's low-water mark, sql/52_consumer_groups.sql), or the read horizon
-- (orderdb._event_horizon, event_id 0) when there is no consumer. Events at or before it may
-- leave the outbox (purge_events, maintain_partitions). Positions only move forward, so a
-- concurrent ack can only make it conservative. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._outbox_acked_position(OUT tx_id xid8, OUT event_id bigint)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    SELECT p.tx_id, p.event_id INTO tx_id, event_id
      FROM (SELECT c.acked_tx_id AS tx_id, c.acked_event_id AS event_id
              FROM orderdb.event_consumers c
            UNION ALL
            SELECT g.low_tx_id, g.low_event_id  -- consumer groups: their low-water mark
              FROM orderdb.event_groups g) p
     ORDER BY p.tx_id, p.event_id
     LIMIT 1;
    IF NOT FOUND THEN
        tx_id := orderdb._event_horizon();  -- no consumer: everything final may go
        event_id := 0;
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._outbox_acked_position() IS
    'The outbox read position every consumer has acknowledged (the horizon when none exists).';

-- purge_events: deletes up to p_batch (1..100000) outbox events that every consumer has
-- acknowledged and that are older than p_older_than (>= 0), oldest first in read order; returns
-- how many it deleted. Call it until it returns less than p_batch (each call a short
-- transaction). A consumer that has never acknowledged holds everything back (drop it with
-- drop_consumer); with no consumer at all, every event older than p_older_than goes.
-- Raises 22023 for a NULL or negative age or a batch outside 1..100000. Locks the deleted rows.
CREATE OR REPLACE FUNCTION orderdb.purge_events(p_older_than interval DEFAULT '7 days',
                                                p_batch integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tx_id    xid8;
    v_event_id bigint;
    v_cutoff   timestamptz;
    v_deleted  bigint;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'older_than must be a non-negative interval',
            DETAIL = format('older_than=%s', coalesce(p_older_than::text, 'NULL'));
    END IF;
    PERFORM orderdb._check_range(p_batch, 'batch', 1, 100000);
    v_cutoff := now() - p_older_than;
    SELECT p.tx_id, p.event_id INTO v_tx_id, v_event_id
      FROM orderdb._outbox_acked_position() p;

    -- walk the head in read order and stop at the first event that is not old enough
    WITH head AS MATERIALIZED (
        SELECT o.event_id, o.created_at,
               bool_and(o.created_at < v_cutoff)
                   OVER (ORDER BY o.tx_id, o.event_id ROWS UNBOUNDED PRECEDING) AS all_old
          FROM orderdb.outbox o
         WHERE (o.tx_id, o.event_id) <= (v_tx_id, v_event_id)
         ORDER BY o.tx_id, o.event_id
         LIMIT p_batch
    )
    DELETE FROM orderdb.outbox o
     USING head h
     WHERE o.event_id = h.event_id
       AND o.created_at = h.created_at
       AND h.all_old;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;
COMMENT ON FUNCTION orderdb.purge_events(interval, integer) IS
    'Deletes up to p_batch outbox events older than p_older_than that every consumer has '
    'acknowledged; returns how many.';

-- ---------------------------------------------------------------------------------------------
-- Webhooks: subscriptions, the fan-out done by the relay, the dispatcher's claim and record.
-- ---------------------------------------------------------------------------------------------

-- create_webhook_subscription: registers an endpoint for the given event types (NULL: all).
-- p_secret NULL: a Standard Webhooks secret is generated, 'whsec_' || base64 of 32 random bytes
-- (SHA-256 of two random UUIDs: 244 random bits). A given secret is either in that form
-- ('whsec_' || base64, unpadded allowed, of at least 24 bytes: the signing key is the decoded
-- bytes) or any other 16..255 characters (the key is the text's UTF-8 bytes). Returns the id and
-- the secret. Raises 22023 (url not http(s) or over 2000 characters, empty/oversized event type
-- list, secret not 16..255 characters or a malformed whsec_ secret, max_attempts outside
-- 1..100). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb.create_webhook_subscription(
    p_url text, p_event_types text[] DEFAULT NULL, p_secret text DEFAULT NULL,
    p_max_attempts integer DEFAULT 8, p_description text DEFAULT NULL)
RETURNS TABLE (subscription_id bigint, secret text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_secret text;
    v_b64    text;
    v_key    bytea;
BEGIN
    IF p_url IS NULL OR p_url !~ '^https?://[^\s]+$' OR length(p_url) > 2000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'url must be an http:// or https:// URL of at most 2000 characters',
            DETAIL = format('url=%s', coalesce(left(p_url, 200), 'NULL'));
    END IF;
    IF p_event_types IS NOT NULL AND (cardinality(p_event_types) NOT BETWEEN 1 AND 100
                                      OR array_position(p_event_types, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'event_types must be NULL (all) or 1 to 100 event type names',
            DETAIL = format('event_types=%s', p_event_types);
    END IF;
    PERFORM orderdb._check_range(p_max_attempts, 'max_attempts', 1, 100);
    PERFORM orderdb._check_text(p_description, 'description', 1000);
    v_secret := coalesce(p_secret,
                         'whsec_' || encode(sha256(uuid_send(gen_random_uuid())
                                                   || uuid_send(gen_random_uuid())), 'base64'));
    IF length(v_secret) NOT BETWEEN 16 AND 255 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'secret must be 16 to 255 characters',
            DETAIL = format('length=%s', length(v_secret));
    END IF;
    IF starts_with(v_secret, 'whsec_') THEN
        v_b64 := rtrim(substr(v_secret, 7), '=');
        IF v_b64 ~ '^[A-Za-z0-9+/]+$' AND length(v_b64) % 4 <> 1 THEN
            v_key := decode(v_b64 || repeat('=', (4 - length(v_b64) % 4) % 4), 'base64');
        END IF;
        IF v_key IS NULL OR length(v_key) < 24 THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = 'secret in the whsec_ form must be whsec_ followed by the base64 of at '
                          'least 24 bytes',
                DETAIL = format('length=%s', length(v_secret));
        END IF;
    END IF;
    RETURN QUERY
    INSERT INTO orderdb.webhook_subscriptions AS s
           (url, event_types, secret, max_attempts, description)
    VALUES (p_url, p_event_types, v_secret, p_max_attempts, p_description)
    RETURNING s.subscription_id, s.secret;
END;
$$;
COMMENT ON FUNCTION orderdb.create_webhook_subscription(text, text[], text, integer, text) IS
    'Registers a webhook endpoint for some (or all) event types; returns its id and secret.';

-- _webhook_enqueue: fans the given outbox events out to every active subscription that wants
-- their type (one webhook_deliveries row per subscription and event; replays are no-ops).
-- Called by the relay in the transaction that acknowledges the events, so fan-out happens once.
-- Returns the number of deliveries created. Locks nothing beyond the inserted rows.
CREATE OR REPLACE FUNCTION orderdb._webhook_enqueue(p_event_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    INSERT INTO orderdb.webhook_deliveries AS d
           (subscription_id, event_id, event_tx_id, event_type, order_id, payload,
            event_created_at)
    SELECT s.subscription_id, o.event_id, o.tx_id, o.event_type, o.order_id, o.payload,
           o.created_at
      FROM orderdb.outbox o
      JOIN orderdb.webhook_subscriptions s
        ON s.active AND (s.event_types IS NULL OR o.event_type = ANY (s.event_types))
     WHERE o.event_id = ANY (p_event_ids)
     ORDER BY o.tx_id, o.event_id, s.subscription_id
    ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION orderdb._webhook_enqueue(bigint[]) IS
    'Creates the webhook deliveries of the given outbox events (once per subscription and event).';

-- _webhook_claim: up to p_limit due pending deliveries of active subscriptions, each the oldest
-- pending delivery (in outbox read order) of its order for its subscription, so one order's
-- events go out one at a time and in order. Claimed rows are leased: next_attempt_at moves
-- p_lease ahead, so a crashed dispatcher's claims come back. Returns what a POST needs.
-- Locks the claimed rows (FOR UPDATE SKIP LOCKED: dispatchers never wait for each other).
CREATE OR REPLACE FUNCTION orderdb._webhook_claim(p_limit integer DEFAULT 10,
                                                  p_lease interval DEFAULT '1 minute')
RETURNS TABLE (delivery_id bigint, subscription_id bigint, url text, secret text,
               attempt integer, event_id bigint, event_type text, order_id bigint,
               payload jsonb, event_created_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_range(p_limit, 'limit', 1, 1000);
    IF p_lease IS NULL OR p_lease <= interval '0' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'lease must be a positive interval',
            DETAIL = format('lease=%s', coalesce(p_lease::text, 'NULL'));
    END IF;
    RETURN QUERY
    WITH due AS (
        SELECT d.delivery_id
          FROM orderdb.webhook_deliveries d
          JOIN orderdb.webhook_subscriptions s
            ON s.subscription_id = d.subscription_id AND s.active
         WHERE d.status = 'pending'
           AND d.next_attempt_at <= now()
           AND (d.order_id IS NULL OR NOT EXISTS (
                   SELECT 1
                     FROM orderdb.webhook_deliveries e
                    WHERE e.status = 'pending'
                      AND e.subscription_id = d.subscription_id
                      AND e.order_id = d.order_id
                      AND (e.event_tx_id, e.event_id) < (d.event_tx_id, d.event_id)))
         ORDER BY d.next_attempt_at, d.delivery_id
         LIMIT p_limit
           FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE orderdb.webhook_deliveries d
       SET next_attempt_at = now() + p_lease
      FROM due, orderdb.webhook_subscriptions s
     WHERE d.delivery_id = due.delivery_id
       AND s.subscription_id = d.subscription_id
    RETURNING d.delivery_id, d.subscription_id, s.url, s.secret, (d.attempts + 1)::integer,
              d.event_id, d.event_type, d.order_id, d.payload, d.event_created_at;
END;
$$;
COMMENT ON FUNCTION orderdb._webhook_claim(integer, interval) IS
    'Claims (leases) due webhook deliveries, at most one per subscription and order, in order.';

-- _webhook_record: records one attempt of a claimed delivery (HTTP status or error, duration,
-- the response's headers as a JSON object and the start of its body, cut to 4096 characters)
-- and moves the delivery on: 2xx -> delivered; otherwise, after max_attempts attempts -> dead
-- (dead-lettered; the order's later events then proceed), else pending again after an
-- exponential backoff with jitter: least(p_backoff_base * 2^(attempts-1), p_backoff_max) times a
-- random 1.0..1.25 (never earlier than the plain backoff, so receivers that failed together do
-- not all get their retries at the same instant).
-- An attempt of a delivery that is no longer pending or whose attempt number is stale (another
-- dispatcher took over after the lease ran out) is logged and changes nothing else.
-- Returns the delivery's status afterwards. Raises OD004 (no such delivery), 22023 (attempt not
-- positive, status code outside 100..599, response_headers not a JSON object or over 16 kB).
-- Locks the delivery's row.
DROP FUNCTION IF EXISTS orderdb._webhook_record(bigint, integer, integer, text, integer, interval,
                                                interval);
CREATE OR REPLACE FUNCTION orderdb._webhook_record(
    p_delivery_id bigint, p_attempt integer, p_status_code integer, p_error text,
    p_duration_ms integer, p_backoff_base interval DEFAULT '1 second',
    p_backoff_max interval DEFAULT '1 hour', p_response_headers jsonb DEFAULT NULL,
    p_response_body text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_delivery orderdb.webhook_deliveries%ROWTYPE;
    v_max      bigint;
    v_ok       boolean := p_status_code BETWEEN 200 AND 299;
    v_error    text := left(p_error, 1000);
BEGIN
    PERFORM orderdb._check_positive(p_attempt, 'attempt');
    IF p_status_code IS NOT NULL THEN
        PERFORM orderdb._check_range(p_status_code, 'status_code', 100, 599);
    END IF;
    IF p_response_headers IS NOT NULL AND (jsonb_typeof(p_response_headers) <> 'object'
                                           OR octet_length(p_response_headers::text) > 16384) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'response_headers must be a JSON object of at most 16384 bytes',
            DETAIL = format('type=%s bytes=%s', jsonb_typeof(p_response_headers),
                            octet_length(p_response_headers::text));
    END IF;
    SELECT d.* INTO v_delivery
      FROM orderdb.webhook_deliveries d
     WHERE d.delivery_id = p_delivery_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('webhook delivery %s not found', p_delivery_id),
            DETAIL = format('delivery_id=%s', coalesce(p_delivery_id::text, 'NULL'));
    END IF;
    INSERT INTO orderdb.webhook_attempts (delivery_id, attempt, status_code, error, duration_ms,
                                          response_headers, response_body)
    VALUES (p_delivery_id, p_attempt, p_status_code, v_error, greatest(p_duration_ms, 0),
            p_response_headers, left(p_response_body, 4096));
    IF v_delivery.status <> 'pending' OR v_delivery.attempts <> p_attempt - 1 THEN
        RETURN v_delivery.status;  -- stale claim: logged only
    END IF;
    SELECT s.max_attempts INTO v_max
      FROM orderdb.webhook_subscriptions s
     WHERE s.subscription_id = v_delivery.subscription_id;
    IF v_ok THEN
        UPDATE orderdb.webhook_deliveries d
           SET status = 'delivered', attempts = p_attempt, last_status_code = p_status_code,
               last_error = NULL, delivered_at = now()
         WHERE d.delivery_id = p_delivery_id;
        RETURN 'delivered';
    ELSIF p_attempt >= v_max THEN
        UPDATE orderdb.webhook_deliveries d
           SET status = 'dead', attempts = p_attempt, last_status_code = p_status_code,
               last_error = v_error, dead_at = now()
         WHERE d.delivery_id = p_delivery_id;
        RETURN 'dead';
    END IF;
    UPDATE orderdb.webhook_deliveries d
       SET attempts = p_attempt, last_status_code = p_status_code, last_error = v_error,
           next_attempt_at = now() + least(coalesce(p_backoff_base, interval '1 second')
                                           * power(2, least(p_attempt - 1, 30)),
                                           coalesce(p_backoff_max, interval '1 hour'))
                                     * (1 + random() / 4)
     WHERE d.delivery_id = p_delivery_id;
    RETURN 'pending';
END;
$$;
COMMENT ON FUNCTION orderdb._webhook_record(bigint, integer, integer, text, integer, interval,
                                            interval, jsonb, text) IS
    'Records a webhook delivery attempt (status, error, duration, response headers and body) and '
    'moves the delivery to delivered, dead or a retry (exponential backoff with jitter).';

-- retry_webhook_delivery: puts a dead-lettered delivery back in the queue (attempts reset, due
-- now). Raises OD004 (no such delivery), 22023 (id not positive, or the delivery is not dead).
-- Locks the delivery's row.
CREATE OR REPLACE FUNCTION orderdb.retry_webhook_delivery(p_delivery_id bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
BEGIN
    PERFORM orderdb._check_positive(p_delivery_id, 'delivery_id');
    SELECT d.status INTO v_status
      FROM orderdb.webhook_deliveries d
     WHERE d.delivery_id = p_delivery_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('webhook delivery %s not found', p_delivery_id),
            DETAIL = format('delivery_id=%s', p_delivery_id);
    END IF;
    IF v_status <> 'dead' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('webhook delivery %s is %s, not dead', p_delivery_id, v_status),
            DETAIL = format('delivery_id=%s status=%s', p_delivery_id, v_status);
    END IF;
    UPDATE orderdb.webhook_deliveries d
       SET status = 'pending', attempts = 0, next_attempt_at = now(), dead_at = NULL
     WHERE d.delivery_id = p_delivery_id;
END;
$$;
COMMENT ON FUNCTION orderdb.retry_webhook_delivery(bigint) IS
    'Puts a dead-lettered webhook delivery back in the queue with its attempts reset.';

-- ---------------------------------------------------------------------------------------------
-- Ops view
-- ---------------------------------------------------------------------------------------------

-- relay_lag: per consumer, how far behind it is. pending_events counts committed events after
-- its acknowledged position (an index-only range scan, capped at 1,000,000: the cap means "at
-- least"); oldest_pending_age is the age of the next event it will get. unreadable_events are
-- pending events at or above the horizon: committed, but waiting for an older transaction that
-- still runs. horizon_xact_pid / horizon_xact_age name the oldest transaction holding a
-- transaction id in this database, or prepared anywhere (the one that holds the horizon back; age NULL when the view's
-- owner may not see its start time, or for a prepared transaction's pid).
-- Consumer groups (claim_events) have rows of kind 'group' (consumers: kind 'consumer'): consumer
-- is the group's name, pending_events the events after its low-water mark not acknowledged yet
-- (leased ones included), oldest_pending_age the age of the oldest of them, acked_event_id / acked_at
-- the low-water mark and when it last moved, read_at the last claim, leased_events the events
-- leased right now, members how many members hold them, expired_leases leases that ran out
-- unacknowledged (a member that died: they go to the next claim).
CREATE OR REPLACE VIEW orderdb_ops.relay_lag AS
WITH horizon AS (
    SELECT orderdb._event_horizon() AS xmin
), blocker AS (
    SELECT x.pid, x.xact_age
      FROM (SELECT a.pid, now() - a.xact_start AS xact_age, age(a.backend_xid) AS xid_age
              FROM pg_catalog.pg_stat_activity a
             WHERE a.backend_xid IS NOT NULL
               AND (a.datid IS NULL OR a.datname = current_database())
            UNION ALL
            SELECT NULL::integer, now() - p.prepared, age(p.transaction)
              FROM pg_catalog.pg_prepared_xacts p) x
     ORDER BY x.xid_age DESC
     LIMIT 1
)
SELECT c.consumer,
       pending.n AS pending_events,
       now() - head.created_at AS oldest_pending_age,
       unreadable.n AS unreadable_events,
       c.acked_event_id,
       c.acked_at,
       c.read_at,
       b.pid AS horizon_xact_pid,
       b.xact_age AS horizon_xact_age,
       'consumer'::text AS kind,
       NULL::bigint AS leased_events,
       NULL::bigint AS members,
       NULL::bigint AS expired_leases
  FROM orderdb.event_consumers c
 CROSS JOIN horizon h
  LEFT JOIN blocker b ON true
 CROSS JOIN LATERAL (
        SELECT count(*) AS n
          FROM (SELECT 1
                  FROM orderdb.outbox o
                 WHERE (o.tx_id, o.event_id) > (c.acked_tx_id, c.acked_event_id)
                 LIMIT 1000000) s) pending
 CROSS JOIN LATERAL (
        SELECT count(*) AS n
          FROM (SELECT 1
                  FROM orderdb.outbox o
                 WHERE (o.tx_id, o.event_id) > (c.acked_tx_id, c.acked_event_id)
                   AND o.tx_id >= h.xmin
                 LIMIT 1000000) s) unreadable
  LEFT JOIN LATERAL (
        SELECT o.created_at
          FROM orderdb.outbox o
         WHERE (o.tx_id, o.event_id) > (c.acked_tx_id, c.acked_event_id)
         ORDER BY o.tx_id, o.event_id
         LIMIT 1) head ON true
UNION ALL
SELECT g.group_name,
       greatest(pending.n - acked.n, 0),
       now() - head.created_at,
       unreadable.n,
       g.low_event_id,
       g.advanced_at,
       leases.read_at,
       b.pid,
       b.xact_age,
       'group',
       leases.leased,
       leases.members,
       leases.expired
  FROM orderdb.event_groups g
 CROSS JOIN horizon h
  LEFT JOIN blocker b ON true
 CROSS JOIN LATERAL (
        SELECT count(*) AS n
          FROM (SELECT 1
                  FROM orderdb.outbox o
                 WHERE (o.tx_id, o.event_id) > (g.low_tx_id, g.low_event_id)
                 LIMIT 1000000) s) pending
 CROSS JOIN LATERAL (
        SELECT count(*) AS n
          FROM orderdb.event_group_leases l
         WHERE l.group_name = g.group_name
           AND (l.tx_id, l.event_id) > (g.low_tx_id, g.low_event_id)
           AND l.acked_at IS NOT NULL) acked
 CROSS JOIN LATERAL (
        SELECT count(*) AS n
          FROM (SELECT 1
                  FROM orderdb.outbox o
                 WHERE (o.tx_id, o.event_id) > (g.low_tx_id, g.low_event_id)
                   AND o.tx_id >= h.xmin
                 LIMIT 1000000) s) unreadable
 CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE l.acked_at IS NULL AND l.leased_until >= now()) AS leased,
               count(DISTINCT l.member) FILTER (WHERE l.acked_at IS NULL
                                                  AND l.leased_until >= now()) AS members,
               count(*) FILTER (WHERE l.acked_at IS NULL AND l.leased_until < now()) AS expired,
               max(l.leased_at) AS read_at
          FROM orderdb.event_group_leases l
         WHERE l.group_name = g.group_name
           AND (l.tx_id, l.event_id) > (g.low_tx_id, g.low_event_id)) leases
  LEFT JOIN LATERAL (
        SELECT o.created_at
          FROM orderdb.outbox o
         WHERE (o.tx_id, o.event_id) > (g.low_tx_id, g.low_event_id)
           AND NOT EXISTS (SELECT 1
                             FROM orderdb.event_group_leases l
                            WHERE l.group_name = g.group_name AND l.event_id = o.event_id
                              AND l.acked_at IS NOT NULL)
         ORDER BY o.tx_id, o.event_id
         LIMIT 1) head ON true;
COMMENT ON VIEW orderdb_ops.relay_lag IS
    'Per event consumer and consumer group: committed events not yet acknowledged, the age of the '
    'oldest, leases held (groups), and what holds the read horizon back (the oldest transaction '
    'with a transaction id).';
