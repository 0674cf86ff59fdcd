-- Statements about events outside the fan-out (enqueue_events is in deliveries.sql):
-- the test send and the API's event reads. Every one is scoped by tenant_id.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: send_test_event
-- A test send: a test event (`courier.test`, or a catalog type with its example) with
-- one delivery, to this destination only (its event_types and filter are not asked),
-- its delivery.created event, an audit record and a NOTIFY, for a live and enabled
-- destination; nothing for a disabled one. No row when there is no such destination.
WITH dst AS (
    SELECT tenant_id, id, enabled, filter IS NOT NULL AS filtered, ordering
      FROM destinations
     WHERE tenant_id = %(tenant_id)s AND id = %(destination_id)s AND deleted_at IS NULL
), ev AS (
    INSERT INTO events (tenant_id, type, payload, test)
    SELECT tenant_id, %(type)s, %(payload)s::json, true FROM dst WHERE enabled
    RETURNING tenant_id, id
), dl AS (
    INSERT INTO deliveries (tenant_id, event_id, destination_id, line_position)
    SELECT ev.tenant_id, ev.id, dst.id,
           CASE WHEN dst.ordering = 'fifo' THEN nextval('courier_fifo_line') ELSE 0 END
      FROM ev CROSS JOIN dst
    RETURNING tenant_id, id, event_id, destination_id, state
), created AS (
    INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state)
    SELECT tenant_id, 'delivery.created', id, event_id, destination_id, state FROM dl
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, delivery_id, destination_id, data)
    SELECT dl.tenant_id, %(actor)s, 'destination.test_sent', dl.id, dl.destination_id,
           jsonb_build_object('event_id', dl.event_id, 'event_type', %(type)s::text,
                              'filter_bypassed', dst.filtered)
      FROM dl CROSS JOIN dst
), wake AS (
    SELECT pg_notify('courier_deliveries', %(tenant_id)s::text) WHERE EXISTS (SELECT 1 FROM dl)
)
SELECT dst.filtered, dl.event_id, dl.id AS delivery_id, (SELECT count(*) FROM wake) AS notified
  FROM dst
  LEFT JOIN dl ON true;

-- name: api_get_event
-- An event and the ids of all its deliveries (replays too), oldest first.
SELECT e.id, e.type, e.payload, e.idempotency_key, e.created_at,
       ARRAY(SELECT d.id FROM deliveries d
              WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id
              ORDER BY d.id) AS delivery_ids
  FROM events e
 WHERE e.tenant_id = %(tenant_id)s AND e.id = %(id)s;

-- name: api_list_events
-- Newest first; `since` included, `until` excluded (created_at).
SELECT e.id, e.type, e.payload, e.idempotency_key, e.created_at,
       ARRAY(SELECT d.id FROM deliveries d
              WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id
              ORDER BY d.id) AS delivery_ids
  FROM events e
 WHERE e.tenant_id = %(tenant_id)s
   AND (%(type)s::text IS NULL OR e.type = %(type)s::text)
   AND (%(since)s::timestamptz IS NULL OR e.created_at >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR e.created_at < %(until)s::timestamptz)
   AND (%(after)s::uuid IS NULL OR e.id < %(after)s::uuid)
 ORDER BY e.id DESC
 LIMIT %(limit)s;
