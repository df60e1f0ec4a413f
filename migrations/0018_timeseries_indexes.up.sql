-- The integration timeseries (contract §10) counts what happened from the
-- window's start until now by when it happened: dials by start and by end,
-- and calls that left the queue without a dial by their last change. Each
-- is a range of one of these indexes, however many calls came before.
CREATE INDEX call_attempts_started ON call_attempts (integration_id, started_at) INCLUDE (attempt, outcome);
CREATE INDEX call_attempts_ended ON call_attempts (integration_id, ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX calls_undialled_ended ON calls (integration_id, updated_at)
    WHERE attempt = 0 AND status IN ('completed', 'failed', 'cancelled');
