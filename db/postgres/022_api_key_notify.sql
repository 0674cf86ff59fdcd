-- The API keeps the keys it has seen live in a short-lived cache in each process, so a
-- request is authenticated without a round trip. A change that could end a key's life
-- (a revocation, a deleted key, a changed or deleted tenant) tells every API process at
-- once: a NOTIFY on `courier_api_keys` with the tenant id, on commit, which drops that
-- tenant's cached keys. A TRUNCATE names no tenant: its empty payload drops them all.
-- New keys need no notice: a key not in the cache is looked up.
CREATE FUNCTION courier_api_keys_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('courier_api_keys', '');
    ELSIF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('courier_api_keys', OLD.id::text);
    ELSE
        PERFORM pg_notify('courier_api_keys', OLD.tenant_id::text);
        IF TG_OP = 'UPDATE' AND NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
            PERFORM pg_notify('courier_api_keys', NEW.tenant_id::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION courier_api_keys_changed();
CREATE TRIGGER api_keys_truncated AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION courier_api_keys_changed();
CREATE TRIGGER tenants_changed AFTER UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION courier_api_keys_changed();
CREATE TRIGGER tenants_truncated AFTER TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION courier_api_keys_changed();
