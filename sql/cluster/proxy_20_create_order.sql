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

-- _key_order: the order an idempotency key made, looked up from the shard of its claim and
-- followed along the forwards of orders that moved to another shard: (order_id, shard) where
-- the order is; (NULL, NULL) when the claim's shard has none; (order_id, NULL) when the order
-- is in flight between two shards (a reallocation between its steps). Reads only.
CREATE OR REPLACE FUNCTION orderdb_cluster._key_order(p_shard integer, p_key text,
                                                      OUT order_id bigint, OUT shard integer)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_at integer := p_shard;
    v_hops integer := 0;
    r record;
BEGIN
    LOOP
        SELECT k.order_id, k.moved_to INTO r
          FROM orderdb_cluster.idempotency_key_location(v_at, p_key) k;
        IF r.order_id IS NULL THEN
            -- nothing here: no order, or (after a forward) one that has not arrived yet
            shard := NULL;
            RETURN;
        END IF;
        order_id := r.order_id;
        IF r.moved_to IS NULL THEN
            shard := v_at;
            RETURN;
        END IF;
        v_hops := v_hops + 1;
        IF v_hops > 64 THEN
            shard := NULL;
            RETURN;
        END IF;
        v_at := r.moved_to;
    END LOOP;
END;
$fn$;

-- create_order: as on one database (docs/api.md). p_warehouse_id NULL: the warehouse is chosen
-- across the cluster (orderdb_shard.best_warehouse). With a key, the requests of one key are
-- serial on the proxy (a transaction advisory lock on the key, held until the caller's
-- transaction ends, as one database holds the key's row): the claim at the key's home names the
-- shard of the key's order; the same request runs there (the original order, or its creation),
-- another request gets OD006 from the shard that has the key's order. A claim that made no
-- order belongs to a request that has ended (the lock says so): it is revoked on its shard
-- (which waits for a creation still running there and refuses any later one) and taken over by
-- this request. Raises what the shard raises (same SQLSTATE, MESSAGE, DETAIL, HINT); 40001 only
-- when the key's order is in flight between two shards (a reallocation), or when an earlier
-- request whose proxy backend died is still creating the key's order on its shard after 10
-- seconds. Locks: the key's advisory lock; the key's row at its home; those of the shard's
-- create_order.
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
    v_key_shard integer;
    v_revoked boolean;
    v_take_over integer;
    v_round integer := 0;
    r record;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        -- the requests of one key, one at a time (the lock's key space: orderdb_cluster's)
        PERFORM pg_advisory_xact_lock(
            hashtextextended('orderdb_cluster.idempotency_key:' || p_idempotency_key, 0));
    END IF;
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
        LOOP
            v_round := v_round + 1;
            SELECT * INTO v_claim
              FROM orderdb_cluster.claim_idempotency_key(v_home, p_idempotency_key,
                                                         p_customer_id, p_warehouse_id, p_items,
                                                         p_options, v_shard, v_take_over);
            v_take_over := NULL;
            -- arguments that create_order refuses: claimed nothing, the shard answers
            EXIT WHEN v_claim.claimed_shard IS NULL;
            -- a claim made by this call: the key has no order yet
            v_key_order := NULL;
            v_key_shard := NULL;
            IF NOT v_claim.fresh THEN
                SELECT k.order_id, k.shard INTO v_key_order, v_key_shard
                  FROM orderdb_cluster._key_order(v_claim.claimed_shard, p_idempotency_key) k;
            END IF;
            IF v_key_shard IS NOT NULL THEN
                -- the key's order: the shard that has it replays it or answers OD006
                v_shard := v_key_shard;
                EXIT;
            ELSIF v_key_order IS NOT NULL THEN
                RAISE EXCEPTION USING
                    ERRCODE = '40001',
                    MESSAGE = 'the order of this idempotency key is moving to another shard; '
                              'retry',
                    DETAIL = format('idempotency_key=%s order_id=%s', p_idempotency_key,
                                    v_key_order),
                    HINT = 'Retry: the order is on its new shard once the reallocation ends '
                           '(orderdb maintain finishes one stopped in flight).';
            ELSIF v_claim.same_request THEN
                -- the claim is this request's: its order is created (or replayed) on its shard,
                -- unless the claim was revoked there (by a request that died before it took
                -- the key over: the claim makes no order, this request takes it over)
                FOR r IN SELECT * FROM orderdb_cluster.create_order_claimed(
                             v_claim.claimed_shard, v_claim.attempt, p_customer_id,
                             p_warehouse_id, p_items, p_idempotency_key, p_actor, p_options) LOOP
                    IF r.revoked THEN
                        v_take_over := v_claim.attempt;
                        EXIT;
                    END IF;
                    IF r.err_sqlstate IS NOT NULL THEN
                        PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message,
                                                       r.err_detail, r.err_hint);
                    END IF;
                    order_id := r.order_id;
                    order_no := r.order_no;
                    status := r.status;
                    version := r.version;
                    replayed := r.replayed;
                    RETURN NEXT;
                    RETURN;
                END LOOP;
            ELSE
                -- another request's claim that made no order: that request has ended (it held
                -- this lock), its creation failed or its proxy backend died. Revoked on its
                -- shard (after a creation still running there), the key is this request's.
                v_revoked := orderdb_cluster.revoke_idempotency_claim(
                                 v_claim.claimed_shard, p_idempotency_key, v_claim.attempt);
                IF v_revoked IS NULL THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '40001',
                        MESSAGE = 'idempotency key still being used by a request that ended; '
                                  'retry',
                        DETAIL = format('idempotency_key=%s', p_idempotency_key),
                        HINT = 'Retry: an earlier request with this key lost its connection '
                               'while its order was being created on its shard.';
                END IF;
                IF v_revoked THEN
                    v_take_over := v_claim.attempt;
                END IF;
            END IF;
            IF v_round >= 8 THEN
                RAISE EXCEPTION USING
                    ERRCODE = '40001',
                    MESSAGE = 'idempotency key claimed concurrently; retry',
                    DETAIL = format('idempotency_key=%s', p_idempotency_key);
            END IF;
        END LOOP;
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
