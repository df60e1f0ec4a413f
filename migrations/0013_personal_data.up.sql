-- Personal data (contract §11): what a call keeps depends on its
-- integration's data.store mode, old calls leave by retention, and a person
-- can be erased while a suppression of their number survives as a keyed
-- hash.

-- The mode that stored the call's content (its post-call, or its end).
ALTER TABLE calls ADD COLUMN data_store text NOT NULL DEFAULT 'everything'
    CHECK (data_store IN ('everything', 'no_content', 'minimal'));
-- HMAC of the number under a key derived from CALLQUEUE_SECRET_KEY, so that
-- a suppression kept only as a hash still stops the call.
ALTER TABLE calls ADD COLUMN phone_hash bytea;
-- Retention finds an integration's finished calls by their last change.
CREATE INDEX calls_retention ON calls (integration_id, updated_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

-- The post-call's content an LLM analysis needs when the mode does not keep
-- it on the call: held here only until the analysis is settled.
ALTER TABLE pending_analyses ADD COLUMN transcript jsonb, ADD COLUMN agent_analysis jsonb;

-- A suppression is its number, or after erasure only the number's keyed
-- hash: each is unique per owner and scope.
ALTER TABLE suppressions ALTER COLUMN phone_number DROP NOT NULL;
ALTER TABLE suppressions ADD COLUMN phone_hash bytea;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_number_or_hash CHECK (phone_number IS NOT NULL OR phone_hash IS NOT NULL);
ALTER TABLE suppressions DROP CONSTRAINT suppressions_owner_id_integration_id_phone_number_key;
CREATE UNIQUE INDEX suppressions_number ON suppressions (owner_id, integration_id, phone_number) NULLS NOT DISTINCT
    WHERE phone_number IS NOT NULL;
CREATE UNIQUE INDEX suppressions_erased ON suppressions (owner_id, integration_id, phone_hash) NULLS NOT DISTINCT
    WHERE phone_number IS NULL;
CREATE INDEX suppressions_hash ON suppressions (phone_hash) WHERE phone_hash IS NOT NULL;

-- Calls removed by retention or erasure still count in their campaign's
-- progress, by where they ended.
ALTER TABLE campaigns
    ADD COLUMN removed_completed  integer NOT NULL DEFAULT 0 CHECK (removed_completed >= 0),
    ADD COLUMN removed_failed     integer NOT NULL DEFAULT 0 CHECK (removed_failed >= 0),
    ADD COLUMN removed_cancelled  integer NOT NULL DEFAULT 0 CHECK (removed_cancelled >= 0),
    ADD COLUMN removed_suppressed integer NOT NULL DEFAULT 0 CHECK (removed_suppressed >= 0);

-- When each once-a-day maintenance job last finished, so that however many
-- replicas run, it runs once a day.
CREATE TABLE maintenance_runs (
    job         text PRIMARY KEY,
    finished_at timestamptz NOT NULL
);

-- The key of phone numbers' hashes, sealed under CALLQUEUE_SECRET_KEY (from
-- which it was first derived): a key rotation re-seals it, so the hashes of
-- erased people's numbers keep matching.
CREATE TABLE phone_hash_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key_enc   bytea NOT NULL
);
