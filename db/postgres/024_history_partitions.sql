-- courier: no-transaction
-- delivery_attempts and lifecycle_events become partitioned by day (functions in 023),
-- so retention drops a day whole instead of deleting its rows one by one.
--
-- The existing table is not copied: it becomes the table's first partition, holding
-- every row before a bound two UTC days ahead ("<table>_before"), and days from the
-- bound on get partitions of their own. Attaching a table as a partition must prove
-- that every row fits its range; a CHECK constraint that says so lets PostgreSQL skip
-- that scan. So, statement by statement (this file runs outside a transaction):
--   1. add the CHECK NOT VALID: a brief ACCESS EXCLUSIVE lock, no scan;
--   2. VALIDATE it: a scan under SHARE UPDATE EXCLUSIVE, writers keep writing;
--   3. build the lifecycle table's new primary-key index CONCURRENTLY (the key of a
--      partitioned table must hold the partition key: occurred_at joins it);
--   4. one transaction of catalog changes only: rename, create the partitioned table,
--      attach, default partition. ACCESS EXCLUSIVE on both tables for milliseconds,
--      whatever their size (docs/operations.md, "Converting an existing installation");
--   5. the first day partitions.
-- Each step checks what is done, so a run that failed part-way can run again.

-- 1. The bound, two UTC days ahead: every row written until step 4 commits is below it.
DO $$
DECLARE
    bound_day date := (now() AT TIME ZONE 'UTC')::date + 2;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'delivery_attempts'::regclass) = 'r' THEN
        ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_history_bound;
        EXECUTE format('ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_history_bound'
                       ' CHECK (delivery_id < %L) NOT VALID',
                       (courier_history_day_bounds('delivery_attempts', bound_day)).lower_bound);
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = 'lifecycle_events'::regclass) = 'r' THEN
        ALTER TABLE lifecycle_events DROP CONSTRAINT IF EXISTS lifecycle_events_history_bound;
        EXECUTE format('ALTER TABLE lifecycle_events ADD CONSTRAINT lifecycle_events_history_bound'
                       ' CHECK (occurred_at < %L) NOT VALID',
                       (courier_history_day_bounds('lifecycle_events', bound_day)).lower_bound);
    END IF;
END
$$;

-- 2. Checked while writers go on.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'delivery_attempts'::regclass) = 'r' THEN
        ALTER TABLE delivery_attempts VALIDATE CONSTRAINT delivery_attempts_history_bound;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = 'lifecycle_events'::regclass) = 'r' THEN
        ALTER TABLE lifecycle_events VALIDATE CONSTRAINT lifecycle_events_history_bound;
    END IF;
END
$$;

-- 3. The lifecycle table's key with its partition key in it, built without blocking.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS lifecycle_events_before_pkey
    ON lifecycle_events (tenant_id, txid, seq, occurred_at);

