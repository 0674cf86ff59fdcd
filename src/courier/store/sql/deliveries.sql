-- Statements of the delivery engine: enqueue, claim, complete, lease upkeep.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: enqueue_event
-- Writes the event, one delivery per enabled destination whose event_types
-- match (exact, `prefix.*`, `*`, or empty for all), a delivery.created event
-- per delivery, and one NOTIFY, in a single statement. A repeated
-- idempotency key inserts nothing and returns no row.
WITH ev AS (
    INSERT INTO events (tenant_id, type, payload, idempotency_key)
    VALUES (%(tenant_id)s, %(type)s, %(payload)s::json, %(idempotency_key)s)
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING tenant_id, id, type, created_at
), dl AS (
    INSERT INTO deliveries (tenant_id, event_id, destination_id, line_position)
    SELECT ev.tenant_id, ev.id, dst.id,
           CASE WHEN dst.ordering = 'fifo' THEN nextval('courier_fifo_line') ELSE 0 END
      FROM ev
      JOIN destinations dst ON dst.tenant_id = ev.tenant_id
     WHERE dst.enabled AND dst.deleted_at IS NULL
       AND (cardinality(dst.event_types) = 0
            OR ev.type = ANY (dst.event_types)
            OR EXISTS (SELECT 1 FROM unnest(dst.event_types) AS p(pattern)
                        WHERE p.pattern = '*'
                           OR (right(p.pattern, 2) = '.*'
                               AND starts_with(ev.type, left(p.pattern, -1)))))
    RETURNING tenant_id, id, event_id, destination_id, state
), created AS (
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state)
    SELECT tenant_id, 'delivery.created', id, event_id, destination_id, state FROM dl
), wake AS (
    SELECT pg_notify('courier_deliveries', ev.tenant_id::text) AS sent
      FROM ev
     WHERE EXISTS (SELECT 1 FROM dl)
)
SELECT ev.id AS event_id, ev.created_at, dl.id AS delivery_id, dl.destination_id, dl.state,
       (SELECT count(*) FROM wake) AS notified
  FROM ev
  LEFT JOIN dl ON true
 ORDER BY dl.id;

-- name: event_by_idempotency_key
SELECT e.id AS event_id, e.created_at, d.id AS delivery_id, d.destination_id, d.state
  FROM events e
  LEFT JOIN deliveries d
    ON d.tenant_id = e.tenant_id AND d.event_id = e.id AND d.replay_of IS NULL
 WHERE e.tenant_id = %(tenant_id)s AND e.idempotency_key = %(idempotency_key)s
 ORDER BY d.id;

