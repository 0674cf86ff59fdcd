-- Destination health: the one read the API, the console and the auto-disable pass
-- share (courier.destination_health), and the auto-disable write.
-- Each block starts with `-- name: <name>`; courier.store.queries loads them.

-- name: destination_health
-- Health of a tenant's destinations (one, when %(destination_id)s is set), from their
-- attempts (by the delivery_attempts_destination index). Abandoned attempts are no
-- one's answer and count neither way. `failing_since` and `gone_since` only look at
-- attempts since the destination was last enabled; `dead_letter_in_streak` is looked
-- up only for a streak older than %(failing_seconds)s. The last day's counts (the
-- console's success ratio) are read only %(with_day)s: the maintenance pass needs none.
-- %(scope)s, when not null, keeps only those destinations (a scoped console session).
SELECT dst.tenant_id, dst.id AS destination_id, dst.enabled, dst.disabled_reason,
       dst.disabled_at, dst.enabled_at, now() AS checked_at,
       ok.finished_at AS last_success_at,
       (SELECT max(a.started_at) FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id) AS last_attempt_at,
       (SELECT count(*) FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.outcome IN ('retryable_failure', 'permanent_failure')
           AND a.started_at > coalesce(ok.started_at, '-infinity')) AS consecutive_failures,
       hour.finished AS attempts_last_hour, hour.succeeded AS successes_last_hour,
       day.finished AS attempts_last_day, day.succeeded AS successes_last_day,
       streak.failing_since, gone.gone_since,
       CASE WHEN streak.failing_since <= now() - make_interval(secs => %(failing_seconds)s)
            THEN EXISTS (SELECT 1 FROM deliveries d
                          WHERE d.tenant_id = dst.tenant_id
                            AND d.state = 'dead_lettered'
                            AND d.updated_at >= streak.failing_since
                            AND d.destination_id = dst.id)
            ELSE false END AS dead_letter_in_streak
  FROM destinations dst
  LEFT JOIN LATERAL (
        SELECT a.started_at, a.finished_at FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.outcome = 'succeeded'
         ORDER BY a.started_at DESC LIMIT 1) AS ok ON true
  LEFT JOIN LATERAL (
        SELECT a.started_at FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.http_status IS NOT NULL AND a.http_status <> 410
         ORDER BY a.started_at DESC LIMIT 1) AS answered ON true
  CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE a.outcome <> 'abandoned') AS finished,
               count(*) FILTER (WHERE a.outcome = 'succeeded') AS succeeded
          FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.started_at >= now() - interval '1 hour' AND a.outcome IS NOT NULL) AS hour
  LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE a.outcome <> 'abandoned') AS finished,
               count(*) FILTER (WHERE a.outcome = 'succeeded') AS succeeded
          FROM delivery_attempts a
         WHERE %(with_day)s AND a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.started_at >= now() - interval '24 hours' AND a.outcome IS NOT NULL) AS day
       ON true
  CROSS JOIN LATERAL (
        SELECT min(a.started_at) AS failing_since FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.outcome IN ('retryable_failure', 'permanent_failure')
           AND a.started_at > greatest(ok.started_at, dst.enabled_at)) AS streak
  CROSS JOIN LATERAL (
        SELECT min(a.started_at) AS gone_since FROM delivery_attempts a
         WHERE a.tenant_id = dst.tenant_id AND a.destination_id = dst.id
           AND a.http_status = 410
           AND a.started_at > greatest(answered.started_at, dst.enabled_at)) AS gone
 WHERE dst.tenant_id = %(tenant_id)s AND dst.deleted_at IS NULL
   AND (%(destination_id)s::uuid IS NULL OR dst.id = %(destination_id)s::uuid)
   AND (NOT %(enabled_only)s OR dst.enabled)
   AND (%(scope)s::uuid[] IS NULL OR dst.id = ANY(%(scope)s::uuid[]))
 ORDER BY dst.id;

-- name: health_disable_destination
-- Turns a destination off for its health, with an audit record. Guarded on enabled_at:
-- a destination an operator re-enabled since it was judged is left alone.
WITH off AS (
    UPDATE destinations
       SET enabled = false, disabled_reason = %(reason)s, disabled_at = now(), updated_at = now()
     WHERE tenant_id = %(tenant_id)s AND id = %(destination_id)s
       AND enabled AND deleted_at IS NULL AND enabled_at = %(enabled_at)s
    RETURNING tenant_id, id
), audit AS (
    INSERT INTO audit_records (tenant_id, actor, action, destination_id, reason, data)
    SELECT tenant_id, %(actor)s, 'destination.auto_disabled', id, %(reason)s, %(data)s::jsonb
      FROM off
)
SELECT id FROM off;
