-- Ordered delivery (opt-in per destination) and per-destination rate limits.

-- `fifo`: a destination's next delivery is not attempted until the one before it (in
-- creation order) is terminal; retries of the head hold the line.
ALTER TABLE destinations
    ADD COLUMN ordering text NOT NULL DEFAULT 'unordered'
        CHECK (ordering IN ('unordered', 'fifo')),
    -- Requests per second across all workers (a token bucket on this row); null: no limit.
    ADD COLUMN rate_limit_per_second double precision
        CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second > 0),
    ADD COLUMN rate_tokens double precision,
    ADD COLUMN rate_updated_at timestamptz;

-- A delivery's place in its destination's FIFO line (0: not in a line), taken from a
-- sequence when it is created, because ids made in the same millisecond do not sort in
-- creation order. Enqueue sets it; other inserts (replays, recovery) leave it null and
-- the trigger fills it in, so the hot enqueue path never runs the trigger.
CREATE SEQUENCE courier_fifo_line;
ALTER TABLE deliveries ADD COLUMN line_position bigint;

CREATE FUNCTION courier_delivery_line_position() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM destinations d
                WHERE d.tenant_id = NEW.tenant_id AND d.id = NEW.destination_id
                  AND d.ordering = 'fifo') THEN
        NEW.line_position := nextval('courier_fifo_line');
    ELSE
        NEW.line_position := 0;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER deliveries_line_position BEFORE INSERT ON deliveries
    FOR EACH ROW WHEN (NEW.line_position IS NULL)
    EXECUTE FUNCTION courier_delivery_line_position();

-- The head of each FIFO line: only waiting deliveries that are in a line live in it.
CREATE INDEX deliveries_fifo_line ON deliveries (tenant_id, destination_id, line_position)
    WHERE line_position > 0 AND state IN ('pending', 'retry_scheduled');
