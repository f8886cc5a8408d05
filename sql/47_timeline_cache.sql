-- orderdb.order_timeline served from orderdb.order_timeline_cache (migrations/0017_timeline_cache):
-- the reader's path is the argument checks and one statement (the order's directory row, the
-- global generation and the cached row); a miss builds the document (orderdb._order_timeline_doc,
-- sql/45_tracking.sql) and stores it. The writers invalidate by bumping generations in their own
-- transaction (the triggers below), never by deleting: a reader stores a document together with
-- the generations it read in the same snapshot, so a writer that commits after that snapshot has
-- already made the stored row unservable. docs/tracking.md "The timeline cache".

-- _order_timeline_store: stores a document order_timeline built (its generations as read with
-- it). Does nothing when the transaction is read-only (a hot standby) or has written anything
-- (its own uncommitted changes may be in the document, and a writer bumps an order's generation
-- once per transaction), when another transaction is storing this order's documents (an
-- advisory lock, never waited for), or when the order's directory row is gone or going (it is
-- share-locked first: a purge or a move to another shard deletes it, and the cache rows with it,
-- after this row is committed). A row never replaces one of newer generations.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_store(p_order_id bigint, p_locale text,
                                                         p_time_zone text, p_generation bigint,
                                                         p_texts_generation bigint,
                                                         p_customer_id bigint, p_document jsonb,
                                                         p_estimate_carrier text,
                                                         p_estimate_shipped_at timestamptz)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'on'
       OR pg_current_xact_id_if_assigned() IS NOT NULL
       OR NOT pg_try_advisory_xact_lock(1869898596, hashint8(p_order_id)) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM orderdb.order_directory d WHERE d.order_id = p_order_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO orderdb.order_timeline_cache AS c
           (order_id, locale, time_zone, generation, texts_generation, customer_id, document,
            estimate_carrier, estimate_shipped_at, built_at)
    VALUES (p_order_id, p_locale, p_time_zone, p_generation, p_texts_generation, p_customer_id,
            p_document, p_estimate_carrier, p_estimate_shipped_at, now())
    ON CONFLICT (order_id, locale, time_zone) DO UPDATE
       SET generation = excluded.generation,
           texts_generation = excluded.texts_generation,
           customer_id = excluded.customer_id,
           document = excluded.document,
           estimate_carrier = excluded.estimate_carrier,
           estimate_shipped_at = excluded.estimate_shipped_at,
           built_at = excluded.built_at
     WHERE c.generation <= excluded.generation
       AND c.texts_generation <= excluded.texts_generation;
EXCEPTION WHEN serialization_failure OR deadlock_detected OR lock_not_available THEN
    -- repeatable read / serializable: a concurrent store won; the document is served anyway
    RETURN;
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_store(bigint, text, text, bigint, bigint, bigint,
                                                  jsonb, text, timestamptz) IS
    'Stores a document order_timeline built, unless read-only, after a write, or already being stored.';

-- order_timeline: the document of sql/45_tracking.sql (the comment above _order_timeline_doc:
-- fields, languages, errors), exactly as orderdb._order_timeline_build computes it. A cached
-- document is used when its generations are current, for this locale as spelled and the
-- session's TimeZone (the document's timestamps are written in it); the customer check runs on
-- every call, against the cached owner. An estimated delivery from the carrier's median transit
-- time is computed at every call (orderdb._timeline_estimate). Raises 22023 (bad ids, unknown
-- locale), OD004 (unknown order), OD005 (p_customer_id given and not the owner). Locks nothing
-- (a miss may store the document: orderdb._order_timeline_store).
CREATE OR REPLACE FUNCTION orderdb.order_timeline(p_order_id bigint, p_customer_id bigint DEFAULT NULL,
                                                  p_locale text DEFAULT 'en')
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_time_zone  text := current_setting('TimeZone');
    v_cached     record;
    v_doc        record;
