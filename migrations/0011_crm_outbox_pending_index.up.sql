-- A claim reads each integration's oldest due updates (fair share): with
-- this index it reads a few entries per integration that has pending
-- updates, instead of sorting every pending update on every claim.
CREATE INDEX IF NOT EXISTS crm_outbox_pending ON crm_outbox (integration_id, next_attempt_at, id) WHERE status = 'pending';
