-- Time partitions of the history tables (delivery_attempts, lifecycle_events): made
-- ahead by the maintenance pass, dropped whole by retention (courier.store.history).

-- name: history_partitions
-- Every partition of the history tables but the default one, with the range of time it
-- covers (the first one, "<table>_before", has no start) and its bounds as written.
SELECT parent.relname AS parent, child.relname AS partition,
       b.lower_key, b.upper_key,
       CASE WHEN b.lower_key IS NULL THEN NULL
            WHEN parent.relname = 'delivery_attempts' THEN courier_uuid7_time(b.lower_key::uuid)
            ELSE b.lower_key::timestamptz END AS starts_at,
       CASE WHEN parent.relname = 'delivery_attempts' THEN courier_uuid7_time(b.upper_key::uuid)
            ELSE b.upper_key::timestamptz END AS ends_at
  FROM pg_inherits i
  JOIN pg_class parent ON parent.oid = i.inhparent
  JOIN pg_class child ON child.oid = i.inhrelid
 CROSS JOIN LATERAL pg_get_expr(child.relpartbound, child.oid) AS bound
 CROSS JOIN LATERAL (
     SELECT substring(bound FROM 'FROM \(''([^'']+)''\)') AS lower_key,
            substring(bound FROM 'TO \(''([^'']+)''\)') AS upper_key
 ) AS b
 WHERE parent.oid IN ('delivery_attempts'::regclass, 'lifecycle_events'::regclass)
   AND b.upper_key IS NOT NULL
 ORDER BY parent.relname, ends_at;

-- name: history_create_partition
-- One UTC day's partition of a history table, unless it exists (or lies inside the
-- first partition's range); moves rows of that day out of the default partition.
SELECT courier_create_history_partition(%(parent)s, %(day)s::date) AS created;

-- name: history_today
SELECT (now() AT TIME ZONE 'UTC')::date AS today;

-- name: history_lock_timeout
-- Making or dropping a partition locks its parent table (ACCESS EXCLUSIVE) for
-- milliseconds (longer when making a day must move rows out of a full default
-- partition), and, for delivery_attempts, `deliveries` too (its foreign key). A
-- completion locks the two the other way round (its deliveries first): waiting behind
-- one, the pass can close a lock cycle that PostgreSQL only breaks after
-- deadlock_timeout (1 s by default), by aborting either side, a completion as likely as
-- the pass, while every writer queues behind the wait. So the pass waits less than
-- that, gives up, and tries again.
SELECT set_config('lock_timeout', '200ms', true);

-- name: history_hold_partition
-- No attempt may be written into the day while its kept attempts are copied out.
LOCK TABLE {partition} IN SHARE MODE;

-- name: history_keep_attempts
-- Before a day of attempts is dropped: the attempts of that day's deliveries that
-- retention does not remove now (not ended, ended within their retention time, or named
-- by a remaining replay) are copied aside, to be written back once the day is gone (to
-- the default partition). The day's deliveries are found by their ids, per tenant.
CREATE TEMPORARY TABLE courier_kept_attempts ON COMMIT DROP AS
SELECT a.*
  FROM tenants t
  JOIN deliveries d
    ON d.tenant_id = t.id AND d.id >= %(lower_key)s::uuid AND d.id < %(upper_key)s::uuid
  JOIN {partition} a ON a.tenant_id = d.tenant_id AND a.delivery_id = d.id
 WHERE NOT (d.state = 'delivered' AND d.updated_at < %(delivered_before)s
            OR d.state IN ('failed', 'dead_lettered') AND d.updated_at < %(dead_before)s)
    OR EXISTS (SELECT 1 FROM deliveries r WHERE r.tenant_id = d.tenant_id AND r.replay_of = d.id);

-- name: history_drop_partition
DROP TABLE {partition};

-- name: history_restore_attempts
-- The kept attempts, back in the table: their day has no partition now, so they land in
-- the default partition, where the row-by-row retention removes them with their delivery.
WITH restored AS (
    INSERT INTO delivery_attempts SELECT * FROM courier_kept_attempts RETURNING 1
)
SELECT count(*) AS kept FROM restored;
