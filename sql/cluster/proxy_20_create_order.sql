-- create_order on the proxy (docs/scaling.md "Idempotency keys"): the order is created on the
-- shard of its warehouse; with an idempotency key, the key's home shard is asked first, so that
-- a key stays global (same key + same request: the original order, whichever shard; another
-- request: OD006, said by the shard of the key's order as one database says it).

-- key_shard: the home shard of an idempotency key: a hash of the key (md5: the same on every
-- PostgreSQL version) modulo the number of shards the cluster had when it was created (shards
-- added later are never a key's home, so no key moves). Reads settings.
CREATE OR REPLACE FUNCTION orderdb_cluster.key_shard(p_key text)
RETURNS integer
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT (abs(('x' || substr(md5(p_key), 1, 8))::bit(32)::integer::bigint)
            % s.key_home_shards)::integer
      FROM orderdb_cluster.settings s
$fn$;

-- create_order: as on one database (docs/api.md). p_warehouse_id NULL: the warehouse is chosen
-- across the cluster (orderdb_shard.best_warehouse). With a key: the claim at the key's home names the
-- shard of the key's order; a claim of another request that never created its order is taken
-- over after 30 seconds (before: 40001, retry). Raises what the shard raises (same SQLSTATE,
-- MESSAGE, DETAIL, HINT). Locks: those of the shard's create_order; the key's row at its home.
CREATE OR REPLACE FUNCTION orderdb.create_order(p_customer_id bigint, p_warehouse_id integer,
                                                p_items jsonb,
                                                p_idempotency_key text DEFAULT NULL,
                                                p_actor text DEFAULT NULL,
                                                p_options jsonb DEFAULT '{}')
RETURNS TABLE (order_id bigint, order_no text, status text, version integer, replayed boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_shard integer;
    v_home integer;
    v_claim record;
    v_key_order bigint;
    r record;
BEGIN
    IF p_warehouse_id IS NULL THEN
        -- the automatic choice across shards: the best offer, ranked as one database ranks
        -- its warehouses; that shard's create_order chooses (or says OD001 for the closest)
        SELECT b.shard INTO v_shard
          FROM orderdb_cluster.best_warehouse(p_items) b
         ORDER BY b.serves_all DESC, b.lines_served DESC, b.priority, b.total_available DESC,
                  b.warehouse_id
         LIMIT 1;
        v_shard := coalesce(v_shard, 0);
    ELSE
        v_shard := coalesce(orderdb_cluster.warehouse_shard(p_warehouse_id, true), 0);
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
        v_home := orderdb_cluster.key_shard(p_idempotency_key);
        SELECT * INTO v_claim
          FROM orderdb_cluster.claim_idempotency_key(v_home, p_idempotency_key, p_customer_id,
                                                     p_warehouse_id, p_items, p_options,
                                                     v_shard, false);
        IF v_claim.claimed_shard IS NOT NULL AND NOT v_claim.same_request THEN
            SELECT k.order_id INTO v_key_order
              FROM orderdb_cluster.idempotency_key_order(v_claim.claimed_shard,
                                                         p_idempotency_key) k;
            IF v_key_order IS NULL AND v_claim.claim_age > interval '30 seconds' THEN
                -- the request that claimed the key never created its order: the key is free
                SELECT * INTO v_claim
                  FROM orderdb_cluster.claim_idempotency_key(v_home, p_idempotency_key,
                                                             p_customer_id, p_warehouse_id,
                                                             p_items, p_options, v_shard, true);
            ELSIF v_key_order IS NULL THEN
                RAISE EXCEPTION USING
                    ERRCODE = '40001',
                    MESSAGE = 'idempotency key claimed by another request that has not '
                              'created its order yet; retry',
                    DETAIL = format('idempotency_key=%s', p_idempotency_key),
                    HINT = 'Retry: the key is free again 30 seconds after a request that '
                           'failed claimed it.';
            END IF;
        END IF;
        -- the shard of the key's order decides: the original order (replayed) or OD006
        v_shard := coalesce(v_claim.claimed_shard, v_shard);
    END IF;
    FOR r IN SELECT * FROM orderdb_cluster.create_order(v_shard, p_customer_id, p_warehouse_id,
                                                        p_items, p_idempotency_key, p_actor,
                                                        p_options) LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        order_id := r.order_id;
        order_no := r.order_no;
        status := r.status;
        version := r.version;
        replayed := r.replayed;
        RETURN NEXT;
    END LOOP;
END;
$fn$;
