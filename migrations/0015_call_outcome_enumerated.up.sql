-- A call's outcome is always one of the enumerated outcomes (contract §3).
-- Earlier releases wrote a completed call's analysis verdict there
-- (ElevenLabs' success/failure/unknown, an LLM's free text): it moves to
-- the analysis' own outcome, and the call's outcome becomes completed.
UPDATE calls SET
    analysis = jsonb_set(CASE WHEN jsonb_typeof(analysis) = 'object' THEN analysis ELSE '{}'::jsonb END,
                         '{outcome}', to_jsonb(outcome)),
    outcome = 'completed'
WHERE status = 'completed' AND outcome IS NOT NULL
  AND outcome NOT IN ('answered', 'short_call', 'no_answer', 'busy', 'voicemail', 'dial_error', 'timeout', 'dial_lost',
                      'completed', 'cancelled', 'suppressed', 'ineligible');

-- Calls of cancelled campaigns that earlier releases left waiting (live at
-- the cancel, then scheduled for a retry no lane claims) end cancelled.
WITH gone AS (
    UPDATE calls c SET status = 'cancelled', outcome = 'cancelled', next_retry_at = NULL, not_before = NULL, updated_at = now()
    FROM campaigns k
    WHERE k.id = c.campaign_id AND k.status = 'cancelled' AND c.status IN ('queued', 'retry_scheduled')
    RETURNING c.id, c.attempt, c.trace_id)
INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, detail, trace_id, occurred_at)
SELECT id, attempt, 'cancel', NULL, 'cancelled', '{"by": "campaign", "outcome": "cancelled"}', trace_id, now() FROM gone;
