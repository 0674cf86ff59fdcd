-- The maintenance passes' tenant list and their advisory lock (store.maintenance).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: maintenance_tenants
SELECT id FROM tenants ORDER BY id;

-- name: maintenance_try_lock
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: maintenance_unlock
SELECT pg_advisory_unlock(%(key)s) AS unlocked;
