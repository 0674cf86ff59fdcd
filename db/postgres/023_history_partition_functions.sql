-- Time partitions for history (delivery_attempts, lifecycle_events): the functions that
-- name, bound, create and drop one day's partition. Migration 024 converts the tables;
-- the maintenance pass calls these every tick. Days are UTC days.
--
-- delivery_attempts is partitioned by delivery_id: ids are uuid7, so a day of deliveries
-- is a range of ids, every attempt of a delivery lives in the partition of the day the
-- delivery was made, and every read by (tenant_id, delivery_id) prunes to one partition.
-- lifecycle_events is partitioned by occurred_at: the feed is a stream in time order.

-- The smallest uuid7 of a moment: its first 48 bits are the Unix time in milliseconds,
-- and every id courier_uuid7() makes at or after that millisecond sorts at or above it.
CREATE FUNCTION courier_uuid7_floor(p_at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM p_at) * 1000)::bigint), 12, '0')
            || '00000000000000000000')::uuid
$$;

-- The moment a uuid7 was made (to the millisecond).
CREATE FUNCTION courier_uuid7_time(p_id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_timestamp((('x' || substr(replace(p_id::text, '-', ''), 1, 12))::bit(48)::bigint)
                        / 1000.0)
$$;

-- A history table's partition key and the bounds of one day in it, as literals.
CREATE FUNCTION courier_history_day_bounds(p_parent text, p_day date,
                                           OUT key text, OUT lower_bound text, OUT upper_bound text)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    IF p_parent = 'delivery_attempts' THEN
        key := 'delivery_id';
        lower_bound := courier_uuid7_floor(p_day::timestamp AT TIME ZONE 'UTC')::text;
        upper_bound := courier_uuid7_floor((p_day + 1)::timestamp AT TIME ZONE 'UTC')::text;
    ELSIF p_parent = 'lifecycle_events' THEN
        key := 'occurred_at';
        lower_bound := to_char(p_day, 'YYYY-MM-DD') || ' 00:00:00+00';
        upper_bound := to_char(p_day + 1, 'YYYY-MM-DD') || ' 00:00:00+00';
    ELSE
        RAISE EXCEPTION 'not a partitioned history table: %', p_parent;
    END IF;
END
$$;

-- Creates the partition of `p_day` (named <table>_pYYYYMMDD) unless it exists or the day
-- lies inside another partition's range; true if it made one. A new partition takes the storage settings of the table's default
-- partition (fillfactor and vacuum settings cannot be set on a partitioned table).
-- Rows of that day that already went to the default partition (the pass fell behind, or
-- an id from another clock) are moved into the new partition in the same transaction:
-- attaching it with them left in the default would fail.
CREATE FUNCTION courier_create_history_partition(p_parent text, p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := p_parent || '_p' || to_char(p_day, 'YYYYMMDD');
    b record;
    opts text;
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    b := courier_history_day_bounds(p_parent, p_day);
    SELECT coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '') INTO opts
      FROM pg_class c
     WHERE c.oid = to_regclass(quote_ident(p_parent || '_default'));
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)%s',
                       part, p_parent, b.lower_bound, b.upper_bound, coalesce(opts, ''));
    EXCEPTION
    WHEN invalid_object_definition THEN
        RETURN false;  -- the day lies inside another partition's range (the first one's)
    WHEN check_violation THEN
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s',
                       part, p_parent, coalesce(opts, ''));
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *)'
                       ' INSERT INTO %I SELECT * FROM moved',
                       p_parent || '_default', b.key, b.lower_bound, b.key, b.upper_bound, part);
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       p_parent, part, b.lower_bound, b.upper_bound);
    END;
    RETURN true;
END
$$;
