-- orderdb.order_timeline served from orderdb.order_timeline_cache (migrations/0017_timeline_cache):
-- a hit is one statement (the cached row, its order's directory row and the global generation,
-- and probes for a route courier and the carrier's deliveries) answering the stored document;
-- the argument checks run only on a miss, which builds the document
-- (orderdb._order_timeline_doc, sql/45_tracking.sql) and stores it. The writers invalidate by
-- bumping generations in their own transaction (orderdb._timeline_bump_order, below), never by
-- deleting: a reader stores a document together with the generations it read in the same
-- snapshot, so a writer that commits after that snapshot has already made the stored row
-- unservable. A writer bumps only when a document of the order is stored or being stored;
-- otherwise it keeps anyone from storing one until it commits (the order's advisory lock,
-- shared). docs/tracking.md "The timeline cache".

-- _order_timeline_fill: builds the document (orderdb._order_timeline_doc) and stores it, when
-- it may: not in a read-only transaction (a hot standby), nor in one that has written anything
-- (its own uncommitted changes may be in the document), nor in one that is not READ COMMITTED
-- (its snapshot may predate the lock below), nor while a writer holds the order's lock. The
-- order's advisory lock is taken first (try, never waits; a writer of the order's data takes it
-- shared until it commits: orderdb._timeline_bump_order), then the directory row is key-share
-- locked (a purge or a move to another shard deletes it, and the cache rows with it, only after
-- this transaction), and only then is the document built, with the generations, in one
-- statement: one snapshot, taken after the lock. A writer that commits after that snapshot
-- found the lock held and bumped the order's generation. Returns the document's parts (all
-- NULL: not stored, the caller builds it itself); raises what _order_timeline_doc raises. A row
-- never replaces one of newer generations.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_fill(p_order_id bigint, p_customer_id bigint,
                                                        p_locale text, p_time_zone text,
                                                        OUT document jsonb,
                                                        OUT customer_id bigint,
                                                        OUT estimate_carrier text,
                                                        OUT estimate_shipped_at timestamptz)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    IF current_setting('transaction_read_only') = 'on'
       OR current_setting('transaction_isolation') <> 'read committed'
       OR pg_current_xact_id_if_assigned() IS NOT NULL
       OR NOT pg_try_advisory_xact_lock(1869898596, hashint8(p_order_id)) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM orderdb.order_directory d WHERE d.order_id = p_order_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT d.timeline_generation, g.generation AS texts_generation, x.document, x.customer_id,
           x.estimate_carrier, x.estimate_shipped_at
      INTO v
      FROM orderdb.order_directory d
      CROSS JOIN orderdb.order_timeline_generation g
      CROSS JOIN LATERAL orderdb._order_timeline_doc(p_order_id, p_customer_id, p_locale) x
     WHERE d.order_id = p_order_id;
    INSERT INTO orderdb.order_timeline_cache AS c
           (order_id, locale, time_zone, generation, texts_generation, customer_id, document,
            estimate_carrier, estimate_shipped_at, built_at)
    VALUES (p_order_id, p_locale, p_time_zone, v.timeline_generation, v.texts_generation,
            v.customer_id, v.document, v.estimate_carrier, v.estimate_shipped_at, now())
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
    document := v.document;
    customer_id := v.customer_id;
    estimate_carrier := v.estimate_carrier;
    estimate_shipped_at := v.estimate_shipped_at;
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_fill(bigint, bigint, text, text) IS
    'Builds order_timeline''s document and stores it, unless read-only, after a write, not read '
    'committed, or the order is being written or stored.';

-- the store of an earlier version of this file (it built before taking the lock)
DROP FUNCTION IF EXISTS orderdb._order_timeline_store(bigint, text, text, bigint, bigint, bigint,
                                                      jsonb, text, timestamptz);

