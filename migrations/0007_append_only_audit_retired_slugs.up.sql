-- The audit log is append-only and outlives what it describes: deleting an
-- integration keeps its entries (no foreign key, so nothing cascades), and
-- no statement of the application may rewrite or remove an entry.
ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS audit_logs_integration_id_fkey;

-- Who made the change beyond the owner's name: the admin token used (null
-- for the command line) and the client's address.
ALTER TABLE audit_logs ADD COLUMN token_id uuid, ADD COLUMN client_ip inet;

-- Deletions recorded while the foreign key cascaded named the integration
-- by resource id only; name it in integration_id like every other entry.
UPDATE audit_logs SET integration_id = resource_id::uuid
WHERE integration_id IS NULL AND resource = 'integration' AND action = 'delete';

CREATE FUNCTION audit_logs_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_refuse_change();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_refuse_change();

-- Slugs given up by an integration (deleted, or changed) stay their
-- owner's: callers configured with the old URL must not reach another
-- owner's integration that took it.
CREATE TABLE retired_slugs (
    slug       text PRIMARY KEY,
    owner_id   text NOT NULL,
    retired_at timestamptz NOT NULL DEFAULT now()
);
-- Integrations deleted before this table existed, from their audit entries.
INSERT INTO retired_slugs (slug, owner_id, retired_at)
SELECT DISTINCT ON (a.before->>'slug') a.before->>'slug', a.owner_id, a.created_at
FROM audit_logs a
WHERE a.resource = 'integration' AND a.action = 'delete' AND a.before->>'slug' IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM integrations i WHERE i.slug = a.before->>'slug')
ORDER BY a.before->>'slug', a.id DESC;
