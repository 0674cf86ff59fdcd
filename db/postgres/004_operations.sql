-- Operations: replay idempotency, outage recovery, destination health, retention.

-- A replay's Idempotency-Key is kept on the delivery it made: a repeated key finds
-- that delivery instead of making another (unique per tenant).
ALTER TABLE deliveries ADD COLUMN replay_key text CHECK (length(replay_key) <= 255);
CREATE UNIQUE INDEX deliveries_replay_key ON deliveries (tenant_id, replay_key)
    WHERE replay_key IS NOT NULL;

-- Retention walks each tenant's terminal deliveries by the time they ended (a terminal
-- row is never updated again, so updated_at is when it became terminal).
CREATE INDEX deliveries_terminal ON deliveries (tenant_id, updated_at)
    WHERE state IN ('delivered', 'failed', 'dead_lettered');

-- When a destination was turned off (outage recovery counts what it missed since) and
-- when it was last turned on (health only judges attempts made while it was on).
ALTER TABLE destinations
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN enabled_at timestamptz NOT NULL DEFAULT now();
UPDATE destinations SET disabled_at = updated_at WHERE NOT enabled AND deleted_at IS NULL;

-- Destination health reads a destination's recent attempts. Attempts carry their
-- delivery's destination, copied by a trigger, so the engine's statements are unchanged.
ALTER TABLE delivery_attempts ADD COLUMN destination_id uuid;
UPDATE delivery_attempts a
   SET destination_id = d.destination_id
  FROM deliveries d
 WHERE d.tenant_id = a.tenant_id AND d.id = a.delivery_id;

CREATE FUNCTION courier_attempt_destination() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.destination_id IS NULL THEN
        SELECT d.destination_id INTO NEW.destination_id
          FROM deliveries d
         WHERE d.tenant_id = NEW.tenant_id AND d.id = NEW.delivery_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER delivery_attempts_destination BEFORE INSERT ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION courier_attempt_destination();

CREATE INDEX delivery_attempts_destination
    ON delivery_attempts (tenant_id, destination_id, started_at);

-- Retention deletes a delivery's lifecycle events with it.
CREATE INDEX lifecycle_events_delivery ON lifecycle_events (tenant_id, delivery_id);
