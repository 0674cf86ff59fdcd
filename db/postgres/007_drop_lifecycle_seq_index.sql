-- The feed walks lifecycle events by (tenant_id, txid, seq) (002); the (tenant_id, seq)
-- index from 001 serves no query and costs a write for every lifecycle event.
DROP INDEX lifecycle_events_seq;
