-- Caller number pools (contract §9): the number each attempt is dialled
-- from, and what the claim needs to keep each number within its limits.

-- The number of the call's current attempt (its live calls count against
-- that number's concurrency_limit while it holds a slot), and of each attempt.
ALTER TABLE calls ADD COLUMN caller_id text;
ALTER TABLE call_attempts ADD COLUMN caller_id text;

-- A number's dials in its hourly and daily windows: contact_dials records
-- every dial with its caller_id already.
CREATE INDEX contact_dials_caller ON contact_dials (integration_id, caller_id, dialled_at)
    WHERE caller_id IS NOT NULL;

-- When each number of an integration's pool was last dialled from, so that
-- ties go round-robin however long ago the last dial was. Written in the
-- claim's transaction, under the integration's row lock.
CREATE TABLE caller_numbers (
    integration_id  uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    number          text NOT NULL,
    last_dialled_at timestamptz NOT NULL,
    seq             bigint NOT NULL,
    PRIMARY KEY (integration_id, number)
);
