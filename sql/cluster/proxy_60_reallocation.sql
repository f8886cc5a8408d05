-- reallocate_order across shards on the proxy (docs/scaling.md "Reallocation across shards"; the
-- steps are in sql/cluster/shard_70_reallocation.sql). The order keeps its id; its shard is then
-- the target's, which orderdb_cluster.order_forwards records for order_shard.

-- _raise_if: raises a shard's error returned as data (no-op when p_sqlstate is NULL).
CREATE OR REPLACE FUNCTION orderdb_cluster._raise_if(p_sqlstate text, p_message text,
                                                     p_detail text, p_hint text)
RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_sqlstate IS NOT NULL THEN
        PERFORM orderdb_cluster._raise(p_sqlstate, p_message, p_detail, p_hint);
    END IF;
END;
$fn$;

-- finish_reallocation: step 3 again for an order whose move stopped in flight (its source
-- sent it, the target did not receive it: a lost connection, a crash): receives it on the
-- target from the rows the source kept, and records the forward. Returns the order as
-- reallocate_order does; nothing when the order is not in flight. Raises what the target raises.
CREATE OR REPLACE FUNCTION orderdb_cluster.finish_reallocation(p_order_id bigint)
RETURNS TABLE (order_id bigint, warehouse_id integer, status text, version integer)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sent record;
    r record;
BEGIN
    -- the source: where the proxy sends the order's calls (its forward is not recorded yet)
    SELECT * INTO v_sent
      FROM orderdb_cluster.reallocation_sent(orderdb_cluster.order_shard(p_order_id),
                                             p_order_id);
    IF v_sent.to_shard IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO r FROM orderdb_cluster.reallocation_receive(v_sent.to_shard, p_order_id,
                                                              v_sent.payload, NULL, NULL);
    PERFORM orderdb_cluster._raise_if(r.err_sqlstate, r.err_message, r.err_detail, r.err_hint);
    INSERT INTO orderdb_cluster.order_forwards (order_id, shard)
    VALUES (p_order_id, v_sent.to_shard)
    ON CONFLICT ON CONSTRAINT order_forwards_pkey DO UPDATE SET shard = EXCLUDED.shard;
    order_id := r.order_id;
    warehouse_id := r.warehouse_id;
    status := r.status;
    version := r.version;
    RETURN NEXT;
END;
$fn$;

