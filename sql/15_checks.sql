-- Shared input checks (one rule in one place). Every bad argument raises ERRCODE 22023 with a
-- message that names the field, before anything is written. Field names are given without the
-- p_ prefix (customer_id, items[2].quantity, options), as callers know them.
--
-- Bounds (docs/contract.md): ids and quantities positive; sku and keys <= 255 characters; free text
-- (actor, reason) <= 1000; JSON arguments <= 65536 bytes (text form) and nested at most 32 levels
-- deep; 1..500 lines per order.

-- _check_positive: p_value must be non-NULL and > 0.
-- Raises 22023 '<name> must be a positive integer'. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_positive(p_value bigint, p_name text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_value IS NULL OR p_value <= 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be a positive integer', p_name),
            DETAIL = format('%s=%s', p_name, coalesce(p_value::text, 'NULL'));
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_positive(bigint, text) IS
    'Raises 22023 unless the value is a positive integer (NULL is rejected).';

-- _check_text: optional (or required) text of at most p_max characters; required text must be
-- non-empty. Raises 22023 '<name> is required' / '<name> must be 1 to <max> characters' /
-- '<name> must be at most <max> characters'. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_text(p_value text, p_name text, p_max integer,
                                               p_required boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_value IS NULL THEN
        IF p_required THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s is required', p_name);
        END IF;
    ELSIF p_required AND (length(p_value) = 0 OR length(p_value) > p_max) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be 1 to %s characters', p_name, p_max),
            DETAIL = format('length=%s', length(p_value));
    ELSIF length(p_value) > p_max THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be at most %s characters', p_name, p_max),
            DETAIL = format('length=%s', length(p_value));
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_text(text, text, integer, boolean) IS
    'Raises 22023 when a text argument is missing (if required), empty (if required) or too long.';

-- SKUs. A sku is an identifier a person reads and types: 1..255 characters, no control
-- characters (U+0000..U+001F, U+007F..U+009F), not blank (only spaces, no-break, ideographic or
-- zero-width spaces), and normalised to Unicode NFC wherever it enters (create_order items, the
-- lines of the fulfillment and return calls, receive_stock, stock_level, set_stock_buckets,
-- rebalance_stock_buckets), so that "é" typed on two keyboards (one code point, or e + U+0301)
-- is one sku. It is stored and compared byte-wise (COLLATE "C") in that form. Leading and
-- trailing spaces are kept (they are part of what the caller sent); messages show a sku quoted
-- (orderdb._quote_sku: sku "SKU-1 "), so such a space is visible.

-- _nfc: p_value in Unicode normalisation form NFC. ASCII text (byte length = character length)
-- is returned as is without calling normalize(). Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._nfc(p_value text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN octet_length(p_value) = length(p_value) THEN p_value
                ELSE normalize(p_value, NFC) END;
$$;
COMMENT ON FUNCTION orderdb._nfc(text) IS
    'The text in Unicode NFC (ASCII returned as is).';

-- _sku_problem: what is wrong with a (non-NULL, normalised) sku as the end of a message —
-- 'must be 1 to 255 characters', 'must not contain control characters', 'must not be blank' —
-- or NULL when it is a valid sku. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._sku_problem(p_sku text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE
        WHEN length(p_sku) NOT BETWEEN 1 AND 255 THEN 'must be 1 to 255 characters'
        WHEN p_sku ~ '[\u0001-\u001f\u007f-\u009f]' THEN 'must not contain control characters'
        WHEN btrim(p_sku, U&' \00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008'
                          || U&'\2009\200A\200B\2028\2029\202F\205F\3000\FEFF') = ''
            THEN 'must not be blank'
    END;
$$;
COMMENT ON FUNCTION orderdb._sku_problem(text) IS
    'Why a sku is invalid (length, control characters, blank), or NULL when it is valid.';

-- _quote_sku: a sku as messages show it: in double quotes, JSON-escaped (sku "SKU-1 "), cut to
-- 255 characters. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._quote_sku(p_sku text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT to_json(left(p_sku, 255))::text;
$$;
COMMENT ON FUNCTION orderdb._quote_sku(text) IS
    'A sku quoted for messages (JSON string form).';

-- _check_sku: checks a sku argument (required; orderdb._sku_problem) and returns it in NFC.
-- Raises 22023 '<name> is required' / '<name> must be 1 to 255 characters' / '<name> must not
-- contain control characters' / '<name> must not be blank', DETAIL the sku quoted.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_sku(p_sku text, p_name text DEFAULT 'sku')
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_sku     text;
    v_problem text;
BEGIN
    IF p_sku IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s is required', p_name);
    END IF;
    v_sku := orderdb._nfc(p_sku);
    v_problem := orderdb._sku_problem(v_sku);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s %s', p_name, v_problem),
            DETAIL = format('%s=%s length=%s', p_name, orderdb._quote_sku(v_sku), length(v_sku));
    END IF;
    RETURN v_sku;
END;
$$;
COMMENT ON FUNCTION orderdb._check_sku(text, text) IS
    'Raises 22023 unless the sku is valid (1..255 characters, no control characters, not blank); returns it in NFC.';

-- _check_range: p_value must be non-NULL and between p_min and p_max (inclusive).
-- Raises 22023 '<name> must be between <min> and <max>'. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_range(p_value bigint, p_name text, p_min bigint,
                                                p_max bigint)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_value IS NULL OR p_value NOT BETWEEN p_min AND p_max THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be between %s and %s', p_name, p_min, p_max),
            DETAIL = format('%s=%s', p_name, coalesce(p_value::text, 'NULL'));
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_range(bigint, text, bigint, bigint) IS
    'Raises 22023 unless the value is between the bounds (NULL is rejected).';

-- _json_too_deep: true when the JSON value p_value (p_text: its text form) nests more than 32
-- levels deep ('{}' and '[]' are one level; '{"a": []}' two). Cheap for the common case: a text
-- with at most 32 '[' and '{' characters cannot nest deeper, and only a text with more is
-- walked (one jsonb_path_exists in C: a container at level 32 of the tree). The characters are
-- counted in bytes, with replace() (about 0.4 µs for a 3-line order's items, translate() and
-- length() 4.7 µs): both are ASCII, and every server encoding is ASCII-safe (an ASCII byte is
-- always that character), so the count is the same. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._json_too_deep(p_value jsonb, p_text text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT octet_length(p_text) - octet_length(replace(replace(p_text, '[', ''), '{', '')) > 32
           AND jsonb_path_exists(p_value,
                                 'strict $.**{32} ? (@.type() == "object" || @.type() == "array")');
$$;
COMMENT ON FUNCTION orderdb._json_too_deep(jsonb, text) IS
    'True when a JSON value nests more than 32 levels deep (walked only past 32 brackets).';

-- _check_json: p_value must be a JSON value of kind p_kind ('object' or 'array') whose text form
-- is at most 65536 bytes and that nests at most 32 levels deep (a reader's JSON decoder — Python's
-- included — must be able to take back what was accepted). NULL is rejected (callers coalesce
-- optional arguments first).
-- Raises 22023 '<name> is required' / '<name> must be a JSON <kind>' /
-- '<name> must be at most 65536 bytes' / '<name> must nest at most 32 levels deep'.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_json(p_value jsonb, p_name text, p_kind text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_text text;
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s is required', p_name);
    ELSIF jsonb_typeof(p_value) <> p_kind THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be a JSON %s', p_name, p_kind),
            DETAIL = format('got a JSON %s', jsonb_typeof(p_value));
    END IF;
    v_text := p_value::text;
    IF octet_length(v_text) > 65536 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be at most 65536 bytes', p_name),
            DETAIL = format('size=%s', octet_length(v_text));
    ELSIF orderdb._json_too_deep(p_value, v_text) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must nest at most 32 levels deep', p_name),
            HINT = 'Flatten the document: 32 levels of objects and arrays at most.';
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_json(jsonb, text, text) IS
    'Raises 22023 unless the value is a JSON object/array (p_kind) of at most 64 kB, 32 levels deep.';

-- _check_status: p_status must be a known order status (orderdb.order_statuses).
-- Raises 22023 '<name> is required' / 'unknown <name>'. Reads order_statuses; locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_status(p_status text, p_name text)
RETURNS void
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_status IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s is required', p_name);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM orderdb.order_statuses s WHERE s.status = p_status) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('unknown %s %L', p_name, left(p_status, 100)),
            HINT = 'See orderdb.order_statuses for the status names.';
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._check_status(text, text) IS
    'Raises 22023 unless the text is a known order status.';

-- _parse_items: validates and normalises a JSON array of order lines
--   [{"sku": text, "quantity": integer, "unit_price": number | numeric string | null}, ...]
-- Rules: at most 64 kB and 32 levels deep (orderdb._check_json); 1..p_max_lines elements; each
-- an object; sku a string, normalised to NFC, of 1..255 characters without control characters
-- and not blank (orderdb._sku_problem), each sku
-- once; quantity a JSON number that is a positive integer (<= 2147483647) — required unless
-- p_quantity_required is false (then absent/null means "all"); unit_price optional: a JSON number
-- or a decimal string ('19.90'), 0 <= unit_price <= 1e12. Other keys are ignored.
-- Indexes in messages are 0-based, like JSON paths: items[0] is the first line.
-- Returns the lines sorted by sku (COLLATE "C": the lock order of inventory rows), their 1-based
-- input positions, the normalised lines as JSON in input order (items) and sorted by sku with
-- unit_price scale-normalised (items_canonical, used for idempotency hashing).
-- Raises 22023 naming the first bad field. Locks nothing.
-- Cost: valid input takes the fast path (one pass, no window function); only input with a bad
-- line, a duplicate sku or a bad array runs the full query, which words the error
-- (docs/benchmarks.md). Both paths return the same outputs for valid input.
CREATE OR REPLACE FUNCTION orderdb._parse_items(
    p_items jsonb, p_name text DEFAULT 'items', p_quantity_required boolean DEFAULT true,
    p_max_lines integer DEFAULT 500,
    OUT skus text[], OUT quantities integer[], OUT unit_prices numeric[], OUT line_nos integer[],
    OUT items jsonb, OUT items_canonical jsonb)
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_error text;
    v_bad   bigint;
    v_text  text;
BEGIN
    -- Fast path: one pass that only decides "every line is valid" and builds the outputs; any
    -- doubt (a bad line, a duplicate sku, a bad array) falls through to the full query below,
    -- which words the error. Both paths give the same outputs for valid input.
    IF jsonb_typeof(p_items) = 'array' THEN
        v_text := p_items::text;  -- once (orderdb._json_too_deep, inlined, uses it twice)
        IF octet_length(v_text) <= 65536 AND NOT orderdb._json_too_deep(p_items, v_text)
           AND jsonb_array_length(p_items) BETWEEN 1 AND p_max_lines THEN
            SELECT count(*) FILTER (WHERE l.ok IS NOT TRUE),
                   array_agg(l.sku ORDER BY l.sku COLLATE "C"),
                   array_agg(l.qty ORDER BY l.sku COLLATE "C"),
                   array_agg(l.price ORDER BY l.sku COLLATE "C"),
                   array_agg(l.ord::integer ORDER BY l.sku COLLATE "C"),
                   jsonb_agg(jsonb_build_object('sku', l.sku, 'quantity', l.qty,
                                                'unit_price', l.price) ORDER BY l.ord),
                   jsonb_agg(jsonb_build_object('sku', l.sku, 'quantity', l.qty,
                                                'unit_price', trim_scale(l.price))
                             ORDER BY l.sku COLLATE "C")
              INTO v_bad, skus, quantities, unit_prices, line_nos, items, items_canonical
              FROM (
                SELECT f.ord, f.sku, f.price,
                       CASE WHEN f.qn BETWEEN 1 AND 2147483647 THEN f.qn::integer END AS qty,
                       f.is_object AND f.sku IS NOT NULL AND orderdb._sku_problem(f.sku) IS NULL
                       AND CASE WHEN f.qn IS NULL THEN f.qty_absent AND NOT p_quantity_required
                                ELSE f.qn BETWEEN 1 AND 2147483647 AND f.qn = trunc(f.qn) END
                       AND CASE WHEN f.price IS NULL THEN f.price_absent
                                ELSE f.price BETWEEN 0 AND 1e12 END AS ok
                  FROM (
                    SELECT a.ord,
                           jsonb_typeof(a.elem) = 'object' AS is_object,
                           CASE WHEN jsonb_typeof(a.elem -> 'sku') = 'string'
                                THEN orderdb._nfc(a.elem ->> 'sku') END AS sku,
                           CASE WHEN jsonb_typeof(a.elem -> 'quantity') = 'number'
                                THEN (a.elem -> 'quantity')::numeric END AS qn,
                           coalesce(jsonb_typeof(a.elem -> 'quantity'), 'null') = 'null'
                               AS qty_absent,
                           CASE jsonb_typeof(a.elem -> 'unit_price')
                                WHEN 'number' THEN (a.elem -> 'unit_price')::numeric
                                WHEN 'string' THEN
                                  CASE WHEN (a.elem ->> 'unit_price')
                                            ~ '^[0-9]{1,13}(\.[0-9]{1,20})?$'
                                       THEN (a.elem ->> 'unit_price')::numeric END
                           END AS price,
                           coalesce(jsonb_typeof(a.elem -> 'unit_price'), 'null') = 'null'
                               AS price_absent
                      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS a(elem, ord)
                    OFFSET 0  -- keeps the subquery: each line's fields are computed once
                  ) f
              ) l;
            IF v_bad = 0 THEN
                -- sorted in byte order, so equal skus are neighbours
                FOR i IN 2 .. array_length(skus, 1) LOOP
                    IF skus[i] = skus[i - 1] THEN
                        v_bad := 1;
                        EXIT;
                    END IF;
                END LOOP;
                IF v_bad = 0 THEN
                    RETURN;
                END IF;
            END IF;
        END IF;
    END IF;

    -- Full query: the checks in the contract's order, the first bad field by input index.
    PERFORM orderdb._check_json(p_items, p_name, 'array');
    IF jsonb_array_length(p_items) NOT BETWEEN 1 AND p_max_lines THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must have 1 to %s lines', p_name, p_max_lines),
            DETAIL = format('lines=%s', jsonb_array_length(p_items));
    END IF;

    SELECT (array_agg(c.err ORDER BY c.idx) FILTER (WHERE c.err IS NOT NULL))[1],
           array_agg(c.sku ORDER BY c.sku COLLATE "C"),
           array_agg(c.qty ORDER BY c.sku COLLATE "C"),
           array_agg(c.price ORDER BY c.sku COLLATE "C"),
           array_agg((c.idx + 1)::integer ORDER BY c.sku COLLATE "C"),
           jsonb_agg(jsonb_build_object('sku', c.sku, 'quantity', c.qty, 'unit_price', c.price)
                     ORDER BY c.idx),
           jsonb_agg(jsonb_build_object('sku', c.sku, 'quantity', c.qty,
                                        'unit_price', trim_scale(c.price))
                     ORDER BY c.sku COLLATE "C")
      INTO v_error, skus, quantities, unit_prices, line_nos, items, items_canonical
      FROM (
        SELECT v.idx, v.sku, v.err,
               CASE WHEN v.err IS NULL AND v.qty_type = 'number'
                    THEN (v.elem -> 'quantity')::integer END AS qty,
               CASE WHEN v.err IS NOT NULL THEN NULL
                    WHEN v.price_type = 'number' THEN (v.elem -> 'unit_price')::numeric
                    WHEN v.price_type = 'string' THEN (v.elem ->> 'unit_price')::numeric END AS price
          FROM (
            SELECT e.idx, e.elem, e.sku, e.qty_type, e.price_type,
                   coalesce(CASE
                     WHEN jsonb_typeof(e.elem) <> 'object' THEN
                       format('%s[%s] must be a JSON object', p_name, e.idx)
                     WHEN e.sku IS NULL THEN
                       format('%s[%s].sku must be a string', p_name, e.idx)
                     WHEN orderdb._sku_problem(e.sku) IS NOT NULL THEN
                       format('%s[%s].sku %s', p_name, e.idx, orderdb._sku_problem(e.sku))
                     WHEN e.sku_rank > 1 THEN
                       format('%s[%s].sku %s appears more than once', p_name, e.idx,
                              orderdb._quote_sku(e.sku))
                     WHEN e.qty_type IS NULL AND NOT p_quantity_required THEN NULL
                     WHEN e.qty_type IS DISTINCT FROM 'number' THEN
                       format('%s[%s].quantity must be a positive integer', p_name, e.idx)
                     WHEN CASE WHEN (e.elem -> 'quantity')::numeric < 1
                                 OR (e.elem -> 'quantity')::numeric > 2147483647 THEN true
                               ELSE (e.elem -> 'quantity')::numeric
                                    <> trunc((e.elem -> 'quantity')::numeric) END THEN
                       format('%s[%s].quantity must be a positive integer', p_name, e.idx)
                   END,
                   CASE
                     WHEN e.price_type IS NULL THEN NULL
                     WHEN e.price_type = 'number' THEN
                       CASE WHEN (e.elem -> 'unit_price')::numeric BETWEEN 0 AND 1e12 THEN NULL
                            ELSE format('%s[%s].unit_price must be a number from 0 to 1e12',
                                        p_name, e.idx) END
                     WHEN e.price_type = 'string' THEN
                       CASE WHEN (e.elem ->> 'unit_price') !~ '^[0-9]{1,13}(\.[0-9]{1,20})?$' THEN
                              format('%s[%s].unit_price must be a number from 0 to 1e12',
                                     p_name, e.idx)
                            WHEN (e.elem ->> 'unit_price')::numeric > 1e12 THEN
                              format('%s[%s].unit_price must be a number from 0 to 1e12',
                                     p_name, e.idx)
                       END
                     ELSE format('%s[%s].unit_price must be a number from 0 to 1e12',
                                 p_name, e.idx)
                   END) AS err
              FROM (
                SELECT a.ord - 1 AS idx, a.elem,
                       CASE WHEN jsonb_typeof(a.elem -> 'sku') = 'string'
                            THEN orderdb._nfc(a.elem ->> 'sku') END AS sku,
                       nullif(jsonb_typeof(a.elem -> 'quantity'), 'null') AS qty_type,
                       nullif(jsonb_typeof(a.elem -> 'unit_price'), 'null') AS price_type,
                       row_number() OVER (
                           PARTITION BY CASE WHEN jsonb_typeof(a.elem -> 'sku') = 'string'
                                             THEN orderdb._nfc(a.elem ->> 'sku') END
                           ORDER BY a.ord) AS sku_rank
                  FROM jsonb_array_elements(p_items) WITH ORDINALITY AS a(elem, ord)
              ) e
          ) v
      ) c;

    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = v_error;
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._parse_items(jsonb, text, boolean, integer) IS
    'Validates and normalises a JSON array of order lines; raises 22023 naming the first bad field.';

-- ---------------------------------------------------------------------------------------------
-- Order data (create_order's p_options, amend_order's p_changes; docs/api.md "Order data")
-- ---------------------------------------------------------------------------------------------

-- _normalize_phone: a phone number in its stored form, or NULL when it is not one we accept.
-- At most 40 characters. Accepted (docs/api.md "Phone numbers"):
--   Chinese mobile   1[3-9] + 9 digits, optionally after +86 or 0086; spaces, dashes and
--                    parentheses anywhere                       -> '+8613812345678'
--   Chinese landline 0 + area code (2 digits after 0 when it starts with 1 or 2, e.g. 010, 021;
--                    else 3, e.g. 0755) + 7 or 8 digits, the area code optionally in parentheses,
--                    one space or dash after it and one inside the number; an extension after a
--                    space, a dash, 'ext', 'ext.', 'x', '#' or '转': 1..6 digits
--                                                               -> '010-12345678', '0755-1234567-12'
--   international    E.164: + (or 00) and 8 to 15 digits, the first not 0; spaces, dashes and
--                    parentheses anywhere                       -> '+14155552671'
--                    (+86 followed by 1 and 3..9 is a Chinese mobile: exactly 11 digits or refused)
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._normalize_phone(p_phone text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_text   text := btrim(p_phone);
    v_digits text;
    v_m      text[];
BEGIN
    IF v_text IS NULL OR length(v_text) > 40 THEN
        RETURN NULL;
    END IF;
    v_m := regexp_match(v_text,
        '^\(?0([12][0-9]|[3-9][0-9]{2})\)?[ -]?([0-9]{3,4})[ -]?([0-9]{4})'
        || '(?:(?:[ -]|[ ]*(?:ext\.?|x|#|转)[ ]*)([0-9]{1,6}))?$', 'i');
    IF v_m IS NOT NULL THEN
        RETURN '0' || v_m[1] || '-' || v_m[2] || v_m[3] || coalesce('-' || v_m[4], '');
    END IF;
    v_digits := translate(v_text, ' -()', '');
    IF v_digits ~ '^(\+86|0086)?1[3-9][0-9]{9}$' THEN
        RETURN '+86' || right(v_digits, 11);
    ELSIF v_digits ~ '^(\+|00)[1-9][0-9]{7,14}$'
          AND v_digits !~ '^(\+|00)861[3-9]' THEN  -- +86 1[3-9]...: a Chinese mobile or nothing
        RETURN '+' || regexp_replace(v_digits, '^(\+|00)', '');
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION orderdb._normalize_phone(text) IS
    'A phone number (Chinese mobile or landline, E.164) in its stored form; NULL when not accepted.';

-- _mask_phone: a phone as customers may see it: Chinese mobile '138****5678'; landline
-- '010-****5678' (the area code and the last 4 digits; no extension); other E.164 numbers '+',
-- the first 2 digits, asterisks, the last 4 ('+44******7890'). A phone that is not in a form
-- orderdb._normalize_phone accepts (stored before validation existed) shows only its last 4
-- digits ('****7890'), or '****'. NULL for NULL. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._mask_phone(p_phone text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_phone text := orderdb._normalize_phone(p_phone);
    v_m     text[];
    v_digits text;
BEGIN
    IF p_phone IS NULL THEN
        RETURN NULL;
    ELSIF v_phone ~ '^\+861[3-9][0-9]{9}$' THEN
        RETURN substr(v_phone, 4, 3) || '****' || right(v_phone, 4);
    END IF;
    v_m := regexp_match(v_phone, '^(0[0-9]{2,3})-([0-9]{7,8})');
    IF v_m IS NOT NULL THEN
        RETURN v_m[1] || '-' || repeat('*', length(v_m[2]) - 4) || right(v_m[2], 4);
    ELSIF v_phone ~ '^\+[0-9]{8,15}$' THEN
        RETURN left(v_phone, 3) || repeat('*', length(v_phone) - 7) || right(v_phone, 4);
    END IF;
    v_digits := regexp_replace(p_phone, '[^0-9]', '', 'g');
    RETURN '****' || CASE WHEN length(v_digits) >= 8 THEN right(v_digits, 4) ELSE '' END;
END;
$$;
COMMENT ON FUNCTION orderdb._mask_phone(text) IS
    'A phone masked for customers (138****5678, 010-****5678, +44******7890).';

-- _mask_phones_in_text: a free text (a carrier's description or location, a name) with every
-- phone number in it masked by orderdb._mask_phone: Chinese mobiles (optionally after +86 / 0086
-- / 86, spaces or dashes between the groups), landlines (0 + area code, optionally in
-- parentheses, then 7 or 8 digits) and E.164 numbers ('+' and 8..15 digits, spaces or dashes
-- between them). A number counts only when no letter or digit comes right before it and no digit
-- right after it, so tracking numbers (SF1391234567801), times and longer digit runs stay.
-- NULL for NULL. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._mask_phones_in_text(p_text text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_out   text := p_text;
    v_phone text;
BEGIN
    IF p_text IS NULL OR p_text !~ '[0-9]{4}' THEN
        RETURN p_text;
    END IF;
    FOR v_phone IN
        SELECT p.phone FROM (SELECT DISTINCT m[1] AS phone
          FROM regexp_matches(p_text,
                   '(?:^|[^0-9A-Za-z+])('
                   || '(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}'
                   || '|\(?0[1-9][0-9]{1,2}\)?[ -]?[0-9]{3,4}[ -]?[0-9]{4}'
                   || '|\+[1-9](?:[ -]?[0-9]){7,14}'
                   || ')(?![0-9])', 'g') m) p
         ORDER BY length(p.phone) DESC, p.phone  -- a longer form first (+86 ... before 139...)
    LOOP
        v_out := replace(v_out, v_phone, orderdb._mask_phone(v_phone));
    END LOOP;
    RETURN v_out;
END;
$$;
COMMENT ON FUNCTION orderdb._mask_phones_in_text(text) IS
    'A free text with every phone number in it masked (orderdb._mask_phone).';

-- _key_name: a JSON key as messages name it: prefix + key when the key is a plain word, else
-- prefix + the key JSON-quoted and cut to 64 characters. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._key_name(p_prefix text, p_key text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT p_prefix || CASE WHEN p_key ~ '^[A-Za-z0-9_]{1,64}$' THEN p_key
                            ELSE to_json(left(p_key, 64))::text END;
$$;
COMMENT ON FUNCTION orderdb._key_name(text, text) IS
    'A JSON key for messages (quoted unless it is a plain word).';

-- _check_order_time: an order time (promised_ship_at, promised_delivery_at, payment_due_by): a
-- JSON string in ISO 8601 form with a date, a time and an offset
-- (YYYY-MM-DDTHH:MM[:SS[.ffffff]] then Z or +HH[:MM] / -HH[:MM]; a space may replace the T) that
-- is a real time (hours 00..23: PostgreSQL's 24:00 is refused), from 2000-01-01T00:00:00Z and before 2100-01-01T00:00:00Z (a promise lies in
-- the future: no one-day bound as for reported times). Returns it as timestamptz.
-- Raises 22023 '<name> must be an ISO 8601 time with an offset (...)' / '<name> must be from
-- 2000-01-01 and before 2100-01-01'. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_order_time(p_value jsonb, p_name text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_at timestamptz;
BEGIN
    IF jsonb_typeof(p_value) = 'string'
       AND (p_value ->> 0) ~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-9]{2}'
                              || '(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$') THEN
        BEGIN
            v_at := (p_value ->> 0)::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                       OR invalid_time_zone_displacement_value THEN
            v_at := NULL;
        END;
    END IF;
    IF v_at IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be an ISO 8601 time with an offset '
                             '(e.g. 2030-01-31T18:00:00+08:00)', p_name),
            DETAIL = format('%s=%s', p_name, left(coalesce(p_value::text, 'null'), 100));
    ELSIF v_at < '2000-01-01T00:00:00Z'::timestamptz
          OR v_at >= '2100-01-01T00:00:00Z'::timestamptz THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be from 2000-01-01 and before 2100-01-01', p_name),
            DETAIL = format('%s=%s', p_name, p_value ->> 0);
    END IF;
    RETURN v_at;
END;
$$;
COMMENT ON FUNCTION orderdb._check_order_time(jsonb, text) IS
    'Raises 22023 unless the value is an ISO 8601 time with an offset in [2000-01-01, 2100-01-01).';

-- _clean_text: a ship_to text field: a JSON string, Unicode NFC, leading and trailing white space
-- (also U+3000 and no-break spaces) removed, then 1..p_max characters without control characters.
-- Raises 22023 '<name> must be a string' / '<name> must be 1 to <max> characters' / '<name>
-- must not contain control characters'. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._clean_text(p_value jsonb, p_name text, p_max integer)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_text text;
BEGIN
    IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s must be a string', p_name);
    END IF;
    v_text := btrim(orderdb._nfc(p_value ->> 0), U&' \0009\000A\000D\00A0\3000\FEFF');
    IF length(v_text) NOT BETWEEN 1 AND p_max THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must be 1 to %s characters', p_name, p_max),
            DETAIL = format('length=%s', length(v_text));
    ELSIF v_text ~ '[\u0001-\u001f\u007f-\u009f]' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s must not contain control characters', p_name);
    END IF;
    RETURN v_text;
END;
$$;
COMMENT ON FUNCTION orderdb._clean_text(jsonb, text, integer) IS
    'A trimmed NFC text field of 1..max characters without control characters (else 22023).';

-- _check_ship_to: validates and normalises a ship_to object (field names in messages:
-- ship_to.<field>). Fields: name, province, city, district (text, 1..100 characters), line1
-- (required), line2 (text, 1..200), phone (orderdb._normalize_phone; stored normalised),
-- country (ISO 3166-1 alpha-2 of orderdb.countries, upper-cased; default 'CN', stored),
-- postcode (CN: 6 digits; elsewhere 2..16 letters, digits, spaces and dashes, starting and
-- ending with a letter or digit), lat (-90..90) and lon (-180..180) as JSON numbers, both or
-- neither. A field whose value is null is left out; any other field is 22023 (a typo must not
-- lose an address line). Texts: orderdb._clean_text. Returns the normalised object.
-- Reads orderdb.countries; locks nothing.
CREATE OR REPLACE FUNCTION orderdb._check_ship_to(p_ship_to jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_out     jsonb := '{}'::jsonb;
    v_key     text;
    v_value   jsonb;
    v_text    text;
    v_country text;
BEGIN
    IF jsonb_typeof(p_ship_to) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ship_to must be a JSON object';
    END IF;
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_ship_to) e LOOP
        CONTINUE WHEN jsonb_typeof(v_value) = 'null';
        CASE v_key
            WHEN 'name', 'province', 'city', 'district' THEN
                v_text := orderdb._clean_text(v_value, 'ship_to.' || v_key, 100);
            WHEN 'line1', 'line2' THEN
                v_text := orderdb._clean_text(v_value, 'ship_to.' || v_key, 200);
            WHEN 'phone' THEN
                IF jsonb_typeof(v_value) <> 'string' THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023', MESSAGE = 'ship_to.phone must be a string';
                END IF;
                v_text := orderdb._normalize_phone(v_value ->> 0);
                IF v_text IS NULL THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'ship_to.phone is not a phone number',
                        DETAIL = format('phone=%s', to_json(left(v_value ->> 0, 40))),
                        HINT = 'A Chinese mobile (13812345678, +86 138 1234 5678), a Chinese '
                               'landline (010-12345678, 0755 1234567 ext 12) or E.164 '
                               '(+14155552671).';
                END IF;
            WHEN 'country' THEN
                v_text := upper(v_value ->> 0);
                IF jsonb_typeof(v_value) <> 'string' OR v_text !~ '^[A-Z]{2}$'
                   OR NOT EXISTS (SELECT 1 FROM orderdb.countries c WHERE c.code = v_text) THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'ship_to.country must be an ISO 3166-1 alpha-2 code (e.g. CN)',
                        DETAIL = format('country=%s', left(v_value::text, 20));
                END IF;
            WHEN 'postcode' THEN
                v_text := orderdb._clean_text(v_value, 'ship_to.postcode', 16);
            WHEN 'lat', 'lon' THEN
                IF jsonb_typeof(v_value) <> 'number'
                   OR NOT (v_value::numeric BETWEEN CASE v_key WHEN 'lat' THEN -90 ELSE -180 END
                                                AND CASE v_key WHEN 'lat' THEN 90 ELSE 180 END)
                THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = format('ship_to.%s must be a number from %s', v_key,
                                         CASE v_key WHEN 'lat' THEN '-90 to 90'
                                                    ELSE '-180 to 180' END);
                END IF;
                v_out := v_out || jsonb_build_object(v_key, v_value);
                CONTINUE;
            ELSE
                RAISE EXCEPTION USING
                    ERRCODE = '22023',
                    MESSAGE = format('%s is not a ship_to field',
                                     orderdb._key_name('ship_to.', v_key)),
                    HINT = 'ship_to fields: name, phone, country, province, city, district, '
                           'line1, line2, postcode, lat, lon.';
        END CASE;
        v_out := v_out || jsonb_build_object(v_key, v_text);
    END LOOP;

    IF NOT v_out ? 'line1' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ship_to.line1 is required';
    END IF;
    IF (v_out ? 'lat') <> (v_out ? 'lon') THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('ship_to.%s is required with ship_to.%s',
                             CASE WHEN v_out ? 'lat' THEN 'lon' ELSE 'lat' END,
                             CASE WHEN v_out ? 'lat' THEN 'lat' ELSE 'lon' END);
    END IF;
    v_country := coalesce(v_out ->> 'country', 'CN');
    v_out := v_out || jsonb_build_object('country', v_country);
    v_text := v_out ->> 'postcode';
    IF v_text !~ (CASE WHEN v_country = 'CN' THEN '^[0-9]{6}$'
                       ELSE '^[A-Za-z0-9][A-Za-z0-9 -]{0,14}[A-Za-z0-9]$' END) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = CASE WHEN v_country = 'CN' THEN 'ship_to.postcode must be 6 digits in CN'
                           ELSE 'ship_to.postcode must be 2 to 16 letters, digits, spaces or '
                                'dashes' END,
            DETAIL = format('postcode=%s', to_json(v_out ->> 'postcode'));
    END IF;
    RETURN v_out;
END;
$$;
COMMENT ON FUNCTION orderdb._check_ship_to(jsonb) IS
    'Validates and normalises a ship_to object (22023 naming ship_to.<field>).';

-- _is_time_zone: true when PostgreSQL knows p_name as a time zone (AT TIME ZONE accepts it).
-- Callers check the form of an IANA name first (abbreviations and POSIX strings are not names).
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._is_time_zone(p_name text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    PERFORM now() AT TIME ZONE p_name;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END;
$$;
COMMENT ON FUNCTION orderdb._is_time_zone(text) IS
    'True when the name is a time zone PostgreSQL knows.';

-- _order_data: THE validation of order data, for create_order (p_amend false: p_data is the
-- whole p_options) and amend_order (p_amend true: p_data is p_changes). Returns p_data with the
-- known keys normalised. Keys (messages name them as written here):
--   ship_to                      orderdb._check_ship_to
--   priority                     "normal" | "express"
--   currency                     an ISO 4217 code of orderdb.currencies (upper-cased)
--   shipping_fee                 a JSON number or decimal string ("12.50"), 0..1e12 (stored as a
--                                JSON number)
--   promised_ship_at, promised_delivery_at, payment_due_by (and the aliases the SLA rules read:
--   promised_ship_by, promised_delivery_by, payment_due_at)
--                                orderdb._check_order_time (kept as sent)
--   time_zone                    an IANA time zone name (Asia/Shanghai, Europe/Berlin, UTC):
--                                the customer's, for dates on the tracking page
--   attributes                   a JSON object (the shop's own fields)
-- create_order: other top-level keys are kept as they are (compatibility: options has always
-- taken the caller's own keys). amend_order: only ship_to, priority, promised_ship_at,
-- promised_delivery_at and attributes; a promised time may be null (the promise is withdrawn);
-- an attribute may be null (it is removed); any other key is 22023 '<key> cannot be amended'.
-- Raises 22023 naming the key. Reads orderdb.countries, orderdb.currencies; locks nothing.
CREATE OR REPLACE FUNCTION orderdb._order_data(p_data jsonb, p_amend boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_out   jsonb := p_data;
    v_key   text;
    v_value jsonb;
    v_text  text;
    v_fee   numeric;
BEGIN
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_data) e LOOP
        IF p_amend AND v_key NOT IN ('ship_to', 'priority', 'promised_ship_at',
                                     'promised_delivery_at', 'attributes') THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('%s cannot be amended', orderdb._key_name('', v_key)),
                HINT = 'amend_order changes ship_to, priority, promised_ship_at, '
                       'promised_delivery_at and attributes.';
        END IF;
        CASE v_key
            WHEN 'ship_to' THEN
                v_out := jsonb_set(v_out, ARRAY[v_key], orderdb._check_ship_to(v_value));
            WHEN 'priority' THEN
                IF v_value IS DISTINCT FROM '"normal"' AND v_value IS DISTINCT FROM '"express"' THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023', MESSAGE = 'priority must be "normal" or "express"';
                END IF;
            WHEN 'currency' THEN
                v_text := upper(v_value ->> 0);
                IF jsonb_typeof(v_value) <> 'string' OR v_text !~ '^[A-Z]{3}$'
                   OR NOT EXISTS (SELECT 1 FROM orderdb.currencies c WHERE c.code = v_text) THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'currency must be an ISO 4217 code (e.g. CNY)',
                        DETAIL = format('currency=%s', left(v_value::text, 20));
                END IF;
                v_out := jsonb_set(v_out, ARRAY[v_key], to_jsonb(v_text));
            WHEN 'shipping_fee' THEN
                v_fee := CASE jsonb_typeof(v_value)
                             WHEN 'number' THEN v_value::numeric
                             WHEN 'string' THEN
                                 CASE WHEN (v_value ->> 0) ~ '^[0-9]{1,13}(\.[0-9]{1,20})?$'
                                      THEN (v_value ->> 0)::numeric END END;
                IF v_fee IS NULL OR NOT (v_fee BETWEEN 0 AND 1e12) THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'shipping_fee must be a number from 0 to 1e12',
                        DETAIL = format('shipping_fee=%s', left(v_value::text, 40));
                END IF;
                v_out := jsonb_set(v_out, ARRAY[v_key], to_jsonb(v_fee));
            WHEN 'promised_ship_at', 'promised_delivery_at', 'payment_due_by',
                 'promised_ship_by', 'promised_delivery_by', 'payment_due_at' THEN
                IF NOT (p_amend AND jsonb_typeof(v_value) = 'null') THEN
                    PERFORM orderdb._check_order_time(v_value, v_key);
                END IF;
            WHEN 'time_zone' THEN
                v_text := v_value ->> 0;
                IF jsonb_typeof(v_value) <> 'string'
                   OR v_text !~ '^(UTC|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$'
                   OR NOT orderdb._is_time_zone(v_text) THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023',
                        MESSAGE = 'time_zone must be an IANA time zone name (e.g. Asia/Shanghai)',
                        DETAIL = format('time_zone=%s', left(v_value::text, 64));
                END IF;
            WHEN 'attributes' THEN
                IF jsonb_typeof(v_value) <> 'object' THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023', MESSAGE = 'attributes must be a JSON object';
                END IF;
            ELSE
                NULL;  -- create_order: the caller's own keys are kept
        END CASE;
    END LOOP;
    RETURN v_out;
END;
$$;
COMMENT ON FUNCTION orderdb._order_data(jsonb, boolean) IS
    'Validates and normalises order data (create_order options, amend_order changes); 22023 naming the key.';
