-- Replay (one delivery, by key, dead letters in bulk) and outage recovery. Each
-- statement is scoped by `tenant_id = %(tenant_id)s`.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: replay_delivery
-- One statement: a new pending delivery of the same event to the same destination with
-- replay_of set, its delivery.replayed lifecycle event, an audit record and the NOTIFY.
-- The original is only read. Nothing is written when the original is missing, not
-- terminal, its destination is gone or off, or the idempotency key was used before;
-- `original_state`, `destination_usable` and a null `delivery` tell which.
WITH original AS (
    SELECT d.tenant_id, d.id, d.event_id, d.destination_id, d.state,
           (dst.enabled AND dst.deleted_at IS NULL) AS destination_usable
      FROM deliveries d
      JOIN destinations dst ON dst.tenant_id = d.tenant_id AND dst.id = d.destination_id
     WHERE d.tenant_id = %(tenant_id)s AND d.id = %(id)s
), made AS (
    INSERT INTO deliveries (tenant_id, event_id, destination_id, replay_of, replay_key)
    SELECT tenant_id, event_id, destination_id, id, %(idempotency_key)s
      FROM original
     WHERE state IN ('delivered', 'failed', 'dead_lettered') AND destination_usable
    ON CONFLICT (tenant_id, replay_key) WHERE replay_key IS NOT NULL DO NOTHING
    RETURNING *
), lifecycle AS (
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state, data)
    SELECT tenant_id, 'delivery.replayed', id, event_id, destination_id, state,
           jsonb_build_object('replay_of', replay_of)
      FROM made
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, delivery_id, destination_id, data)
    SELECT tenant_id, %(actor)s, 'delivery.replayed', replay_of, destination_id,
           jsonb_strip_nulls(jsonb_build_object(
               'replay_id', id, 'idempotency_key', replay_key))
      FROM made
), wake AS (
    SELECT pg_notify('courier_deliveries', tenant_id::text) FROM made
)
SELECT o.state AS original_state, o.destination_usable,
       (SELECT to_jsonb(m) FROM made m) AS delivery,
       (SELECT count(*) FROM wake) AS notified
  FROM original o;

-- name: replay_by_key
SELECT *
  FROM deliveries
 WHERE tenant_id = %(tenant_id)s AND replay_key = %(idempotency_key)s;

-- name: replay_dead_letters
-- Bulk replay, one statement: up to %(limit)s terminal deliveries matching the filter
-- (walked by id after the cursor), whose destination is live and on, and that were not
-- replayed before (no delivery has replay_of = it), get a new pending delivery each,
-- with its delivery.replayed event; one audit record names the filter and the count.
-- `more` tells whether another page follows; `last_id` is the cursor to continue after.
-- With %(dry_run)s nothing is written and the originals' ids come back.
WITH candidates AS (
    SELECT d.tenant_id, d.id, d.event_id, d.destination_id
      FROM deliveries d
      JOIN destinations dst ON dst.tenant_id = d.tenant_id AND dst.id = d.destination_id
     WHERE d.tenant_id = %(tenant_id)s
       AND d.state = ANY (%(states)s::text[])
       AND (%(destination_id)s::uuid IS NULL OR d.destination_id = %(destination_id)s::uuid)
       AND (%(since)s::timestamptz IS NULL OR d.updated_at >= %(since)s::timestamptz)
       AND (%(until)s::timestamptz IS NULL OR d.updated_at < %(until)s::timestamptz)
       AND (%(after)s::uuid IS NULL OR d.id > %(after)s::uuid)
       AND dst.enabled AND dst.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM deliveries c
                        WHERE c.tenant_id = d.tenant_id AND c.replay_of = d.id)
     ORDER BY d.id
     LIMIT %(limit)s + 1
), picked AS (
    SELECT * FROM candidates ORDER BY id LIMIT %(limit)s
), made AS (
    INSERT INTO deliveries (tenant_id, event_id, destination_id, replay_of)
    SELECT tenant_id, event_id, destination_id, id
      FROM picked
     WHERE NOT %(dry_run)s
     ORDER BY id
    RETURNING tenant_id, id, event_id, destination_id, state, replay_of
), lifecycle AS (
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state, data)
    SELECT tenant_id, 'delivery.replayed', id, event_id, destination_id, state,
           jsonb_build_object('replay_of', replay_of)
      FROM made
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id, data)
    SELECT %(tenant_id)s, %(actor)s, 'deliveries.bulk_replayed', %(destination_id)s::uuid,
           jsonb_build_object('filter', %(filter)s::jsonb, 'count', (SELECT count(*) FROM made))
     WHERE NOT %(dry_run)s AND EXISTS (SELECT 1 FROM made)
), wake AS (
    SELECT pg_notify('courier_deliveries', %(tenant_id)s::text)
     WHERE EXISTS (SELECT 1 FROM made)
)
SELECT (SELECT count(*) FROM candidates) > %(limit)s AS more,
       (SELECT id FROM picked ORDER BY id DESC LIMIT 1) AS last_id,
       CASE WHEN %(dry_run)s
            THEN ARRAY(SELECT id FROM picked ORDER BY id)
            ELSE ARRAY(SELECT id FROM made ORDER BY replay_of) END AS delivery_ids,
       (SELECT count(*) FROM wake) AS notified;