-- reallocate_order: as on one database (docs/api.md). Within the order's shard: that shard's
-- reallocate_order. To a warehouse of another shard: the saga (target reserves; source checks,
-- releases and sends the order's rows; target receives them; the proxy records the forward).
-- A failure before the source sent the order changes nothing (a reservation of the target is
-- given back); after it, the order is in flight until finish_reallocation. Raises what the
-- shards raise: 22023, OD004, OD002, OD003, OD001 (reallocate_order's texts).
CREATE OR REPLACE FUNCTION orderdb.reallocate_order(p_order_id bigint, p_to_warehouse_id integer,
                                                    p_expected_version integer,
                                                    p_actor text DEFAULT NULL,
                                                    p_reason text DEFAULT NULL)
RETURNS TABLE (order_id bigint, warehouse_id integer, status text, version integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_from integer := orderdb_cluster.order_shard(p_order_id);
    v_to integer := orderdb_cluster.warehouse_shard(p_to_warehouse_id, false);
    v_held record;
    v_step record;
    v_sent record;
    r record;
BEGIN
    IF v_to IS NULL OR v_to = v_from THEN
        FOR r IN SELECT * FROM orderdb_cluster.reallocate_order(v_from, p_order_id,
                                                                p_to_warehouse_id,
                                                                p_expected_version, p_actor,
                                                                p_reason) LOOP
            PERFORM orderdb_cluster._raise_if(r.err_sqlstate, r.err_message, r.err_detail,
                                              r.err_hint);
            order_id := r.order_id;
            warehouse_id := r.warehouse_id;
            status := r.status;
            version := r.version;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;
    -- 0. the source's checks, and what the order holds
    SELECT * INTO v_held FROM orderdb_cluster.reallocation_held(v_from, p_order_id,
                                                                p_to_warehouse_id,
                                                                p_expected_version);
    PERFORM orderdb_cluster._raise_if(v_held.err_sqlstate, v_held.err_message,
                                      v_held.err_detail, v_held.err_hint);
    -- 1. the target reserves
    SELECT * INTO v_step FROM orderdb_cluster.reallocation_reserve(v_to, p_order_id,
                                                                   p_to_warehouse_id,
                                                                   v_held.skus,
                                                                   v_held.quantities);
    PERFORM orderdb_cluster._raise_if(v_step.err_sqlstate, v_step.err_message,
                                      v_step.err_detail, v_step.err_hint);
    -- 2. the source checks again, releases and sends (else: the target gives its stock back)
    SELECT * INTO v_sent FROM orderdb_cluster.reallocation_send(v_from, p_order_id,
                                                                p_to_warehouse_id,
                                                                p_expected_version, v_to);
    IF v_sent.err_sqlstate IS NOT NULL THEN
        PERFORM orderdb_cluster.reallocation_unreserve(v_to, p_order_id);
        PERFORM orderdb_cluster._raise(v_sent.err_sqlstate, v_sent.err_message,
                                       v_sent.err_detail, v_sent.err_hint);
    END IF;
    -- 3. the target receives the order; the forward
    SELECT * INTO r FROM orderdb_cluster.reallocation_receive(v_to, p_order_id, v_sent.payload,
                                                              p_actor, p_reason);
    PERFORM orderdb_cluster._raise_if(r.err_sqlstate, r.err_message, r.err_detail, r.err_hint);
    INSERT INTO orderdb_cluster.order_forwards (order_id, shard) VALUES (p_order_id, v_to)
    ON CONFLICT ON CONSTRAINT order_forwards_pkey DO UPDATE SET shard = EXCLUDED.shard;
    order_id := r.order_id;
    warehouse_id := r.warehouse_id;
    status := r.status;
    version := r.version;
    RETURN NEXT;
END;
$fn$;

-- finish_stopped_reallocations: the recovery job of the saga (`orderdb maintain --dsn PROXY`
-- runs it): every order that a shard sent more than p_older_than ago and that the proxy still
-- routes to that shard (its target's answer never came back: a lost connection, a killed
-- worker) is finished by finish_reallocation. Returns one row per order finished: its source
-- and target shards and the order as finish_reallocation returns it. Safe to run at any time
-- and concurrently with a saga still under way (the target's receive locks its incoming row
-- and is idempotent). Raises 22023 for p_older_than NULL or negative; what the target raises.
CREATE OR REPLACE FUNCTION orderdb_cluster.finish_stopped_reallocations(
    p_older_than interval DEFAULT '30 seconds')
RETURNS TABLE (order_id bigint, from_shard integer, to_shard integer, warehouse_id integer,
               status text, version integer)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_shard integer;
    s record;
    r record;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'older_than must be zero or more',
            DETAIL = format('older_than=%s', coalesce(p_older_than::text, 'NULL'));
    END IF;
    FOR v_shard IN SELECT h.shard FROM orderdb_cluster.shards h ORDER BY h.shard LOOP
        FOR s IN SELECT x.order_id, x.to_shard
                   FROM orderdb_cluster.reallocations_sent_before(v_shard, p_older_than) x
                  WHERE orderdb_cluster.order_shard(x.order_id) = v_shard LOOP
            FOR r IN SELECT * FROM orderdb_cluster.finish_reallocation(s.order_id) LOOP
                order_id := r.order_id;
                from_shard := v_shard;
                to_shard := s.to_shard;
                warehouse_id := r.warehouse_id;
                status := r.status;
                version := r.version;
                RETURN NEXT;
            END LOOP;
        END LOOP;
    END LOOP;
END;
$fn$;

REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb_cluster FROM PUBLIC;
