-- Destination lifecycle events, operator notifications delivered through courier
-- itself, and revocable portal links.

-- `destination.disabled` and `destination.enabled` describe a destination, not a
-- delivery: they name no delivery and no event, and their `state` is the destination's
-- (`disabled` / `enabled`). Every other type still names both (the CHECK says so).
ALTER TABLE lifecycle_events
    ALTER COLUMN delivery_id DROP NOT NULL,
    ALTER COLUMN event_id DROP NOT NULL,
    DROP CONSTRAINT lifecycle_events_type_check,
    ADD CONSTRAINT lifecycle_events_type_check CHECK (type IN (
        'delivery.created', 'delivery.delivered', 'delivery.retry_scheduled',
        'delivery.failed', 'delivery.dead_lettered', 'delivery.replayed',
        'destination.disabled', 'destination.enabled')) NOT VALID,
    ADD CONSTRAINT lifecycle_events_subject CHECK (
        CASE WHEN type LIKE 'destination.%'
             THEN delivery_id IS NULL AND event_id IS NULL
             ELSE delivery_id IS NOT NULL AND event_id IS NOT NULL END) NOT VALID;
-- Checked without holding off the writers (a weaker lock than ADD's scan would take).
ALTER TABLE lifecycle_events VALIDATE CONSTRAINT lifecycle_events_type_check;
ALTER TABLE lifecycle_events VALIDATE CONSTRAINT lifecycle_events_subject;

-- Whatever turns a destination on or off (a PATCH, the console, the CLI, the health
-- service) writes its lifecycle event in the same transaction, so no path can forget
-- to. `data.reason`: the health service's `disabled_reason` when it turned it off,
-- else `manual` (a person, through the API or the console). A deleted destination
-- (also turned off) is not "disabled": deletion writes no event.
CREATE FUNCTION courier_destination_switched() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lifecycle_events (tenant_id, type, destination_id, state, data)
    VALUES (NEW.tenant_id,
            CASE WHEN NEW.enabled THEN 'destination.enabled' ELSE 'destination.disabled' END,
            NEW.id,
            CASE WHEN NEW.enabled THEN 'enabled' ELSE 'disabled' END,
            jsonb_build_object('reason', CASE WHEN NEW.enabled THEN 'manual'
                                              ELSE coalesce(NEW.disabled_reason, 'manual') END));
    RETURN NULL;
END
$$;
CREATE TRIGGER destinations_switched AFTER UPDATE OF enabled ON destinations
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled AND NEW.deleted_at IS NULL)
    EXECUTE FUNCTION courier_destination_switched();

-- A tenant may name one of its destinations as its operations destination: it receives
-- the tenant's `destination.disabled` and `delivery.dead_lettered` lifecycle events as
-- events of their own (`courier.destination.disabled`, `courier.delivery.dead_lettered`).
ALTER TABLE tenants
    ADD COLUMN operations_destination_id uuid,
    ADD CONSTRAINT tenants_operations_destination
        FOREIGN KEY (id, operations_destination_id) REFERENCES destinations (tenant_id, id);

-- Written in the transaction of the lifecycle event it reports, so a notification is
-- made exactly when its event commits. No notification loops, by two rules:
--  * nothing is reported about the operations destination itself (its own dead letters,
--    its being disabled): it could not receive the report anyway;
--  * nothing is reported about a delivery of a notification (an event of a `courier.`
--    notification type), whichever destination it went to: a notification sent before
--    the tenant named another operations destination stays unreported too.
-- So every notification reports a delivery or destination that is not a notification's,
-- and each lifecycle event makes at most one.
-- The payload is the lifecycle event as the feed shows it, plus the destination's name.
CREATE FUNCTION courier_notify_operations() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ops record;
    made uuid;
    about text;
BEGIN
    SELECT d.id, d.ordering INTO ops
      FROM tenants t
      JOIN destinations d ON d.tenant_id = t.id AND d.id = t.operations_destination_id
     WHERE t.id = NEW.tenant_id AND d.enabled AND d.deleted_at IS NULL;
    IF ops.id IS NULL OR ops.id = NEW.destination_id THEN
        RETURN NULL;
    END IF;
    IF NEW.event_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM events e
             WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.event_id
               AND e.type IN ('courier.destination.disabled', 'courier.delivery.dead_lettered')) THEN
        RETURN NULL;
    END IF;
    SELECT d.name INTO about
      FROM destinations d
     WHERE d.tenant_id = NEW.tenant_id AND d.id = NEW.destination_id;
    INSERT INTO events (tenant_id, type, payload)
    VALUES (NEW.tenant_id, 'courier.' || NEW.type, json_build_object(
                'id', NEW.id, 'tenant_id', NEW.tenant_id, 'type', NEW.type,
                'delivery_id', NEW.delivery_id, 'event_id', NEW.event_id,
                'destination_id', NEW.destination_id, 'destination_name', about,
                'state', NEW.state, 'attempt_number', NEW.attempt_number,
                'occurred_at',
                to_char(NEW.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'data', NEW.data))
    RETURNING id INTO made;
    WITH dl AS (
        INSERT INTO deliveries (tenant_id, event_id, destination_id, line_position)
        VALUES (NEW.tenant_id, made, ops.id,
                CASE WHEN ops.ordering = 'fifo' THEN nextval('courier_fifo_line') ELSE 0 END)
        RETURNING tenant_id, id, event_id, destination_id, state
    )
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state)
    SELECT tenant_id, 'delivery.created', id, event_id, destination_id, state FROM dl;
    PERFORM pg_notify('courier_deliveries', NEW.tenant_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER lifecycle_events_operations AFTER INSERT ON lifecycle_events
    FOR EACH ROW WHEN (NEW.type IN ('destination.disabled', 'delivery.dead_lettered'))
    EXECUTE FUNCTION courier_notify_operations();

-- A portal link can be revoked: unopened, it can no longer be opened; opened, the console
-- sessions it started end at their next request (each reads the row again).
ALTER TABLE portal_sessions ADD COLUMN revoked_at timestamptz;