-- name: claim_deliveries
-- One statement claims up to %(limit)s rows. First, leases that expired (their lost
-- attempt is closed as abandoned). Then, fairly across destinations: a loose index scan
-- walks the destinations that have waiting rows, starting after the worker's cursor
-- (so successive claims go round-robin), and takes from each due destination an equal
-- share of the free slots, never more than its max_in_flight minus what it already has
-- in flight; the oldest-due rows of each destination first, interleaved by rank.
-- Rows whose destination is gone or disabled fail at once, with no request sent; the
-- rest become `delivering` under this worker's lease, and their attempt rows are
-- inserted in the same statement.
WITH RECURSIVE walk (tenant_id, destination_id, min_due, visited, due_found) AS (
    (SELECT d.tenant_id, d.destination_id, d.next_attempt_at, 1,
            (d.next_attempt_at <= now())::integer
       FROM deliveries d
      WHERE d.state IN ('pending', 'retry_scheduled')
        AND (%(all_tenants)s OR d.tenant_id = ANY (%(tenant_ids)s::uuid[]))
        AND (d.tenant_id, d.destination_id)
            > (%(after_tenant)s::uuid, %(after_destination)s::uuid)
      ORDER BY d.tenant_id, d.destination_id, d.next_attempt_at
      LIMIT 1)
    UNION ALL
    SELECT nxt.tenant_id, nxt.destination_id, nxt.next_attempt_at, w.visited + 1,
           w.due_found + (nxt.next_attempt_at <= now())::integer
      FROM walk w
     CROSS JOIN LATERAL (
            SELECT d.tenant_id, d.destination_id, d.next_attempt_at
              FROM deliveries d
             WHERE d.state IN ('pending', 'retry_scheduled')
               AND (%(all_tenants)s OR d.tenant_id = ANY (%(tenant_ids)s::uuid[]))
               AND (d.tenant_id, d.destination_id) > (w.tenant_id, w.destination_id)
             ORDER BY d.tenant_id, d.destination_id, d.next_attempt_at
             LIMIT 1) AS nxt
     WHERE w.visited < %(max_destinations)s AND w.due_found < %(limit)s
), due_destinations AS (
    SELECT tenant_id, destination_id FROM walk WHERE min_due <= now()
), share AS (
    SELECT greatest(1, ceil(%(limit)s::numeric / greatest(1, count(*))))::integer AS each
      FROM due_destinations
), in_flight AS (
    -- Only the destinations this claim may take from, each by its own index range.
    SELECT u.tenant_id, u.destination_id, f.n
      FROM due_destinations u
     CROSS JOIN LATERAL (
            SELECT count(*) AS n
              FROM deliveries d
             WHERE d.tenant_id = u.tenant_id AND d.destination_id = u.destination_id
               AND d.state = 'delivering') AS f
), expired AS (
    SELECT tenant_id, id, destination_id
      FROM deliveries
     WHERE state = 'delivering' AND locked_until < now()
       AND (%(all_tenants)s OR tenant_id = ANY (%(tenant_ids)s::uuid[]))
     ORDER BY locked_until
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), buckets AS (
    -- Rate-limited destinations keep a token bucket on their row, refilled by elapsed
    -- time and shared by every worker. Locked with SKIP LOCKED, so two claims never spend
    -- the same tokens: a destination another claim holds waits for the next round.
    SELECT dst.tenant_id, dst.id,
           least(greatest(dst.rate_limit_per_second, 1.0),
                 coalesce(dst.rate_tokens, greatest(dst.rate_limit_per_second, 1.0))
                 + dst.rate_limit_per_second
                   * extract(epoch FROM now() - coalesce(dst.rate_updated_at, now())))
               AS tokens
      FROM destinations dst
      JOIN due_destinations u ON u.tenant_id = dst.tenant_id AND u.destination_id = dst.id
     WHERE dst.rate_limit_per_second IS NOT NULL
       FOR UPDATE OF dst SKIP LOCKED
), allowance AS (
    SELECT u.tenant_id, u.destination_id, dst.ordering,
           greatest(0, least(
               share.each,
               dst.max_in_flight - coalesce(f.n, 0),
               CASE WHEN dst.rate_limit_per_second IS NULL THEN share.each
                    ELSE floor(coalesce(b.tokens, 0))::integer END)) AS n,
           coalesce(f.n, 0) AS in_flight
      FROM due_destinations u
      JOIN destinations dst ON dst.tenant_id = u.tenant_id AND dst.id = u.destination_id
      LEFT JOIN in_flight f
        ON f.tenant_id = u.tenant_id AND f.destination_id = u.destination_id
      LEFT JOIN buckets b ON b.tenant_id = u.tenant_id AND b.id = u.destination_id
     CROSS JOIN share
), due AS (
    -- Oldest due first, locked; a function so its plan is always the ordered index walk
    -- (see db/postgres/012_due_rows.sql).
    SELECT x.tenant_id, x.id, x.destination_id, x.next_attempt_at
      FROM allowance a
     CROSS JOIN LATERAL courier_due_deliveries(a.tenant_id, a.destination_id, a.n::integer) AS x
     WHERE a.ordering = 'unordered' AND a.n > 0
), due_fifo AS (
    -- A FIFO line moves only when nothing of it is in flight, and only its head (the
    -- oldest waiting delivery) may go, once due. Not locked here: a head another claim
    -- just took fails the guarded UPDATE below, and nothing behind it is ever taken.
    SELECT x.tenant_id, x.id, x.destination_id, x.next_attempt_at
      FROM allowance a
     CROSS JOIN LATERAL (
            SELECT d.tenant_id, d.id, d.destination_id, d.next_attempt_at
              FROM deliveries d
             WHERE d.tenant_id = a.tenant_id AND d.destination_id = a.destination_id
               AND d.line_position > 0 AND d.state IN ('pending', 'retry_scheduled')
             ORDER BY d.tenant_id, d.destination_id, d.line_position
             LIMIT 1) AS x
     WHERE a.ordering = 'fifo' AND a.in_flight = 0 AND a.n > 0
       AND x.next_attempt_at <= now()
), candidates AS (
    SELECT tenant_id, id, destination_id, 0::bigint AS rank, now() AS due_at FROM expired
    UNION ALL
    SELECT tenant_id, id, destination_id,
           row_number() OVER (PARTITION BY tenant_id, destination_id ORDER BY next_attempt_at),
           next_attempt_at
      FROM due
    UNION ALL
    SELECT tenant_id, id, destination_id, 1, next_attempt_at FROM due_fifo
), picked AS (
    -- Rows are looked up by every column of a key they have (destination_id too), so
    -- no plan can reach them through a scan of the tenant alone (see 014).
    SELECT d.tenant_id, d.id, d.destination_id,
           d.state AS old_state, d.attempt_count AS old_attempt_count,
           CASE WHEN dst.deleted_at IS NOT NULL THEN 'destination_missing'
                WHEN NOT dst.enabled THEN 'destination_disabled' END AS refusal
      FROM (SELECT tenant_id, id, destination_id FROM candidates
             ORDER BY rank, due_at LIMIT %(limit)s) AS c
      JOIN destinations dst ON dst.tenant_id = c.tenant_id AND dst.id = c.destination_id
      JOIN deliveries d
        ON d.tenant_id = c.tenant_id AND d.destination_id = c.destination_id AND d.id = c.id
), abandoned AS (
    UPDATE delivery_attempts a
       SET outcome = 'abandoned', retryable = true, finished_at = now(),
           duration_ms = (extract(epoch FROM now() - a.started_at) * 1000)::integer,
           error_summary = 'lease expired before the attempt finished (worker lost or stopped)'
      FROM picked p
     WHERE p.old_state = 'delivering'
       AND a.tenant_id = p.tenant_id AND a.delivery_id = p.id
       AND a.attempt_number = p.old_attempt_count AND a.outcome IS NULL
    RETURNING a.delivery_id
), claimed AS (
    UPDATE deliveries d
       SET state = 'delivering', locked_by = %(worker_id)s,
           locked_until = now() + make_interval(secs => %(lease_seconds)s),
           attempt_count = d.attempt_count + 1, updated_at = now()
      FROM picked p
     WHERE d.tenant_id = p.tenant_id AND d.destination_id = p.destination_id AND d.id = p.id
       AND p.refusal IS NULL
       -- guarded: a row another claim moved since our snapshot is left alone
       AND d.state = p.old_state AND d.attempt_count = p.old_attempt_count
    RETURNING d.tenant_id, d.id, d.event_id, d.destination_id, d.attempt_count, d.created_at
), refused AS (
    UPDATE deliveries d
       SET state = 'failed', failure_reason = p.refusal, locked_by = NULL, locked_until = NULL,
           next_attempt_at = NULL, last_error = p.refusal, updated_at = now()
      FROM picked p
     WHERE d.tenant_id = p.tenant_id AND d.destination_id = p.destination_id AND d.id = p.id
       AND p.refusal IS NOT NULL
       AND d.state = p.old_state AND d.attempt_count = p.old_attempt_count
    RETURNING d.tenant_id, d.id, d.event_id, d.destination_id, d.attempt_count, p.refusal
), refused_audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, delivery_id, destination_id, reason)
    SELECT tenant_id, 'worker:' || %(worker_id)s, 'delivery.failed', id, destination_id, refusal
      FROM refused
), refused_events AS (
    INSERT INTO lifecycle_events
           (tenant_id, type, delivery_id, event_id, destination_id, state, attempt_number, data)
    SELECT tenant_id, 'delivery.failed', id, event_id, destination_id, 'failed', attempt_count,
           jsonb_build_object('reason', refusal)
      FROM refused
), spend AS (
    UPDATE destinations dst
       SET rate_tokens = b.tokens - coalesce(t.n, 0), rate_updated_at = now()
      FROM buckets b
      LEFT JOIN (SELECT tenant_id, destination_id, count(*) AS n
                   FROM claimed GROUP BY tenant_id, destination_id) AS t
        ON t.tenant_id = b.tenant_id AND t.destination_id = b.id
     WHERE dst.tenant_id = b.tenant_id AND dst.id = b.id
), attempts AS (
    INSERT INTO delivery_attempts
           (tenant_id, delivery_id, event_id, destination_id, attempt_number, worker_id)
    SELECT tenant_id, id, event_id, destination_id, attempt_count, %(worker_id)s FROM claimed
)
SELECT c.tenant_id, c.id, c.event_id, c.destination_id, c.attempt_count, c.created_at,
       e.payload::text AS payload,
       dst.url, dst.timeout_ms, dst.max_attempts, dst.max_age_seconds,
       dst.backoff_initial_ms, dst.backoff_max_ms,
       -- as text: parsed once per destination per claim, not once per row
       dst.signing_secrets::text AS signing_secrets,
       (SELECT count(*) FROM refused) AS refused_count,
       (SELECT count(*) FROM abandoned) AS abandoned_count,
       last_visit.tenant_id AS walk_tenant, last_visit.destination_id AS walk_destination,
       (last_visit.visited < %(max_destinations)s AND last_visit.due_found < %(limit)s)
           AS walk_complete
  FROM claimed c
  LEFT JOIN (SELECT * FROM walk ORDER BY visited DESC LIMIT 1) AS last_visit ON true
  JOIN events e ON e.tenant_id = c.tenant_id AND e.id = c.event_id
  JOIN destinations dst ON dst.tenant_id = c.tenant_id AND dst.id = c.destination_id;

