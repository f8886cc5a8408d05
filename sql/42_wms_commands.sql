-- The outbound WMS command queue (tables: migrations/0016_wms_commands.sql).
--
-- Commands are written by triggers, in the transaction of the change that causes them, so there
-- is no command without its change and no change without its command:
--   * order_status_history (every status change writes one row):
--       to dispatched            create for the warehouse's WMS (not when the WMS itself moved the
--                                order there: it knows the order);
--       to cancelled             cancel for each WMS that got (or may have got) a create; a create
--                                that was never sent is skipped instead and nothing is sent;
--                                updates not sent yet are skipped; a waybill that was never
--                                requested is skipped, one that was (or may have been) gets a
--                                cancel_waybill;
--       to packed                waybill, when the order has no tracking number (no shipment, and
--                                the WMS's PACKED callback carried none) and the warehouse makes
--                                waybills (its carrier is set; the order's options.carrier, else
--                                that one, books it);
--       reallocation             the old warehouse's WMS lets go of a dispatched order (as a
--                                cancel), the new one gets a create;
--   * order_amendments (amend_order): update with the amended order, unless the WMS never got the
--     order; a create or update not sent yet gets the new document instead of a second command.
--     An amendment of attributes only (not part of the document) queues nothing.
--   * order_lines (cancel_order_lines releasing lines of an order its WMS has, while the order
--     stays with it): the document without those lines, as for an amendment.
-- A warehouse without a row in warehouse_wms queues nothing: a status change pays one trigger
-- call (dispatched, packed, cancelled only: the triggers' WHEN clauses) and one index probe.
--
-- Workers (`orderdb wms-dispatch`, orderdb/integrations/wms/dispatch.py) claim due commands
-- (claim_wms_commands), send them, and record the outcome (complete_wms_command,
-- fail_wms_command). The rules of the queue are here: which commands are due, the per-order
-- order, leases, back-off, dead letters, what a waybill records.
--
-- Per order, commands are sent in command_id order: a command is due only when no earlier
-- command of its order is pending, sending or dead (a dead letter holds the order's later
-- commands until it is sent again with retry_wms_command: a cancel never overtakes its create).
-- Lock order: the orders row (status changes, amend_order, the SHIPPED of a waybill), then
-- wms_commands rows.

-- _wms_order_payload: the order document sent to a WMS with create and update: order_id,
-- order_no, warehouse_id, customer_id, priority, promised_ship_at, promised_delivery_at, ship_to
-- (with the full phone: the label needs it), currency, shipping_fee, items [{sku, quantity (not
-- released), unit_price}] in line order, notes (options.notes, when given) and carrier (when
-- p_carrier is given). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._wms_order_payload(p_warehouse_id integer, p_order_id bigint,
                                                      p_carrier text)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT jsonb_build_object(
               'order_id', o.order_id,
               'order_no', o.order_no,
               'warehouse_id', o.warehouse_id,
               'customer_id', o.customer_id,
               'priority', o.priority,
               'promised_ship_at', o.options -> 'promised_ship_at',
               'promised_delivery_at', o.options -> 'promised_delivery_at',
               'ship_to', o.options -> 'ship_to',
               'currency', o.currency,
               'shipping_fee', o.shipping_fee,
               'items', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                    'sku', l.sku,
                                    'quantity', l.quantity - l.qty_released,
                                    'unit_price', l.unit_price) ORDER BY l.line_no), '[]'::jsonb)
                           FROM orderdb.order_lines l
                          WHERE l.warehouse_id = o.warehouse_id AND l.order_id = o.order_id
                            AND l.quantity > l.qty_released))
           || CASE WHEN o.options ? 'notes'
                   THEN jsonb_build_object('notes', o.options -> 'notes')
                   ELSE '{}'::jsonb END
           || CASE WHEN p_carrier IS NOT NULL
                   THEN jsonb_build_object('carrier', p_carrier)
                   ELSE '{}'::jsonb END
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
$$;
COMMENT ON FUNCTION orderdb._wms_order_payload(integer, bigint, text) IS
    'The order document a WMS gets with create and update.';

