CREATE INDEX IF NOT EXISTS calls_queue ON calls (integration_id, priority DESC, queued_at, id) WHERE status = 'queued';