BEGIN
    IF p_order_id IS NULL OR p_order_id <= 0 THEN
        PERFORM orderdb._check_positive(p_order_id, 'order_id');
    END IF;
    IF p_customer_id IS NOT NULL AND p_customer_id <= 0 THEN
        PERFORM orderdb._check_positive(p_customer_id, 'customer_id');
    END IF;

    SELECT d.timeline_generation, g.generation AS texts_generation, c.document, c.customer_id,
           c.estimate_carrier, c.estimate_shipped_at
      INTO v_cached
      FROM orderdb.order_directory d
      CROSS JOIN orderdb.order_timeline_generation g
      LEFT JOIN orderdb.order_timeline_cache c
        ON c.order_id = d.order_id AND c.locale = p_locale AND c.time_zone = v_time_zone
       AND c.generation = d.timeline_generation AND c.texts_generation = g.generation
     WHERE d.order_id = p_order_id;

    IF v_cached.document IS NULL THEN
        -- a miss (or no such order: _order_timeline_doc raises as it always did)
        v_doc := orderdb._order_timeline_doc(p_order_id, p_customer_id, p_locale);
        IF v_cached.timeline_generation IS NOT NULL THEN
            PERFORM orderdb._order_timeline_store(p_order_id, p_locale, v_time_zone,
                                                  v_cached.timeline_generation,
                                                  v_cached.texts_generation, v_doc.customer_id,
                                                  v_doc.document, v_doc.estimate_carrier,
                                                  v_doc.estimate_shipped_at);
        END IF;
        v_cached.document := v_doc.document;
        v_cached.estimate_carrier := v_doc.estimate_carrier;
        v_cached.estimate_shipped_at := v_doc.estimate_shipped_at;
    ELSIF p_customer_id IS NOT NULL AND p_customer_id <> v_cached.customer_id THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD005',
            MESSAGE = format('order %s does not belong to customer %s', p_order_id, p_customer_id),
            DETAIL = format('order_id=%s customer_id=%s', p_order_id, p_customer_id);
    END IF;

    IF v_cached.estimate_carrier IS NULL THEN
        RETURN v_cached.document;
    END IF;
    RETURN v_cached.document
           || jsonb_build_object('estimated_delivery',
                                 orderdb._timeline_estimate(v_cached.estimate_carrier,
                                                            v_cached.estimate_shipped_at));
END;
$$;
COMMENT ON FUNCTION orderdb.order_timeline(bigint, bigint, text) IS
    'The customer''s view of an order: status, location, estimated delivery, shipments, timeline.';

-- ---------------------------------------------------------------------------------------------
-- Invalidation: statement-level triggers with transition tables. Each bumps the generation of
-- the orders a statement touched, once per transaction (a directory row this transaction already
-- updated is left alone: its new generation is not visible to anyone else yet, and this
-- transaction stores no documents). The directory rows are updated in order_id order (one
-- ScalarArrayOp index scan): two statements bumping the same orders take their locks in the same
-- order.
-- ---------------------------------------------------------------------------------------------

-- _timeline_bump: bumps the generation of p_order_ids (sorted, distinct).
CREATE OR REPLACE FUNCTION orderdb._timeline_bump(p_order_ids bigint[])
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    UPDATE orderdb.order_directory d
       SET timeline_generation = d.timeline_generation + 1
     WHERE d.order_id = ANY (p_order_ids)
       AND d.xmin <> pg_current_xact_id()::xid;
$fn$;
COMMENT ON FUNCTION orderdb._timeline_bump(bigint[]) IS
    'Makes the cached timeline documents of these orders unservable (once per transaction).';

-- _timeline_bump_all: every cached document at once (customer texts, TRUNCATE, retention).
CREATE OR REPLACE FUNCTION orderdb._timeline_bump_all()
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    UPDATE orderdb.order_timeline_generation g SET generation = g.generation + 1;
$fn$;
COMMENT ON FUNCTION orderdb._timeline_bump_all() IS
    'Makes every cached timeline document unservable.';

