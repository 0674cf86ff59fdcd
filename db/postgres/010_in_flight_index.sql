-- In-flight rows are counted per destination by every claim (max_in_flight), and an
-- index that every delivery enters and leaves is mostly dead entries between vacuums.
-- Keyed by destination, the claim counts only the destinations it is about to take
-- from, with plain index scans, which mark the dead entries they meet so later scans
-- skip them; the rescue of expired leases reads the same (small) index.
DROP INDEX deliveries_leased;
CREATE INDEX deliveries_in_flight ON deliveries (tenant_id, destination_id, locked_until)
    WHERE state = 'delivering';
