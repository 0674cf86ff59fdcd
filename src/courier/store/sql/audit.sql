-- The audit trail's reads, scoped by `tenant_id = %(tenant_id)s`.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: api_list_audit_records
SELECT *
  FROM audit_records
 WHERE tenant_id = %(tenant_id)s
   AND (%(after)s::uuid IS NULL OR id < %(after)s::uuid)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: console_delivery_audit
SELECT id, actor, action, reason, data, created_at
  FROM audit_records
 WHERE tenant_id = %(tenant_id)s AND delivery_id = %(id)s
 ORDER BY id
 LIMIT 100;
