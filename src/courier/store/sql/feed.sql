-- The lifecycle-event feed (GET /v1/delivery-events and its SSE stream).
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: feed_page
-- One page of a tenant's lifecycle events after the cursor (txid, seq), in that order.
--
-- Only rows whose writing transaction is older than the oldest transaction still
-- running (the snapshot's xmin) are shown. Every transaction below xmin has ended, and
-- every transaction that starts from now on gets an id at or above it, so the rows
-- shown are a prefix of the final (txid, seq) order that never gains a row in the
-- middle: a follower that resumes after its last (txid, seq) sees each event exactly
-- once, however late its transaction commits. A row's seq alone would not do: seq is
-- taken at insert, and a transaction that took its id earlier can insert later.
SELECT tenant_id, id, seq, txid::text AS txid, type, delivery_id, event_id, destination_id,
       state, attempt_number, occurred_at, data
  FROM lifecycle_events
 WHERE tenant_id = %(tenant_id)s
   AND (txid, seq) > (%(after_txid)s::text::xid8, %(after_seq)s::bigint)
   AND txid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY txid, seq
 LIMIT %(limit)s;

-- name: console_feed_head
-- The newest visible lifecycle-event position: a console stream starts after it.
SELECT txid::text AS txid, seq
  FROM lifecycle_events
 WHERE tenant_id = %(tenant_id)s
   AND txid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY txid DESC, seq DESC
 LIMIT 1;
