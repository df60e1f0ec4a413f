UPDATE crm_outbox SET status = 'failed' WHERE status = 'no_record';
ALTER TABLE crm_outbox DROP CONSTRAINT crm_outbox_status_check;
ALTER TABLE crm_outbox ADD CONSTRAINT crm_outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'failed'));
