-- The claim takes each destination's oldest due rows by walking deliveries_waiting in
-- due order and stopping after its share. Statistics taken while a table is young
-- (or mid bulk-load) say a destination holds about one row; the planner then rates
-- "every row of the destination by deliveries_destination, then sort" the same as that
-- walk, and sometimes takes it: a claim that reads the destination's whole history.
-- Its own function with sorting disabled leaves the planner only the ordered walk.
-- VOLATILE because it locks rows (FOR UPDATE SKIP LOCKED).
CREATE FUNCTION courier_due_deliveries(p_tenant uuid, p_destination uuid, p_limit integer)
RETURNS TABLE (tenant_id uuid, id uuid, destination_id uuid, next_attempt_at timestamptz)
LANGUAGE plpgsql VOLATILE
-- What the claim takes from one destination at a time (a share of one batch); the
-- default estimate (1,000 rows) would steer the claim's own joins to full index scans.
ROWS 16
SET enable_sort = off
SET enable_seqscan = off
AS $$
BEGIN
    -- PL/pgSQL keeps this plan for the session: planned once, not once per claim.
    RETURN QUERY
    SELECT d.tenant_id, d.id, d.destination_id, d.next_attempt_at
      FROM deliveries d
     WHERE d.tenant_id = p_tenant AND d.destination_id = p_destination
       AND d.state IN ('pending', 'retry_scheduled') AND d.next_attempt_at <= now()
     ORDER BY d.tenant_id, d.destination_id, d.next_attempt_at
     LIMIT p_limit
       FOR UPDATE OF d SKIP LOCKED;
END
$$;
