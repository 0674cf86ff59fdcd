-- Reads of deliveries and their attempts, for the API and the console. Every one is
-- scoped by `tenant_id = %(tenant_id)s`: a row of another tenant is never read or
-- counted, so it answers exactly as a missing one. Lists walk the primary key
-- (tenant_id, id) backwards from an optional cursor and fetch one row more than the
-- page, which tells whether another page follows. Time windows over delivery_attempts
-- also bound the id (`id >= %(since_id)s`): ids are UUIDv7, so "the last 24 hours" is a
-- range of the primary key. A console session may be limited to some destinations:
-- `%(scope)s` is then their ids (NULL: all of the tenant's).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: api_list_deliveries
SELECT *
  FROM deliveries
 WHERE tenant_id = %(tenant_id)s
   AND (%(state)s::text IS NULL OR state = %(state)s::text)
   AND (%(destination_id)s::uuid IS NULL OR destination_id = %(destination_id)s::uuid)
   AND (%(event_id)s::uuid IS NULL OR event_id = %(event_id)s::uuid)
   AND (%(after)s::uuid IS NULL OR id < %(after)s::uuid)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: api_get_delivery
SELECT *
  FROM deliveries
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: api_list_attempts
SELECT *
  FROM delivery_attempts
 WHERE tenant_id = %(tenant_id)s AND delivery_id = %(delivery_id)s
   AND attempt_number > %(after)s
 ORDER BY attempt_number
 LIMIT %(limit)s;

-- name: console_state_counts
-- Deliveries by destination and state.
SELECT destination_id, state, count(*) AS n
  FROM deliveries
 WHERE tenant_id = %(tenant_id)s
   AND (%(destination_id)s::uuid IS NULL OR destination_id = %(destination_id)s::uuid)
   AND (%(scope)s::uuid[] IS NULL OR destination_id = ANY(%(scope)s::uuid[]))
 GROUP BY destination_id, state;

-- name: console_attempts_by_hour
-- The chart: attempts started since %(since)s by hour and outcome (null: in flight).
SELECT date_trunc('hour', a.started_at) AS hour, a.outcome, count(*) AS n
  FROM delivery_attempts a
 WHERE a.tenant_id = %(tenant_id)s
   AND a.id >= %(since_id)s AND a.started_at >= %(since)s
   AND (%(destination_id)s::uuid IS NULL OR a.destination_id = %(destination_id)s::uuid)
   AND (%(scope)s::uuid[] IS NULL OR a.destination_id = ANY(%(scope)s::uuid[]))
 GROUP BY 1, 2;

-- name: console_list_deliveries
-- One destination's deliveries, newest first, by state; walks deliveries_destination.
SELECT d.id, d.state, d.attempt_count, d.last_http_status, d.last_error, d.next_attempt_at,
       d.created_at, d.updated_at, d.replay_of, e.type AS event_type
  FROM deliveries d
  JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
 WHERE d.tenant_id = %(tenant_id)s AND d.destination_id = %(destination_id)s
   AND (%(state)s::text IS NULL OR d.state = %(state)s::text)
   AND (%(after)s::uuid IS NULL OR d.id < %(after)s::uuid)
 ORDER BY d.id DESC
 LIMIT %(limit)s;

-- name: console_get_delivery
-- A delivery with its event's type and (the start of its) payload and its destination.
SELECT d.*, e.type AS event_type, left(e.payload::text, %(payload_chars)s) AS payload_head,
       length(e.payload::text) AS payload_chars, dst.name AS destination_name,
       dst.url AS destination_url, dst.kind AS destination_kind, dst.max_attempts
  FROM deliveries d
  JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
  JOIN destinations dst ON dst.tenant_id = d.tenant_id AND dst.id = d.destination_id
 WHERE d.tenant_id = %(tenant_id)s AND d.id = %(id)s;

-- name: console_replays_of
-- The deliveries made by replaying this one (deliveries_replay_of).
SELECT id, state, created_at
  FROM deliveries
 WHERE tenant_id = %(tenant_id)s AND replay_of = %(id)s
 ORDER BY id;

-- name: console_dead_letters
-- Dead-lettered deliveries, newest first, by destination and time dead-lettered.
SELECT d.id, d.destination_id, d.state, d.attempt_count, d.last_http_status, d.last_error,
       d.dead_letter_reason, d.dead_lettered_at, d.created_at, e.type AS event_type,
       dst.name AS destination_name,
       EXISTS (SELECT 1 FROM deliveries r
                WHERE r.tenant_id = d.tenant_id AND r.replay_of = d.id) AS replayed
  FROM deliveries d
  JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
  JOIN destinations dst ON dst.tenant_id = d.tenant_id AND dst.id = d.destination_id
 WHERE d.tenant_id = %(tenant_id)s AND d.state = 'dead_lettered'
   AND (%(destination_id)s::uuid IS NULL OR d.destination_id = %(destination_id)s::uuid)
   AND (%(scope)s::uuid[] IS NULL OR d.destination_id = ANY(%(scope)s::uuid[]))
   AND (%(since)s::timestamptz IS NULL OR d.dead_lettered_at >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR d.dead_lettered_at < %(until)s::timestamptz)
   AND (%(after)s::uuid IS NULL OR d.id < %(after)s::uuid)
 ORDER BY d.id DESC
 LIMIT %(limit)s;
