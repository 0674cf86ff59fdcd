-- Destination kinds: the adapter a destination is delivered through. A webhook keeps
-- its URL in `url`; every other kind keeps its settings in `config` (what may be shown)
-- and `config_secrets` (field name -> token, encrypted at rest exactly as the signing
-- secrets are, and rekeyed with them). For those kinds `url` holds the broker's address
-- without credentials, for display only.
ALTER TABLE destinations
    ADD COLUMN kind text NOT NULL DEFAULT 'webhook'
        CHECK (kind IN ('webhook', 'rabbitmq', 'nats', 'redis_stream', 'redmine')),
    ADD COLUMN config jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(config) = 'object'),
    ADD COLUMN config_secrets jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(config_secrets) = 'object');
