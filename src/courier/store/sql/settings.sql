-- Statements that set a server setting for one transaction (courier.store.pooler),
-- and the empty round trip that tells the server answers (/readyz, the pool's check).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: set_local
-- A setting for the current transaction only: through a transaction-mode pooler the
-- next transaction may run on another server session, so a session-wide SET would leak
-- into another client's work there and be missing from ours.
SELECT set_config(%(name)s, %(value)s, true);

-- name: api_ping
SELECT 1;
