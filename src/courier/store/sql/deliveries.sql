-- Statements of the delivery engine: enqueue, claim, complete, lease upkeep.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: enqueue_events
-- Writes a batch of events in one statement: each event, one delivery per enabled
-- destination whose event_types match (courier_event_type_matches: exact, `prefix.*`,
-- `*`, or empty for all) and whose filter, when it has one, matches the payload
-- (courier_filter_matches), a delivery.created event per delivery, and one NOTIFY for
-- the whole statement (a single event is a batch of one, so there is one fan-out
-- definition).
-- Items arrive as parallel arrays, numbered by `ord` (1-based, request order).
-- An idempotency key already taken (visible to this statement), or repeated inside the
-- batch, writes nothing for that item: its row names the first event and says whether
-- the type and payload are the same as that first request's (`same_request`). An item
-- whose key a concurrent transaction committed after this statement's snapshot comes
-- back with `resolved` false; the caller looks it up with events_by_idempotency_keys.
-- Returns one row per item and delivery (an item without deliveries has one row).
-- A batch of one runs this text with each item array written ARRAY[$x], so that its
-- cached plan knows the batch's size (courier.store.deliveries._one_event_statement).
WITH input AS MATERIALIZED (
    SELECT i.ord, i.type, i.payload, i.idempotency_key, courier_uuid7() AS new_id,
           CASE WHEN i.idempotency_key IS NULL THEN i.ord
                ELSE min(i.ord) OVER (PARTITION BY i.idempotency_key) END AS first_ord
      FROM unnest(%(types)s::text[], %(payloads)s::text[], %(keys)s::text[])
           WITH ORDINALITY AS i(type, payload, idempotency_key, ord)
), prior AS MATERIALIZED (
    SELECT e.id, e.created_at, e.type, e.payload::text AS payload, e.idempotency_key
      FROM events e
     WHERE e.tenant_id = %(tenant_id)s
       AND e.idempotency_key = ANY (%(keys)s::text[])
), prior_deliveries AS MATERIALIZED (
    -- Driven by the (usually empty) prior events: a probe by event each, never a scan
    -- of the tenant's deliveries.
    SELECT d.event_id, d.id, d.destination_id, d.state
      FROM prior p
      JOIN deliveries d ON d.event_id = p.id AND d.tenant_id = %(tenant_id)s
     WHERE d.replay_of IS NULL
), ev AS (
    -- Keyed rows go in key order, so two batches sharing keys lock them in the same
    -- order and wait for each other instead of deadlocking.
    INSERT INTO events (tenant_id, id, type, payload, idempotency_key)
    SELECT %(tenant_id)s, i.new_id, i.type, i.payload::json, i.idempotency_key
      FROM input i
     WHERE i.ord = i.first_ord
       AND NOT EXISTS (SELECT 1 FROM prior p WHERE p.idempotency_key = i.idempotency_key)
     ORDER BY i.idempotency_key NULLS FIRST
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING tenant_id, id, type, created_at
), dl AS (
    -- In request order, so a FIFO destination's line follows the batch's order.
    INSERT INTO deliveries (tenant_id, event_id, destination_id, line_position)
    SELECT ev.tenant_id, ev.id, dst.id,
           CASE WHEN dst.ordering = 'fifo' THEN nextval('courier_fifo_line') ELSE 0 END
      FROM ev
      JOIN input i ON i.new_id = ev.id
      JOIN destinations dst ON dst.tenant_id = ev.tenant_id
     WHERE dst.enabled AND dst.deleted_at IS NULL
       AND courier_event_type_matches(dst.event_types, ev.type)
       AND (dst.filter_plan IS NULL OR courier_filter_matches(dst.filter_plan, i.payload))
     ORDER BY i.ord, dst.id
    RETURNING tenant_id, id, event_id, destination_id, state
), created AS (
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state)
    SELECT dl.tenant_id, 'delivery.created', dl.id, dl.event_id, dl.destination_id, dl.state
      FROM dl
      JOIN input i ON i.new_id = dl.event_id
     ORDER BY i.ord, dl.id
), wake AS (
    -- One NOTIFY for the whole batch, and only when there is work.
    SELECT pg_notify('courier_deliveries', %(tenant_id)s::text) AS sent
     WHERE EXISTS (SELECT 1 FROM dl)
), owner AS (
    SELECT i.ord,
           CASE WHEN p.id IS NOT NULL THEN p.id
                WHEN i.ord <> i.first_ord THEN f.new_id
                ELSE i.new_id END AS event_id,
           p.id IS NULL AND i.ord = i.first_ord AS created,
           CASE WHEN p.id IS NOT NULL THEN p.type = i.type AND p.payload = i.payload
                WHEN i.ord <> i.first_ord THEN f.type = i.type AND f.payload = i.payload
                ELSE true END AS same_request,
           p.id IS NOT NULL AS prior,
           p.created_at AS prior_created_at
      FROM input i
      JOIN input f ON f.ord = i.first_ord
      LEFT JOIN prior p ON p.idempotency_key = i.idempotency_key
)
SELECT o.ord, o.event_id, coalesce(ev.created_at, o.prior_created_at) AS created_at,
       o.created, o.same_request, o.prior OR ev.id IS NOT NULL AS resolved,
       coalesce(dl.id, d.id) AS delivery_id,
       coalesce(dl.destination_id, d.destination_id) AS destination_id,
       coalesce(dl.state, d.state) AS state,
       (SELECT count(*) FROM wake) AS notified
  FROM owner o
  LEFT JOIN ev ON ev.id = o.event_id
  LEFT JOIN dl ON dl.event_id = o.event_id AND NOT o.prior
  LEFT JOIN prior_deliveries d ON o.prior AND d.event_id = o.event_id
 ORDER BY o.ord, coalesce(dl.id, d.id);

