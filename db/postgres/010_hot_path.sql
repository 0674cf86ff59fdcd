-- The delivery hot path: what every claim and completion touches.

-- In-flight rows are counted per destination by every claim (max_in_flight), and an
-- index that every delivery enters and leaves is mostly dead entries between vacuums.
-- Keyed by destination, the claim counts only the destinations it is about to take
-- from, with plain index scans, which mark the dead entries they meet so later scans
-- skip them; the rescue of expired leases reads the same (small) index.
DROP INDEX deliveries_leased;
CREATE INDEX deliveries_in_flight ON deliveries (tenant_id, destination_id, locked_until)
    WHERE state = 'delivering';

-- A lifecycle event copies its tenant from the delivery it describes, which the tenant
-- already owns through its event; the foreign key only re-checked that for every row
-- written (a lookup and a share lock on the tenant's row, per transition).
ALTER TABLE lifecycle_events DROP CONSTRAINT lifecycle_events_tenant_id_fkey;

-- An attempt row is written by the claim and finished by the completion moments later.
-- Half of each page left free lets that second write stay on the same page (a HOT
-- update, no index entries); the attempts table takes about twice the disk for it.
ALTER TABLE delivery_attempts SET (fillfactor = 50);
