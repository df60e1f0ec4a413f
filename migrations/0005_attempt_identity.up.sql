-- Each attempt of a call is a dial of its own (contract §3, §5): the agent's
-- conversation id is recorded per attempt, like the dialler's id, so that a
-- late post-call or failure of an earlier attempt finds that attempt and
-- never moves the current one.
ALTER TABLE call_attempts ADD COLUMN conversation_id text;
CREATE INDEX call_attempts_conversation ON call_attempts (integration_id, conversation_id)
    WHERE conversation_id IS NOT NULL;