-- name: events_by_idempotency_keys
-- The events that hold these keys, with their first deliveries and what the first
-- request sent (to tell a repeat from a key reused with another request).
SELECT e.idempotency_key, e.id AS event_id, e.created_at, e.type, e.payload::text AS payload,
       d.id AS delivery_id, d.destination_id, d.state
  FROM events e
  LEFT JOIN deliveries d
    ON d.event_id = e.id AND d.tenant_id = e.tenant_id AND d.replay_of IS NULL
 WHERE e.tenant_id = %(tenant_id)s AND e.idempotency_key = ANY (%(keys)s::text[])
 ORDER BY e.idempotency_key, d.id;

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
), share AS MATERIALIZED (
    -- Materialized: one row, counted once. Inlined, the planner may put it on the inner
    -- side of allowance's join and count the due destinations again for each of them.
    SELECT greatest(1, ceil(%(limit)s::numeric / greatest(1, count(*))))::integer AS each
      FROM due_destinations
), in_flight AS MATERIALIZED (
    -- Only the destinations this claim may take from, each by its own index range, each
    -- counted once. Materialized: inlined, the planner (which expects a handful of due
    -- destinations) could put it on the inner side of allowance's join and run every
    -- count again for each destination, a claim over many destinations costing the
    -- square of their number.
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
    -- Each row is looked up by its whole key (destination_id too, so no plan can reach
    -- it through a scan of the tenant alone, see 014), inside a subquery that OFFSET 0
    -- keeps from being flattened: its conditions are then the candidate's own values.
    -- As a plain join, a young table's statistics let the planner take tenant and
    -- destination from the destinations row instead and check the id as a join filter,
    -- stepping over every finished row of the destination for each claimed one.
    SELECT d.tenant_id, d.id, d.destination_id,
           d.state AS old_state, d.attempt_count AS old_attempt_count,
           CASE WHEN dst.deleted_at IS NOT NULL THEN 'destination_missing'
                WHEN NOT dst.enabled THEN 'destination_disabled' END AS refusal
      FROM (SELECT tenant_id, id, destination_id FROM candidates
             ORDER BY rank, due_at LIMIT %(limit)s) AS c
      JOIN destinations dst ON dst.tenant_id = c.tenant_id AND dst.id = c.destination_id
     CROSS JOIN LATERAL (
            SELECT d.tenant_id, d.id, d.destination_id, d.state, d.attempt_count
              FROM deliveries d
             WHERE d.tenant_id = c.tenant_id AND d.destination_id = c.destination_id
               AND d.id = c.id
            OFFSET 0) AS d
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
       e.type AS event_type, dst.kind, dst.max_in_flight,
       dst.config::text AS config, dst.config_secrets::text AS config_secrets,
       dst.options::text AS options, dst.option_secrets::text AS option_secrets,
       dst.payload_format, dst.capture_response_body, e.created_at AS event_created_at,
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
                duration_ms integer, reason text, response_body_excerpt text)
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
              i.duration_ms, i.reason, i.response_body_excerpt
), attempts AS (
    UPDATE delivery_attempts a
       SET outcome = x.outcome, finished_at = now(), duration_ms = x.duration_ms,
           http_status = x.http_status, retryable = (x.outcome = 'retryable_failure'),
           error_summary = x.error_summary, response_body_excerpt = x.response_body_excerpt
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

-- name: next_due_at
-- When the next waiting delivery falls due (the worker sleeps until then at most).
SELECT min(next_attempt_at) AS next_due_at
  FROM deliveries
 WHERE state IN ('pending', 'retry_scheduled')
   AND (%(all_tenants)s OR tenant_id = ANY (%(tenant_ids)s::uuid[]));

-- name: secret_samples
-- One signing secret per tenant, the newest of its newest live destination: what a
-- worker tries to decrypt at start to tell a wrong COURIER_SECRET_KEY before it claims.
SELECT DISTINCT ON (tenant_id) tenant_id, signing_secrets -> 0 ->> 'token' AS token
  FROM destinations
 WHERE deleted_at IS NULL
   AND jsonb_typeof(signing_secrets -> 0 -> 'token') = 'string'
   AND (%(all_tenants)s OR tenant_id = ANY (%(tenant_ids)s::uuid[]))
 ORDER BY tenant_id, updated_at DESC, id DESC;

-- name: hand_back_unsignable
-- Claimed rows this worker cannot sign (no key of its own opens the destination's
-- secret) go back to waiting without spending an attempt: the claim's attempt row is
-- deleted, attempt_count goes back to what it was, and the row waits %(delay_s)s
-- seconds as `retry_scheduled` (the waiting state a claimed row may move to), so a
-- worker with the right key, or this one once fixed, picks it up then. Fenced like
-- complete_attempts: only rows this worker still holds for exactly that attempt.
WITH input AS (
    SELECT *
      FROM unnest(%(tenant_ids)s::uuid[], %(delivery_ids)s::uuid[],
                  %(attempt_numbers)s::integer[]) AS i(tenant_id, id, attempt_number)
), released AS (
    UPDATE deliveries d
       SET state = 'retry_scheduled', locked_by = NULL, locked_until = NULL,
           attempt_count = d.attempt_count - 1,
           next_attempt_at = now() + make_interval(secs => %(delay_s)s),
           updated_at = now()
      FROM input i
     WHERE d.tenant_id = i.tenant_id AND d.id = i.id
       AND d.locked_by = %(worker_id)s AND d.attempt_count = i.attempt_number
    RETURNING d.tenant_id, d.id, i.attempt_number
), forgotten AS (
    DELETE FROM delivery_attempts a
     USING released r
     WHERE a.tenant_id = r.tenant_id AND a.delivery_id = r.id
       AND a.attempt_number = r.attempt_number AND a.outcome IS NULL
)
SELECT id FROM released;
