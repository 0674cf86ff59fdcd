-- Statements of the customer portal: one-time console links, the event-type catalog and
-- the tenant's branding. Every one is scoped by `tenant_id`, except the redemption of a
-- link, which finds its row by the token's hash (the token names the tenant).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: portal_owned_destinations
-- Which of these ids are live destinations of the tenant (a scope may name only those).
SELECT id
  FROM destinations
 WHERE tenant_id = %(tenant_id)s AND id = ANY(%(ids)s::uuid[]) AND deleted_at IS NULL;

-- name: portal_create_session
INSERT INTO portal_sessions (tenant_id, token_hash, role, destination_ids, created_by,
                             expires_at)
VALUES (%(tenant_id)s, %(token_hash)s, %(role)s, %(destination_ids)s::uuid[], %(actor)s,
        now() + make_interval(secs => %(expires_in)s))
RETURNING id, expires_at;

-- name: portal_redeem
-- Redeem a link once: only an unredeemed, unexpired row changes, so two racing opens
-- of the same link sign in one of them.
UPDATE portal_sessions
   SET redeemed_at = now()
 WHERE token_hash = %(token_hash)s AND redeemed_at IS NULL AND expires_at > now()
   AND revoked_at IS NULL
RETURNING id, tenant_id;

-- name: portal_token_state
-- Why a link could not be redeemed (revoked, used or expired); no row: it never existed.
SELECT redeemed_at, expires_at, revoked_at
  FROM portal_sessions
 WHERE token_hash = %(token_hash)s;

-- name: portal_session_live
-- The redeemed portal session a console cookie names, with its tenant's name and branding.
SELECT p.id, p.tenant_id, p.role, p.destination_ids, t.name AS tenant_name, t.display_name,
       t.accent_color, t.logo_url
  FROM portal_sessions p
  JOIN tenants t ON t.id = p.tenant_id
 WHERE p.tenant_id = %(tenant_id)s AND p.id = %(id)s AND p.redeemed_at IS NOT NULL
   AND p.revoked_at IS NULL;

-- name: event_type_put
-- Create or replace a catalog entry; `version` grows so cached validators go stale.
INSERT INTO event_types (tenant_id, name, description, schema, example)
VALUES (%(tenant_id)s, %(name)s, %(description)s, %(schema)s, %(example)s)
ON CONFLICT (tenant_id, name) DO UPDATE
   SET description = EXCLUDED.description, schema = EXCLUDED.schema,
       example = EXCLUDED.example, version = event_types.version + 1, updated_at = now()
RETURNING name, description, schema, example, version, created_at, updated_at,
          (xmax = 0) AS created;

-- name: event_type_list
SELECT name, description, schema, example, version, created_at, updated_at
  FROM event_types
 WHERE tenant_id = %(tenant_id)s
   AND (%(after)s::text IS NULL OR name > %(after)s::text)
 ORDER BY name
 LIMIT %(limit)s;

-- name: event_type_get
SELECT name, description, schema, example, version, created_at, updated_at
  FROM event_types
 WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- name: event_type_schema
-- What validating an event needs: the schema (NULL: none) and its version.
SELECT schema, version
  FROM event_types
 WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- name: event_type_delete
DELETE FROM event_types
 WHERE tenant_id = %(tenant_id)s AND name = %(name)s
RETURNING name;

-- name: tenant_branding_get
SELECT display_name, accent_color, logo_url
  FROM tenants
 WHERE id = %(tenant_id)s;

-- name: tenant_branding_update
UPDATE tenants
   SET display_name = %(display_name)s, accent_color = %(accent_color)s,
       logo_url = %(logo_url)s
 WHERE id = %(tenant_id)s
RETURNING display_name, accent_color, logo_url;

-- name: event_type_version
-- The cheap check a cached validator makes: has the type changed since it was compiled?
SELECT version
  FROM event_types
 WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- name: tenant_operations_destination_get
-- The tenant's operations destination, while it is a live destination.
SELECT d.id AS destination_id
  FROM tenants t
  LEFT JOIN destinations d
    ON d.tenant_id = t.id AND d.id = t.operations_destination_id AND d.deleted_at IS NULL
 WHERE t.id = %(tenant_id)s;

-- name: tenant_operations_destination_set
-- Name (or, with NULL, clear) the tenant's operations destination, with an audit record.
-- A destination that is not a live one of this tenant changes nothing and answers no row.
WITH target AS (
    SELECT id FROM destinations
     WHERE tenant_id = %(tenant_id)s AND id = %(destination_id)s::uuid AND deleted_at IS NULL
), changed AS (
    UPDATE tenants
       SET operations_destination_id = %(destination_id)s::uuid
     WHERE id = %(tenant_id)s
       AND (%(destination_id)s::uuid IS NULL OR EXISTS (SELECT 1 FROM target))
    RETURNING id, operations_destination_id
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id)
    SELECT id, %(actor)s,
           CASE WHEN operations_destination_id IS NULL THEN 'tenant.operations_destination_cleared'
                ELSE 'tenant.operations_destination_set' END,
           operations_destination_id
      FROM changed
)
SELECT operations_destination_id AS destination_id FROM changed;

-- name: portal_session_add_destination
-- A destination made through a scoped portal session joins that session's scope, so its
-- maker sees it; an unscoped session (NULL) already sees every destination.
UPDATE portal_sessions
   SET destination_ids = array_append(destination_ids, %(destination_id)s::uuid)
 WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND destination_ids IS NOT NULL
RETURNING id;

-- name: portal_revoke
-- Revoke one link (%(id)s) or, with a NULL id, every live link of the tenant; one audit
-- record names what was revoked. Answers the revoked ids (none: nothing was live).
WITH revoked AS (
    UPDATE portal_sessions
       SET revoked_at = now()
     WHERE tenant_id = %(tenant_id)s AND revoked_at IS NULL
       AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid)
    RETURNING id
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, data)
    SELECT %(tenant_id)s, %(actor)s, 'portal_session.revoked',
           jsonb_build_object('portal_session_ids', jsonb_agg(id ORDER BY id))
      FROM revoked
    HAVING count(*) > 0
)
SELECT id FROM revoked ORDER BY id;

-- name: portal_session_exists
SELECT id FROM portal_sessions WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: portal_list_sessions
-- The tenant's links, newest first (never the token or its hash).
SELECT id, role, destination_ids, created_by, created_at, expires_at, redeemed_at, revoked_at
  FROM portal_sessions
 WHERE tenant_id = %(tenant_id)s
   AND (%(after)s::uuid IS NULL OR id < %(after)s::uuid)
 ORDER BY id DESC
 LIMIT %(limit)s;
