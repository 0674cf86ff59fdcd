-- Ticketing destinations (kind `redmine`): which ticket each correlation key opened, and
-- which ticket each delivery wrote to.

-- One ticket per (destination, correlation key). The ticketing system is the source of
-- truth (the key is also stored on the ticket and searched there before any create), so
-- a row lost to a crash between the ticket's creation and this row's commit costs one
-- search, never a second ticket.
CREATE TABLE ticket_links (
    tenant_id        uuid NOT NULL,
    destination_id   uuid NOT NULL,
    correlation_key  text NOT NULL CHECK (length(correlation_key) BETWEEN 1 AND 255),
    ticket_id        text NOT NULL CHECK (length(ticket_id) BETWEEN 1 AND 100),
    ticket_url       text NOT NULL CHECK (length(ticket_url) <= 2048),
    -- the event that opened the ticket (read from the marker a found ticket carries);
    -- null when the ticket was not opened by courier
    created_event_id uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    PRIMARY KEY (tenant_id, destination_id, correlation_key),
    FOREIGN KEY (tenant_id, destination_id) REFERENCES destinations (tenant_id, id)
);

-- The ticket a delivery created, annotated or closed: shown by GET /v1/deliveries/{id}.
-- Removed with its delivery by retention.
CREATE TABLE delivery_tickets (
    tenant_id        uuid NOT NULL,
    delivery_id      uuid NOT NULL,
    ticket_id        text NOT NULL CHECK (length(ticket_id) BETWEEN 1 AND 100),
    ticket_url       text NOT NULL CHECK (length(ticket_url) <= 2048),
    action           text NOT NULL CHECK (action IN ('created', 'noted', 'closed')),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, delivery_id),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES deliveries (tenant_id, id) ON DELETE CASCADE
);