-- name: complete_attempts
-- Group commit of finished attempts. Fenced: a row is written only while this
-- worker still holds the lease for exactly that attempt, so a worker whose
-- lease was taken over cannot overwrite the new owner's result. Returns the
-- rows that were written; a missing row was fenced out.
WITH input AS (
    -- One JSON document carries the whole batch: far cheaper to send than ten arrays.
    -- Read as json, not jsonb: building jsonb first cost ~3 us more per row, for nothing.
    SELECT *
      FROM json_to_recordset(%(batch)s::json)
           AS i(tenant_id uuid, delivery_id uuid, attempt_number integer, state text,
                retry_delay_s float8, outcome text, http_status integer, error_summary text,
                duration_ms integer, reason text)
), done AS (
    UPDATE deliveries d
       SET state = i.state,
           locked_by = NULL, locked_until = NULL,
           next_attempt_at = CASE WHEN i.state = 'retry_scheduled'
                                  THEN now() + make_interval(secs => i.retry_delay_s) END,
           last_error = i.error_summary,
           last_http_status = i.http_status,
           failure_reason = CASE WHEN i.state = 'failed' THEN i.reason END,
           dead_letter_reason = CASE WHEN i.state = 'dead_lettered' THEN i.reason END,
           delivered_at = CASE WHEN i.state = 'delivered' THEN now() END,
           dead_lettered_at = CASE WHEN i.state = 'dead_lettered' THEN now() END,
           updated_at = now()
      FROM input i
     WHERE d.tenant_id = i.tenant_id AND d.id = i.delivery_id
       -- A lease (locked_by) exists exactly while a row is delivering (a CHECK says so).
       -- Not spelling out state = 'delivering' keeps the planner on the primary key:
       -- with it, the planner may scan every in-flight row for each batch instead.
       AND d.locked_by = %(worker_id)s
       AND d.attempt_count = i.attempt_number
    RETURNING d.tenant_id, d.id, d.event_id, d.destination_id, d.attempt_count, d.state,
              d.created_at, d.next_attempt_at, i.outcome, i.http_status, i.error_summary,
              i.duration_ms, i.reason
), attempts AS (
    UPDATE delivery_attempts a
       SET outcome = x.outcome, finished_at = now(), duration_ms = x.duration_ms,
           http_status = x.http_status, retryable = (x.outcome = 'retryable_failure'),
           error_summary = x.error_summary
      FROM done x
     WHERE a.tenant_id = x.tenant_id AND a.delivery_id = x.id
       AND a.attempt_number = x.attempt_count
), lifecycle AS (
    INSERT INTO lifecycle_events
           (tenant_id, type, delivery_id, event_id, destination_id, state, attempt_number, data)
    SELECT tenant_id, 'delivery.' || state, id, event_id, destination_id, state, attempt_count,
           jsonb_strip_nulls(jsonb_build_object(
               'outcome', outcome, 'http_status', http_status, 'reason', reason,
               'next_attempt_at', next_attempt_at))
      FROM done
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, delivery_id, destination_id, reason, data)
    SELECT tenant_id, 'worker:' || %(worker_id)s, 'delivery.' || state, id, destination_id, reason,
           jsonb_strip_nulls(jsonb_build_object(
               'attempt_number', attempt_count, 'http_status', http_status,
               'last_error', error_summary))
      FROM done
     WHERE state IN ('failed', 'dead_lettered')
)
SELECT tenant_id, id, state, created_at, now() AS completed_at FROM done;

