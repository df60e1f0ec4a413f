-- An initiation failure that names no id we recorded (its dial's answer
-- never came) is matched only when one dial alone can be its: the dials the
-- watchdog gave up on within the last minutes count too, found through
-- this small index instead of every attempt of the integration.
CREATE INDEX IF NOT EXISTS call_attempts_given_up ON call_attempts (integration_id, started_at)
    WHERE outcome IN ('dial_lost', 'timeout') AND external_call_id IS NULL AND conversation_id IS NULL;
