-- Destination options (CONTRACT section 9): what a receiver needs before it accepts a
-- request. `options` holds what may be shown (header names, the auth type and its
-- non-secret fields, certificates); `option_secrets` maps a path ("headers.X-Api-Key",
-- "auth.password", "tls_client_certificate.private_key") to its value encrypted at rest
-- exactly as the signing secrets are, and rekeyed with them.
ALTER TABLE destinations
    ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(options) = 'object'),
    ADD COLUMN option_secrets jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(option_secrets) = 'object'),
    ADD COLUMN payload_format text NOT NULL DEFAULT 'raw'
        CHECK (payload_format IN ('raw', 'envelope')),
    ADD COLUMN capture_response_body boolean NOT NULL DEFAULT false;

-- The receiver's answer, redacted, when its destination captures response bodies; it
-- lives and goes with its attempt.
ALTER TABLE delivery_attempts
    ADD COLUMN response_body_excerpt text
        CHECK (octet_length(response_body_excerpt) <= 4096);
