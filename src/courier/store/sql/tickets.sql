-- Ticketing destinations: correlation key -> ticket, and the ticket of each delivery.

-- name: ticket_lock_key
-- Held until the transaction ends: one delivery at a time finds or opens the ticket of a
-- key, so two events of one key never both create one. A crashed worker's lock goes with
-- its connection.
SELECT pg_advisory_xact_lock(hashtextextended(
           %(tenant_id)s::text || '/' || %(destination_id)s::text || '/' || %(key)s, 19))
       AS locked;

-- name: ticket_find_link
SELECT ticket_id, ticket_url, created_event_id, closed_at
  FROM ticket_links
 WHERE tenant_id = %(tenant_id)s AND destination_id = %(destination_id)s
   AND correlation_key = %(key)s;

-- name: ticket_save_link
INSERT INTO ticket_links (tenant_id, destination_id, correlation_key, ticket_id, ticket_url,
                          created_event_id)
VALUES (%(tenant_id)s, %(destination_id)s, %(key)s, %(ticket_id)s, %(ticket_url)s,
        %(event_id)s)
ON CONFLICT (tenant_id, destination_id, correlation_key) DO NOTHING;

-- name: ticket_mark_closed
UPDATE ticket_links
   SET closed_at = coalesce(closed_at, now())
 WHERE tenant_id = %(tenant_id)s AND destination_id = %(destination_id)s
   AND correlation_key = %(key)s;

-- name: ticket_record_delivery
INSERT INTO delivery_tickets (tenant_id, delivery_id, ticket_id, ticket_url, action)
VALUES (%(tenant_id)s, %(delivery_id)s, %(ticket_id)s, %(ticket_url)s, %(action)s)
ON CONFLICT (tenant_id, delivery_id) DO UPDATE
   SET ticket_id = EXCLUDED.ticket_id, ticket_url = EXCLUDED.ticket_url,
       action = EXCLUDED.action, updated_at = now();

-- name: ticket_of_delivery
SELECT ticket_id, ticket_url, action, updated_at
  FROM delivery_tickets
 WHERE tenant_id = %(tenant_id)s AND delivery_id = %(delivery_id)s;