-- _order_timeline_complete: the document of _order_timeline_doc (or a stored one) completed as
-- _order_timeline_build completes it: the route's courier while delivering without a courier
-- named by the carrier, the estimate from the carrier's median transit time when its inputs are
-- there and the carrier has a delivery in the window (else the document's own
-- "estimated_delivery" stays, null for such a document). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_complete(p_document jsonb, p_order_id bigint,
                                                            p_estimate_carrier text,
                                                            p_estimate_shipped_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_courier  jsonb;
    v_estimate timestamptz;
BEGIN
    IF p_document ->> 'status' = 'delivering' AND p_document -> 'courier' = 'null' THEN
        v_courier := orderdb._timeline_route_courier(p_order_id);
    END IF;
    IF p_estimate_carrier IS NOT NULL THEN
        v_estimate := orderdb._timeline_estimate(p_estimate_carrier, p_estimate_shipped_at);
    END IF;
    -- the ~3 kB document is rebuilt (||) only when something replaces one of its keys
    IF v_courier IS NULL THEN
        IF v_estimate IS NULL THEN
            RETURN p_document;
        END IF;
        RETURN p_document || jsonb_build_object('estimated_delivery', v_estimate);
    ELSIF v_estimate IS NULL THEN
        RETURN p_document || jsonb_build_object('courier', v_courier);
    END IF;
    RETURN p_document || jsonb_build_object('courier', v_courier, 'estimated_delivery', v_estimate);
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_complete(jsonb, bigint, text, timestamptz) IS
    'order_timeline''s document with the route''s courier and the median-based estimate added.';

-- _order_timeline_cached_rest: a hit that needs more than the stored document (order_timeline):
-- p_customer_id not the owner (22023 when it is not positive, else OD005, as before), or the
-- route's courier or the estimate to add (_order_timeline_complete). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_cached_rest(p_document jsonb,
                                                               p_order_id bigint,
                                                               p_customer_id bigint,
                                                               p_owner bigint,
                                                               p_estimate_carrier text,
                                                               p_estimate_shipped_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_customer_id <> p_owner THEN
        PERFORM orderdb._check_positive(p_customer_id, 'customer_id');
        RAISE EXCEPTION USING
            ERRCODE = 'OD005',
            MESSAGE = format('order %s does not belong to customer %s', p_order_id, p_customer_id),
            DETAIL = format('order_id=%s customer_id=%s', p_order_id, p_customer_id);
    END IF;
    RETURN orderdb._order_timeline_complete(p_document, p_order_id, p_estimate_carrier,
                                            p_estimate_shipped_at);
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_cached_rest(jsonb, bigint, bigint, bigint, text,
                                                        timestamptz) IS
    'order_timeline''s hit needing more than the stored document: owner check, courier, estimate.';

-- _order_timeline_miss: order_timeline without a current stored document: the argument checks
-- (22023), then, when the order has a directory row (read with the global generation, as the
-- hit's statement reads them: the same snapshot, STABLE), the document built and stored
-- (orderdb._order_timeline_fill) or, when it may not be stored, built; without one
-- _order_timeline_doc raises (OD004). Locks nothing itself.
CREATE OR REPLACE FUNCTION orderdb._order_timeline_miss(p_order_id bigint, p_customer_id bigint,
                                                        p_locale text)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc record;
BEGIN
    IF p_order_id IS NULL OR p_order_id <= 0 THEN
        PERFORM orderdb._check_positive(p_order_id, 'order_id');
    END IF;
    IF p_customer_id IS NOT NULL AND p_customer_id <= 0 THEN
        PERFORM orderdb._check_positive(p_customer_id, 'customer_id');
    END IF;
    PERFORM FROM orderdb.order_directory d
           CROSS JOIN orderdb.order_timeline_generation g
     WHERE d.order_id = p_order_id;
    IF NOT FOUND THEN
        v_doc := orderdb._order_timeline_doc(p_order_id, p_customer_id, p_locale);
    ELSE
        v_doc := orderdb._order_timeline_fill(p_order_id, p_customer_id, p_locale,
                                              current_setting('TimeZone'));
        IF v_doc.document IS NULL THEN
            v_doc := orderdb._order_timeline_doc(p_order_id, p_customer_id, p_locale);
        END IF;
    END IF;
    RETURN orderdb._order_timeline_complete(v_doc.document, p_order_id, v_doc.estimate_carrier,
                                            v_doc.estimate_shipped_at);
END;
$$;
COMMENT ON FUNCTION orderdb._order_timeline_miss(bigint, bigint, text) IS
    'order_timeline without a current stored document: checks, builds (and stores when it may).';

-- order_timeline: the document of sql/45_tracking.sql (the comment above _order_timeline_doc:
-- fields, languages, errors), exactly as orderdb._order_timeline_build computes it. A cached
-- document is used when its generations are current, for this locale as spelled and the
-- session's TimeZone (the document's timestamps are written in it); the customer check runs on
-- every call, against the cached owner. Computed at every call, never stored: an estimated
-- delivery from the carrier's median transit time (orderdb._timeline_estimate; only when the
-- carrier has a delivery in the window) and, while delivering without a courier named by the
-- carrier, the route's courier (orderdb._timeline_route_courier). Raises 22023 (bad ids, unknown
-- locale), OD004 (unknown order), OD005 (p_customer_id given and not the owner). Locks nothing
-- (a miss may store the document: orderdb._order_timeline_fill).
--
-- A hit is one statement whose answer is the stored document itself; everything else is in
-- helpers called only when needed (a PL/pgSQL call costs nothing until it is made, while every
-- node, subquery and function of a statement is set up at each execution, used or not):
-- _order_timeline_miss when no current document is stored (and for every bad argument: no
-- document is ever stored for an id <= 0 or an unknown locale — _order_timeline_doc raises
-- first — nor for an owner <= 0, CHECK orders_customer_id_check), _order_timeline_cached_rest
-- when the customer is not the owner, or the order is on a route while delivering without a
-- named courier, or the carrier has a delivery in the window (two probes of one index each).
-- PL/pgSQL, not SQL: PostgreSQL 15 plans a SQL function with a SET clause at every call (3-4x
-- the CPU of this one); on 18, which keeps its plan, the SQL form measured no cheaper.
CREATE OR REPLACE FUNCTION orderdb.order_timeline(p_order_id bigint, p_customer_id bigint DEFAULT NULL,
                                                  p_locale text DEFAULT 'en')
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_document jsonb;
BEGIN
    -- the stored document when both generations are current (the global one read with the row,
    -- in this statement's snapshot); the helper when the customer is not the owner (NULL
    -- p_customer_id: no check), when the route's courier may be needed (a stop of the order;
    -- a route probe only while delivering without a named courier) or when the carrier has a
    -- delivery in the window (a null estimate_carrier matches none)
    SELECT CASE WHEN p_customer_id <> c.customer_id
                     OR (c.document @> '{"status": "delivering", "courier": null}'
                         AND EXISTS (SELECT FROM orderdb.route_stops rs
                                      WHERE rs.warehouse_id = d.warehouse_id
                                        AND rs.order_id = d.order_id))
                     OR EXISTS (SELECT FROM orderdb.shipments s
                                 WHERE s.carrier = c.estimate_carrier
                                   AND s.delivered_at > now() - interval '30 days'
                                   AND s.delivered_at >= s.shipped_at)
                THEN orderdb._order_timeline_cached_rest(c.document, d.order_id, p_customer_id,
                                                         c.customer_id, c.estimate_carrier,
                                                         c.estimate_shipped_at)
                ELSE c.document
           END
      INTO v_document
      FROM orderdb.order_timeline_cache c
      JOIN orderdb.order_directory d
        ON d.order_id = c.order_id AND d.timeline_generation = c.generation
     WHERE c.order_id = p_order_id AND c.locale = p_locale
       AND c.time_zone = current_setting('TimeZone')
       AND c.texts_generation = (SELECT g.generation FROM orderdb.order_timeline_generation g);
    IF v_document IS NULL THEN
        RETURN orderdb._order_timeline_miss(p_order_id, p_customer_id, p_locale);
    END IF;
    RETURN v_document;
