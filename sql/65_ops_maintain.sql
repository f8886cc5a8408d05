-- Partition upkeep for the tables in orderdb.partition_policy (`orderdb maintain`, or pg_cron):
-- monthly partitions made ahead, and partitions past their retention moved to orderdb_archive.

-- _month_bounds: [from, to) of the UTC month p_offset months after the one holding p_at.
-- Computed on timestamp without time zone, so the session's TimeZone cannot shift a boundary.
-- Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._month_bounds(p_at timestamptz, p_offset integer,
                                                 OUT range_from timestamptz,
                                                 OUT range_to timestamptz)
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT (date_trunc('month', p_at AT TIME ZONE 'UTC') + make_interval(months => p_offset))
               AT TIME ZONE 'UTC',
           (date_trunc('month', p_at AT TIME ZONE 'UTC') + make_interval(months => p_offset + 1))
               AT TIME ZONE 'UTC';
$$;
COMMENT ON FUNCTION orderdb._month_bounds(timestamptz, integer) IS
    'UTC month [from, to) p_offset months after the month of p_at.';

-- _partition_bounds: the range partitions of p_parent with their bounds (MINVALUE as -infinity,
-- MAXVALUE as infinity); the DEFAULT partition is not listed. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb._partition_bounds(p_parent regclass)
RETURNS TABLE (part regclass, range_from timestamptz, range_to timestamptz)
LANGUAGE sql
STABLE
AS $$
    SELECT b.part,
           coalesce(b.m[1]::timestamptz, '-infinity'::timestamptz),
           coalesce(b.m[2]::timestamptz, 'infinity'::timestamptz)
      FROM (SELECT c.oid::regclass AS part,
                   regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                $re$FROM \((?:'([^']+)'|MINVALUE)\) TO \((?:'([^']+)'|MAXVALUE)\)$re$) AS m
              FROM pg_catalog.pg_inherits i
              JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = p_parent) b
     WHERE b.m IS NOT NULL;
$$;
COMMENT ON FUNCTION orderdb._partition_bounds(regclass) IS
    'Range partitions of a table with their bounds (-infinity/infinity for MINVALUE/MAXVALUE).';

-- The signature before the dry run and the p_now bound (maintain_partitions(timestamptz)).
DROP FUNCTION IF EXISTS orderdb.maintain_partitions(timestamptz);

