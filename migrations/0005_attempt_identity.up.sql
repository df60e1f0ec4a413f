-- Each attempt of a call is a dial of its own (contract §3, §5): the agent's
-- conversation id is recorded per attempt, like the dialler's id, so that a
-- late post-call or failure of an earlier attempt finds that attempt and
-- never moves the current one.
ALTER TABLE call_attempts ADD COLUMN conversation_id text;
CREATE INDEX call_attempts_conversation ON call_attempts (integration_id, conversation_id)
    WHERE conversation_id IS NOT NULL;

-- A call cancelled while live at the platform keeps its slot until its
-- call_end (or the watchdog's max-duration limit): the diallers give us no
-- hang-up request, so the conversation goes on and still counts.
ALTER TABLE calls DROP CONSTRAINT calls_check;
ALTER TABLE calls ADD CONSTRAINT calls_slot_held CHECK (
    CASE WHEN status IN ('initiated', 'in_progress') THEN slot_taken_at IS NOT NULL
         WHEN status = 'cancelled' THEN true
         ELSE slot_taken_at IS NULL END);
CREATE INDEX calls_slots ON calls (integration_id) WHERE slot_taken_at IS NOT NULL;
