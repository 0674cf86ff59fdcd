-- The lifecycle feed walks each tenant's events in (txid, seq) order: the writing
-- transaction's id first, then the row's sequence number. A page only shows rows whose
-- transaction is older than the oldest one still running, so rows that commit late are
-- held back instead of skipped (see docs/observability.md, "The feed").
CREATE INDEX lifecycle_events_feed ON lifecycle_events (tenant_id, txid, seq);
