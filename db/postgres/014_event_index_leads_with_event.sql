-- deliveries_event served lookups by event, always as (tenant_id, event_id). Led by the
-- tenant, it also matched a row lookup by (tenant_id, id) on the tenant alone; on a
-- young table (never analyzed: every new installation, every benchmark) the planner
-- rated that as cheap as the primary key, and the claim, whose plan a worker keeps for
-- its connection's life, read the tenant's whole history for every row it picked
-- (claims 2 ms -> 80 ms as history grew). Led by the event, it serves the same lookups
-- and can no longer stand in for a tenant-wide scan.
DROP INDEX deliveries_event;
CREATE INDEX deliveries_event ON deliveries (event_id, tenant_id);