-- _maintain_progress: when the session asked for progress (SET orderdb.progress = 'on', as
-- `orderdb maintain --progress` does), one NOTICE 'orderdb maintain: <action> <partition> ...'
-- per partition action as it happens (maintain_partitions returns its rows only at the end);
-- otherwise nothing. Owner only.
CREATE OR REPLACE FUNCTION orderdb._maintain_progress(p_parent text, p_action text,
                                                      p_partition text, p_rows bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('orderdb.progress', true) = 'on' THEN
        RAISE NOTICE USING MESSAGE = format('orderdb maintain: %s %s of %s%s', p_action,
            p_partition, p_parent,
            CASE WHEN coalesce(p_rows, 0) > 0 THEN format(' (%s rows)', p_rows) ELSE '' END);
    END IF;
END;
$$;
COMMENT ON FUNCTION orderdb._maintain_progress(text, text, text, bigint) IS
    'One progress NOTICE per partition action when the session set orderdb.progress = on.';

-- _maintain_partitions: the work of orderdb.maintain_partitions (below), for any p_now (a finite
-- one; the public function refuses one more than a day ahead). Owner only: the tests simulate
-- months passing through it. For every table of orderdb.partition_policy (range-partitioned on
-- one timestamptz column, ideally with a DEFAULT partition):
--   1. creates the monthly partitions <table>_pYYYYMM from the month of p_now to premake months
--      ahead that do not exist yet (a month another partition covers, such as the legacy
--      partition of a converted table, is skipped); rows of that month already sitting in the DEFAULT partition
--      are moved into the new partition (in this transaction); the new partition takes the
--      storage parameters (fillfactor, autovacuum) of the DEFAULT partition;
--   2. when retention is set: every partition whose upper bound is at or before the start of
--      the month of p_now - retention is detached and moved to schema orderdb_archive (archive)
--      or dropped. A partition of orderdb.outbox holding events some consumer has not
--      acknowledged yet (orderdb._outbox_acked_position) stays: action 'held', rows_moved = the
--      number of those events.
-- Returns one row per action: (parent_table, action 'created' | 'archived' | 'dropped' | 'held',
-- partition_name, range_from, range_to (NULL: unbounded, e.g. a legacy partition),
-- rows_moved). Idempotent: a second run does nothing (but report the partitions still held).
-- p_dry_run: the same rows (rows_moved: the rows that would move), and nothing is changed.
-- Raises 22023 (p_now not finite; a policy table that is missing or not range-partitioned on a
-- single timestamptz column). Locks: creating/attaching a partition takes SHARE UPDATE
-- EXCLUSIVE on the parent and ACCESS EXCLUSIVE on the DEFAULT partition when rows move;
-- detaching takes ACCESS EXCLUSIVE on the parent for a moment (run it off-peak, with a
-- lock_timeout: `orderdb maintain` sets 5 s). A dry run takes no lock beyond its reads.
CREATE OR REPLACE FUNCTION orderdb._maintain_partitions(p_now timestamptz,
                                                        p_dry_run boolean DEFAULT false)
RETURNS TABLE (parent_table text, action text, partition_name text, range_from timestamptz,
               range_to timestamptz, rows_moved bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_policy   record;
    v_parent   regclass;
    v_relname  text;
    v_key      text;
    v_default  regclass;
    v_options  text[];
    v_bounds   record;
    v_name     text;
    v_moved    bigint;
    v_cutoff   timestamptz;
    v_part     record;
    v_acked    record;
    v_unacked  bigint;
BEGIN
    IF p_now IS NULL OR NOT isfinite(p_now) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'now must be a finite timestamp',
            DETAIL = format('now=%s', coalesce(p_now::text, 'NULL'));
    END IF;

    FOR v_policy IN
        SELECT p.table_name, p.premake, p.retention, p.archive
          FROM orderdb.partition_policy p
         ORDER BY p.table_name
    LOOP
        v_parent := to_regclass(v_policy.table_name);
        v_key := NULL;
        IF v_parent IS NOT NULL THEN
            SELECT a.attname::text, c.relname::text INTO v_key, v_relname
              FROM pg_catalog.pg_partitioned_table pt
              JOIN pg_catalog.pg_class c ON c.oid = pt.partrelid
              JOIN pg_catalog.pg_attribute a
                ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
             WHERE pt.partrelid = v_parent
               AND pt.partstrat = 'r'
               AND pt.partnatts = 1
               AND a.atttypid = 'timestamp with time zone'::regtype;
        END IF;
        IF v_key IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('partition_policy table %s is not range-partitioned on a '
                                 'timestamptz column', v_policy.table_name),
                HINT = 'Fix or delete its row in orderdb.partition_policy.';
        END IF;

        SELECT c.oid::regclass, c.reloptions INTO v_default, v_options
          FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = v_parent
           AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';

        -- 1. this month and premake months ahead
        FOR v_offset IN 0 .. v_policy.premake LOOP
            v_bounds := orderdb._month_bounds(p_now, v_offset);
            v_name := left(v_relname, 54) || '_p'
                      || to_char(v_bounds.range_from AT TIME ZONE 'UTC', 'YYYYMM');
            -- made already, or covered by another partition (such as a legacy one)
            CONTINUE WHEN to_regclass(format('orderdb.%I', v_name)) IS NOT NULL
                       OR EXISTS (SELECT 1 FROM orderdb._partition_bounds(v_parent) pb
                                   WHERE pb.range_from < v_bounds.range_to
                                     AND pb.range_to > v_bounds.range_from);
            v_moved := 0;
            IF p_dry_run THEN
                IF v_default IS NOT NULL THEN
                    EXECUTE format('SELECT count(*) FROM %s WHERE %I >= %L AND %I < %L',
                                   v_default, v_key, v_bounds.range_from, v_key,
                                   v_bounds.range_to)
                       INTO v_moved;
                END IF;
            ELSIF v_default IS NULL THEN
                EXECUTE format('CREATE TABLE orderdb.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                               v_name, v_parent, v_bounds.range_from, v_bounds.range_to);
            ELSE
                -- build it beside the parent, move the month's rows out of DEFAULT, attach
                EXECUTE format('CREATE TABLE orderdb.%I (LIKE %s INCLUDING DEFAULTS '
                               'INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING INDEXES '
                               'INCLUDING STORAGE)', v_name, v_parent);
                IF v_options IS NOT NULL THEN
                    EXECUTE format('ALTER TABLE orderdb.%I SET (%s)', v_name,
                                   array_to_string(v_options, ', '));
                END IF;
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L '
                               'RETURNING *) INSERT INTO orderdb.%I SELECT * FROM moved',
                               v_default, v_key, v_bounds.range_from, v_key, v_bounds.range_to,
                               v_name);
                GET DIAGNOSTICS v_moved = ROW_COUNT;
                EXECUTE format('ALTER TABLE orderdb.%I ADD CONSTRAINT %I CHECK (%I >= %L AND %I < %L)',
                               v_name, v_name || '_range', v_key, v_bounds.range_from, v_key,
                               v_bounds.range_to);
                EXECUTE format('ALTER TABLE %s ATTACH PARTITION orderdb.%I FOR VALUES FROM (%L) TO (%L)',
                               v_parent, v_name, v_bounds.range_from, v_bounds.range_to);
                -- the CHECK spared ATTACH a scan; the partition bound now says the same
                EXECUTE format('ALTER TABLE orderdb.%I DROP CONSTRAINT %I', v_name,
                               v_name || '_range');
            END IF;
            IF NOT p_dry_run THEN  -- every table of orderdb has a comment
                EXECUTE format('COMMENT ON TABLE orderdb.%I IS %L', v_name,
                               format('Partition of %s: the rows of %s (UTC), made by '
                                      'orderdb maintain.', v_parent,
                                      to_char(v_bounds.range_from AT TIME ZONE 'UTC',
                                              'YYYY-MM')));
            END IF;
            parent_table := v_policy.table_name;
            action := 'created';
            partition_name := 'orderdb.' || v_name;
            range_from := v_bounds.range_from;
            range_to := v_bounds.range_to;
            rows_moved := v_moved;
            PERFORM orderdb._maintain_progress(parent_table, action, partition_name,
                                                 rows_moved);
            RETURN NEXT;
        END LOOP;

        -- 2. retention
        CONTINUE WHEN v_policy.retention IS NULL;
        IF v_parent = 'orderdb.outbox'::regclass THEN
            v_acked := orderdb._outbox_acked_position();
        END IF;
        v_cutoff := (orderdb._month_bounds(p_now - v_policy.retention, 0)).range_from;
        FOR v_part IN
            SELECT pb.part, pb.range_from AS bound_from, pb.range_to AS bound_to
              FROM orderdb._partition_bounds(v_parent) pb
             WHERE pb.range_to <= v_cutoff
             ORDER BY pb.range_to
        LOOP
            parent_table := v_policy.table_name;
            -- an unbounded end (MINVALUE, as of a legacy partition) is reported as NULL
            range_from := nullif(v_part.bound_from, '-infinity');
            range_to := nullif(v_part.bound_to, 'infinity');
            rows_moved := 0;
            IF v_parent = 'orderdb.outbox'::regclass THEN
                -- an outbox month leaves only once every consumer has acknowledged all of it
                EXECUTE format('SELECT count(*) FROM %s o WHERE (o.tx_id, o.event_id) > ($1, $2)',
                               v_part.part)
                   INTO v_unacked
                  USING v_acked.tx_id, v_acked.event_id;
                IF v_unacked > 0 THEN
                    action := 'held';
                    partition_name := v_part.part::text;
                    rows_moved := v_unacked;
                    PERFORM orderdb._maintain_progress(parent_table, action, partition_name,
                                                         rows_moved);
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            IF p_dry_run THEN
                action := CASE WHEN v_policy.archive THEN 'archived' ELSE 'dropped' END;
                partition_name := CASE WHEN v_policy.archive
                                       THEN 'orderdb_archive.'
                                            || (SELECT c.relname FROM pg_catalog.pg_class c
                                                 WHERE c.oid = v_part.part)
                                       ELSE v_part.part::text END;
                PERFORM orderdb._maintain_progress(parent_table, action, partition_name,
                                                     rows_moved);
                RETURN NEXT;
                CONTINUE;
            END IF;
            EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', v_parent, v_part.part);
            -- no trigger sees a partition leave: every cached timeline document goes stale
            -- (sql/47_timeline_cache.sql)
            PERFORM orderdb._timeline_bump_all();
            IF v_policy.archive THEN
                EXECUTE format('ALTER TABLE %s SET SCHEMA orderdb_archive', v_part.part);
                action := 'archived';
                partition_name := 'orderdb_archive.'
                                  || (SELECT c.relname FROM pg_catalog.pg_class c
                                       WHERE c.oid = v_part.part);
            ELSE
                partition_name := v_part.part::text;
                EXECUTE format('DROP TABLE %s', v_part.part);
                action := 'dropped';
            END IF;
            PERFORM orderdb._maintain_progress(parent_table, action, partition_name,
                                                 rows_moved);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION orderdb._maintain_partitions(timestamptz, boolean) IS
    'The work of maintain_partitions for any finite p_now (owner only; p_dry_run changes nothing).';

-- maintain_partitions: partition upkeep as of p_now (orderdb._maintain_partitions: monthly
-- partitions ahead, retention), `orderdb maintain`. p_now may not be more than a day ahead of
-- the server's clock: a p_now in the future would archive or drop months that are still
-- current (the outbox of this month included). Then automatic stock buckets that cooled down are
-- merged (orderdb._merge_cooled_stock_buckets). p_dry_run: report the actions, change nothing.
-- Raises 22023 (p_now NULL, not finite or more than a day ahead; a bad policy table).
-- Locks: as orderdb._maintain_partitions.
CREATE OR REPLACE FUNCTION orderdb.maintain_partitions(p_now timestamptz DEFAULT now(),
                                                       p_dry_run boolean DEFAULT false)
RETURNS TABLE (parent_table text, action text, partition_name text, range_from timestamptz,
               range_to timestamptz, rows_moved bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_now IS NULL OR NOT isfinite(p_now) OR p_now > now() + interval '1 day' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'now must be a finite timestamp at most one day in the future',
            DETAIL = format('now=%s server now=%s', coalesce(p_now::text, 'NULL'), now()),
            HINT = 'Leave now out (it defaults to the server''s clock).';
    END IF;
    IF p_dry_run IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'dry_run is required';
    END IF;
    RETURN QUERY SELECT * FROM orderdb._maintain_partitions(p_now, p_dry_run);
    -- automatic stock buckets that cooled down go back into their inventory rows (action
    -- 'merged', sql/25_stock_buckets.sql); they are judged on the server's clock, not p_now
    RETURN QUERY SELECT * FROM orderdb._merge_cooled_stock_buckets(p_dry_run);
END;
$$;
COMMENT ON FUNCTION orderdb.maintain_partitions(timestamptz, boolean) IS
    'Creates monthly partitions ahead and archives (or drops) partitions past their retention, '
    'for the tables of orderdb.partition_policy; p_now at most a day ahead; p_dry_run reports only.';
