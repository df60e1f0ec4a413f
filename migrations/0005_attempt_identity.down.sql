DROP INDEX IF EXISTS call_attempts_conversation;
ALTER TABLE call_attempts DROP COLUMN IF EXISTS conversation_id;