-- _wms_order_carrier: the carrier of an order's waybill: options.carrier (a string) when the
-- order names one, else p_default (the warehouse's). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._wms_order_carrier(p_options jsonb, p_default text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN jsonb_typeof(p_options -> 'carrier') = 'string'
                     AND length(p_options ->> 'carrier') BETWEEN 1 AND 255
                THEN p_options ->> 'carrier'
                ELSE p_default END;
$$;
COMMENT ON FUNCTION orderdb._wms_order_carrier(jsonb, text) IS
    'The carrier of an order''s waybill: its options.carrier, else the warehouse''s.';

-- _wms_live_create: whether the WMS of p_warehouse_id got (or will get) a create for the order
-- that no cancel took back: the order's latest create or cancel for that warehouse, not skipped,
-- is a create. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._wms_live_create(p_warehouse_id integer, p_order_id bigint)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce((SELECT c.kind = 'create'
                       FROM orderdb.wms_commands c
                      WHERE c.order_id = p_order_id AND c.warehouse_id = p_warehouse_id
                        AND c.kind IN ('create', 'cancel') AND c.status <> 'skipped'
                      ORDER BY c.command_id DESC
                      LIMIT 1), false);
$$;
COMMENT ON FUNCTION orderdb._wms_live_create(integer, bigint) IS
    'Whether a warehouse''s WMS got (or will get) a create of the order that no cancel took back.';

-- _wms_queue_create: queues a create for the WMS of p_warehouse_id, unless the warehouse has no
-- connector or its WMS already has the order (orderdb._wms_live_create). The caller holds the
-- orders row lock. Locks nothing more.
CREATE OR REPLACE FUNCTION orderdb._wms_queue_create(p_warehouse_id integer, p_order_id bigint,
                                                     p_version integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_carrier text;
BEGIN
    SELECT w.carrier INTO v_carrier
      FROM orderdb.warehouse_wms w
     WHERE w.warehouse_id = p_warehouse_id;
    IF NOT FOUND OR orderdb._wms_live_create(p_warehouse_id, p_order_id) THEN
        RETURN;
    END IF;
    SELECT orderdb._wms_order_carrier(o.options, v_carrier) INTO v_carrier
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
    INSERT INTO orderdb.wms_commands (warehouse_id, order_id, kind, payload, order_version)
    VALUES (p_warehouse_id, p_order_id, 'create',
            orderdb._wms_order_payload(p_warehouse_id, p_order_id, v_carrier), p_version);
END;
$$;
COMMENT ON FUNCTION orderdb._wms_queue_create(integer, bigint, integer) IS
    'Queues a create for a warehouse''s WMS unless it has no connector or already has the order.';

-- _wms_queue_cancel: the order is cancelled (or leaves p_only_warehouse_id, NULL: every
-- warehouse): its creates, updates and waybills not sent yet (pending, never attempted) are
-- skipped; each WMS that got (or may have got) the order gets a cancel {order_id, order_no,
-- reason}; each waybill that was (or may have been) made gets a cancel_waybill. Skipping waits
-- for a worker's claim in progress and then sees its outcome, so a create is either skipped or
-- followed by a cancel. The caller holds the orders row lock. Locks those commands' rows.
CREATE OR REPLACE FUNCTION orderdb._wms_queue_cancel(p_order_id bigint, p_version integer,
                                                     p_reason text,
                                                     p_only_warehouse_id integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_order_no text;
    v_command  record;
BEGIN
    UPDATE orderdb.wms_commands AS c
       SET status = 'skipped', finished_at = now(), updated_at = now(),
           response = jsonb_build_object('skipped', 'the order was cancelled before it was sent')
     WHERE c.order_id = p_order_id
       AND (p_only_warehouse_id IS NULL OR c.warehouse_id = p_only_warehouse_id)
       AND c.kind IN ('create', 'update', 'waybill')
       AND c.status = 'pending' AND c.attempts = 0;

    SELECT d.order_no INTO v_order_no
      FROM orderdb.order_directory d
     WHERE d.order_id = p_order_id;

    FOR v_command IN
        SELECT DISTINCT c.warehouse_id
          FROM orderdb.wms_commands c
         WHERE c.order_id = p_order_id AND c.kind = 'create'
           AND (p_only_warehouse_id IS NULL OR c.warehouse_id = p_only_warehouse_id)
         ORDER BY c.warehouse_id
    LOOP
        IF orderdb._wms_live_create(v_command.warehouse_id, p_order_id) THEN
            INSERT INTO orderdb.wms_commands (warehouse_id, order_id, kind, payload,
                                              order_version)
            VALUES (v_command.warehouse_id, p_order_id, 'cancel',
                    jsonb_build_object('order_id', p_order_id, 'order_no', v_order_no,
                                       'reason', p_reason),
                    p_version);
        END IF;
    END LOOP;

    FOR v_command IN
        SELECT w.command_id, w.warehouse_id, w.carrier
          FROM orderdb.wms_commands w
         WHERE w.order_id = p_order_id AND w.kind = 'waybill'
           AND (p_only_warehouse_id IS NULL OR w.warehouse_id = p_only_warehouse_id)
           AND (w.status IN ('pending', 'sending') OR w.tracking_number IS NOT NULL)
           AND NOT EXISTS (SELECT 1
                             FROM orderdb.wms_commands x
                            WHERE x.order_id = p_order_id AND x.kind = 'cancel_waybill'
                              AND x.payload -> 'waybill_command_id' = to_jsonb(w.command_id))
         ORDER BY w.command_id
    LOOP
        INSERT INTO orderdb.wms_commands (warehouse_id, order_id, kind, payload, order_version,
                                          carrier)
        VALUES (v_command.warehouse_id, p_order_id, 'cancel_waybill',
                jsonb_build_object('order_id', p_order_id, 'order_no', v_order_no,
                                   'waybill_command_id', v_command.command_id,
                                   'reason', p_reason),
                p_version, v_command.carrier);
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb._wms_queue_cancel(bigint, integer, text, integer) IS
    'Skips an order''s unsent commands and queues cancel / cancel_waybill for what was sent.';

-- _wms_queue_waybill: the order became packed: queues a waybill {order_id, order_no,
-- warehouse_id, customer_id, recipient (ship_to), reference (order_no), carrier} when its
-- warehouse has a connector with a waybill carrier (set-wms --carrier: its WMS does not report
-- tracking numbers; the waybill's carrier is orderdb._wms_order_carrier: the order's own, else
-- that one), the order has no shipment, the WMS's PACKED callback (p_context's wms_event_id)
-- carried no tracking number, and no waybill of the order is pending, sending or made (back from
-- on_hold). The caller holds the orders row lock. Locks nothing more.
CREATE OR REPLACE FUNCTION orderdb._wms_queue_waybill(p_warehouse_id integer, p_order_id bigint,
                                                      p_version integer, p_context jsonb)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_carrier text;
    v_order   record;
BEGIN
    SELECT w.carrier INTO v_carrier
      FROM orderdb.warehouse_wms w
     WHERE w.warehouse_id = p_warehouse_id;
    -- no waybill carrier: the warehouse's WMS reports tracking numbers itself (with SHIPPED); a
    -- waybill booked meanwhile would race it and could name a parcel that never leaves
    IF v_carrier IS NULL THEN
        RETURN;
    END IF;
    SELECT o.order_no, o.customer_id, o.options INTO v_order
      FROM orderdb.orders o
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
    v_carrier := orderdb._wms_order_carrier(v_order.options, v_carrier);
    IF v_carrier IS NULL
       OR EXISTS (SELECT 1 FROM orderdb.shipments s
                   WHERE s.warehouse_id = p_warehouse_id AND s.order_id = p_order_id)
       OR EXISTS (SELECT 1 FROM orderdb.wms_events e
                   WHERE e.source = p_context ->> 'wms_source'
                     AND e.event_id = p_context ->> 'wms_event_id'
                     AND jsonb_typeof(e.payload -> 'tracking_number') = 'string')
       OR EXISTS (SELECT 1 FROM orderdb.wms_commands c
                   WHERE c.order_id = p_order_id AND c.warehouse_id = p_warehouse_id
                     AND c.kind = 'waybill'
                     AND (c.status IN ('pending', 'sending') OR c.tracking_number IS NOT NULL))
    THEN
        RETURN;
    END IF;
    INSERT INTO orderdb.wms_commands (warehouse_id, order_id, kind, payload, order_version,
                                      carrier)
    VALUES (p_warehouse_id, p_order_id, 'waybill',
            jsonb_build_object('order_id', p_order_id, 'order_no', v_order.order_no,
                               'warehouse_id', p_warehouse_id,
                               'customer_id', v_order.customer_id,
                               'recipient', v_order.options -> 'ship_to',
                               'reference', v_order.order_no,
                               'carrier', v_carrier),
            p_version, v_carrier);
END;
$$;
COMMENT ON FUNCTION orderdb._wms_queue_waybill(integer, bigint, integer, jsonb) IS
    'Queues a waybill for a packed order without a tracking number when a carrier is known.';

-- _wms_on_status_change: trigger AFTER INSERT on orderdb.order_status_history (only for the
-- changes the WHEN clause lets through: to dispatched, packed, cancelled, and reallocations):
-- queues the commands the change causes (see the head of this file). Locks what the
-- _wms_queue_* functions lock.
CREATE OR REPLACE FUNCTION orderdb._wms_on_status_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_from_warehouse integer;
    v_previous       text;
BEGIN
    IF NEW.source = 'reallocation' THEN
        v_from_warehouse := (NEW.context ->> 'from_warehouse_id')::integer;
        IF EXISTS (SELECT 1 FROM orderdb.wms_commands c WHERE c.order_id = NEW.order_id) THEN
            PERFORM orderdb._wms_queue_cancel(NEW.order_id, NEW.version,
                                              format('moved to warehouse %s', NEW.warehouse_id),
                                              v_from_warehouse);
        END IF;
        SELECT o.previous_status INTO v_previous
          FROM orderdb.orders o
         WHERE o.warehouse_id = NEW.warehouse_id AND o.order_id = NEW.order_id;
        IF NEW.to_status IN ('dispatched', 'picked', 'packed')
           OR (NEW.to_status = 'on_hold' AND v_previous IN ('dispatched', 'picked', 'packed')) THEN
            PERFORM orderdb._wms_queue_create(NEW.warehouse_id, NEW.order_id, NEW.version);
        END IF;
    ELSIF NEW.to_status = 'dispatched' THEN
        IF NEW.source <> 'wms' THEN
            PERFORM orderdb._wms_queue_create(NEW.warehouse_id, NEW.order_id, NEW.version);
        END IF;
    ELSIF NEW.to_status = 'cancelled' THEN
        IF EXISTS (SELECT 1 FROM orderdb.wms_commands c WHERE c.order_id = NEW.order_id) THEN
            PERFORM orderdb._wms_queue_cancel(NEW.order_id, NEW.version, NEW.reason);
        END IF;
    ELSIF NEW.to_status = 'packed' THEN
        -- a SHIPPED callback that walks the order through packed brings its own tracking number
        IF NEW.context ->> 'event_type' IS DISTINCT FROM 'SHIPPED' THEN
            PERFORM orderdb._wms_queue_waybill(NEW.warehouse_id, NEW.order_id, NEW.version,
                                               NEW.context);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._wms_on_status_change() IS
    'Trigger: queues the WMS/carrier commands a status change causes (create, cancel, waybill).';

-- _wms_send_document: the order's document changed (amend_order, cancel_order_lines): the WMS of
-- p_warehouse_id that has the order gets the new document: in the create or update not sent yet,
-- else in a new update (version p_version). Nothing when that WMS never got the order. The
-- caller holds the orders row lock. Locks those commands' rows.
CREATE OR REPLACE FUNCTION orderdb._wms_send_document(p_warehouse_id integer, p_order_id bigint,
                                                      p_version integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_carrier text;
    v_payload jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM orderdb.wms_commands c WHERE c.order_id = p_order_id)
       OR NOT orderdb._wms_live_create(p_warehouse_id, p_order_id) THEN
        RETURN;
    END IF;
    SELECT orderdb._wms_order_carrier(o.options, w.carrier) INTO v_carrier
      FROM orderdb.orders o
      LEFT JOIN orderdb.warehouse_wms w ON w.warehouse_id = o.warehouse_id
     WHERE o.warehouse_id = p_warehouse_id AND o.order_id = p_order_id;
    v_payload := orderdb._wms_order_payload(p_warehouse_id, p_order_id, v_carrier);
    IF v_payload IS NULL THEN
        RETURN;  -- the order is no longer in that warehouse
    END IF;

    -- the newest create or update, if it has not been sent yet, carries the new document
    UPDATE orderdb.wms_commands AS c
       SET payload = v_payload, order_version = p_version, updated_at = now()
     WHERE c.command_id = (SELECT l.command_id
                             FROM orderdb.wms_commands l
                            WHERE l.order_id = p_order_id
                              AND l.warehouse_id = p_warehouse_id
                              AND l.status <> 'skipped'
                            ORDER BY l.command_id DESC
                            LIMIT 1)
       AND c.kind IN ('create', 'update') AND c.status = 'pending' AND c.attempts = 0;
    IF NOT FOUND THEN
        INSERT INTO orderdb.wms_commands (warehouse_id, order_id, kind, payload, order_version)
        VALUES (p_warehouse_id, p_order_id, 'update', v_payload, p_version);
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._wms_send_document(integer, bigint, integer) IS
    'The order''s new document goes to the WMS that has it (unsent create/update, or an update).';

-- _wms_on_amendment: trigger AFTER INSERT on orderdb.order_amendments (amendments of more than
-- attributes): the WMS that has the order gets the amended document (_wms_send_document).
-- Locks those commands' rows.
CREATE OR REPLACE FUNCTION orderdb._wms_on_amendment()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM orderdb._wms_send_document(NEW.warehouse_id, NEW.order_id, NEW.version);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._wms_on_amendment() IS
    'Trigger: an amended order''s document goes to the WMS that has it (unsent command or update).';

-- _wms_on_lines_released: trigger AFTER UPDATE OF qty_released on orderdb.order_lines (WHEN the
-- released quantity grew): lines were cancelled (cancel_order_lines) while the order stays with
-- its WMS (dispatched, picked, packed, on hold): the WMS gets the document without them
-- (_wms_send_document), so that it does not pick them. A cancelled, completed or returned order
-- has its own commands (or none). One index probe when the order has no commands. Locks those
-- commands' rows.
CREATE OR REPLACE FUNCTION orderdb._wms_on_lines_released()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_status  text;
    v_version integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM orderdb.wms_commands c WHERE c.order_id = NEW.order_id) THEN
        RETURN NULL;
    END IF;
    SELECT o.status, o.version INTO v_status, v_version
      FROM orderdb.orders o
     WHERE o.warehouse_id = NEW.warehouse_id AND o.order_id = NEW.order_id;
    IF v_status IN ('dispatched', 'picked', 'packed', 'on_hold') THEN
        PERFORM orderdb._wms_send_document(NEW.warehouse_id, NEW.order_id, v_version);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._wms_on_lines_released() IS
    'Trigger: cancelled lines of an order its WMS has: the WMS gets the document without them.';

-- The triggers (created once: CREATE TRIGGER locks the table, so a re-run of the SQL files does
-- not take that lock again). Row triggers on the partitioned history table apply to every
-- partition, present and future.
DO $triggers$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = 'orderdb.order_status_history'::regclass
                      AND t.tgname = 'wms_commands_on_status_change') THEN
        CREATE TRIGGER wms_commands_on_status_change
            AFTER INSERT ON orderdb.order_status_history
            FOR EACH ROW
            WHEN (NEW.to_status IN ('dispatched', 'packed', 'cancelled')
                  OR NEW.source = 'reallocation')
            EXECUTE FUNCTION orderdb._wms_on_status_change();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = 'orderdb.order_amendments'::regclass
                      AND t.tgname = 'wms_commands_on_amendment') THEN
        CREATE TRIGGER wms_commands_on_amendment
            AFTER INSERT ON orderdb.order_amendments
            FOR EACH ROW
            WHEN ((NEW.changes - 'attributes') <> '{}'::jsonb)
            EXECUTE FUNCTION orderdb._wms_on_amendment();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = 'orderdb.order_lines'::regclass
                      AND t.tgname = 'wms_commands_on_lines_released') THEN
        CREATE TRIGGER wms_commands_on_lines_released
            AFTER UPDATE OF qty_released ON orderdb.order_lines
            FOR EACH ROW
            WHEN (NEW.qty_released > OLD.qty_released)
            EXECUTE FUNCTION orderdb._wms_on_lines_released();
    END IF;
