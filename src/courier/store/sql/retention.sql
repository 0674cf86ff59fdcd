-- Retention (courier.store.retention): where kept history ends, and the batched deletes
-- of what is older, one tenant at a time.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: retention_cutoffs
SELECT now() - make_interval(secs => %(delivered_seconds)s) AS delivered_before,
       now() - make_interval(secs => %(dead_seconds)s) AS dead_before;

-- name: retention_delete_deliveries
-- One retention batch of one tenant: up to %(batch)s deliveries in %(states)s that ended
-- before %(before)s and that no remaining replay names (a replay is newer: it goes
-- first), with their attempts and lifecycle events. Audit records are kept. Rows
-- another transaction holds are skipped, not waited for.
-- The caller keeps %(before)s below the oldest day of attempts still partitioned: those
-- days go whole (courier.store.history), and their deliveries after them. Lifecycle
-- events are removed here only from before %(lifecycle_before)s (the first partition and
-- the default one); from there on they go by whole days, as a stream.
WITH doomed AS (
    SELECT d.tenant_id, d.id
      FROM deliveries d
     WHERE d.tenant_id = %(tenant_id)s
       AND d.state IN ('delivered', 'failed', 'dead_lettered')
       AND d.state = ANY (%(states)s::text[])
       AND d.updated_at < %(before)s
       AND NOT EXISTS (SELECT 1 FROM deliveries c
                        WHERE c.tenant_id = d.tenant_id AND c.replay_of = d.id)
     ORDER BY d.updated_at
     LIMIT %(batch)s
       FOR UPDATE SKIP LOCKED
), attempts AS (
    DELETE FROM delivery_attempts a
     USING doomed x
     WHERE a.tenant_id = x.tenant_id AND a.delivery_id = x.id
    RETURNING a.id
), lifecycle AS (
    DELETE FROM lifecycle_events l
     USING doomed x
     WHERE l.tenant_id = x.tenant_id AND l.delivery_id = x.id
       AND l.occurred_at < coalesce(%(lifecycle_before)s::timestamptz, 'infinity')
    RETURNING l.id
), removed AS (
    DELETE FROM deliveries d
     USING doomed x
     WHERE d.tenant_id = x.tenant_id AND d.id = x.id
    RETURNING d.id
)
SELECT (SELECT count(*) FROM removed) AS deliveries,
       (SELECT count(*) FROM attempts) AS attempts,
       (SELECT count(*) FROM lifecycle) AS lifecycle_events;

-- name: retention_delete_events
-- One retention batch of one tenant's events older than %(before)s with no delivery
-- left (whether they never had one or retention removed them).
WITH doomed AS (
    SELECT e.tenant_id, e.id
      FROM events e
     WHERE e.tenant_id = %(tenant_id)s AND e.created_at < %(before)s
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                        WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id)
     ORDER BY e.created_at
     LIMIT %(batch)s
       FOR UPDATE SKIP LOCKED
), removed AS (
    DELETE FROM events e
     USING doomed x
     WHERE e.tenant_id = x.tenant_id AND e.id = x.id
    RETURNING e.id
)
SELECT count(*) AS events FROM removed;

-- name: retention_delete_destination_events
-- One retention batch of one tenant's destination lifecycle events (`destination.*`, no
-- delivery to go with) that happened before %(before)s.
WITH doomed AS (
    SELECT l.tenant_id, l.txid, l.seq
      FROM lifecycle_events l
     WHERE l.tenant_id = %(tenant_id)s AND l.delivery_id IS NULL
       AND l.occurred_at < %(before)s
     LIMIT %(batch)s
       FOR UPDATE SKIP LOCKED
), removed AS (
    DELETE FROM lifecycle_events l
     USING doomed x
     WHERE l.tenant_id = x.tenant_id AND l.txid = x.txid AND l.seq = x.seq
    RETURNING l.id
)
SELECT count(*) AS lifecycle_events FROM removed;

-- name: retention_tenants_due
-- The tenants that hold something the batched deletes above would remove, with the same
-- cutoffs, found in one statement: a pass over many tenants with little to remove then
-- costs one round trip, not four per tenant. Each probe is a per-tenant index walk that
-- stops at its first row (LIMIT 1 keeps PostgreSQL from turning it into a hash of the
-- whole table); like the deletes, the events probe steps over a tenant's old events
-- whose deliveries are still kept.
SELECT t.id
  FROM tenants t
 WHERE (SELECT 1 FROM deliveries d
         WHERE d.tenant_id = t.id AND d.state = 'delivered'
           AND d.updated_at < %(delivered_before)s
         LIMIT 1) IS NOT NULL
    OR (SELECT 1 FROM deliveries d
         WHERE d.tenant_id = t.id AND d.state IN ('failed', 'dead_lettered')
           AND d.updated_at < %(dead_before)s
         LIMIT 1) IS NOT NULL
    OR (SELECT 1 FROM events e
         WHERE e.tenant_id = t.id AND e.created_at < %(events_before)s
           AND NOT EXISTS (SELECT 1 FROM deliveries d
                            WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id)
         LIMIT 1) IS NOT NULL
    OR (SELECT 1 FROM lifecycle_events l
         WHERE l.tenant_id = t.id AND l.delivery_id IS NULL
           AND l.occurred_at < %(destination_events_before)s
         LIMIT 1) IS NOT NULL
 ORDER BY t.id;