-- name: extend_leases
UPDATE deliveries d
   SET locked_until = now() + make_interval(secs => %(lease_seconds)s)
  FROM unnest(%(tenant_ids)s::uuid[], %(delivery_ids)s::uuid[]) AS k(tenant_id, id)
 WHERE d.tenant_id = k.tenant_id AND d.id = k.id
   AND d.state = 'delivering' AND d.locked_by = %(worker_id)s
RETURNING d.id;

-- name: release_leases
-- A stopping worker hands back what it could not finish: the lease ends now,
-- so any worker reclaims it at once instead of waiting for it to expire.
UPDATE deliveries d
   SET locked_until = now() - interval '1 millisecond'
  FROM unnest(%(tenant_ids)s::uuid[], %(delivery_ids)s::uuid[]) AS k(tenant_id, id)
 WHERE d.tenant_id = k.tenant_id AND d.id = k.id
   AND d.state = 'delivering' AND d.locked_by = %(worker_id)s
RETURNING d.id;

-- name: tenant_ids_by_id_or_name
SELECT id, name FROM tenants WHERE id::text = ANY (%(refs)s::text[]) OR name = ANY (%(refs)s::text[]);

-- name: create_tenant
INSERT INTO tenants (name) VALUES (%(name)s) RETURNING id, name, created_at;