END;
$$;
COMMENT ON FUNCTION orderdb.order_timeline(bigint, bigint, text) IS
    'The customer''s view of an order: status, location, estimated delivery, shipments, timeline.';

-- ---------------------------------------------------------------------------------------------
-- Invalidation: the generation of the orders a transaction writes is bumped, once per
-- transaction (a directory row this transaction already updated is left alone: its new
-- generation is not visible to anyone else yet, and this transaction stores no documents).
-- The writers call orderdb._timeline_bump_order themselves: of carrier events and shipments
-- record_tracking_event, record_tracking_events, _create_shipment, _match_tracking_events,
-- _apply_tracking_to_shipment; of orders and their history _apply_transition,
-- _record_status_change, amend_order, reallocate_order and a cluster shard's
-- reallocation_receive (tests/test_timeline_cache.py fails for a function that inserts into or
-- updates one of those tables — an order's insert excepted — without the call). Row triggers
-- did it before and cost about a quarter of a record_tracking_event call (PostgreSQL re-reads
-- and plans their WHEN clauses at every statement; docs/benchmarks.md). Deletes and TRUNCATE:
-- the triggers below.
-- ---------------------------------------------------------------------------------------------

-- _timeline_bump_all: every cached document at once (customer texts, TRUNCATE, retention).
CREATE OR REPLACE FUNCTION orderdb._timeline_bump_all()
RETURNS void
LANGUAGE sql
VOLATILE
AS $fn$
    UPDATE orderdb.order_timeline_generation g SET generation = g.generation + 1;
$fn$;
COMMENT ON FUNCTION orderdb._timeline_bump_all() IS
    'Makes every cached timeline document unservable.';

-- _timeline_bump_order: invalidates the documents of one order (called by the writers). The
-- order handled last is remembered in a transaction-local setting (orderdb.timeline_bumped,
-- undone with a rolled-back subtransaction as the bump itself, and at the exit of a function
-- with a SET clause): a second call for it in the transaction (a transition's order row and
-- history row) returns at once. PL/pgSQL: its plan is cached for the
-- session (a SQL function with SET is planned at every call); no SET clause on these functions
-- (a SET costs every firing; they name every object with its schema).
CREATE OR REPLACE FUNCTION orderdb._timeline_bump_order(p_order_id bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $fn$
DECLARE
    v_key    text;
    v_locked boolean;
BEGIN
    IF p_order_id IS NULL THEN
        RETURN;
    END IF;
    v_key := pg_catalog.pg_current_xact_id()::text || '/' || p_order_id;
    IF pg_catalog.current_setting('orderdb.timeline_bumped', true) = v_key THEN
        RETURN;
    END IF;
    -- the order's lock, shared, until this transaction ends: no document of the order is stored
    -- meanwhile (orderdb._order_timeline_fill). Not taken: a reader is storing one now. The
    -- generation is bumped then, when a document is stored (it may have been built before this
    -- change), and always outside READ COMMITTED (an older snapshot may not see a stored row).
    v_locked := pg_catalog.pg_try_advisory_xact_lock_shared(1869898596,
                                                            pg_catalog.hashint8(p_order_id));
    IF NOT v_locked
       OR pg_catalog.current_setting('transaction_isolation') <> 'read committed'
       OR EXISTS (SELECT 1 FROM orderdb.order_timeline_cache c WHERE c.order_id = p_order_id) THEN
        UPDATE orderdb.order_directory d
           SET timeline_generation = d.timeline_generation + 1
         WHERE d.order_id = p_order_id
           AND d.xmin <> pg_catalog.pg_current_xact_id()::xid;
    END IF;
    PERFORM pg_catalog.set_config('orderdb.timeline_bumped', v_key, true);
END;
$fn$;
COMMENT ON FUNCTION orderdb._timeline_bump_order(bigint) IS
    'Makes the cached timeline documents of one order unservable (once per transaction).';

-- Row triggers for deletes from orders, order_status_history, shipments and order_directory: a
-- row trigger's plans are cached, a statement trigger's queries over transition tables are
-- planned at every firing (measured: several times the cost of the bump itself).
-- TG_ARGV[0] = 'purge' (orders, order_directory): a deleted row takes the order's cache rows
-- along.
CREATE OR REPLACE FUNCTION orderdb._timeline_on_order_row()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_ARGV[0] = 'purge' THEN
        DELETE FROM orderdb.order_timeline_cache c WHERE c.order_id = OLD.order_id;
    END IF;
    IF TG_TABLE_NAME <> 'order_directory' THEN
        PERFORM orderdb._timeline_bump_order(OLD.order_id);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_order_row() IS
    'Trigger: the order of a deleted row gets a new timeline generation (purge: its cache rows go).';

-- tracking_events (deletes): the order of the parcel (orderdb.tracking_numbers) an event is
-- for; a matched event carries it (order_id), an unmatched one is looked up
CREATE OR REPLACE FUNCTION orderdb._timeline_on_tracking_event_row()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM orderdb._timeline_bump_order(coalesce(
        OLD.order_id,
        (SELECT tn.order_id FROM orderdb.tracking_numbers tn
          WHERE tn.carrier = OLD.carrier AND tn.tracking_number = OLD.tracking_number)));
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_tracking_event_row() IS
    'Trigger: the order whose parcel lost a carrier event gets a new timeline generation.';

CREATE OR REPLACE FUNCTION orderdb._timeline_on_any()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM orderdb._timeline_bump_all();
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._timeline_on_any() IS
    'Trigger: every cached timeline document gets stale (customer texts, TRUNCATE).';

-- The triggers, created once (CREATE TRIGGER locks the table; a re-run of the SQL files does not
-- take that lock again). Row triggers on the partitioned tables (history, carrier events) apply
-- to every partition, present and future. A partition dropped or detached by retention fires
-- nothing: orderdb._maintain_partitions bumps every document itself.
DO $triggers$
DECLARE
    v_t record;
BEGIN
    -- the triggers of an earlier version of this file: statement triggers and one row trigger
    -- per table (replaced by row triggers per operation, with WHEN), and those on routes (the
    -- route's courier is read at every call now)
    FOR v_t IN
        SELECT t.tgname AS name, t.tgrelid::regclass::text AS tbl, NULL AS timing, NULL AS level,
               NULL AS func, NULL AS refs, NULL AS cond
          FROM pg_catalog.pg_trigger t
         WHERE t.tgparentid = 0
           AND ((t.tgname IN ('timeline_cache_ins', 'timeline_cache_upd', 'timeline_cache_del',
                              'timeline_cache_row')
                 AND t.tgrelid IN ('orderdb.orders'::regclass,
                                   'orderdb.order_status_history'::regclass,
                                   'orderdb.shipments'::regclass, 'orderdb.route_stops'::regclass,
                                   'orderdb.order_directory'::regclass,
                                   'orderdb.tracking_events'::regclass))
                OR (t.tgname LIKE 'timeline\_cache\_%'
                    AND t.tgrelid IN ('orderdb.route_stops'::regclass, 'orderdb.routes'::regclass,
                                      'orderdb.couriers'::regclass))
                -- the insert and update row triggers: the writers invalidate themselves
                -- (orderdb._timeline_bump_order, above)
                OR (t.tgname IN ('timeline_cache_row_ins', 'timeline_cache_row_upd')
                    AND t.tgrelid IN ('orderdb.tracking_events'::regclass,
                                      'orderdb.shipments'::regclass,
                                      'orderdb.orders'::regclass,
                                      'orderdb.order_status_history'::regclass)))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_t.name, v_t.tbl);
    END LOOP;
    FOR v_t IN
        SELECT x.tbl, x.name, x.timing, x.level, x.func, x.refs, x.cond
          FROM (VALUES
            -- row triggers for deletes
            ('orders', 'timeline_cache_row_del', 'DELETE', 'ROW', '_timeline_on_order_row(''purge'')', NULL, NULL),
            ('order_status_history', 'timeline_cache_row_del', 'DELETE', 'ROW', '_timeline_on_order_row()', NULL, NULL),
            ('shipments', 'timeline_cache_row_del', 'DELETE', 'ROW', '_timeline_on_order_row()', NULL, NULL),
            ('order_directory', 'timeline_cache_row_del', 'DELETE', 'ROW', '_timeline_on_order_row(''purge'')', NULL, NULL),
            ('tracking_events', 'timeline_cache_row_del', 'DELETE', 'ROW', '_timeline_on_tracking_event_row()', NULL, NULL),
            ('customer_texts', 'timeline_cache_any', 'INSERT OR UPDATE OR DELETE OR TRUNCATE', 'STATEMENT', '_timeline_on_any()', NULL, NULL),
            ('orders', 'timeline_cache_trunc', 'TRUNCATE', 'STATEMENT', '_timeline_on_any()', NULL, NULL),
            ('order_status_history', 'timeline_cache_trunc', 'TRUNCATE', 'STATEMENT', '_timeline_on_any()', NULL, NULL),
            ('shipments', 'timeline_cache_trunc', 'TRUNCATE', 'STATEMENT', '_timeline_on_any()', NULL, NULL),
            ('tracking_events', 'timeline_cache_trunc', 'TRUNCATE', 'STATEMENT', '_timeline_on_any()', NULL, NULL),
            ('order_directory', 'timeline_cache_trunc', 'TRUNCATE', 'STATEMENT', '_timeline_on_any()', NULL, NULL)
          ) AS x(tbl, name, timing, level, func, refs, cond)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                        WHERE t.tgrelid = format('orderdb.%I', v_t.tbl)::regclass
                          AND t.tgname = v_t.name) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON orderdb.%I %s FOR EACH %s %s '
                           'EXECUTE FUNCTION orderdb.%s',
                           v_t.name, v_t.timing, v_t.tbl,
                           CASE WHEN v_t.refs IS NOT NULL THEN 'REFERENCING ' || v_t.refs END,
                           v_t.level,
                           CASE WHEN v_t.cond IS NOT NULL THEN 'WHEN ' || v_t.cond END,
                           v_t.func);
        END IF;
    END LOOP;
END;
$triggers$;

-- the functions of those triggers
DROP FUNCTION IF EXISTS orderdb._timeline_bump(bigint[]);
DROP FUNCTION IF EXISTS orderdb._timeline_on_order_rows();
DROP FUNCTION IF EXISTS orderdb._timeline_on_tracking_events();
DROP FUNCTION IF EXISTS orderdb._timeline_on_routes();
DROP FUNCTION IF EXISTS orderdb._timeline_on_couriers();