END;
$triggers$;

-- _order_wms_order_id (replaces the placeholder of sql/30_orders.sql): the "wms_order_id" of
-- get_order: the id the warehouse's WMS gave the order when it accepted its create; NULL until
-- then. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_wms_order_id(p_warehouse_id integer, p_order_id bigint)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT c.wms_order_id
      FROM orderdb.wms_commands c
     WHERE c.order_id = p_order_id AND c.warehouse_id = p_warehouse_id AND c.kind = 'create'
       AND c.status = 'done'
     ORDER BY c.command_id DESC
     LIMIT 1;
$$;
COMMENT ON FUNCTION orderdb._order_wms_order_id(integer, bigint) IS
    'The wms_order_id of get_order: what the warehouse''s WMS answered to the order''s create.';

-- set_warehouse_wms: connects a warehouse to a WMS (or changes its settings): p_connector (the
-- name of an orderdb.wms entry point: lower-case letters, digits, '_', '.', '-'; up to 64),
-- p_url (http:// or https://, up to 2000 characters, no user name or password), p_secret (1..1000 characters; NULL keeps
-- the stored one), p_carrier (the carrier code whose plugin makes waybills; NULL: none),
-- p_settings (the connector's other settings, a JSON object up to 16 kB; never url, secret,
-- warehouse_id or dsn). From then on the warehouse's changes queue commands. Returns the row
-- without its secret (has_secret tells whether one is stored).
-- Raises 22023 (naming the field), OD004 (unknown warehouse). Locks the warehouse_wms row.
CREATE OR REPLACE FUNCTION orderdb.set_warehouse_wms(p_warehouse_id integer, p_connector text,
                                                     p_url text DEFAULT NULL,
                                                     p_secret text DEFAULT NULL,
                                                     p_carrier text DEFAULT NULL,
                                                     p_settings jsonb DEFAULT '{}')
