-- Integrations: the settings of signed HTTP ingestion (orderdb.integrations), the status query
-- the ingestion server answers, and scheduled carrier polling (claim due shipments with
-- FOR UPDATE SKIP LOCKED so that several pollers share the work, record the outcome, back off per
-- carrier on errors). Tables: migrations/0009_integrations.sql. Every function here is the
-- owner's (sql/90_grants.sql grants none of them): the ingestion server and the pollers run with
-- the owner's DSN; the carrier events they receive go through the orderdb_ingest entry points
-- (orderdb.record_tracking_event, orderdb.wms_callback).

-- set_integration: creates or updates one integration allowed to post to `orderdb ingest serve`.
-- p_kind 'carrier' (p_name is the carrier code, /hooks/carriers/<name>) or 'wms' (/hooks/wms,
-- header X-OrderDB-Integration: <name>); p_secret the shared HMAC-SHA256 key (16..255
-- characters); p_rate requests per second and p_burst the bucket size of its token-bucket limit.
-- Returns the stored row without the secret. Raises 22023 naming the bad field.
-- Locks the integrations row.
CREATE OR REPLACE FUNCTION orderdb.set_integration(p_name text, p_kind text, p_secret text,
                                                   p_rate numeric DEFAULT 50,
                                                   p_burst integer DEFAULT 100,
                                                   p_enabled boolean DEFAULT true)
