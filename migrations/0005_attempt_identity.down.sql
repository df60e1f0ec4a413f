DROP INDEX IF EXISTS calls_slots;
UPDATE calls SET slot_taken_at = NULL WHERE status = 'cancelled' AND slot_taken_at IS NOT NULL;
ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_slot_held;
ALTER TABLE calls ADD CONSTRAINT calls_check CHECK ((status IN ('initiated', 'in_progress')) = (slot_taken_at IS NOT NULL));
DROP INDEX IF EXISTS call_attempts_conversation;
ALTER TABLE call_attempts DROP COLUMN IF EXISTS conversation_id;