-- tables with an order_id column: orders, order_status_history, shipments, route_stops,
-- order_directory (TG_ARGV[0] = 'purge': deleted rows take their cache rows along)
CREATE OR REPLACE FUNCTION orderdb._timeline_on_order_rows()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_ids := ARRAY(SELECT DISTINCT n.order_id FROM new_rows n ORDER BY 1);
    ELSIF TG_OP = 'UPDATE' THEN
        v_ids := ARRAY(SELECT n.order_id FROM new_rows n
                       UNION SELECT o.order_id FROM old_rows o ORDER BY 1);
    ELSE
        v_ids := ARRAY(SELECT DISTINCT o.order_id FROM old_rows o ORDER BY 1);
        IF TG_ARGV[0] = 'purge' THEN
            DELETE FROM orderdb.order_timeline_cache c WHERE c.order_id = ANY (v_ids);
        END IF;
    END IF;
    IF TG_TABLE_NAME <> 'order_directory' THEN
        PERFORM orderdb._timeline_bump(v_ids);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_order_rows() IS
    'Trigger: the orders a statement wrote get a new timeline generation.';

-- tracking_events: the orders of the parcels (orderdb.tracking_numbers) the events are for
CREATE OR REPLACE FUNCTION orderdb._timeline_on_tracking_events()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT tn.order_id
              FROM new_rows n
              JOIN orderdb.tracking_numbers tn
                ON tn.carrier = n.carrier AND tn.tracking_number = n.tracking_number
             ORDER BY 1));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT tn.order_id
              FROM (SELECT n.carrier, n.tracking_number FROM new_rows n
                    UNION SELECT o.carrier, o.tracking_number FROM old_rows o) e
              JOIN orderdb.tracking_numbers tn
                ON tn.carrier = e.carrier AND tn.tracking_number = e.tracking_number
             ORDER BY 1));
    ELSE
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT tn.order_id
              FROM old_rows o
              JOIN orderdb.tracking_numbers tn
                ON tn.carrier = o.carrier AND tn.tracking_number = o.tracking_number
             ORDER BY 1));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_tracking_events() IS
    'Trigger: the orders whose parcels got (or lost) carrier events get a new timeline generation.';

-- routes (courier_id) and couriers (name, phone): the orders on the routes concerned (a
-- courier's position or availability changes no document); no index on route_stops (route_id):
-- these scan route_stops, and a courier's name or phone changes rarely
CREATE OR REPLACE FUNCTION orderdb._timeline_on_routes()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT rs.order_id
              FROM old_rows o
              JOIN orderdb.route_stops rs
                ON rs.warehouse_id = o.warehouse_id AND rs.route_id = o.route_id
             ORDER BY 1));
    ELSE
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT rs.order_id
              FROM old_rows o
              JOIN new_rows n ON n.warehouse_id = o.warehouse_id AND n.route_id = o.route_id
              JOIN orderdb.route_stops rs
                ON rs.warehouse_id = o.warehouse_id AND rs.route_id = o.route_id
             WHERE n.courier_id IS DISTINCT FROM o.courier_id
             ORDER BY 1));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_routes() IS
    'Trigger: the orders on a route whose courier changed get a new timeline generation.';

CREATE OR REPLACE FUNCTION orderdb._timeline_on_couriers()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT rs.order_id
              FROM old_rows o
              JOIN orderdb.routes r
                ON r.warehouse_id = o.warehouse_id AND r.courier_id = o.courier_id
              JOIN orderdb.route_stops rs
                ON rs.warehouse_id = r.warehouse_id AND rs.route_id = r.route_id
             ORDER BY 1));
    ELSE
        PERFORM orderdb._timeline_bump(ARRAY(
            SELECT DISTINCT rs.order_id
              FROM old_rows o
              JOIN new_rows n ON n.warehouse_id = o.warehouse_id AND n.courier_id = o.courier_id
              JOIN orderdb.routes r
                ON r.warehouse_id = o.warehouse_id AND r.courier_id = o.courier_id
              JOIN orderdb.route_stops rs
                ON rs.warehouse_id = r.warehouse_id AND rs.route_id = r.route_id
             WHERE (n.name, n.phone) IS DISTINCT FROM (o.name, o.phone)
             ORDER BY 1));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_couriers() IS
    'Trigger: the orders on the routes of a renamed (or removed) courier get a new timeline generation.';

