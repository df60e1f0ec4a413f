DROP TABLE IF EXISTS phone_hash_key;
DROP TABLE IF EXISTS maintenance_runs;
ALTER TABLE campaigns DROP COLUMN IF EXISTS removed_completed, DROP COLUMN IF EXISTS removed_failed,
    DROP COLUMN IF EXISTS removed_cancelled, DROP COLUMN IF EXISTS removed_suppressed;
DROP INDEX IF EXISTS suppressions_hash;
DROP INDEX IF EXISTS suppressions_erased;
DROP INDEX IF EXISTS suppressions_number;
-- Entries kept only as a hash cannot be given their number back.
DELETE FROM suppressions WHERE phone_number IS NULL;
ALTER TABLE suppressions DROP CONSTRAINT IF EXISTS suppressions_number_or_hash;
ALTER TABLE suppressions DROP COLUMN IF EXISTS phone_hash;
ALTER TABLE suppressions ALTER COLUMN phone_number SET NOT NULL;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_owner_id_integration_id_phone_number_key
    UNIQUE NULLS NOT DISTINCT (owner_id, integration_id, phone_number);
ALTER TABLE pending_analyses DROP COLUMN IF EXISTS transcript, DROP COLUMN IF EXISTS agent_analysis;
DROP INDEX IF EXISTS calls_retention;
ALTER TABLE calls DROP COLUMN IF EXISTS phone_hash, DROP COLUMN IF EXISTS data_store;
