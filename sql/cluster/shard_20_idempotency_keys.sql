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

-- claim_idempotency_key: claims p_key for this request (create_order's arguments) and the shard
-- p_shard, unless it is claimed: returns the claim that holds (claimed_shard, same_request,
-- claim_age). A request whose arguments create_order would refuse claims nothing
-- (claimed_shard NULL: the order's shard answers with the error). p_take_over replaces a claim
-- of another request (the proxy does so only when that request never created its order).
-- Raises nothing of its own. Locks: the key's row.
CREATE OR REPLACE FUNCTION orderdb_shard.claim_idempotency_key(
    p_key text, p_customer_id bigint, p_warehouse_id integer, p_items jsonb, p_options jsonb,
    p_shard integer, p_take_over boolean DEFAULT false)
RETURNS TABLE (claimed_shard integer, same_request boolean, claim_age interval)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_hash bytea;
    v_row orderdb_shard.idempotency_keys;
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
        RETURN QUERY SELECT NULL::integer, NULL::boolean, NULL::interval;
        RETURN;
    END;
    IF p_take_over THEN
        UPDATE orderdb_shard.idempotency_keys k
           SET request_hash = v_hash, shard = p_shard, claimed_at = now()
         WHERE k.idempotency_key = p_key;
    END IF;
    INSERT INTO orderdb_shard.idempotency_keys (idempotency_key, request_hash, shard)
    VALUES (p_key, v_hash, p_shard)
    ON CONFLICT (idempotency_key) DO NOTHING;
    SELECT * INTO v_row FROM orderdb_shard.idempotency_keys k WHERE k.idempotency_key = p_key;
    RETURN QUERY SELECT v_row.shard, v_row.request_hash = v_hash, now() - v_row.claimed_at;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.claim_idempotency_key(text, bigint, integer, jsonb, jsonb,
                                                           integer, boolean) FROM PUBLIC;

-- idempotency_key_order: the order of this shard that an idempotency key created, if any
-- (order_id NULL otherwise). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.idempotency_key_order(p_key text)
RETURNS TABLE (order_id bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT (SELECT d.order_id FROM orderdb.order_directory d WHERE d.idempotency_key = p_key)
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.idempotency_key_order(text) FROM PUBLIC;
