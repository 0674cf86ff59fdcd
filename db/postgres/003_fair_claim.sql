-- Fairness between destinations: the claim walks destinations that have waiting
-- deliveries (a loose index scan over this index) and takes a share from each, capped
-- by the destination's max_in_flight, so one destination's backlog cannot starve others.
ALTER TABLE destinations
    ADD COLUMN max_in_flight integer NOT NULL DEFAULT 16 CHECK (max_in_flight BETWEEN 1 AND 10000);

CREATE INDEX deliveries_waiting ON deliveries (tenant_id, destination_id, next_attempt_at)
    WHERE state IN ('pending', 'retry_scheduled');

-- The hot tables churn: vacuum them sooner than the defaults would.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE delivery_attempts SET (autovacuum_vacuum_scale_factor = 0.05);

-- deliveries_waiting serves the claim, and min(next_attempt_at) by an index-only scan;
-- a second queue index would only cost writes (and tempt the planner into scanning
-- other destinations' rows inside the per-destination claim).
DROP INDEX deliveries_due;
