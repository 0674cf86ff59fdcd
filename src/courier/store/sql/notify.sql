-- The wake-up channel (courier.store.notify). The statements that write deliveries
-- (enqueue, replays, recovery) NOTIFY it with the tenant id; workers and the API's
-- lifecycle stream LISTEN on it.

-- name: listen_deliveries
LISTEN courier_deliveries;

-- name: listen_api_keys
-- Changes to API keys and tenants (db/postgres/022): each API process drops the
-- cached keys of the tenant a NOTIFY names.
LISTEN courier_api_keys;
