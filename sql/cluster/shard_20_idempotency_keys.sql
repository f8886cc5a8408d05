-- Global idempotency keys (docs/scaling.md "Idempotency keys"): every key has a home shard (a
-- hash of the key), whose table below records which request claimed the key first and on which
-- shard its order lives. create_order on the proxy claims the key at its home before it creates
-- the order on the order's shard, so that the same key reaches the same order whichever
-- warehouse (and so shard) a retry names.

CREATE TABLE IF NOT EXISTS orderdb_shard.idempotency_keys (
    idempotency_key text PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    bytea NOT NULL,
    shard           integer NOT NULL CHECK (shard >= 0),
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orderdb_shard.idempotency_keys IS
    'Idempotency keys whose home is this shard: the request that claimed each first (its hash, '
    'as create_order computes it) and the shard of its order.';
REVOKE ALL ON orderdb_shard.idempotency_keys FROM PUBLIC;
-- attempt: the claim's number (a take-over makes the next one); every creation of the key's
-- order names it, so that a claim revoked on its order's shard makes nothing there any more
ALTER TABLE orderdb_shard.idempotency_keys ADD COLUMN IF NOT EXISTS attempt integer NOT NULL
    DEFAULT 1;
COMMENT ON COLUMN orderdb_shard.idempotency_keys.attempt IS
    'The claim''s number: 1 for the first, + 1 at each take-over of a claim that made no order.';

CREATE TABLE IF NOT EXISTS orderdb_shard.idempotency_revocations (
    idempotency_key text PRIMARY KEY,
    revoked_through integer NOT NULL CHECK (revoked_through >= 1),
    revoked_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orderdb_shard.idempotency_revocations IS
    'Claims of idempotency keys revoked on this shard (the order''s shard of the claim): the '
    'claims up to attempt revoked_through make no order here (create_order_claimed refuses).';
REVOKE ALL ON orderdb_shard.idempotency_revocations FROM PUBLIC;

-- the claim function before attempts (p_take_over boolean, a claim_age column), and before its
-- column fresh
DROP FUNCTION IF EXISTS orderdb_shard.claim_idempotency_key(text, bigint, integer, jsonb, jsonb,
                                                            integer, boolean);
DO $do$
BEGIN
    IF pg_catalog.pg_get_function_result(to_regprocedure(
           'orderdb_shard.claim_idempotency_key(text, bigint, integer, jsonb, jsonb, integer, '
           'integer)')) NOT LIKE '%fresh%' THEN
        DROP FUNCTION orderdb_shard.claim_idempotency_key(text, bigint, integer, jsonb, jsonb,
                                                          integer, integer);
    END IF;
END;
$do$;

-- claim_idempotency_key: claims p_key for this request (create_order's arguments) and the shard
-- p_shard, unless it is claimed: returns the claim that holds (claimed_shard, same_request, its
-- attempt: 1 for the first claim of the key, + 1 at each take-over, and fresh: made by this
-- call, so the key has no order yet). A request whose
-- arguments create_order would refuse claims nothing (claimed_shard NULL: the order's shard
-- answers with the error). p_take_over: the attempt of another request's claim that this request
-- takes over (the proxy does so only after revoke_idempotency_claim on that claim's shard said
-- that it never made its order there and never will); a claim of another attempt stays.
-- Raises nothing of its own. Locks: the key's row.
CREATE OR REPLACE FUNCTION orderdb_shard.claim_idempotency_key(
    p_key text, p_customer_id bigint, p_warehouse_id integer, p_items jsonb, p_options jsonb,
    p_shard integer, p_take_over integer DEFAULT NULL)
RETURNS TABLE (claimed_shard integer, same_request boolean, attempt integer, fresh boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_hash bytea;
    v_row orderdb_shard.idempotency_keys;
    v_fresh boolean := false;
BEGIN
    BEGIN
        PERFORM orderdb._check_positive(p_customer_id, 'customer_id'),
                orderdb._check_text(p_key, 'idempotency_key', 255, true);
        IF coalesce(p_options, '{}'::jsonb) <> '{}'::jsonb THEN
            PERFORM orderdb._order_data(p_options);
        END IF;
        v_hash := sha256(convert_to(jsonb_build_object(
                      'customer_id', p_customer_id, 'warehouse_id', p_warehouse_id,
                      'items', (orderdb._parse_items(p_items)).items_canonical,
                      'options', coalesce(p_options, '{}'::jsonb))::text, 'UTF8'));
    EXCEPTION WHEN data_exception THEN
        RETURN QUERY SELECT NULL::integer, NULL::boolean, NULL::integer, NULL::boolean;
        RETURN;
    END;
    IF p_take_over IS NOT NULL THEN
        UPDATE orderdb_shard.idempotency_keys k
           SET request_hash = v_hash, shard = p_shard, attempt = k.attempt + 1,
               claimed_at = now()
         WHERE k.idempotency_key = p_key AND k.attempt = p_take_over;
        v_fresh := FOUND;
    END IF;
    IF NOT v_fresh THEN
        INSERT INTO orderdb_shard.idempotency_keys (idempotency_key, request_hash, shard)
        VALUES (p_key, v_hash, p_shard)
        ON CONFLICT (idempotency_key) DO NOTHING;
        v_fresh := FOUND;
    END IF;
    SELECT * INTO v_row FROM orderdb_shard.idempotency_keys k WHERE k.idempotency_key = p_key;
    RETURN QUERY SELECT v_row.shard, v_row.request_hash = v_hash, v_row.attempt, v_fresh;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.claim_idempotency_key(text, bigint, integer, jsonb, jsonb,
                                                           integer, integer) FROM PUBLIC;

-- idempotency_key_location: the order of this shard that an idempotency key created (moved_to
-- NULL), or the order that left this shard for shard moved_to (a reallocation to a warehouse of
-- another shard: order_forwards), if any (no row otherwise). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.idempotency_key_location(p_key text)
RETURNS TABLE (order_id bigint, moved_to integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- (plpgsql: order_forwards is created by shard_70_reallocation.sql, after this file)
    RETURN QUERY SELECT d.order_id, NULL::integer FROM orderdb.order_directory d
                  WHERE d.idempotency_key = p_key;
    IF NOT FOUND THEN
        RETURN QUERY SELECT f.order_id, f.to_shard FROM orderdb_shard.order_forwards f
                      WHERE f.payload -> 'order_directory' -> 0 ->> 'idempotency_key' = p_key
                      ORDER BY f.sent_at DESC
                      LIMIT 1;
    END IF;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.idempotency_key_location(text) FROM PUBLIC;
-- before moved orders were followed
DROP FUNCTION IF EXISTS orderdb_shard.idempotency_key_order(text);

-- _idempotency_lock: the transaction advisory lock of an idempotency key on this shard: shared
-- while a claim creates the key's order here, exclusive while a claim is revoked here.
CREATE OR REPLACE FUNCTION orderdb_shard._idempotency_lock(p_key text)
RETURNS bigint
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT hashtextextended('orderdb_shard.idempotency_key:' || p_key, 0)
$fn$;

-- create_order_claimed: create_order (the shard's wrapper: its error as data) for the claim
-- p_attempt of its idempotency key, unless that claim was revoked on this shard
-- (revoke_idempotency_claim): then nothing is done and revoked is true, so that a request whose
-- claim was taken over (its proxy backend died before the call reached this shard) never
-- makes an order for the key any more. Locks: the key's advisory lock, shared (a revocation
-- waits for the creations running here); those of create_order.
CREATE OR REPLACE FUNCTION orderdb_shard.create_order_claimed(
    p_attempt integer, p_customer_id bigint, p_warehouse_id integer, p_items jsonb,
    p_idempotency_key text, p_actor text, p_options jsonb)
RETURNS TABLE (revoked boolean, order_id bigint, order_no text, status text, version integer,
               replayed boolean, err_sqlstate text, err_message text, err_detail text,
               err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(orderdb_shard._idempotency_lock(p_idempotency_key));
    -- this statement's snapshot is taken after the lock: it sees a revocation that committed
    IF EXISTS (SELECT 1 FROM orderdb_shard.idempotency_revocations r
                WHERE r.idempotency_key = p_idempotency_key
                  AND r.revoked_through >= p_attempt) THEN
        RETURN QUERY SELECT true, NULL::bigint, NULL::text, NULL::text, NULL::integer,
                            NULL::boolean, NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT false, c.order_id, c.order_no, c.status, c.version, c.replayed,
                        c.err_sqlstate, c.err_message, c.err_detail, c.err_hint
                   FROM orderdb_shard.create_order(p_customer_id, p_warehouse_id, p_items,
                                                   p_idempotency_key, p_actor, p_options) c;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.create_order_claimed(integer, bigint, integer, jsonb, text,
                                                          text, jsonb) FROM PUBLIC;

-- revoke_idempotency_claim: on the shard of the claim p_attempt of p_key: true when the key has
-- no order here (nor one that moved away from here: order_forwards) — the claim is revoked
-- then, and its creations that had not started here make nothing (create_order_claimed);
-- false when the key has its order (here, or moved on from here). Waits for the creations of the
-- key running here (at most 10 seconds: then NULL, nothing revoked). Locks: the key's advisory
-- lock, exclusive; the key's revocations row.
CREATE OR REPLACE FUNCTION orderdb_shard.revoke_idempotency_claim(p_key text, p_attempt integer)
RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '10s'
AS $fn$
BEGIN
    BEGIN
        PERFORM pg_advisory_xact_lock(orderdb_shard._idempotency_lock(p_key));
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    -- snapshots taken after the lock: a creation that committed meanwhile is seen
    IF EXISTS (SELECT 1 FROM orderdb.order_directory d WHERE d.idempotency_key = p_key)
       OR EXISTS (SELECT 1 FROM orderdb_shard.order_forwards f
                   WHERE f.payload -> 'order_directory' -> 0 ->> 'idempotency_key' = p_key) THEN
        RETURN false;
    END IF;
    INSERT INTO orderdb_shard.idempotency_revocations AS r (idempotency_key, revoked_through)
    VALUES (p_key, p_attempt)
    ON CONFLICT (idempotency_key) DO UPDATE
       SET revoked_through = greatest(r.revoked_through, EXCLUDED.revoked_through),
           revoked_at = now();
    RETURN true;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.revoke_idempotency_claim(text, integer) FROM PUBLIC;
