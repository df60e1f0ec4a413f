ALTER TABLE pending_analyses DROP COLUMN trace_parent;
ALTER TABLE crm_outbox DROP COLUMN trace_parent;
ALTER TABLE calls DROP COLUMN trace_parent;