CREATE OR REPLACE FUNCTION orderdb._timeline_on_any()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM orderdb._timeline_bump_all();
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_any() IS
    'Trigger: every cached timeline document gets stale (customer texts, TRUNCATE).';

-- The triggers, created once (CREATE TRIGGER locks the table; a re-run of the SQL files does not
-- take that lock again). Statement triggers on the partitioned tables (history, carrier events)
-- see the rows of every partition. A partition dropped or detached by retention fires nothing:
-- orderdb._maintain_partitions bumps every document itself.
DO $triggers$
DECLARE
    v_t record;
BEGIN
    FOR v_t IN
        SELECT x.tbl, x.name, x.timing, x.func, x.refs
          FROM (VALUES
            -- order_id tables: one trigger per operation (transition tables are per operation)
            ('orders', 'timeline_cache_upd', 'UPDATE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('orders', 'timeline_cache_del', 'DELETE', '_timeline_on_order_rows(''purge'')', 'OLD TABLE AS old_rows'),
            ('order_status_history', 'timeline_cache_ins', 'INSERT', '_timeline_on_order_rows()', 'NEW TABLE AS new_rows'),
            ('order_status_history', 'timeline_cache_upd', 'UPDATE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('order_status_history', 'timeline_cache_del', 'DELETE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows'),
            ('shipments', 'timeline_cache_ins', 'INSERT', '_timeline_on_order_rows()', 'NEW TABLE AS new_rows'),
            ('shipments', 'timeline_cache_upd', 'UPDATE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('shipments', 'timeline_cache_del', 'DELETE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows'),
            ('route_stops', 'timeline_cache_ins', 'INSERT', '_timeline_on_order_rows()', 'NEW TABLE AS new_rows'),
            ('route_stops', 'timeline_cache_upd', 'UPDATE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('route_stops', 'timeline_cache_del', 'DELETE', '_timeline_on_order_rows()', 'OLD TABLE AS old_rows'),
            ('order_directory', 'timeline_cache_del', 'DELETE', '_timeline_on_order_rows(''purge'')', 'OLD TABLE AS old_rows'),
            ('tracking_events', 'timeline_cache_ins', 'INSERT', '_timeline_on_tracking_events()', 'NEW TABLE AS new_rows'),
            ('tracking_events', 'timeline_cache_upd', 'UPDATE', '_timeline_on_tracking_events()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('tracking_events', 'timeline_cache_del', 'DELETE', '_timeline_on_tracking_events()', 'OLD TABLE AS old_rows'),
            ('routes', 'timeline_cache_upd', 'UPDATE', '_timeline_on_routes()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('routes', 'timeline_cache_del', 'DELETE', '_timeline_on_routes()', 'OLD TABLE AS old_rows'),
            ('couriers', 'timeline_cache_upd', 'UPDATE', '_timeline_on_couriers()', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
            ('couriers', 'timeline_cache_del', 'DELETE', '_timeline_on_couriers()', 'OLD TABLE AS old_rows'),
            ('customer_texts', 'timeline_cache_any', 'INSERT OR UPDATE OR DELETE OR TRUNCATE', '_timeline_on_any()', NULL),
            ('orders', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('order_status_history', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('shipments', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('route_stops', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('routes', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('couriers', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('tracking_events', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL),
            ('order_directory', 'timeline_cache_trunc', 'TRUNCATE', '_timeline_on_any()', NULL)
          ) AS x(tbl, name, timing, func, refs)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                        WHERE t.tgrelid = format('orderdb.%I', v_t.tbl)::regclass
                          AND t.tgname = v_t.name) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON orderdb.%I %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION orderdb.%s',
                           v_t.name, v_t.timing, v_t.tbl,
                           CASE WHEN v_t.refs IS NOT NULL THEN 'REFERENCING ' || v_t.refs END,
                           v_t.func);
        END IF;
    END LOOP;
END;
$triggers$;
