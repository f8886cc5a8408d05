-- Consumer groups: several members share one stream of the outbox (tables: migrations/0015).
--
-- A group walks the outbox in read order ((tx_id, event_id), below the horizon of
-- orderdb._event_horizon: the read_events rule, so no event is ever skipped because its
-- transaction committed after a later one). Each claimed event gets a lease row
-- (event_group_leases: member, leased_until); ack_claimed marks it acknowledged. An order's events
-- are handed out one at a time: an event is claimable only when every earlier event of its order
-- (in read order) is acknowledged, so they are never in two members' hands at once and never out
-- of order. An expired lease is handed to the next member that claims (deliveries + 1).
--
-- No hot row. A claim reads the group's low-water mark (event_groups.low_*, everything at or
-- before it acknowledged) and writes only lease rows. Members that claim at the same time do not
-- wait for each other: each candidate event is taken under a transaction-scoped advisory lock
-- with pg_try_advisory_xact_lock (keyed by group and event: the SKIP LOCKED of rows that do not
-- exist yet), and an insert that meets a lease row committed meanwhile changes nothing and hands
-- nothing out (ON CONFLICT ... WHERE expired). The low-water mark is moved by
-- orderdb._event_group_advance, called by a claim that came back short (or now and then), which
-- skips the group row when another member holds it.
--
-- Bounded work: a claim looks at most 1000 + 4 * p_limit events past the low-water mark. Events
-- further on wait until the head is acknowledged (a member that died holds the head until its
-- leases expire).
--
-- Lease rows at or before the low-water mark are deleted five minutes after their
-- acknowledgement, not at once: a claim that started before the low-water mark moved reads the
-- old mark with its (older) snapshot, and must still find those rows acknowledged.

-- _event_group_advance: moves p_group's low-water mark over the acknowledged head of its stream
-- (the longest run of acknowledged events from the mark on, in read order, below p_horizon, at
-- most 2000 events per call), and deletes up to 5000 lease rows at or before the mark that were
-- acknowledged more than five minutes ago. Returns how far (events) the mark moved, or NULL when
-- another member holds the group row (it is skipped, never waited for).
-- Locks the group's row (FOR NO KEY UPDATE SKIP LOCKED) and the deleted lease rows.
CREATE OR REPLACE FUNCTION orderdb._event_group_advance(p_group text, p_horizon xid8)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_group    orderdb.event_groups%ROWTYPE;
    v_tx_id    xid8;
    v_event_id bigint;
    v_moved    integer;
BEGIN
    SELECT g.* INTO v_group
      FROM orderdb.event_groups g
     WHERE g.group_name = p_group
       FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH head AS MATERIALIZED (
        SELECT o.tx_id, o.event_id,
               bool_and(l.acked_at IS NOT NULL)
                   OVER (ORDER BY o.tx_id, o.event_id ROWS UNBOUNDED PRECEDING) AS all_acked
          FROM (SELECT o.tx_id, o.event_id
                  FROM orderdb.outbox o
                 WHERE (o.tx_id, o.event_id) > (v_group.low_tx_id, v_group.low_event_id)
                   AND o.tx_id < p_horizon
                 ORDER BY o.tx_id, o.event_id
                 LIMIT 2000) o
          LEFT JOIN orderdb.event_group_leases l
            ON l.group_name = p_group AND l.event_id = o.event_id
    )
    SELECT h.tx_id, h.event_id, (SELECT count(*) FROM head x WHERE x.all_acked)::integer
      INTO v_tx_id, v_event_id, v_moved
      FROM head h
     WHERE h.all_acked
     ORDER BY h.tx_id DESC, h.event_id DESC
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    UPDATE orderdb.event_groups g
       SET low_tx_id = v_tx_id, low_event_id = v_event_id, advanced_at = now()
     WHERE g.group_name = p_group;
    DELETE FROM orderdb.event_group_leases l
     WHERE l.ctid = ANY (ARRAY(
               SELECT d.ctid
                 FROM orderdb.event_group_leases d
                WHERE d.group_name = p_group
                  AND (d.tx_id, d.event_id) <= (v_tx_id, v_event_id)
                  AND d.acked_at < now() - interval '5 minutes'
                ORDER BY d.tx_id, d.event_id
                LIMIT 5000));
    RETURN v_moved;
