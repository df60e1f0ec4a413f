DROP INDEX IF EXISTS call_attempts_claim_token;
ALTER TABLE call_attempts DROP COLUMN IF EXISTS claim_token;
ALTER TABLE crm_outbox DROP COLUMN IF EXISTS steps_done;
ALTER TABLE crm_outbox DROP COLUMN IF EXISTS lease_token;
