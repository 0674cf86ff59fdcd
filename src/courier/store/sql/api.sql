-- Statements of the tenant-scoped HTTP API. Every one is scoped by
-- `tenant_id = %(tenant_id)s`: a row of another tenant is never read, changed or
-- counted, so it answers exactly as a missing one. Lists walk the primary key
-- (tenant_id, id) backwards from an optional cursor and fetch one row more than
-- the page, which tells whether another page follows.
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

-- name: api_key_live
-- Whether a key is still live (not revoked, not deleted): long-lived streams ask again.
SELECT 1 AS live
  FROM api_keys k
 WHERE k.tenant_id = %(tenant_id)s AND k.id = %(key_id)s AND k.revoked_at IS NULL;

-- name: api_ping
SELECT 1;