END;
$$;
COMMENT ON FUNCTION orderdb._event_group_advance(text, xid8) IS
    'Moves a consumer group''s low-water mark over its acknowledged head (skips a locked group row).';

-- claim_events: leases up to p_limit (1..1000) events of p_group's stream to p_member for
-- p_lease_seconds (1..3600), in read order: events never claimed and events whose lease expired
-- (handed out again, to whichever member claims), each only when every earlier event of its order
-- is acknowledged. Creates the group on first use (position: the oldest retained event).
-- Returns them in read order. Raises 22023 (group or member NULL, empty or over 255 characters;
-- limit or lease out of range). Locks: inserts/updates the claimed lease rows; transaction
-- advisory locks on the claimed events; never waits for another member.
CREATE OR REPLACE FUNCTION orderdb.claim_events(p_group text, p_member text,
                                                p_limit integer DEFAULT 100,
                                                p_lease_seconds integer DEFAULT 30)
RETURNS TABLE (event_id bigint, event_type text, order_id bigint, payload jsonb,
               created_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_horizon xid8;
    v_key     integer;
    v_count   integer;
BEGIN
    PERFORM orderdb._check_text(p_group, 'group', 255, true);
    PERFORM orderdb._check_text(p_member, 'member', 255, true);
    PERFORM orderdb._check_range(p_limit, 'limit', 1, 1000);
    PERFORM orderdb._check_range(p_lease_seconds, 'lease_seconds', 1, 3600);
    IF NOT EXISTS (SELECT 1 FROM orderdb.event_groups g WHERE g.group_name = p_group) THEN
        INSERT INTO orderdb.event_groups AS g (group_name) VALUES (p_group)
        ON CONFLICT ON CONSTRAINT event_groups_pkey DO NOTHING;
    END IF;
    -- before the claim's snapshot: the horizon only grows (see sql/50_events.sql)
    v_horizon := orderdb._event_horizon();
    v_key := hashtext('orderdb.event_group:' || p_group);

    -- one statement: the low-water mark, the window, the candidates, the leases
    RETURN QUERY
    WITH win AS MATERIALIZED (
        SELECT o.event_id, o.tx_id, o.event_type, o.order_id, o.payload, o.created_at,
               l.acked_at IS NOT NULL AS acked,
               (l.event_id IS NULL OR (l.acked_at IS NULL AND l.leased_until < now())) AS free
          FROM (SELECT o.*
                  FROM orderdb.event_groups g
                  JOIN orderdb.outbox o
                    ON (o.tx_id, o.event_id) > (g.low_tx_id, g.low_event_id)
                   AND o.tx_id < v_horizon
                 WHERE g.group_name = p_group
                 ORDER BY o.tx_id, o.event_id
                 LIMIT 1000 + 4 * p_limit) o
          LEFT JOIN orderdb.event_group_leases l
            ON l.group_name = p_group AND l.event_id = o.event_id
    ), cand AS MATERIALIZED (
        SELECT w.*,
               coalesce(bool_and(w.acked) OVER (PARTITION BY w.order_id
                                                ORDER BY w.tx_id, w.event_id
                                                ROWS BETWEEN UNBOUNDED PRECEDING
                                                         AND 1 PRECEDING), true) AS earlier_acked
          FROM win w
    ), pick AS MATERIALIZED (
        -- the advisory lock is tried in read order and only until p_limit are taken (OFFSET 0
        -- keeps the sorted subquery from being flattened into this filter)
        SELECT c.*
          FROM (SELECT c.*
                  FROM cand c
                 WHERE c.free AND (c.order_id IS NULL OR c.earlier_acked)
                 ORDER BY c.tx_id, c.event_id
                OFFSET 0) c
         WHERE pg_catalog.pg_try_advisory_xact_lock(v_key, (c.event_id % 2147483647)::integer)
         LIMIT p_limit
    ), leased AS (
        INSERT INTO orderdb.event_group_leases AS l
               (group_name, event_id, tx_id, order_id, member, leased_until)
        SELECT p_group, p.event_id, p.tx_id, p.order_id, p_member,
               now() + make_interval(secs => p_lease_seconds)
          FROM pick p
        ON CONFLICT ON CONSTRAINT event_group_leases_pkey DO UPDATE
           SET member = excluded.member, leased_at = now(), leased_until = excluded.leased_until,
               deliveries = l.deliveries + 1
         WHERE l.acked_at IS NULL AND l.leased_until < now()
        RETURNING l.event_id
    )
    SELECT p.event_id, p.event_type, p.order_id, p.payload, p.created_at
      FROM pick p
      JOIN leased x ON x.event_id = p.event_id
     ORDER BY p.tx_id, p.event_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;

    -- a short claim (the head may be acknowledged) or one in 20: move the low-water mark
    IF v_count < p_limit OR random() < 0.05 THEN
        PERFORM orderdb._event_group_advance(p_group, v_horizon);
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb.claim_events(text, text, integer, integer) IS
    'Leases the next events of a consumer group''s stream to one member: read order, one event '
    'per order at a time, expired leases handed out again; creates the group on first use.';

-- ack_claimed: acknowledges those of p_event_ids that are leased to p_member in p_group and not
-- acknowledged yet (a lease that ran out still counts while no other member has taken it);
-- returns how many. Ids that are not (or no longer) this member's change nothing. Raises 22023
-- (group or member malformed; p_event_ids NULL or over 10000 ids). Locks the acknowledged rows.
CREATE OR REPLACE FUNCTION orderdb.ack_claimed(p_group text, p_member text, p_event_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM orderdb._check_text(p_group, 'group', 255, true);
    PERFORM orderdb._check_text(p_member, 'member', 255, true);
    IF p_event_ids IS NULL OR cardinality(p_event_ids) > 10000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'event_ids must be an array of at most 10000 event ids',
            DETAIL = format('event_ids=%s', coalesce(cardinality(p_event_ids)::text, 'NULL'));
    END IF;
    UPDATE orderdb.event_group_leases l
       SET acked_at = now()
     WHERE l.group_name = p_group
       AND l.event_id = ANY (p_event_ids)
       AND l.member = p_member
       AND l.acked_at IS NULL;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION orderdb.ack_claimed(text, text, bigint[]) IS
    'Acknowledges the given events leased to this member of a consumer group; returns how many.';

-- release_claimed: gives back those of p_event_ids leased to p_member in p_group and not
-- acknowledged (their lease ends now: the next claim of any member takes them, in order); a
-- member that stops without handling them calls it. Returns how many. Raises 22023 as
-- ack_claimed. Locks the released rows.
CREATE OR REPLACE FUNCTION orderdb.release_claimed(p_group text, p_member text,
                                                   p_event_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM orderdb._check_text(p_group, 'group', 255, true);
    PERFORM orderdb._check_text(p_member, 'member', 255, true);
    IF p_event_ids IS NULL OR cardinality(p_event_ids) > 10000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'event_ids must be an array of at most 10000 event ids',
            DETAIL = format('event_ids=%s', coalesce(cardinality(p_event_ids)::text, 'NULL'));
    END IF;
    UPDATE orderdb.event_group_leases l
       SET leased_until = least(l.leased_until, now() - interval '1 microsecond')
     WHERE l.group_name = p_group
       AND l.event_id = ANY (p_event_ids)
       AND l.member = p_member
       AND l.acked_at IS NULL
       AND l.leased_until >= now();
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION orderdb.release_claimed(text, text, bigint[]) IS
    'Ends this member''s leases of the given unacknowledged events so that another member takes '
    'them; returns how many.';
