-- Fencing for the CRM outbox: every lease has a token, and a result or a
-- renewal counts only under the token that holds the lease, so a deliverer
-- whose lease lapsed cannot overwrite the work of the one that took over.
-- steps_done records the parts of a multi-request update (NetHunt: the
-- record's field, then the comment) already applied, so a retry skips them:
-- NetHunt has no idempotency key, and a second comment would show.
ALTER TABLE crm_outbox ADD COLUMN lease_token uuid;
ALTER TABLE crm_outbox ADD COLUMN steps_done text[] NOT NULL DEFAULT '{}';

-- The claim that recorded a dial attempt: when the connection is lost
-- during the claim's COMMIT, the dispatcher looks its token up to learn
-- whether the claim happened before it dials (never twice, never leaking
-- the slot).
ALTER TABLE call_attempts ADD COLUMN claim_token uuid;
CREATE INDEX call_attempts_claim_token ON call_attempts (claim_token) WHERE claim_token IS NOT NULL;
