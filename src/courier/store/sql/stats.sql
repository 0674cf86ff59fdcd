-- Statements behind the queue gauges (courier.queue_stats).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: queue_stats
-- One cheap query for every queue gauge, run every few seconds by one collector per
-- process (never per scrape, never per tenant). Both counts read only the partial
-- queue indexes' rows (deliveries_waiting, deliveries_in_flight), so finished deliveries cost
-- nothing. The oldest due age is how long the earliest waiting row has been due
-- (0 when nothing is due yet).
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'retry_scheduled') AS retry_scheduled,
       (SELECT count(*) FROM deliveries WHERE state = 'delivering') AS delivering,
       greatest(0, coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0))::float8
           AS oldest_due_seconds
  FROM deliveries
 WHERE state IN ('pending', 'retry_scheduled');
