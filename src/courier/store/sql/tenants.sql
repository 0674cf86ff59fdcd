-- Statements about tenants and their API keys (the CLI's; courier.tenancy owns the
-- key format).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

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

-- name: list_api_keys
-- A tenant's keys, oldest first: never the key or its hash.
SELECT id, name, prefix, created_at, revoked_at
  FROM api_keys
 WHERE tenant_id = %(tenant_id)s
 ORDER BY created_at, id;

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

-- name: console_session_key
-- The key a session names, if it is still live, with its tenant's name.
SELECT k.tenant_id, k.id AS key_id, t.name AS tenant_name, t.display_name, t.accent_color,
       t.logo_url
  FROM api_keys k
  JOIN tenants t ON t.id = k.tenant_id
 WHERE k.tenant_id = %(tenant_id)s AND k.id = %(key_id)s AND k.revoked_at IS NULL;
