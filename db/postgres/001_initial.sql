-- courier's first schema.
--
-- Every table carries tenant_id, and every primary key, foreign key and lookup
-- index leads with it, so that a deployment that outgrows one PostgreSQL can
-- distribute every table by tenant_id (Citus) without a redesign. The two
-- queue indexes on deliveries (due rows, leased rows) are the deliberate
-- exception: they order work across the tenants one worker serves, and they
-- are partial, so they only ever hold the rows that are waiting or in flight.

-- Time-ordered UUIDs (RFC 9562 version 7 layout): ids sort by creation time,
-- so keyset pagination can walk the primary key and B-tree inserts stay local.
-- PostgreSQL 18 has uuidv7(); this keeps 15 and later on one definition.
CREATE FUNCTION courier_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(
            set_bit(
                overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT courier_uuid7(),
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An API key is `ck_<tenant id hex>_<secret>`; only a SHA-256 of the whole key
-- is stored. The tenant id inside the key lets the lookup lead with tenant_id.
CREATE TABLE api_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid NOT NULL DEFAULT courier_uuid7(),
    key_hash    bytea NOT NULL,
    prefix      text NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key_hash)
);

CREATE TABLE destinations (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    id                  uuid NOT NULL DEFAULT courier_uuid7(),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    url                 text NOT NULL CHECK (length(url) <= 2048),
    enabled             boolean NOT NULL DEFAULT true,
    event_types         text[] NOT NULL DEFAULT '{}',
    max_attempts        integer NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 100),
    max_age_seconds     integer NOT NULL DEFAULT 259200 CHECK (max_age_seconds > 0),
    timeout_ms          integer NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 100 AND 300000),
    backoff_initial_ms  integer NOT NULL DEFAULT 5000 CHECK (backoff_initial_ms >= 100),
    backoff_max_ms      bigint NOT NULL DEFAULT 36000000,
    -- [{"token": <secret encrypted with COURIER_SECRET_KEY>, "created_at": ..., "expires_at": null | ...}],
    -- newest first; a rotated-out secret keeps signing until its expires_at.
    signing_secrets     jsonb NOT NULL DEFAULT '[]',
    disabled_reason     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK (backoff_max_ms >= backoff_initial_ms)
);

CREATE TABLE events (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL DEFAULT courier_uuid7(),
    type             text NOT NULL CHECK (length(type) BETWEEN 1 AND 255),
    -- json, not jsonb: these are the exact bytes that are signed and sent.
    payload          json NOT NULL,
    idempotency_key  text CHECK (length(idempotency_key) <= 255),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX events_idempotency_key ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_created_at ON events (tenant_id, created_at);

CREATE TABLE deliveries (
    tenant_id           uuid NOT NULL,
    id                  uuid NOT NULL DEFAULT courier_uuid7(),
    event_id            uuid NOT NULL,
    destination_id      uuid NOT NULL,
    state               text NOT NULL DEFAULT 'pending' CHECK (state IN (
                            'pending', 'delivering', 'delivered',
                            'retry_scheduled', 'failed', 'dead_lettered')),
    attempt_count       integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at     timestamptz DEFAULT now(),
    locked_by           text,
    locked_until        timestamptz,
    last_error          text CHECK (length(last_error) <= 512),
    last_http_status    integer,
    failure_reason      text,
    dead_letter_reason  text,
    replay_of           uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz,
    dead_lettered_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, id),
    -- destinations are soft-deleted, so the row a delivery names always exists
    FOREIGN KEY (tenant_id, destination_id) REFERENCES destinations (tenant_id, id),
    FOREIGN KEY (tenant_id, replay_of) REFERENCES deliveries (tenant_id, id),
    -- a lease exists exactly while a worker holds the delivery
    CHECK ((state = 'delivering') = (locked_by IS NOT NULL AND locked_until IS NOT NULL)),
    CHECK (state NOT IN ('pending', 'retry_scheduled') OR next_attempt_at IS NOT NULL)
);
-- The claim's index: only waiting rows live in it.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE state IN ('pending', 'retry_scheduled');
-- Rescue of expired leases: only in-flight rows live in it.
CREATE INDEX deliveries_leased ON deliveries (locked_until)
    WHERE state = 'delivering';
CREATE INDEX deliveries_destination ON deliveries (tenant_id, destination_id, id);
CREATE INDEX deliveries_event ON deliveries (tenant_id, event_id);
CREATE INDEX deliveries_replay_of ON deliveries (tenant_id, replay_of) WHERE replay_of IS NOT NULL;

-- The database enforces the state machine as well as the guarded UPDATEs do:
-- an illegal transition is an error, whatever statement attempts it.
CREATE FUNCTION courier_check_delivery_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = OLD.state AND NEW.state <> 'delivering' THEN
        RETURN NEW;
    END IF;
    IF (OLD.state, NEW.state) IN (
        ('pending', 'delivering'),
        ('retry_scheduled', 'delivering'),
        ('delivering', 'delivering'),
        ('delivering', 'delivered'),
        ('delivering', 'retry_scheduled'),
        ('delivering', 'failed'),
        ('delivering', 'dead_lettered'),
        ('pending', 'failed'),
        ('retry_scheduled', 'failed')
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'illegal delivery transition % -> % for delivery %', OLD.state, NEW.state, OLD.id
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER deliveries_state_machine BEFORE UPDATE OF state ON deliveries
    FOR EACH ROW EXECUTE FUNCTION courier_check_delivery_transition();

CREATE TABLE delivery_attempts (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL DEFAULT courier_uuid7(),
    delivery_id     uuid NOT NULL,
    event_id        uuid NOT NULL,
    attempt_number  integer NOT NULL CHECK (attempt_number > 0),
    worker_id       text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    duration_ms     integer,
    http_status     integer,
    retryable       boolean,
    -- null while the attempt is in flight
    outcome         text CHECK (outcome IN (
                        'succeeded', 'retryable_failure', 'permanent_failure', 'abandoned')),
    error_summary   text CHECK (length(error_summary) <= 512),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, delivery_id, attempt_number),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES deliveries (tenant_id, id),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);

CREATE TABLE audit_records (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid NOT NULL DEFAULT courier_uuid7(),
    actor           text NOT NULL,
    action          text NOT NULL,
    delivery_id     uuid,
    destination_id  uuid,
    reason          text,
    data            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_records_delivery ON audit_records (tenant_id, delivery_id) WHERE delivery_id IS NOT NULL;

CREATE TABLE lifecycle_events (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid NOT NULL DEFAULT courier_uuid7(),
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    -- the writing transaction: lets a feed hold back rows of transactions still in flight
    txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type            text NOT NULL CHECK (type IN (
                        'delivery.created', 'delivery.delivered', 'delivery.retry_scheduled',
                        'delivery.failed', 'delivery.dead_lettered', 'delivery.replayed')),
    delivery_id     uuid NOT NULL,
    event_id        uuid NOT NULL,
    destination_id  uuid NOT NULL,
    state           text NOT NULL,
    attempt_number  integer NOT NULL DEFAULT 0,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    data            jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX lifecycle_events_seq ON lifecycle_events (tenant_id, seq);
