-- Where a call's trace waits between its steps (contract §10): the W3C
-- traceparent of the step that queued the call (its claim and dial
-- continue it), of the event that made a CRM update (its delivery
-- continues it), and of the post-call an LLM analysis is for. NULL while
-- tracing is off and for rows written before.
ALTER TABLE calls ADD COLUMN trace_parent text;
ALTER TABLE crm_outbox ADD COLUMN trace_parent text;
ALTER TABLE pending_analyses ADD COLUMN trace_parent text;