RETURNS TABLE (name text, kind text, rate numeric, burst integer, enabled boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'name must be 1 to 64 characters of A-Z a-z 0-9 _ . -',
            DETAIL = format('name=%s', left(p_name, 100));
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('carrier', 'wms') THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'kind must be carrier or wms',
            DETAIL = format('kind=%s', left(p_kind, 100));
    END IF;
    IF p_secret IS NULL OR length(p_secret) NOT BETWEEN 16 AND 255 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'secret must be 16 to 255 characters',
            DETAIL = format('length=%s', coalesce(length(p_secret)::text, 'NULL'));
    END IF;
    IF p_rate IS NULL OR p_rate <= 0 OR p_rate > 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'rate must be a number of requests per second above 0, at most 100000',
            DETAIL = format('rate=%s', coalesce(p_rate::text, 'NULL'));
    END IF;
    IF p_burst IS NULL OR p_burst NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'burst must be an integer from 1 to 1000000',
            DETAIL = format('burst=%s', coalesce(p_burst::text, 'NULL'));
    END IF;

    RETURN QUERY
        INSERT INTO orderdb.integrations AS i (name, kind, secret, rate, burst, enabled)
        VALUES (p_name, p_kind, p_secret, p_rate, p_burst, coalesce(p_enabled, true))
        ON CONFLICT ON CONSTRAINT integrations_pkey DO UPDATE
           SET kind = excluded.kind, secret = excluded.secret, rate = excluded.rate,
               burst = excluded.burst, enabled = excluded.enabled, updated_at = now()
        RETURNING i.name, i.kind, i.rate, i.burst, i.enabled;
END;
$$;
COMMENT ON FUNCTION orderdb.set_integration(text, text, text, numeric, integer, boolean) IS
    'Creates or updates a carrier/WMS integration of the HTTP ingestion (secret, rate, burst).';

-- tracking_status: what is known of a tracking number, for the ingestion server's status query:
-- the shipment (carrier, status, last event time, delivered_at) and its order (id, number,
-- status); or, for a number no shipment has yet, its unmatched events (matched = false).
-- p_carrier NULL: any carrier (the most recent shipment first). Newest event's location included.
-- Raises 22023 (bad arguments), OD004 (no shipment and no event with that number). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb.tracking_status(p_tracking_number text,
                                                   p_carrier text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc jsonb;
BEGIN
    PERFORM orderdb._check_text(p_tracking_number, 'tracking_number', 255, true);
    PERFORM orderdb._check_text(p_carrier, 'carrier', 255, p_carrier IS NOT NULL);

    SELECT jsonb_build_object(
               'matched', true,
               'carrier', s.carrier,
               'tracking_number', s.tracking_number,
               'shipment_status', s.status,
               'shipped_at', s.shipped_at,
               'delivered_at', s.delivered_at,
               'last_event_time', s.last_event_time,
               'location', (SELECT te.location FROM orderdb.tracking_events te
                             WHERE te.carrier = s.carrier AND te.tracking_number = s.tracking_number
                               AND te.location IS NOT NULL
                             ORDER BY te.event_time DESC, te.tracking_event_id DESC LIMIT 1),
               'order_id', o.order_id,
               'order_no', o.order_no,
               'order_status', o.status)
      INTO v_doc
      FROM orderdb.tracking_numbers tn
      JOIN orderdb.shipments s
        ON s.warehouse_id = tn.warehouse_id AND s.shipment_id = tn.shipment_id
      JOIN orderdb.order_directory d ON d.order_id = tn.order_id
      JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
     WHERE tn.tracking_number = p_tracking_number
       AND (p_carrier IS NULL OR tn.carrier = p_carrier)
     ORDER BY s.shipped_at DESC
     LIMIT 1;
    IF v_doc IS NOT NULL THEN
        RETURN v_doc;
    END IF;

    SELECT jsonb_build_object(
               'matched', false,
               'carrier', te.carrier,
               'tracking_number', te.tracking_number,
               'shipment_status', te.normalized_status,
               'last_event_time', te.event_time,
               'location', te.location,
               'events', (SELECT count(*) FROM orderdb.tracking_events x
                           WHERE x.carrier = te.carrier AND x.tracking_number = te.tracking_number))
      INTO v_doc
      FROM orderdb.tracking_events te
     WHERE te.tracking_number = p_tracking_number AND te.order_id IS NULL
       AND (p_carrier IS NULL OR te.carrier = p_carrier)
     ORDER BY te.event_time DESC, te.tracking_event_id DESC
     LIMIT 1;
    IF v_doc IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('tracking number %s not found', left(p_tracking_number, 255)),
            DETAIL = format('carrier=%s tracking_number=%s', coalesce(p_carrier, 'any'),
                            left(p_tracking_number, 255));
    END IF;
    RETURN v_doc;
END;
$$;
COMMENT ON FUNCTION orderdb.tracking_status(text, text) IS
    'Returns the shipment and order status of a tracking number (OD004 when nothing is known).';

-- set_carrier_polling: the polling interval of one carrier (30 minutes without a row); shipments
-- of that carrier already polled are rescheduled to their last poll + the new interval.
-- Raises 22023 (carrier not 1..255 characters, interval below one second). Locks the
-- carrier_polling row and the carrier's shipment_polls rows.
CREATE OR REPLACE FUNCTION orderdb.set_carrier_polling(p_carrier text, p_poll_interval interval)
RETURNS TABLE (carrier text, poll_interval interval)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._check_text(p_carrier, 'carrier', 255, true);
    IF p_poll_interval IS NULL OR p_poll_interval < interval '1 second' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'poll_interval must be at least 1 second',
            DETAIL = format('poll_interval=%s', coalesce(p_poll_interval::text, 'NULL'));
    END IF;
    -- shipments already scheduled with the old interval follow the new one
    UPDATE orderdb.shipment_polls AS p
       SET next_poll_at = p.last_polled_at + p_poll_interval
     WHERE p.carrier = p_carrier AND NOT p.done AND p.last_polled_at IS NOT NULL
       AND p.next_poll_at <> p.last_polled_at + p_poll_interval;
    RETURN QUERY
        INSERT INTO orderdb.carrier_polling AS c (carrier, poll_interval)
        VALUES (p_carrier, p_poll_interval)
        ON CONFLICT ON CONSTRAINT carrier_polling_pkey DO UPDATE
           SET poll_interval = excluded.poll_interval, updated_at = now()
        RETURNING c.carrier, c.poll_interval;
END;
$$;
COMMENT ON FUNCTION orderdb.set_carrier_polling(text, interval) IS
    'Sets how often shipments of a carrier are polled (default 30 minutes).';

-- claim_shipments_for_polling: hands up to p_limit due shipments to poller p_worker for p_lease.
-- Due: not delivered or returned, not claimed (or the claim expired), its carrier not backing
-- off, and either never polled or neither polled nor updated (a pushed carrier event updates the
-- shipment) for the carrier's interval. Shipments the polling state does not know yet are
-- enrolled first; a due shipment that was updated recently is rescheduled instead of claimed; one
-- that reached delivered / returned is retired (done).
-- Several pollers share the work: the due rows are locked FOR UPDATE SKIP LOCKED and claimed in
-- the same statement, so no shipment is handed to two pollers.
-- Raises 22023 (p_limit not 1..1000, p_worker not 1..255 characters, p_lease not positive).
-- Locks the claimed shipment_polls rows (until commit) and, when free, the enrolment advisory
-- lock (transaction-scoped; taken with pg_try_advisory_xact_lock, never waited for).
CREATE OR REPLACE FUNCTION orderdb.claim_shipments_for_polling(p_limit integer, p_worker text,
                                                               p_lease interval DEFAULT '5 minutes')
RETURNS TABLE (warehouse_id integer, shipment_id bigint, order_id bigint, carrier text,
               tracking_number text, last_polled_at timestamptz, polls integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'limit must be an integer from 1 to 1000',
            DETAIL = format('limit=%s', coalesce(p_limit::text, 'NULL'));
    END IF;
    PERFORM orderdb._check_text(p_worker, 'worker', 255, true);
    IF p_lease IS NULL OR p_lease <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'lease must be a positive interval';
    END IF;

    -- enrol shipments still on their way that polling does not know yet (an anti-join over the
    -- shipments in transit: one poller at a time does it, the others skip it this round)
    IF pg_try_advisory_xact_lock(hashtextextended('orderdb.shipment_polls.enrol', 0)) THEN
        INSERT INTO orderdb.shipment_polls AS sp
               (warehouse_id, shipment_id, carrier, tracking_number)
        SELECT s.warehouse_id, s.shipment_id, s.carrier, s.tracking_number
          FROM orderdb.shipments s
         WHERE s.delivered_at IS NULL
           AND s.status NOT IN ('delivered', 'returned_to_sender')
           AND NOT EXISTS (SELECT 1 FROM orderdb.shipment_polls p
                            WHERE p.warehouse_id = s.warehouse_id
                              AND p.shipment_id = s.shipment_id)
        ON CONFLICT ON CONSTRAINT shipment_polls_pkey DO NOTHING;
    END IF;

    RETURN QUERY
    WITH due AS (
        SELECT p.warehouse_id AS wh, p.shipment_id AS sid,
               (s.delivered_at IS NOT NULL
                OR s.status IN ('delivered', 'returned_to_sender')) AS finished,
               (p.last_polled_at IS NULL
                OR s.updated_at <= now() - coalesce(c.poll_interval, interval '30 minutes'))
                   AS claim,
               s.updated_at + coalesce(c.poll_interval, interval '30 minutes') AS later
          FROM orderdb.shipment_polls p
          JOIN orderdb.shipments s
            ON s.warehouse_id = p.warehouse_id AND s.shipment_id = p.shipment_id
          LEFT JOIN orderdb.carrier_polling c ON c.carrier = p.carrier
         WHERE NOT p.done
           AND p.next_poll_at <= now()
           AND (p.claimed_until IS NULL OR p.claimed_until <= now())
           AND (c.backoff_until IS NULL OR c.backoff_until <= now())
         ORDER BY p.next_poll_at  -- the order of shipment_polls_due: no sort of every due row
         LIMIT p_limit
           FOR UPDATE OF p SKIP LOCKED
    ), changed AS (
        UPDATE orderdb.shipment_polls AS p
           SET done = d.finished,
               next_poll_at = CASE WHEN d.finished OR d.claim THEN p.next_poll_at ELSE d.later END,
               claimed_by = CASE WHEN d.claim AND NOT d.finished THEN p_worker END,
               claimed_until = CASE WHEN d.claim AND NOT d.finished THEN now() + p_lease END
          FROM due d
         WHERE p.warehouse_id = d.wh AND p.shipment_id = d.sid
        RETURNING p.warehouse_id AS wh, p.shipment_id AS sid, p.carrier AS carrier_code,
                  p.tracking_number AS tn, p.last_polled_at AS polled, p.polls AS n,
                  p.claimed_by AS holder
    )
    SELECT ch.wh, ch.sid, s.order_id, ch.carrier_code, ch.tn, ch.polled, ch.n
      FROM changed ch
      JOIN orderdb.shipments s ON s.warehouse_id = ch.wh AND s.shipment_id = ch.sid
     WHERE ch.holder = p_worker
     ORDER BY ch.carrier_code, ch.wh, ch.sid;
END;
$$;
COMMENT ON FUNCTION orderdb.claim_shipments_for_polling(integer, text, interval) IS
    'Claims up to p_limit shipments due for carrier polling for one poller (FOR UPDATE SKIP LOCKED).';

-- finish_shipment_poll: records the outcome of polling one claimed shipment. Success: due again
-- after the carrier's interval, and the carrier's error back-off is cleared. Error (p_error not
-- NULL): the shipment is due again after the back-off, and the carrier backs off for
-- min(interval, 30 s * 2^(consecutive errors - 1)) — every poller skips it until then.
-- p_carrier_failed false: the carrier answered but refused this one parcel (an unknown tracking
-- number, a wrong phone for it): the error is kept on the shipment, which is due again after the
-- carrier's interval, and the carrier does not back off (its other parcels are polled as usual).
-- Returns false (and changes nothing) when p_worker no longer holds the claim (lease expired and
-- taken by another poller). Raises 22023 (bad arguments).
-- Locks the shipment_polls row, and the carrier_polling row of the carrier on error or recovery.
DROP FUNCTION IF EXISTS orderdb.finish_shipment_poll(integer, bigint, text, text);
CREATE OR REPLACE FUNCTION orderdb.finish_shipment_poll(p_warehouse_id integer, p_shipment_id bigint,
                                                        p_worker text, p_error text DEFAULT NULL,
                                                        p_carrier_failed boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_carrier  text;
    v_interval interval;
    v_backoff  interval;
    v_errors   integer;
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    PERFORM orderdb._check_positive(p_shipment_id, 'shipment_id');
    PERFORM orderdb._check_text(p_worker, 'worker', 255, true);

    SELECT p.carrier INTO v_carrier
      FROM orderdb.shipment_polls p
     WHERE p.warehouse_id = p_warehouse_id AND p.shipment_id = p_shipment_id
       AND p.claimed_by = p_worker
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    SELECT coalesce(max(c.poll_interval), interval '30 minutes') INTO v_interval
      FROM orderdb.carrier_polling c WHERE c.carrier = v_carrier;

    IF p_error IS NULL THEN
        UPDATE orderdb.shipment_polls AS p
           SET last_polled_at = now(), polls = p.polls + 1, last_error = NULL,
               next_poll_at = now() + v_interval, claimed_by = NULL, claimed_until = NULL,
               done = EXISTS (SELECT 1 FROM orderdb.shipments s
                               WHERE s.warehouse_id = p.warehouse_id
                                 AND s.shipment_id = p.shipment_id
                                 AND (s.delivered_at IS NOT NULL
                                      OR s.status IN ('delivered', 'returned_to_sender')))
         WHERE p.warehouse_id = p_warehouse_id AND p.shipment_id = p_shipment_id;
        -- clear the carrier's back-off only when there is one (no write per successful poll)
        UPDATE orderdb.carrier_polling AS c
           SET consecutive_errors = 0, backoff_until = NULL, last_success_at = now(),
               updated_at = now()
         WHERE c.carrier = v_carrier AND c.consecutive_errors > 0;
        RETURN true;
    END IF;

    IF p_carrier_failed IS FALSE THEN
        UPDATE orderdb.shipment_polls AS p
           SET last_polled_at = now(), polls = p.polls + 1, errors = p.errors + 1,
               last_error = left(p_error, 1000), next_poll_at = now() + v_interval,
               claimed_by = NULL, claimed_until = NULL
         WHERE p.warehouse_id = p_warehouse_id AND p.shipment_id = p_shipment_id;
        RETURN true;
    END IF;

    INSERT INTO orderdb.carrier_polling AS c (carrier, consecutive_errors, last_error, last_error_at)
    VALUES (v_carrier, 1, left(p_error, 1000), now())
    ON CONFLICT ON CONSTRAINT carrier_polling_pkey DO UPDATE
       SET consecutive_errors = c.consecutive_errors + 1, last_error = excluded.last_error,
           last_error_at = now(), updated_at = now()
    RETURNING c.consecutive_errors INTO v_errors;
    v_backoff := least(v_interval, interval '30 seconds' * power(2, least(v_errors - 1, 16)));
    UPDATE orderdb.carrier_polling AS c
       SET backoff_until = now() + v_backoff
     WHERE c.carrier = v_carrier;

    UPDATE orderdb.shipment_polls AS p
       SET last_polled_at = now(), polls = p.polls + 1, errors = p.errors + 1,
           last_error = left(p_error, 1000), next_poll_at = now() + v_backoff,
           claimed_by = NULL, claimed_until = NULL
     WHERE p.warehouse_id = p_warehouse_id AND p.shipment_id = p_shipment_id;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION orderdb.finish_shipment_poll(integer, bigint, text, text, boolean) IS
    'Records the outcome of polling one claimed shipment; carrier errors back the carrier off.';

-- release_shipment_polls: gives back every claim p_worker holds (of one carrier, or all), without
-- recording a poll: the shipments are due again at once for the other pollers. Used after a
-- carrier error (the rest of that carrier's batch) and on shutdown. Returns the number released.
-- Raises 22023 (bad worker). Locks the released rows.
CREATE OR REPLACE FUNCTION orderdb.release_shipment_polls(p_worker text, p_carrier text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_released integer;
BEGIN
    PERFORM orderdb._check_text(p_worker, 'worker', 255, true);
    UPDATE orderdb.shipment_polls AS p
       SET claimed_by = NULL, claimed_until = NULL
     WHERE p.claimed_by = p_worker AND (p_carrier IS NULL OR p.carrier = p_carrier);
    GET DIAGNOSTICS v_released = ROW_COUNT;
    RETURN v_released;
END;
$$;
COMMENT ON FUNCTION orderdb.release_shipment_polls(text, text) IS
    'Gives back the polling claims of one poller (all, or one carrier''s) without recording a poll.';
