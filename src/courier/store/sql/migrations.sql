-- Statements of the migration runner (courier.store.migrate).

-- name: migration_lock
SELECT pg_advisory_lock(%(key)s);

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