-- name: create_api_key
INSERT INTO api_keys (tenant_id, id, key_hash, prefix, name)
VALUES (%(tenant_id)s, %(id)s, %(key_hash)s, %(prefix)s, %(name)s)
RETURNING id, created_at;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now()
 WHERE id = %(id)s AND revoked_at IS NULL
RETURNING tenant_id, id;

-- name: tenant_for_api_key
SELECT k.tenant_id, k.id AS key_id
  FROM api_keys k
 WHERE k.tenant_id = %(tenant_id)s AND k.key_hash = %(key_hash)s AND k.revoked_at IS NULL;

-- name: set_destination_enabled
UPDATE destinations SET enabled = %(enabled)s, updated_at = now(),
       disabled_at = CASE WHEN %(enabled)s THEN NULL ELSE coalesce(disabled_at, now()) END,
       enabled_at = CASE WHEN %(enabled)s AND NOT enabled THEN now() ELSE enabled_at END
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
RETURNING id;

-- name: soft_delete_destination
UPDATE destinations SET deleted_at = now(), enabled = false, updated_at = now()
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
RETURNING id;

-- name: next_due_at
-- When the next waiting delivery falls due (the worker sleeps until then at most).
SELECT min(next_attempt_at) AS next_due_at
  FROM deliveries
 WHERE state IN ('pending', 'retry_scheduled')
   AND (%(all_tenants)s OR tenant_id = ANY (%(tenant_ids)s::uuid[]));
