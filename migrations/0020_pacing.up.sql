-- Pacing and contact rules (contract §9). Every table here is read and
-- written in a claim's transaction, under the integration's row lock.

-- Token buckets of the dial rate, by name: 'claim' paces the calls that
-- leave the queue, 'send' the originates themselves (what the carrier
-- sees), so that the time between a claim and its originate cannot bunch
-- originates up.
CREATE TABLE dial_buckets (
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    bucket         text NOT NULL,
    tokens         float8 NOT NULL,
    at             timestamptz NOT NULL,
    PRIMARY KEY (integration_id, bucket)
);

-- Every dial (attempt) to a number, kept apart from calls so that contact
-- caps count dials of calls that retention or erasure removed. The number
-- is its keyed hash when the service has one (calls.phone_hash). Rows are
-- kept past an integration's deletion: an owner-wide cap still counts them.
CREATE TABLE contact_dials (
    phone_key      bytea NOT NULL,
    dialled_at     timestamptz NOT NULL,
    integration_id uuid NOT NULL,
    owner_id       text NOT NULL,
    call_id        uuid NOT NULL,
    attempt        integer NOT NULL,
    caller_id      text
);
-- A number's dials in a window: a few rows per number however many calls.
CREATE INDEX contact_dials_phone ON contact_dials (phone_key, dialled_at);
CREATE INDEX contact_dials_old ON contact_dials (dialled_at);

-- The hold last written to a queued call's history (dial_rate, caller_id),
-- so that a hold is one history entry, not one per dispatch pass; cleared
-- when the call is dialled.
ALTER TABLE calls ADD COLUMN held text;
