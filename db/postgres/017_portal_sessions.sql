-- The customer portal: one-time console links, the tenant's event-type catalog, and the
-- tenant's branding shown in the console header.

-- A link's token is random and shown once; only its SHA-256 is stored. A link is redeemed
-- at most once (`redeemed_at`), before `expires_at`; the console session it starts names
-- this row, so the row's role and scope decide what that session may see and do.
-- `destination_ids` NULL: every destination of the tenant.
CREATE TABLE portal_sessions (
    id               uuid PRIMARY KEY DEFAULT courier_uuid7(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash       bytea NOT NULL UNIQUE,
    role             text NOT NULL CHECK (role IN ('viewer', 'operator')),
    destination_ids  uuid[],
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    redeemed_at      timestamptz
);
CREATE INDEX portal_sessions_tenant ON portal_sessions (tenant_id, id);

-- The event-type catalog. `version` grows on every change, so a compiled validator is
-- cached per (tenant, name, version) and a changed schema is never validated with a stale one.
CREATE TABLE event_types (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    schema       jsonb,
    example      jsonb,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Branding shown in the console header (all optional).
ALTER TABLE tenants
    ADD COLUMN display_name  text CHECK (length(display_name) BETWEEN 1 AND 200),
    ADD COLUMN accent_color  text CHECK (accent_color ~ '^#[0-9a-f]{6}$'),
    ADD COLUMN logo_url      text CHECK (length(logo_url) <= 2000 AND logo_url LIKE 'https://%');