RETURNS TABLE (warehouse_id integer, connector text, url text, carrier text, settings jsonb,
               has_secret boolean, updated_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_settings jsonb := coalesce(p_settings, '{}'::jsonb);
    v_key      text;
BEGIN
    PERFORM orderdb._check_positive(p_warehouse_id, 'warehouse_id');
    IF p_connector IS NULL OR p_connector !~ '^[a-z][a-z0-9_.-]{0,63}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'connector must be a connector name (lower-case letters, digits, _ . -; '
                      'up to 64 characters)',
            DETAIL = format('connector=%s', left(p_connector, 100)),
            HINT = 'Installed connectors: orderdb warehouses connectors.';
    END IF;
    -- credentials in the url would be listed (orderdb warehouses list) and quoted in errors
    IF p_url ~ '^[^/?#]*//[^/?#]*@' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'url must not hold a user name or password',
            DETAIL = 'url=' || regexp_replace(left(p_url, 200), '//[^/?#]*@', '//***@'),
            HINT = 'The secret has its own argument: orderdb warehouses set-wms --secret-file, '
                   '--prompt-secret or $ORDERDB_WAREHOUSES_SET_WMS_SECRET.';
    END IF;
    IF p_url IS NOT NULL AND (p_url !~ '^https?://[^[:space:]/]+' OR length(p_url) > 2000) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'url must be an http:// or https:// URL of at most 2000 characters',
            DETAIL = format('url=%s', left(p_url, 200));
    END IF;
    IF p_secret IS NOT NULL AND length(p_secret) NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'secret must be 1 to 1000 characters',
            DETAIL = format('length=%s', length(p_secret));
    END IF;
    PERFORM orderdb._check_text(p_carrier, 'carrier', 255);
    PERFORM orderdb._check_json(v_settings, 'settings', 'object');
    IF length(v_settings::text) > 16384 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'settings must be at most 16 kB of JSON',
            DETAIL = format('length=%s', length(v_settings::text));
    END IF;
    FOREACH v_key IN ARRAY ARRAY['url', 'secret', 'warehouse_id', 'dsn'] LOOP
        IF v_settings ? v_key THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('settings.%s is not a connector setting', v_key),
                HINT = 'url and secret have their own arguments; warehouse_id and dsn are '
                       'given by the dispatcher.';
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM orderdb.warehouses w WHERE w.warehouse_id = p_warehouse_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('warehouse %s not found', p_warehouse_id),
            DETAIL = format('warehouse_id=%s', p_warehouse_id),
            HINT = 'A warehouse exists from its first receive_stock.';
    END IF;

    INSERT INTO orderdb.warehouse_wms AS w (warehouse_id, connector, url, secret, carrier,
                                            settings)
    VALUES (p_warehouse_id, p_connector, p_url, p_secret, p_carrier, v_settings)
    ON CONFLICT ON CONSTRAINT warehouse_wms_pkey DO UPDATE
       SET connector = excluded.connector, url = excluded.url,
           secret = coalesce(excluded.secret, w.secret), carrier = excluded.carrier,
           settings = excluded.settings, updated_at = now();

    RETURN QUERY
        SELECT w.warehouse_id, w.connector, w.url, w.carrier, w.settings, w.secret IS NOT NULL,
               w.updated_at
          FROM orderdb.warehouse_wms w
         WHERE w.warehouse_id = p_warehouse_id;
END;
$$;
COMMENT ON FUNCTION orderdb.set_warehouse_wms(integer, text, text, text, text, jsonb) IS
    'Connects a warehouse to a WMS connector (url, secret, waybill carrier, settings).';

-- _wms_backoff: the wait before attempt p_attempts + 1: p_base_seconds * 2^(p_attempts - 1),
-- at most p_max_seconds, times a random factor in [0.5, 1.5) (jitter: workers that failed
-- together do not come back together). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._wms_backoff(p_attempts integer, p_base_seconds numeric,
                                                p_max_seconds numeric)
RETURNS interval
LANGUAGE sql
VOLATILE
AS $$
    SELECT make_interval(secs => (least(p_max_seconds,
                                        p_base_seconds * power(2::numeric,
                                                               least(greatest(p_attempts, 1), 40)
                                                               - 1))
                                  * (0.5 + random()::numeric))::double precision);
$$;
COMMENT ON FUNCTION orderdb._wms_backoff(integer, numeric, numeric) IS
    'Jittered exponential back-off: base * 2^(attempts-1), capped, times 0.5..1.5.';

-- claim_wms_commands: leases up to p_limit (1..1000) due commands to worker p_worker for
-- p_lease_seconds (1..86400): due = pending whose next_attempt_at has come, or sending whose
-- lease has run out (its worker died), and no earlier command of the same order is pending,
-- sending or dead. Oldest due first; FOR UPDATE SKIP LOCKED (workers never wait for each other
-- and never get the same command). A claimed command is sending, attempts + 1, leased until
-- now() + p_lease_seconds (next_attempt_at). A waybill no longer needed (the order has a
-- shipment or is neither packed nor on hold) and a cancel_waybill of a waybill that has no
-- tracking number are skipped here, not returned. Returns per command what the worker needs:
-- kind, order, the WMS's order id (of the order's create), payload, attempt, the warehouse's
-- connector and its config (settings with url and secret; owner only), the carrier and the
-- tracking number (waybill: one got earlier and not recorded yet; cancel_waybill: the waybill's).
-- Raises 22023 (bad arguments). Locks the claimed rows until commit.
CREATE OR REPLACE FUNCTION orderdb.claim_wms_commands(p_worker text, p_limit integer DEFAULT 10,
                                                      p_lease_seconds integer DEFAULT 60)
RETURNS TABLE (command_id bigint, kind text, warehouse_id integer, order_id bigint,
               order_no text, wms_order_id text, payload jsonb, attempt integer,
               connector text, config jsonb, config_updated_at timestamptz, carrier text,
               tracking_number text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_command  record;
    v_tracking text;
    v_skip     text;
BEGIN
    PERFORM orderdb._check_text(p_worker, 'worker', 255, true);
    PERFORM orderdb._check_range(p_limit, 'limit', 1, 1000);
    PERFORM orderdb._check_range(p_lease_seconds, 'lease_seconds', 1, 86400);

    FOR v_command IN
        SELECT c.*
          FROM orderdb.wms_commands c
         WHERE c.status IN ('pending', 'sending') AND c.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1
                             FROM orderdb.wms_commands e
                            WHERE e.order_id = c.order_id AND e.command_id < c.command_id
                              AND e.status IN ('pending', 'sending', 'dead'))
         ORDER BY c.next_attempt_at, c.command_id
         LIMIT p_limit
           FOR UPDATE OF c SKIP LOCKED
    LOOP
        v_tracking := v_command.tracking_number;
        v_skip := NULL;
        IF v_command.kind = 'waybill' AND v_tracking IS NULL THEN
            SELECT CASE WHEN o.status IS NULL THEN 'the order is gone'
                        WHEN EXISTS (SELECT 1 FROM orderdb.shipments s
                                      WHERE s.warehouse_id = o.warehouse_id
                                        AND s.order_id = o.order_id)
                        THEN 'the order has a tracking number'
                        WHEN o.status NOT IN ('packed', 'on_hold')
                        THEN format('the order is %s', o.status) END
              INTO v_skip
              FROM orderdb.order_directory d
              LEFT JOIN orderdb.orders o
                ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
             WHERE d.order_id = v_command.order_id;
        ELSIF v_command.kind = 'cancel_waybill' THEN
            SELECT w.tracking_number INTO v_tracking
              FROM orderdb.wms_commands w
             WHERE w.command_id = (v_command.payload ->> 'waybill_command_id')::bigint;
            IF v_tracking IS NULL THEN
                v_skip := 'the waybill got no tracking number';
            END IF;
        END IF;

        IF v_skip IS NOT NULL THEN
            UPDATE orderdb.wms_commands AS c
               SET status = 'skipped', leased_by = NULL, finished_at = now(),
                   updated_at = now(), response = jsonb_build_object('skipped', v_skip)
             WHERE c.command_id = v_command.command_id;
            CONTINUE;
        END IF;

        UPDATE orderdb.wms_commands AS c
           SET status = 'sending', leased_by = p_worker, attempts = c.attempts + 1,
               next_attempt_at = now() + make_interval(secs => p_lease_seconds),
               sent_at = now(), updated_at = now()
         WHERE c.command_id = v_command.command_id;

        command_id := v_command.command_id;
        kind := v_command.kind;
        warehouse_id := v_command.warehouse_id;
        order_id := v_command.order_id;
        order_no := v_command.payload ->> 'order_no';
        wms_order_id := coalesce(v_command.wms_order_id,
                                 orderdb._order_wms_order_id(v_command.warehouse_id,
                                                             v_command.order_id));
        payload := v_command.payload;
        attempt := v_command.attempts + 1;
        carrier := v_command.carrier;
        tracking_number := v_tracking;
        connector := NULL;
        config := NULL;
        config_updated_at := NULL;
        SELECT w.connector,
               w.settings || jsonb_strip_nulls(jsonb_build_object('url', w.url,
                                                                  'secret', w.secret)),
               w.updated_at
          INTO connector, config, config_updated_at
          FROM orderdb.warehouse_wms w
         WHERE w.warehouse_id = v_command.warehouse_id;
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb.claim_wms_commands(text, integer, integer) IS
    'Leases due WMS/carrier commands to a worker (per-order order, SKIP LOCKED, lease).';

-- _wms_leased: the command p_command_id if p_worker still holds it for attempt p_attempt
-- (sending, leased_by, attempts): locked FOR UPDATE; no row when the lease was lost (it ran out
-- and another worker took the command, or it was finished). Locks that row.
CREATE OR REPLACE FUNCTION orderdb._wms_leased(p_command_id bigint, p_worker text,
                                               p_attempt integer)
RETURNS SETOF orderdb.wms_commands
LANGUAGE sql
AS $$
    SELECT c.*
      FROM orderdb.wms_commands c
     WHERE c.command_id = p_command_id AND c.status = 'sending' AND c.leased_by = p_worker
       AND c.attempts = p_attempt
       FOR UPDATE;
$$;
COMMENT ON FUNCTION orderdb._wms_leased(bigint, text, integer) IS
    'The command a worker still holds for an attempt (locked), else no row.';

-- complete_wms_command: the WMS (or carrier) accepted attempt p_attempt of command
-- p_command_id that worker p_worker holds: the command is done with p_wms_order_id (required
-- for a create: the WMS's id of the order, which get_order then shows and later commands
-- carry), p_response (what the WMS answered; at most 16 kB, else it is cut to a note) and, for
-- a waybill, p_tracking_number. A waybill's tracking number is recorded as the WMS's SHIPPED
-- callback records one (orderdb.wms_callback, source 'waybill', event id 'waybill-<id>':
-- shipment, tracking number, reservations consumed, shipped) while the order is packed; an
-- order on hold keeps the number on the command and is tried again in 5 minutes; any other
-- status keeps the number and gets the waybill cancelled: a cancel_waybill (the one the order's
-- cancel queued, else a new one: the WMS shipped the order with its own number meanwhile, ...),
-- so that no parcel is left booked for nothing. Returns the
-- command's status afterwards, NULL when the worker no longer holds it (the outcome is ignored:
-- another worker sends the command again with the same idempotency key).
-- Raises 22023 (bad arguments; a create without p_wms_order_id; a waybill without
-- p_tracking_number). Locks the command row; a waybill also what wms_callback locks.
CREATE OR REPLACE FUNCTION orderdb.complete_wms_command(p_command_id bigint, p_worker text,
                                                        p_attempt integer,
                                                        p_wms_order_id text DEFAULT NULL,
                                                        p_tracking_number text DEFAULT NULL,
                                                        p_response jsonb DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_command  orderdb.wms_commands;
    v_response jsonb := p_response;
    v_status   text;
    v_state    text;
    v_message  text;
BEGIN
    PERFORM orderdb._check_positive(p_command_id, 'command_id'),
            orderdb._check_positive(p_attempt, 'attempt'),
            orderdb._check_text(p_worker, 'worker', 255, true),
            orderdb._check_text(p_wms_order_id, 'wms_order_id', 255),
            orderdb._check_text(p_tracking_number, 'tracking_number', 255);
    IF v_response IS NOT NULL AND length(v_response::text) > 16384 THEN
        v_response := jsonb_build_object('truncated', true,
                                         'text', left(v_response::text, 4000));
    END IF;
    SELECT * INTO v_command FROM orderdb._wms_leased(p_command_id, p_worker, p_attempt);
    IF v_command.command_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_command.kind = 'create' AND p_wms_order_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'wms_order_id is required to complete a create',
            DETAIL = format('command_id=%s', p_command_id);
    END IF;
    IF v_command.kind = 'waybill' AND p_tracking_number IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'tracking_number is required to complete a waybill',
            DETAIL = format('command_id=%s', p_command_id);
    END IF;

    IF v_command.kind = 'waybill' THEN
        SELECT o.status INTO v_status
          FROM orderdb.order_directory d
          JOIN orderdb.orders o ON o.warehouse_id = d.warehouse_id AND o.order_id = d.order_id
         WHERE d.order_id = v_command.order_id;
        IF v_status = 'on_hold' THEN
            UPDATE orderdb.wms_commands AS c
               SET status = 'pending', leased_by = NULL, tracking_number = p_tracking_number,
                   next_attempt_at = now() + interval '5 minutes', response = v_response,
                   last_error = 'waiting: the order is on hold', last_error_at = now(),
                   updated_at = now()
             WHERE c.command_id = p_command_id;
            RETURN 'pending';
        ELSIF v_status = 'packed' THEN
            BEGIN
                PERFORM orderdb.wms_callback('waybill-' || p_command_id, v_command.order_id,
                                             'SHIPPED',
                                             jsonb_build_object('carrier', v_command.carrier,
                                                                'tracking_number',
                                                                p_tracking_number),
                                             'waybill');
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
                UPDATE orderdb.wms_commands AS c
                   SET status = 'dead', leased_by = NULL, tracking_number = p_tracking_number,
                       response = v_response, finished_at = now(), updated_at = now(),
                       last_error = left(format('recording the waybill failed (%s): %s',
                                                v_state, v_message), 2000),
                       last_error_at = now()
                 WHERE c.command_id = p_command_id;
                RETURN 'dead';
            END;
        ELSE
            v_response := coalesce(v_response, '{}'::jsonb)
                          || jsonb_build_object('recorded', false, 'order_status', v_status);
            -- the order no longer needs it (shipped with the WMS's own number, moved, ...): the
            -- parcel booked for nothing is cancelled, unless the order's cancel already asked
            IF NOT EXISTS (SELECT 1
                             FROM orderdb.wms_commands x
                            WHERE x.order_id = v_command.order_id AND x.kind = 'cancel_waybill'
                              AND x.payload -> 'waybill_command_id' = to_jsonb(p_command_id)) THEN
                INSERT INTO orderdb.wms_commands (warehouse_id, order_id, kind, payload,
                                                  order_version, carrier)
                VALUES (v_command.warehouse_id, v_command.order_id, 'cancel_waybill',
                        jsonb_build_object('order_id', v_command.order_id,
                                           'order_no', v_command.payload ->> 'order_no',
                                           'waybill_command_id', p_command_id,
                                           'reason', format('the order is %s: the waybill came '
                                                            'too late', v_status)),
                        v_command.order_version, v_command.carrier);
            END IF;
        END IF;
    END IF;

    UPDATE orderdb.wms_commands AS c
       SET status = 'done', leased_by = NULL, finished_at = now(), updated_at = now(),
           wms_order_id = coalesce(p_wms_order_id, c.wms_order_id),
           tracking_number = coalesce(p_tracking_number, c.tracking_number),
           response = v_response
     WHERE c.command_id = p_command_id;
    RETURN 'done';
END;
$$;
COMMENT ON FUNCTION orderdb.complete_wms_command(bigint, text, integer, text, text, jsonb) IS
    'Records that a WMS/carrier accepted a command (WMS order id, tracking number, response).';

-- fail_wms_command: attempt p_attempt of command p_command_id (held by p_worker) failed with
-- p_error (cut to 2000 characters). p_permanent (the WMS refused it for good) or p_max_attempts
-- (1..1000) attempts used: dead (a dead letter: orderdb_ops.alerts shows it until
-- retry_wms_command); else pending again after orderdb._wms_backoff(attempts, p_backoff_seconds,
-- p_backoff_max_seconds) (0 < base <= max <= 86400), or after p_retry_after_seconds (what the
-- WMS asked for, 0..86400) when that is longer. p_response: what came back, if anything.
-- Returns the status afterwards ('pending' or 'dead'), NULL when the worker no longer holds the
-- command. Raises 22023 (bad arguments). Locks the command row.
CREATE OR REPLACE FUNCTION orderdb.fail_wms_command(p_command_id bigint, p_worker text,
                                                    p_attempt integer, p_error text,
                                                    p_permanent boolean DEFAULT false,
                                                    p_response jsonb DEFAULT NULL,
                                                    p_backoff_seconds numeric DEFAULT 5,
                                                    p_backoff_max_seconds numeric DEFAULT 3600,
                                                    p_max_attempts integer DEFAULT 10,
                                                    p_retry_after_seconds numeric DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_command orderdb.wms_commands;
    v_dead    boolean;
BEGIN
    PERFORM orderdb._check_positive(p_command_id, 'command_id'),
            orderdb._check_positive(p_attempt, 'attempt'),
            orderdb._check_text(p_worker, 'worker', 255, true),
            orderdb._check_range(p_max_attempts, 'max_attempts', 1, 1000);
    IF p_backoff_seconds IS NULL OR p_backoff_max_seconds IS NULL OR p_backoff_seconds <= 0
       OR p_backoff_max_seconds < p_backoff_seconds OR p_backoff_max_seconds > 86400 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'backoff_seconds must be positive and at most backoff_max_seconds (at most '
                      '86400)',
            DETAIL = format('backoff_seconds=%s backoff_max_seconds=%s', p_backoff_seconds,
                            p_backoff_max_seconds);
    END IF;
    IF p_retry_after_seconds IS NOT NULL AND p_retry_after_seconds NOT BETWEEN 0 AND 86400 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'retry_after_seconds must be between 0 and 86400',
            DETAIL = format('retry_after_seconds=%s', p_retry_after_seconds);
    END IF;
    SELECT * INTO v_command FROM orderdb._wms_leased(p_command_id, p_worker, p_attempt);
    IF v_command.command_id IS NULL THEN
        RETURN NULL;
    END IF;
    v_dead := coalesce(p_permanent, false) OR v_command.attempts >= p_max_attempts;
    UPDATE orderdb.wms_commands AS c
       SET status = CASE WHEN v_dead THEN 'dead' ELSE 'pending' END,
           leased_by = NULL,
           next_attempt_at = CASE WHEN v_dead THEN c.next_attempt_at
                                  ELSE now() + greatest(
                                           orderdb._wms_backoff(c.attempts, p_backoff_seconds,
                                                                p_backoff_max_seconds),
                                           make_interval(secs => coalesce(p_retry_after_seconds,
                                                                          0)::double precision))
                                  END,
           finished_at = CASE WHEN v_dead THEN now() END,
           last_error = left(coalesce(p_error, 'failed'), 2000),
           last_error_at = now(),
           response = CASE WHEN p_response IS NULL THEN c.response
                           WHEN length(p_response::text) > 16384
                           THEN jsonb_build_object('truncated', true,
                                                   'text', left(p_response::text, 4000))
                           ELSE p_response END,
           updated_at = now()
     WHERE c.command_id = p_command_id;
    RETURN CASE WHEN v_dead THEN 'dead' ELSE 'pending' END;
END;
$$;
COMMENT ON FUNCTION orderdb.fail_wms_command(bigint, text, integer, text, boolean, jsonb, numeric,
                                             numeric, integer, numeric) IS
    'Records a failed send: pending again after a jittered back-off, or dead (a dead letter).';

-- release_wms_commands: gives back commands that worker p_worker claimed and did not send
-- (it is stopping, or too little of their lease is left to send them safely): pending, due now,
-- the claim's attempt not counted. Commands the worker no longer holds are left alone. Returns
-- how many were given back. Raises 22023 (bad arguments). Locks those rows.
CREATE OR REPLACE FUNCTION orderdb.release_wms_commands(p_worker text, p_command_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM orderdb._check_text(p_worker, 'worker', 255, true);
    IF p_command_ids IS NULL OR cardinality(p_command_ids) > 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'command_ids must be an array of at most 1000 ids';
    END IF;
    UPDATE orderdb.wms_commands AS c
       SET status = 'pending', leased_by = NULL, attempts = greatest(c.attempts - 1, 0),
           next_attempt_at = now(), updated_at = now()
     WHERE c.command_id = ANY (p_command_ids) AND c.status = 'sending'
       AND c.leased_by = p_worker;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION orderdb.release_wms_commands(text, bigint[]) IS
    'Gives back claimed commands a worker did not send (pending, due now, attempt not counted).';

-- retry_wms_command: sends a dead command again (`orderdb wms-dispatch retry ID`): pending, due
-- now, attempts from 0 again (its last error stays until the next outcome). Its order's later
-- commands, held behind it, follow once it is done. Returns the command (id, kind, order,
-- warehouse, status).
-- Raises 22023 (command_id not positive), OD004 (unknown command), OD003 (the command is not
-- dead). Locks the command row.
CREATE OR REPLACE FUNCTION orderdb.retry_wms_command(p_command_id bigint)
RETURNS TABLE (command_id bigint, kind text, order_id bigint, warehouse_id integer,
               status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
BEGIN
    PERFORM orderdb._check_positive(p_command_id, 'command_id');
    SELECT c.status INTO v_status
      FROM orderdb.wms_commands c
     WHERE c.command_id = p_command_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD004',
            MESSAGE = format('WMS command %s not found', p_command_id),
            DETAIL = format('command_id=%s', p_command_id);
    END IF;
    IF v_status <> 'dead' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'OD003',
            MESSAGE = format('WMS command %s is %s: only a dead command can be sent again',
                             p_command_id, v_status),
            DETAIL = format('command_id=%s status=%s', p_command_id, v_status),
            HINT = 'Dead commands: orderdb_ops.alerts (source wms) or orderdb wms-dispatch '
                   'dead.';
    END IF;
    RETURN QUERY
        UPDATE orderdb.wms_commands AS c
           SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL,
               updated_at = now()
         WHERE c.command_id = p_command_id
        RETURNING c.command_id, c.kind, c.order_id, c.warehouse_id, c.status;
END;
$$;
COMMENT ON FUNCTION orderdb.retry_wms_command(bigint) IS
    'Sends a dead WMS command again (pending, due now, attempts reset).';

-- orderdb_ops.wms_backlog: per warehouse with a connector or with open commands: pending
-- (pending or sending), dead, and the age of the oldest pending one (0, not negative, for one
-- queued after the reader's transaction began). Reads the partial index
-- wms_commands_open (open commands only) and warehouse_wms.
CREATE OR REPLACE VIEW orderdb_ops.wms_backlog AS
SELECT coalesce(w.warehouse_id, b.warehouse_id) AS warehouse_id,
       coalesce(b.pending, 0) AS pending,
       coalesce(b.dead, 0) AS dead,
       b.oldest_pending_age
  FROM orderdb.warehouse_wms w
  FULL JOIN (SELECT c.warehouse_id,
                    count(*) FILTER (WHERE c.status IN ('pending', 'sending')) AS pending,
                    count(*) FILTER (WHERE c.status = 'dead') AS dead,
                    -- never negative (a command queued after this transaction began); NULL
                    -- when nothing is pending (GREATEST alone would make that 0)
                    CASE WHEN count(*) FILTER (WHERE c.status IN ('pending', 'sending')) > 0
                         THEN greatest(now() - min(c.created_at)
                                               FILTER (WHERE c.status IN ('pending', 'sending')),
                                       interval '0')
                    END AS oldest_pending_age
               FROM orderdb.wms_commands c
              WHERE c.status IN ('pending', 'sending', 'dead')
              GROUP BY c.warehouse_id) b ON b.warehouse_id = w.warehouse_id;
COMMENT ON VIEW orderdb_ops.wms_backlog IS
    'The WMS command queue per warehouse: pending (incl. sending), dead, oldest pending age.';

-- _wms_dead_letter_alerts: the 'wms' rows of orderdb_ops.alerts: one per warehouse with dead
-- commands: critical, subject 'warehouse N', message: how many, the oldest (id, kind, order
-- number, last error) and how to send them again; since: the oldest one's death. Reads the
-- partial index wms_commands_open. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._wms_dead_letter_alerts()
RETURNS TABLE (source text, subject text, level text, message text, since timestamptz)
LANGUAGE sql
STABLE
AS $$
    SELECT 'wms'::text,
           format('warehouse %s', d.warehouse_id),
           'critical'::text,
           format('%s dead WMS command(s); oldest: command %s (%s of order %s): %s; send it '
                  'again: orderdb wms-dispatch retry %s', d.dead, d.command_id, d.kind,
                  coalesce(d.payload ->> 'order_no', d.order_id::text),
                  left(coalesce(d.last_error, 'failed'), 200), d.command_id),
           d.since
      FROM (SELECT DISTINCT ON (c.warehouse_id)
                   c.warehouse_id, c.command_id, c.kind, c.order_id, c.payload, c.last_error,
                   count(*) OVER (PARTITION BY c.warehouse_id) AS dead,
                   min(c.finished_at) OVER (PARTITION BY c.warehouse_id) AS since
              FROM orderdb.wms_commands c
             WHERE c.status = 'dead'
             ORDER BY c.warehouse_id, c.finished_at, c.command_id) d;
$$;
COMMENT ON FUNCTION orderdb._wms_dead_letter_alerts() IS
    'The alerts of dead WMS commands: one per warehouse (orderdb_ops.alerts, source wms).';
