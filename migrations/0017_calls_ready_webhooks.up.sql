-- The webhook lane's ready queue in claim order. calls_ready leads with
-- campaign_id, and a btree scan with "campaign_id IS NULL" does not yield
-- rows in (priority, queued_at, id) order to the planner: every claim of an
-- integration with many webhook calls sorted them all.
CREATE INDEX calls_ready_webhooks ON calls (integration_id, priority DESC, queued_at, id)
    WHERE status = 'queued' AND not_before IS NULL AND campaign_id IS NULL;
