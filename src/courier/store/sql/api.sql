-- Statements of the tenant-scoped HTTP API. Every one is scoped by
-- `tenant_id = %(tenant_id)s`: a row of another tenant is never read, changed or
-- counted, so it answers exactly as a missing one. Lists walk the primary key
-- (tenant_id, id) backwards from an optional cursor and fetch one row more than
-- the page, which tells whether another page follows.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: api_list_destinations
SELECT *
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND deleted_at IS NULL
   AND (%(after)s::uuid IS NULL OR id < %(after)s::uuid)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: api_get_destination
SELECT *
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL;

-- name: api_lock_destination
SELECT *
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
   FOR UPDATE;

-- name: api_create_destination
-- The row and its audit record in one statement. A NULL `actor` (courier.destinations:
-- the CLI, the demo, the bench) writes the row alone, with no audit record.
WITH created AS (
    INSERT INTO destinations (tenant_id, name, url, enabled, event_types, max_attempts,
                              max_age_seconds, timeout_ms, backoff_initial_ms, backoff_max_ms,
                              max_in_flight, ordering, rate_limit_per_second,
                              signing_secrets)
    VALUES (%(tenant_id)s, %(name)s, %(url)s, %(enabled)s, %(event_types)s, %(max_attempts)s,
            %(max_age_seconds)s, %(timeout_ms)s, %(backoff_initial_ms)s, %(backoff_max_ms)s,
            %(max_in_flight)s, %(ordering)s, %(rate_limit_per_second)s, %(signing_secrets)s)
    RETURNING *
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id, data)
    SELECT tenant_id, %(actor)s, 'destination.created', id,
           jsonb_build_object('name', name, 'url', url, 'enabled', enabled)
      FROM created
     WHERE %(actor)s::text IS NOT NULL
)
SELECT * FROM created;

-- name: api_update_destination
-- Writes the merged row (the caller locked it with api_lock_destination) and an
-- audit record naming the fields that changed.
WITH updated AS (
    UPDATE destinations
       SET name = %(name)s, url = %(url)s, enabled = %(enabled)s,
           event_types = %(event_types)s, max_attempts = %(max_attempts)s,
           max_age_seconds = %(max_age_seconds)s, timeout_ms = %(timeout_ms)s,
           backoff_initial_ms = %(backoff_initial_ms)s, backoff_max_ms = %(backoff_max_ms)s,
           max_in_flight = %(max_in_flight)s, ordering = %(ordering)s,
           rate_limit_per_second = %(rate_limit_per_second)s,
           disabled_reason = CASE WHEN %(enabled)s THEN NULL ELSE disabled_reason END,
           -- when it went off (outage recovery) and last came on (health)
           disabled_at = CASE WHEN %(enabled)s THEN NULL ELSE coalesce(disabled_at, now()) END,
           enabled_at = CASE WHEN %(enabled)s AND NOT enabled THEN now() ELSE enabled_at END,
           updated_at = now()
     WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
    RETURNING *
), line_up AS (
    -- Deliveries already waiting join the FIFO line when a destination turns fifo.
    UPDATE deliveries d
       SET line_position = nextval('courier_fifo_line')
      FROM (SELECT w.tenant_id, w.id
              FROM deliveries w JOIN updated u
                ON w.tenant_id = u.tenant_id AND w.destination_id = u.id
             WHERE u.ordering = 'fifo' AND w.state IN ('pending', 'retry_scheduled')
               AND w.line_position = 0
             ORDER BY w.id) AS joining
     WHERE d.tenant_id = joining.tenant_id AND d.id = joining.id
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id, data)
    SELECT tenant_id, %(actor)s, 'destination.updated', id,
           jsonb_build_object('changed', %(changed)s::text[])
      FROM updated
)
SELECT * FROM updated;

-- name: api_delete_destination
-- Soft delete: the row stays (deliveries name it), and any delivery still waiting
-- for it fails as `destination_missing` when a worker claims it.
WITH deleted AS (
    UPDATE destinations
       SET deleted_at = now(), enabled = false, updated_at = now()
     WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
    RETURNING tenant_id, id
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id)
    SELECT tenant_id, %(actor)s, 'destination.deleted', id FROM deleted
)
SELECT id FROM deleted;

-- name: api_destination_secrets_read
-- Reading the secrets is audited too: it is the one route that discloses them.
WITH dst AS (
    SELECT tenant_id, id, signing_secrets
      FROM destinations
     WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id)
    SELECT tenant_id, %(actor)s, 'destination.secret_read', id FROM dst
)
SELECT id, signing_secrets FROM dst;

-- name: api_rotate_destination_secret
-- Writes the rotated secret list (the caller locked the row with api_lock_destination
-- and built the list) and an audit record; the record holds no secret.
WITH rotated AS (
    UPDATE destinations
       SET signing_secrets = %(signing_secrets)s, updated_at = now()
     WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL
    RETURNING tenant_id, id
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id, data)
    SELECT tenant_id, %(actor)s, 'destination.secret_rotated', id,
           jsonb_build_object('grace_period_seconds', %(grace_period_seconds)s::int,
                              'previous_expires_at', %(previous_expires_at)s::timestamptz)
      FROM rotated
)
SELECT id FROM rotated;

-- name: secrets_rekey_batch
-- `courier secrets rekey`: the next batch of destinations (deleted ones too: their
-- secrets are still ciphertext under the old key), locked, in key order.
SELECT tenant_id, id, signing_secrets
  FROM destinations
 WHERE (tenant_id, id) > (%(after_tenant)s::uuid, %(after_id)s::uuid)
 ORDER BY tenant_id, id
 LIMIT %(limit)s
   FOR UPDATE;

-- name: secrets_rekey_update
UPDATE destinations
   SET signing_secrets = %(signing_secrets)s
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

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

-- name: api_list_audit_records
SELECT *
  FROM audit_records
 WHERE tenant_id = %(tenant_id)s
   AND (%(after)s::uuid IS NULL OR id < %(after)s::uuid)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: api_key_for_auth
-- A live key by (tenant_id, key_hash); the hash comes back for a constant-time check.
SELECT k.tenant_id, k.id AS key_id, k.key_hash
  FROM api_keys k
 WHERE k.tenant_id = %(tenant_id)s AND k.key_hash = %(key_hash)s AND k.revoked_at IS NULL;

-- name: api_ping
SELECT 1;