-- name: destination_outage
-- What a destination missed since %(since)s: events matching its event_types and filter
-- with no delivery to it, and its deliveries that failed as destination_disabled (not replayed).
SELECT
    (SELECT count(*)
       FROM events e
      WHERE e.tenant_id = dst.tenant_id AND e.created_at >= %(since)s
        AND (%(until)s::timestamptz IS NULL OR e.created_at < %(until)s::timestamptz)
        AND courier_event_type_matches(dst.event_types, e.type)
        AND (dst.filter_plan IS NULL OR courier_filter_matches(dst.filter_plan, e.payload::text))
        AND NOT e.test  -- a test send was for the destination it went to, no other
        AND NOT EXISTS (SELECT 1 FROM deliveries d
                         WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id
                           AND d.destination_id = dst.id)) AS missed_events,
    (SELECT count(*)
       FROM deliveries d
      WHERE d.tenant_id = dst.tenant_id AND d.destination_id = dst.id
        AND d.state = 'failed' AND d.failure_reason = 'destination_disabled'
        AND d.updated_at >= %(since)s
        AND (%(until)s::timestamptz IS NULL OR d.updated_at < %(until)s::timestamptz)
        AND NOT EXISTS (SELECT 1 FROM deliveries c
                         WHERE c.tenant_id = d.tenant_id AND c.replay_of = d.id))
        AS disabled_failures
  FROM destinations dst
 WHERE dst.tenant_id = %(tenant_id)s AND dst.id = %(destination_id)s;

-- name: recover_destination
-- Outage recovery, one statement, for a live destination: up to %(limit)s of
-- (a) events in [since, until) matching its event_types and filter that have no
--     delivery to it get one (with delivery.created), oldest first, then
-- (b) its destination_disabled failures in the window that were not replayed get a
--     replay (with delivery.replayed);
-- one audit record, one NOTIFY. With %(dry_run)s nothing is written.
WITH dst AS (
    SELECT * FROM destinations
     WHERE tenant_id = %(tenant_id)s AND id = %(destination_id)s AND deleted_at IS NULL
), missed AS (
    SELECT e.tenant_id, e.id AS event_id, e.created_at
      FROM dst
      JOIN events e ON e.tenant_id = dst.tenant_id
     WHERE e.created_at >= %(since)s
       AND (%(until)s::timestamptz IS NULL OR e.created_at < %(until)s::timestamptz)
       AND courier_event_type_matches(dst.event_types, e.type)
       AND (dst.filter_plan IS NULL OR courier_filter_matches(dst.filter_plan, e.payload::text))
       AND NOT e.test  -- a test send was for the destination it went to, no other
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                        WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id
                          AND d.destination_id = dst.id)
     ORDER BY e.created_at, e.id
     LIMIT %(limit)s + 1
), refused AS (
    SELECT d.tenant_id, d.id, d.event_id
      FROM dst
      JOIN deliveries d ON d.tenant_id = dst.tenant_id AND d.destination_id = dst.id
     WHERE d.state = 'failed' AND d.failure_reason = 'destination_disabled'
       AND d.updated_at >= %(since)s
       AND (%(until)s::timestamptz IS NULL OR d.updated_at < %(until)s::timestamptz)
       AND NOT EXISTS (SELECT 1 FROM deliveries c
                        WHERE c.tenant_id = d.tenant_id AND c.replay_of = d.id)
     ORDER BY d.id
     LIMIT %(limit)s + 1
), work AS (
    SELECT tenant_id, event_id, NULL::uuid AS replay_of, 0 AS kind,
           row_number() OVER (ORDER BY created_at, event_id) AS n
      FROM missed
    UNION ALL
    SELECT tenant_id, event_id, id, 1,
           (SELECT count(*) FROM missed) + row_number() OVER (ORDER BY id)
      FROM refused
), picked AS (
    SELECT * FROM work WHERE n <= %(limit)s
), made AS (
    INSERT INTO deliveries (tenant_id, event_id, destination_id, replay_of)
    SELECT p.tenant_id, p.event_id, dst.id, p.replay_of
      FROM picked p CROSS JOIN dst
     WHERE NOT %(dry_run)s AND dst.enabled
     ORDER BY p.n
    RETURNING tenant_id, id, event_id, destination_id, state, replay_of
), lifecycle AS (
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state, data)
    SELECT tenant_id,
           CASE WHEN replay_of IS NULL THEN 'delivery.created' ELSE 'delivery.replayed' END,
           id, event_id, destination_id, state,
           CASE WHEN replay_of IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('replay_of', replay_of) END
      FROM made
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id, data)
    SELECT dst.tenant_id, %(actor)s, 'destination.recovered', dst.id,
           jsonb_build_object(
               'filter', %(filter)s::jsonb,
               'count', (SELECT count(*) FROM made),
               'created', (SELECT count(*) FROM made WHERE replay_of IS NULL),
               'replayed', (SELECT count(*) FROM made WHERE replay_of IS NOT NULL))
      FROM dst
     WHERE EXISTS (SELECT 1 FROM made)
), wake AS (
    SELECT pg_notify('courier_deliveries', %(tenant_id)s::text)
     WHERE EXISTS (SELECT 1 FROM made)
)
SELECT (SELECT enabled FROM dst) AS enabled,
       (SELECT count(*) FROM missed) + (SELECT count(*) FROM refused) > %(limit)s AS more,
       (SELECT count(*) FROM picked WHERE kind = 0) AS missed_events,
       (SELECT count(*) FROM picked WHERE kind = 1) AS disabled_failures,
       CASE WHEN %(dry_run)s THEN '{}'::uuid[]
            ELSE ARRAY(SELECT id FROM made ORDER BY id) END AS delivery_ids,
       ARRAY(SELECT event_id FROM picked WHERE kind = 0 ORDER BY n) AS event_ids,
       ARRAY(SELECT replay_of FROM picked WHERE kind = 1 ORDER BY n) AS replayed_ids,
       (SELECT count(*) FROM wake) AS notified
 WHERE EXISTS (SELECT 1 FROM dst);
