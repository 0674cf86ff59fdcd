-- Statements about destinations: the API's reads and writes, enable and soft delete,
-- `courier secrets rekey`, and the demo's re-pointing. Every one but the rekey batch is
-- scoped by `tenant_id = %(tenant_id)s`. The API's list walks the primary key
-- (tenant_id, id) backwards and fetches one row more than the page.
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
                              signing_secrets, kind, config, config_secrets, filter,
                              options, option_secrets, payload_format, capture_response_body)
    VALUES (%(tenant_id)s, %(name)s, %(url)s, %(enabled)s, %(event_types)s, %(max_attempts)s,
            %(max_age_seconds)s, %(timeout_ms)s, %(backoff_initial_ms)s, %(backoff_max_ms)s,
            %(max_in_flight)s, %(ordering)s, %(rate_limit_per_second)s, %(signing_secrets)s,
            %(kind)s, %(config)s, %(config_secrets)s, %(filter)s,
            %(options)s, %(option_secrets)s, %(payload_format)s, %(capture_response_body)s)
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
           kind = %(kind)s, config = %(config)s, config_secrets = %(config_secrets)s,
           filter = %(filter)s,
           options = %(options)s, option_secrets = %(option_secrets)s,
           payload_format = %(payload_format)s,
           capture_response_body = %(capture_response_body)s,
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
SELECT tenant_id, id, signing_secrets, config_secrets, option_secrets
  FROM destinations
 WHERE (tenant_id, id) > (%(after_tenant)s::uuid, %(after_id)s::uuid)
 ORDER BY tenant_id, id
 LIMIT %(limit)s
   FOR UPDATE;

-- name: secrets_rekey_total
-- How many destinations a rekey will scan (its progress bar's length).
SELECT count(*) FROM destinations;

-- name: secrets_rekey_update
UPDATE destinations
   SET signing_secrets = %(signing_secrets)s, config_secrets = %(config_secrets)s,
       option_secrets = %(option_secrets)s
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: demo_destinations
-- `courier up --demo`: the demo tenant's destinations, found again by name.
SELECT id, name
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND deleted_at IS NULL;

-- name: demo_point_destination
-- `courier up --demo`: point a demo destination at this run's receiver port.
UPDATE destinations
   SET url = %(url)s, updated_at = now()
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: console_destinations
SELECT id, name, url, kind, enabled, disabled_reason, disabled_at, max_attempts, created_at
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND deleted_at IS NULL
   AND (%(scope)s::uuid[] IS NULL OR id = ANY(%(scope)s::uuid[]))
 ORDER BY name, id
 LIMIT %(limit)s;

-- name: console_destination
-- The names of the secret config fields and the options' secret paths only: their
-- (encrypted) values stay here.
SELECT id, name, url, kind, config,
       ARRAY(SELECT k FROM jsonb_object_keys(config_secrets) AS k ORDER BY k) AS secret_fields,
       enabled, disabled_reason, disabled_at, max_attempts, created_at, deleted_at,
       options, ARRAY(SELECT jsonb_object_keys(option_secrets)) AS secret_paths,
       payload_format, capture_response_body, filter, event_types
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s;
