-- Every delivery writes an attempt row and lifecycle events; each index on them is one
-- more entry (and WAL record) per row. Nothing looks either up by its `id` alone:
-- attempts are read by delivery and number, lifecycle events by delivery or in feed
-- order. So the keys those reads use become the primary keys, and the separate
-- (tenant_id, id) indexes go. The ids stay (uuid7, exposed by the API) but are no
-- longer indexed.
ALTER TABLE delivery_attempts
    DROP CONSTRAINT delivery_attempts_pkey,
    DROP CONSTRAINT delivery_attempts_tenant_id_delivery_id_attempt_number_key,
    ADD CONSTRAINT delivery_attempts_pkey PRIMARY KEY (tenant_id, delivery_id, attempt_number);

-- seq is unique on its own (an identity), so (tenant_id, txid, seq) is too.
ALTER TABLE lifecycle_events
    DROP CONSTRAINT lifecycle_events_pkey,
    ADD CONSTRAINT lifecycle_events_pkey PRIMARY KEY (tenant_id, txid, seq);
DROP INDEX lifecycle_events_feed;
