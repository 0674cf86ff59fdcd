-- Statements of the migration runner (courier.store.migrate).

-- name: migration_lock
-- Tried, not waited for: a session blocked in pg_advisory_lock keeps a snapshot open,
-- and a CREATE INDEX CONCURRENTLY in the run holding the lock waits for every open
-- snapshot: the two would deadlock.
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: migration_unlock
SELECT pg_advisory_unlock(%(key)s);

-- name: migration_ledger
CREATE TABLE IF NOT EXISTS courier_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: migration_ledger_exists
SELECT to_regclass('courier_migrations') IS NOT NULL;

-- name: migrations_applied
SELECT version, name, checksum FROM courier_migrations;

-- name: migration_record
INSERT INTO courier_migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);

-- name: migration_invalid_index
-- An index a failed CREATE INDEX CONCURRENTLY left behind, marked invalid.
SELECT n.nspname, c.relname
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = %(name)s AND NOT i.indisvalid
   AND n.nspname = ANY (current_schemas(false));

-- name: migration_drop_invalid_index
DROP INDEX CONCURRENTLY IF EXISTS {index};
