DROP TABLE IF EXISTS retired_slugs;
DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs;
DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_refuse_change();
-- Entries of deleted integrations stay, as owner-level entries: the
-- restored foreign key could not name their integration.
UPDATE audit_logs a SET integration_id = NULL
WHERE integration_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM integrations i WHERE i.id = a.integration_id);
ALTER TABLE audit_logs DROP COLUMN client_ip, DROP COLUMN token_id;
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_integration_id_fkey
    FOREIGN KEY (integration_id) REFERENCES integrations (id) ON DELETE CASCADE;