-- 4. The switch: catalog changes only. A lock that cannot be had within 10 s (a long
-- transaction on either table) fails the run instead of queueing every writer behind
-- it; run the migration again.
DO $$
DECLARE
    attempts_bound text;
    lifecycle_bound text;
    identity_seq text;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'delivery_attempts'::regclass) = 'p' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '10s', true);
    LOCK TABLE delivery_attempts, lifecycle_events IN ACCESS EXCLUSIVE MODE;
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''') INTO attempts_bound
      FROM pg_constraint
     WHERE conrelid = 'delivery_attempts'::regclass AND conname = 'delivery_attempts_history_bound';
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''') INTO lifecycle_bound
      FROM pg_constraint
     WHERE conrelid = 'lifecycle_events'::regclass AND conname = 'lifecycle_events_history_bound';

    -- delivery_attempts, by delivery_id
    ALTER TABLE delivery_attempts RENAME TO delivery_attempts_before;
    ALTER INDEX delivery_attempts_pkey RENAME TO delivery_attempts_before_pkey;
    ALTER INDEX delivery_attempts_destination RENAME TO delivery_attempts_before_destination;
    DROP TRIGGER delivery_attempts_destination ON delivery_attempts_before;
    CREATE TABLE delivery_attempts (LIKE delivery_attempts_before
        INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (delivery_id);
    ALTER TABLE delivery_attempts
        DROP CONSTRAINT delivery_attempts_history_bound,
        ADD CONSTRAINT delivery_attempts_pkey PRIMARY KEY (tenant_id, delivery_id, attempt_number),
        ADD CONSTRAINT delivery_attempts_tenant_id_delivery_id_fkey
            FOREIGN KEY (tenant_id, delivery_id) REFERENCES deliveries (tenant_id, id);
    CREATE INDEX delivery_attempts_destination
        ON delivery_attempts (tenant_id, destination_id, started_at);
    CREATE TRIGGER delivery_attempts_destination BEFORE INSERT ON delivery_attempts
        FOR EACH ROW WHEN (NEW.destination_id IS NULL)
        EXECUTE FUNCTION courier_attempt_destination();
    EXECUTE format('ALTER TABLE delivery_attempts ATTACH PARTITION delivery_attempts_before'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', attempts_bound);
    ALTER TABLE delivery_attempts_before DROP CONSTRAINT delivery_attempts_history_bound;
    -- what 003 and 010 set on the table, for every partition made from now on
    CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT
        WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.05);

    -- lifecycle_events, by occurred_at; seq becomes a plain sequence (an identity column
    -- cannot move to a partitioned table on PostgreSQL 15), continuing where it was
    identity_seq := pg_get_serial_sequence('lifecycle_events', 'seq');
    CREATE SEQUENCE courier_lifecycle_seq AS bigint;
    PERFORM setval('courier_lifecycle_seq', nextval(identity_seq));
    ALTER TABLE lifecycle_events RENAME TO lifecycle_events_before;
    ALTER TABLE lifecycle_events_before ALTER COLUMN seq DROP IDENTITY;
    ALTER TABLE lifecycle_events_before
        DROP CONSTRAINT lifecycle_events_pkey,
        ADD CONSTRAINT lifecycle_events_before_pkey PRIMARY KEY USING INDEX lifecycle_events_before_pkey;
    ALTER INDEX lifecycle_events_delivery RENAME TO lifecycle_events_before_delivery;
    DROP TRIGGER lifecycle_events_operations ON lifecycle_events_before;
    CREATE TABLE lifecycle_events (LIKE lifecycle_events_before
        INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (occurred_at);
    ALTER TABLE lifecycle_events
        DROP CONSTRAINT lifecycle_events_history_bound,
        ALTER COLUMN seq SET DEFAULT nextval('courier_lifecycle_seq'),
        ADD CONSTRAINT lifecycle_events_pkey PRIMARY KEY (tenant_id, txid, seq, occurred_at);
    ALTER SEQUENCE courier_lifecycle_seq OWNED BY lifecycle_events.seq;
    CREATE INDEX lifecycle_events_delivery ON lifecycle_events (tenant_id, delivery_id);
    CREATE TRIGGER lifecycle_events_operations AFTER INSERT ON lifecycle_events
        FOR EACH ROW WHEN (NEW.type IN ('destination.disabled', 'delivery.dead_lettered'))
        EXECUTE FUNCTION courier_notify_operations();
    EXECUTE format('ALTER TABLE lifecycle_events ATTACH PARTITION lifecycle_events_before'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', lifecycle_bound);
    ALTER TABLE lifecycle_events_before DROP CONSTRAINT lifecycle_events_history_bound;
    CREATE TABLE lifecycle_events_default PARTITION OF lifecycle_events DEFAULT;
END
$$;

-- 5. The first days after the bound, after the switch committed (days still inside the
-- first partition are skipped); the maintenance pass keeps making them ahead.
SELECT courier_create_history_partition(t, (now() AT TIME ZONE 'UTC')::date + d)
  FROM unnest(ARRAY['delivery_attempts', 'lifecycle_events']) AS t,
       generate_series(0, 4) AS d;
